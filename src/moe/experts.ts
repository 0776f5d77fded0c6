/**
 * Expert FFNs: `dim → hidden → dim` per expert, weights stacked over experts ([E, D, H], Megatron's
 * GroupedMLP layout). Experts only compute: they see rows already grouped by expert and return rows
 * in the same order. One matmul pair per non-empty expert, never a loop over tokens.
 */
import * as tf from '@tensorflow/tfjs';
import { fusedKernelActive, SWIGLU_KERNEL } from '../kernels/wasm_fused.ts';
import { swigluFused } from '../ops/swiglu.ts';
import type { Rng } from '../rng.ts';

export type Activation = 'relu' | 'gelu' | 'swiglu';
export const ACTIVATIONS: readonly Activation[] = ['relu', 'gelu', 'swiglu'];

export interface ExpertWeights {
  /** [E, D, H] up projection. */
  w1: tf.Variable;
  /** [E, H, D] down projection. */
  w2: tf.Variable;
  /** [E, D, H] gate projection (SwiGLU only). */
  w3: tf.Variable | null;
}

/** GELU, tanh approximation (Hendrycks & Gimpel): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
    return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
  });
}

/** SiLU / swish: x · σ(x). */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

/** SwiGLU's gate silu(h)·u: one fused kernel each way on wasm (src/ops/swiglu.ts), tfjs ops elsewhere. */
export function swiglu(h: tf.Tensor, u: tf.Tensor): tf.Tensor {
  if (h.dtype === 'float32' && u.dtype === 'float32' && fusedKernelActive(SWIGLU_KERNEL)) return swigluFused(h, u);
  return tf.mul(silu(h), u);
}

/** Normal(0, std) weights from the seeded RNG, as a trainable variable (tfjs names must be unique, so ours live in maps). */
export function initVariable(rng: Rng, shape: number[], std: number): tf.Variable {
  const n = shape.reduce((a, b) => a * b, 1);
  // in a tidy: the variable shares the initial tensor's data, which would otherwise stay alive after dispose()
  return tf.tidy(() => tf.variable(tf.tensor(rng.normals(n, std), shape), true));
}

/** Creates E experts' weights; std 0.02 (GPT-2), down projection scaled by 1/√(2·layers) like GPT-2. */
export function createExperts(
  rng: Rng, numExperts: number, dim: number, hidden: number, activation: Activation, downScale = 1,
): ExpertWeights {
  return {
    w1: initVariable(rng, [numExperts, dim, hidden], 0.02),
    w2: initVariable(rng, [numExperts, hidden, dim], 0.02 * downScale),
    w3: activation === 'swiglu' ? initVariable(rng, [numExperts, dim, hidden], 0.02) : null,
  };
}

/** One FFN on rows x [n, D]: act(x·W1)·W2, or (silu(x·W1) ⊙ x·W3)·W2 for SwiGLU. */
export function ffn(x: tf.Tensor2D, w1: tf.Tensor2D, w2: tf.Tensor2D, w3: tf.Tensor2D | null, activation: Activation): tf.Tensor2D {
  const h = tf.matMul(x, w1); // [n, H]
  let a: tf.Tensor;
  switch (activation) {
    case 'relu': a = tf.relu(h); break;
    case 'gelu': a = gelu(h); break;
    case 'swiglu': a = swiglu(h, tf.matMul(x, w3!)); break;
  }
  return tf.matMul(a as tf.Tensor2D, w2); // [n, D]
}

/**
 * Runs every expert on its block of rows: xs [N, D] grouped by expert with `tokensPerExpert` rows each
 * → ys [N, D]. Weights are unstacked once (its gradient is one stack, not E zero-padded slices).
 */
export function runExperts(xs: tf.Tensor2D, weights: ExpertWeights, tokensPerExpert: number[], activation: Activation): tf.Tensor2D {
  const E = tokensPerExpert.length;
  if (weights.w1.shape[0] !== E) throw new Error(`runExperts: ${E} expert blocks but weights hold ${weights.w1.shape[0]} experts`);
  const N = tokensPerExpert.reduce((a, b) => a + b, 0);
  if (N !== xs.shape[0]) throw new Error(`runExperts: blocks sum to ${N} rows, xs has ${xs.shape[0]}`);
  const D = xs.shape[1];
  if (N === 0) return tf.zeros([0, D]);
  const w1s = tf.unstack(weights.w1) as tf.Tensor2D[];
  const w2s = tf.unstack(weights.w2) as tf.Tensor2D[];
  const w3s = weights.w3 ? (tf.unstack(weights.w3) as tf.Tensor2D[]) : null;
  const sizes = tokensPerExpert.filter((c) => c > 0);
  // tfjs's split gradient breaks on a single piece (its dy is then not an array): skip the split then
  const blocks = sizes.length === 1 ? [xs] : (tf.split(xs, sizes) as tf.Tensor2D[]);
  const outs: tf.Tensor2D[] = [];
  let b = 0;
  for (let e = 0; e < E; e++) {
    if (tokensPerExpert[e] === 0) continue; // an idle expert costs nothing (and gets zero gradient)
    outs.push(ffn(blocks[b++], w1s[e], w2s[e], w3s ? w3s[e] : null, activation));
  }
  return (outs.length === 1 ? outs[0] : tf.concat(outs, 0)) as tf.Tensor2D;
}
