/**
 * Gradient clipping by global norm (Pascanu et al. 2013; torch.nn.utils.clip_grad_norm_):
 *   norm = √(Σ_p ‖g_p‖²),  scale = min(1, maxNorm / (norm + 1e-6)),  g_p ← scale·g_p.
 * The norm is formed as a·√(Σ (g/a)²) with a = max |g|, so large but finite gradients (|g| ≳ 1e19, whose
 * squares overflow float32) still give a finite norm; any NaN/±Inf makes `finite` false so the trainer can
 * skip the step. clipOnDevice keeps everything on the device (the trainer reads [a, Σ (g/a)²] later, with
 * the step's other numbers); clipByGlobalNorm reads them at once. On wasm a and Σ (g/a)² come from one fused
 * kernel (src/kernels/wasm_fused.ts) summing Σ g²/a² in float64.
 */
import * as tf from '@tensorflow/tfjs';
import { CLIP_STATS_KERNEL, fusedKernelActive } from '../kernels/wasm_fused.ts';

export interface ClipResult {
  /** New tensors (scaled, or clones when scale = 1 or the norm is not finite): the caller disposes them. */
  grads: Record<string, tf.Tensor>;
  /** Global L2 norm before clipping (NaN or Infinity when a gradient is not finite). */
  norm: number;
  /** False when any gradient entry is NaN or ±Inf. */
  finite: boolean;
  /** The factor applied: min(1, maxNorm/(norm + 1e-6)), or 1 with no maxNorm or a non-finite norm. */
  scale: number;
}

/** Global norm of grads and the grads scaled by min(1, maxNorm/(norm + 1e-6)); maxNorm null only measures. */
export function clipByGlobalNorm(grads: Record<string, tf.Tensor>, maxNorm: number | null): ClipResult {
  if (grads === null || typeof grads !== 'object') throw new Error(`clipByGlobalNorm: grads must be a record of tensors, got ${String(grads)}`);
  if (maxNorm !== null && (!Number.isFinite(maxNorm) || maxNorm <= 0)) {
    throw new Error(`clipByGlobalNorm: maxNorm must be a finite number > 0 or null, got ${maxNorm}`);
  }
  const names = Object.keys(grads);
  for (const n of names) {
    if (!(grads[n] instanceof tf.Tensor)) throw new Error(`clipByGlobalNorm: grads[${n}] is not a tensor`);
  }
  if (names.length === 0) return { grads: {}, norm: 0, finite: true, scale: 1 };
  const dev = clipOnDevice(grads, maxNorm);
  const [maxAbs, scaledSq, scale] = dev.parts.dataSync(); // the one read
  dev.parts.dispose();
  const { norm, finite } = normFromParts(maxAbs, scaledSq);
  return { grads: dev.grads, norm, finite, scale: finite ? scale : 1 };
}

/** Clipping whose numbers stay on the device until the caller reads them. */
export interface DeviceClip {
  /** New tensors (scaled; multiplied by 1 when not clipped or not finite): the caller disposes them. */
  grads: Record<string, tf.Tensor>;
  /** [a, Σ (g/a)², scale] with a = max |g| (normFromParts turns the first two into the norm). */
  parts: tf.Tensor1D;
  /** 1 when every gradient entry is finite, else 0 (float scalar; AdamW skips the update on 0). */
  finite: tf.Scalar;
}

/**
 * Global-norm clipping with no read-back: norm = a·√(Σ (g/a)² + extraSq/a²) computed on the device,
 * scale = min(1, maxNorm/(norm + 1e-6)) (1 when maxNorm is null or the norm is not finite), g ← scale·g.
 * extraSq adds gradients held elsewhere (expert-parallel workers' Σ g²).
 */
export function clipOnDevice(grads: Record<string, tf.Tensor>, maxNorm: number | null, extraSq = 0): DeviceClip {
  const names = Object.keys(grads);
  if (names.length === 0) throw new Error('clipOnDevice: no gradients');
  return tf.tidy(() => {
    const gs = names.map((n) => (grads[n].dtype === 'float32' ? grads[n] : tf.cast(grads[n], 'float32'))); // a cast to its own dtype is a copy kernel
    let a: tf.Scalar, sq: tf.Scalar;
    if (fusedKernelActive(CLIP_STATS_KERNEL)) {
      // wasm: one pass over every gradient instead of seven kernels per gradient
      [a, sq] = tf.engine().runKernel(CLIP_STATS_KERNEL, Object.fromEntries(gs.map((g, i) => [`g${i}`, g])), {}) as tf.Scalar[];
    } else {
      a = tf.max(tf.stack(gs.map((g) => tf.max(tf.abs(g))))) as tf.Scalar; // [] max |g|
      // a = 0 (all-zero grads) would give 0/0: divide by 1 then, the sum is 0 anyway.
      const safe0 = tf.where(tf.greater(a, 0), a, tf.onesLike(a));
      // a left fold, not addN: WebGPU binds at most 8 storage buffers per kernel, and addN takes them all at once
      sq = gs.map((g) => tf.sum(tf.square(tf.div(g, safe0)))).reduce((x, y) => tf.add(x, y)) as tf.Scalar; // [] Σ (g/a)²
    }
    const safe = tf.where(tf.greater(a, 0), a, tf.onesLike(a));
    if (extraSq > 0) sq = tf.add(sq, tf.div(extraSq, tf.square(safe)));
    const finite = tf.cast(tf.logicalAnd(tf.isFinite(a), tf.isFinite(sq)), 'float32') as tf.Scalar;
    const norm = tf.mul(a, tf.sqrt(sq));
    const ok = tf.greater(finite, 0);
    const scale = maxNorm === null ? tf.scalar(1) : tf.where(ok, tf.minimum(1, tf.div(maxNorm, tf.add(tf.where(ok, norm, tf.zerosLike(norm)), 1e-6))), tf.scalar(1));
    const out: Record<string, tf.Tensor> = {};
    for (const n of names) out[n] = tf.mul(grads[n], scale);
    return { grads: out, parts: tf.stack([a, sq, scale]) as tf.Tensor1D, finite };
  });
}

/** The global norm from clipOnDevice's parts: a·√(Σ (g/a)²); Infinity for an Inf entry, NaN for a NaN. */
export function normFromParts(maxAbs: number, scaledSq: number): { norm: number; finite: boolean } {
  const finite = Number.isFinite(maxAbs) && Number.isFinite(scaledSq);
  // An Inf entry makes max |g| = Inf (and the scaled sum NaN): report Infinity for it, NaN otherwise.
  return { norm: finite ? maxAbs * Math.sqrt(scaledSq) : maxAbs === Infinity ? Infinity : NaN, finite };
}
