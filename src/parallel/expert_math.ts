/**
 * One expert FFN's forward with its activations kept, and its backward from them — the worker side
 * of expert parallelism, where no tfjs tape spans the forward and backward calls.
 *   h = x·W1,  (h3 = x·W3),  a = act(h[, h3]),  y = a·W2
 *   dW2 = aᵀ·dy,  da = dy·W2ᵀ,  (dh, dh3) = act'ᵀ·da,  dW1 = xᵀ·dh,  dW3 = xᵀ·dh3,  dx = dh·W1ᵀ (+ dh3·W3ᵀ)
 * Same ops as `ffn` forward (so ys match it), explicit transposes in backward (wasm runs transposed
 * matMul 15–25× slower, see ops/matmul_grad.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { gelu, silu, type Activation } from '../moe/experts.ts';

export interface ExpertParams {
  /** [D, H] */
  w1: tf.Tensor2D;
  /** [H, D] */
  w2: tf.Tensor2D;
  /** [D, H] (SwiGLU only) */
  w3: tf.Tensor2D | null;
}

/** What backward needs: inputs and activations (the caller owns and disposes them). */
export interface SavedBlock {
  x: tf.Tensor2D;
  h: tf.Tensor2D;
  h3: tf.Tensor2D | null;
  a: tf.Tensor2D;
}

export interface BlockGrads {
  dx: tf.Tensor2D;
  dw1: tf.Tensor2D;
  dw2: tf.Tensor2D;
  dw3: tf.Tensor2D | null;
}

/** a = act(h) or silu(h) ⊙ h3 (SwiGLU), as `ffn` computes it. */
function act(h: tf.Tensor, h3: tf.Tensor | null, activation: Activation): tf.Tensor {
  switch (activation) {
    case 'relu': return tf.relu(h);
    case 'gelu': return gelu(h);
    case 'swiglu': return tf.mul(silu(h), h3!);
  }
}

/** y = act(x·W1[, x·W3])·W2 for rows x [n, D]; keeps x, h, h3, a when `save` (else disposes them). */
export function forwardBlock(x: tf.Tensor2D, p: ExpertParams, activation: Activation, save: boolean): { y: tf.Tensor2D; saved: SavedBlock | null } {
  const h = tf.matMul(x, p.w1) as tf.Tensor2D; // [n, H]
  const h3 = activation === 'swiglu' ? (tf.matMul(x, p.w3!) as tf.Tensor2D) : null; // [n, H]
  const a = tf.tidy(() => act(h, h3, activation)) as tf.Tensor2D; // [n, H]
  const y = tf.matMul(a, p.w2) as tf.Tensor2D; // [n, D]
  if (save) return { y, saved: { x, h, h3, a } };
  for (const t of [x, h, h3, a]) t?.dispose();
  return { y, saved: null };
}

/** Gradients of Σ dy ⊙ y w.r.t. x and the weights, from forwardBlock's saved tensors. */
export function backwardBlock(s: SavedBlock, dy: tf.Tensor2D, p: ExpertParams, activation: Activation): BlockGrads {
  const [dx, dw1, dw2, dw3] = tf.tidy(() => {
    const dw2 = tf.matMul(tf.transpose(s.a), dy); // [H, D]
    const da = tf.matMul(dy, tf.transpose(p.w2)); // [n, H]
    const xT = tf.transpose(s.x); // [D, n]
    if (activation === 'swiglu') {
      const [dh, dh3] = tf.grads((h: tf.Tensor, h3: tf.Tensor) => act(h, h3, activation))([s.h, s.h3!], da); // [n, H] each
      const dx = tf.add(tf.matMul(dh, tf.transpose(p.w1)), tf.matMul(dh3, tf.transpose(p.w3!))); // [n, D]
      return [dx, tf.matMul(xT, dh), dw2, tf.matMul(xT, dh3)];
    }
    const dh = tf.grad((h: tf.Tensor) => act(h, null, activation))(s.h, da); // [n, H]
    return [tf.matMul(dh, tf.transpose(p.w1)), tf.matMul(xT, dh), dw2]; // dx [n, D], dW1 [D, H]
  }) as tf.Tensor2D[];
  return { dx, dw1, dw2, dw3: dw3 ?? null };
}

/** Frees a saved block. */
export function disposeSaved(s: SavedBlock): void {
  for (const t of [s.x, s.h, s.h3, s.a]) t?.dispose();
}
