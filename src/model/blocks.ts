/**
 * Transformer building blocks (LLaMA style): RMSNorm, rotary position embedding, causal self-attention.
 * Pure functions of tensors; the model owns the weights. On wasm, RMSNorm and the head split/merge with RoPE
 * run as fused kernels (src/ops/rms_norm.ts, src/ops/heads.ts); every other backend runs the tfjs ops here.
 */
import * as tf from '@tensorflow/tfjs';
import { fusedKernelActive, HEADS_KERNEL, RMS_NORM_KERNEL } from '../kernels/wasm_fused.ts';
import { mergeHeadsFused, splitHeadsFused } from '../ops/heads.ts';
import { rmsNormFused } from '../ops/rms_norm.ts';

/** RMSNorm (Zhang & Sennrich 2019): x / √(mean(x²) + ε) · g. */
export function rmsNorm(x: tf.Tensor2D, g: tf.Tensor1D, eps = 1e-5): tf.Tensor2D {
  if (x.dtype === 'float32' && fusedKernelActive(RMS_NORM_KERNEL)) return rmsNormFused(x, g, eps);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), 1, true), eps))), g) as tf.Tensor2D;
}

/** RoPE tables for positions 0..L−1 and head width hd: cos, sin [L, hd/2] with θ_j = 10000^(−2j/hd). */
export function ropeTables(L: number, hd: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const half = hd / 2;
  const cos = new Float32Array(L * half);
  const sin = new Float32Array(L * half);
  for (let p = 0; p < L; p++) {
    for (let j = 0; j < half; j++) {
      const a = p * Math.pow(10000, (-2 * j) / hd);
      cos[p * half + j] = Math.cos(a);
      sin[p * half + j] = Math.sin(a);
    }
  }
  return { cos: tf.tensor2d(cos, [L, half]), sin: tf.tensor2d(sin, [L, half]) };
}

/** Rotary embedding (GPT-NeoX "rotate half"): [x1, x2] → [x1·cos − x2·sin, x1·sin + x2·cos] on x [B, H, L, hd]. */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D {
  const [x1, x2] = tf.split(x, 2, 3);
  return tf.concat([tf.sub(tf.mul(x1, cos), tf.mul(x2, sin)), tf.add(tf.mul(x1, sin), tf.mul(x2, cos))], 3) as tf.Tensor4D;
}

/** Additive causal mask [L, L]: 0 on and below the diagonal, −1e9 above. */
export function causalMask(L: number): tf.Tensor2D {
  const m = new Float32Array(L * L);
  for (let i = 0; i < L; i++) for (let j = i + 1; j < L; j++) m[i * L + j] = -1e9;
  return tf.tensor2d(m, [L, L]);
}

export interface AttentionWeights { wq: tf.Tensor2D; wk: tf.Tensor2D; wv: tf.Tensor2D; wo: tf.Tensor2D }

/**
 * Causal multi-head self-attention on x [B·L, D]: softmax(q·kᵀ/√hd + mask)·v, heads concatenated, ·W_o.
 * kᵀ is an explicit transpose: wasm's matMul with transposeB is many times slower.
 */
export function causalSelfAttention(
  x: tf.Tensor2D, w: AttentionWeights, B: number, L: number, heads: number,
  rope: { cos: tf.Tensor2D; sin: tf.Tensor2D } | null, mask: tf.Tensor2D,
): tf.Tensor2D {
  const D = x.shape[1];
  const hd = D / heads;
  const fused = fusedKernelActive(HEADS_KERNEL);
  // [B·L, D] → [B, H, L, hd], rotated by RoPE where `r` is given
  const split = (t: tf.Tensor2D, r: typeof rope): tf.Tensor4D => {
    if (fused) return splitHeadsFused(t, L, heads, r);
    const s = tf.transpose(tf.reshape(t, [B, L, heads, hd]), [0, 2, 1, 3]) as tf.Tensor4D;
    return r ? applyRope(s, r.cos, r.sin) : s;
  };
  const q = split(tf.matMul(x, w.wq), rope);
  const k = split(tf.matMul(x, w.wk), rope);
  const v = split(tf.matMul(x, w.wv), null);
  const kT = tf.transpose(k, [0, 1, 3, 2]); // [B, H, hd, L]
  const scores = tf.add(tf.mul(tf.matMul(q, kT), 1 / Math.sqrt(hd)), mask); // [B, H, L, L]
  const att = tf.softmax(scores); // over keys
  const o = tf.matMul(att, v) as tf.Tensor4D; // [B, H, L, hd]
  const out = fused ? mergeHeadsFused(o) : tf.transpose(o, [0, 2, 1, 3]).reshape([B * L, D]); // [B·L, D]
  return tf.matMul(out as tf.Tensor2D, w.wo);
}
