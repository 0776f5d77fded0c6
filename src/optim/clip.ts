/**
 * Gradient clipping by global norm (Pascanu et al. 2013; torch.nn.utils.clip_grad_norm_):
 *   norm = √(Σ_p ‖g_p‖²),  scale = min(1, maxNorm / (norm + 1e-6)),  g_p ← scale·g_p.
 * The norm is one tensor read once per step. It is formed as a·√(Σ (g/a)²) with a = max |g|, so large but
 * finite gradients (|g| ≳ 1e19, whose squares overflow float32) still give a finite norm; any NaN/±Inf
 * makes `finite` false so the trainer can skip the step.
 */
import * as tf from '@tensorflow/tfjs';

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
  const [maxAbs, scaledSq] = tf.tidy(() => {
    const gs = names.map((n) => tf.cast(grads[n], 'float32'));
    const a = tf.max(tf.stack(gs.map((g) => tf.max(tf.abs(g))))); // [] max |g|
    // a = 0 (all-zero grads) would give 0/0: divide by 1 then, the sum is 0 anyway.
    const safe = tf.where(tf.greater(a, 0), a, tf.onesLike(a));
    const sq = tf.addN(gs.map((g) => tf.sum(tf.square(tf.div(g, safe))))); // [] Σ (g/a)²
    return tf.stack([a, sq]).dataSync(); // the one read
  });
  const finite = Number.isFinite(maxAbs) && Number.isFinite(scaledSq);
  // An Inf entry makes max |g| = Inf (and the scaled sum NaN): report Infinity for it, NaN otherwise.
  const norm = finite ? maxAbs * Math.sqrt(scaledSq) : maxAbs === Infinity ? Infinity : NaN;
  const scale = maxNorm === null || !finite ? 1 : Math.min(1, maxNorm / (norm + 1e-6));
  const out: Record<string, tf.Tensor> = {};
  for (const n of names) out[n] = scale === 1 ? tf.clone(grads[n]) : tf.tidy(() => tf.mul(grads[n], scale));
  return { grads: out, norm, finite, scale };
}
