/**
 * Noisy top-k gating (Shazeer et al. 2017, "Outrageously Large Neural Networks", §2.1 and App. A):
 *   H = x·W_g + ε ⊙ σ_noise,  σ_noise = (softplus(x·W_noise) + ε_min) · noiseScale,  ε ~ N(0, 1),
 *   G = softmax(KeepTopK(H, k)).
 * The caller passes the raw noise logits x·W_noise; softplus is applied here so W_noise gets its
 * gradient through σ_noise and the std used by the smooth load estimator is the same tensor.
 * ε_min = 1e-2 is tensor2tensor's `noise_epsilon` (keeps σ away from 0 so the load estimator is finite).
 */
import * as tf from '@tensorflow/tfjs';
import { stopGradient } from '../ops/stop_gradient.ts';
import { takeAlongRows } from '../ops/take_along_rows.ts';
import { checkK, topKIndices } from './topk.ts';
import type { TokenChoiceRouting } from './types.ts';

/** tensor2tensor's `noise_epsilon`: the floor added to softplus(x·W_noise). */
export const NOISE_EPSILON = 1e-2;
/** variance floor of the optional batch normalisation of logits. */
const BATCH_NORM_EPS = 1e-5;

export interface NoisyTopKOptions {
  k: number;
  /** [T, E] standard normal draws ε, supplied by the caller (keeps the router pure and deterministic). */
  noise?: tf.Tensor2D;
  /** add noise (training) or route on the clean logits (evaluation). */
  training: boolean;
  /** multiplier on σ_noise, for annealing the noise away; default 1. */
  noiseScale?: number;
  /** standardise each expert's logit over the token axis, (h − μ_e)/√(var_e + 1e-5), before noise. */
  batchNorm?: boolean;
}

/** Token-choice routing plus what Shazeer's smooth load estimator needs. */
export interface NoisyTopKRouting extends TokenChoiceRouting {
  /** [T, E] logits noise is added to (after the optional batch norm; else the input tensor itself). */
  cleanLogits: tf.Tensor2D;
  /** [T, E] H = clean + ε·σ_noise (the clean tensor itself when not training). */
  noisyLogits: tf.Tensor2D;
  /** [T, E] σ_noise (zeros when not training). */
  noiseStd: tf.Tensor2D;
}

/** Noisy top-k: H = h + ε·(softplus(n) + 1e-2)·s; indices = topk(H); weights = softmax(H at picks); probs = softmax(H). */
export function routeNoisyTopK(
  logits: tf.Tensor2D,
  noiseLogits: tf.Tensor2D,
  opts: NoisyTopKOptions,
): NoisyTopKRouting {
  const { k, noise, training, noiseScale = 1, batchNorm = false } = opts;
  const E = checkK(logits, k, 'routeNoisyTopK');
  const T = logits.shape[0];
  checkShape(noiseLogits, T, E, 'routeNoisyTopK: noiseLogits');
  if (!Number.isFinite(noiseScale) || noiseScale < 0) {
    throw new Error(`routeNoisyTopK: noiseScale must be a finite number ≥ 0, got ${noiseScale}`);
  }
  if (training) {
    if (!noise) throw new Error('routeNoisyTopK: training=true needs opts.noise, a [T, E] standard normal tensor');
    checkShape(noise, T, E, 'routeNoisyTopK: noise');
  }
  return tf.tidy(() => {
    let clean = logits;
    if (batchNorm) {
      // Per-expert standardisation over the batch: the noise then has a fixed scale relative to
      // the logit spread, whatever the gate weights' magnitude.
      const { mean, variance } = tf.moments(logits, 0, true); // [1, E]
      clean = tf.div(tf.sub(logits, mean), tf.sqrt(tf.add(variance, BATCH_NORM_EPS))) as tf.Tensor2D;
    }
    let noisy = clean;
    let noiseStd: tf.Tensor2D;
    if (training) {
      noiseStd = tf.mul(tf.add(tf.softplus(noiseLogits), NOISE_EPSILON), noiseScale) as tf.Tensor2D; // [T, E]
      noisy = tf.add(clean, tf.mul(noise!, noiseStd)) as tf.Tensor2D; // [T, E]
    } else {
      noiseStd = tf.zeros([T, E]);
    }
    const indices = topKIndices(stopGradient(noisy), k); // [T, k] a constant
    // Shazeer: KeepTopK sets the rest to −∞ before the softmax = softmax over the k picked values.
    const weights = tf.softmax(takeAlongRows(noisy, indices)) as tf.Tensor2D; // [T, k]
    const probs = tf.softmax(noisy) as tf.Tensor2D; // [T, E]
    return {
      kind: 'token-choice' as const, probs, indices, weights, logits, cleanLogits: clean, noisyLogits: noisy, noiseStd,
    };
  });
}

/**
 * Shazeer's smooth load (App. A): Load_i = Σ_x Φ((clean_i(x) − kth_excluding(H(x), k, i)) / σ_i(x)),
 * the expected number of tokens for which expert i stays in the top k under fresh noise.
 * kth_excluding is the k-th largest of H(x) without H_i: the (k+1)-th largest when i is in the top k,
 * else the k-th largest (tensor2tensor's `_prob_in_top_k`). Differentiable in clean, σ and the
 * thresholds (taken from H); returns [E]. With k = E every expert is always picked: Load_i = T.
 * σ is floored at 1e-9 so σ → 0 gives the hard count rather than NaN.
 */
export function noisyTopKLoad(
  cleanLogits: tf.Tensor2D,
  noisyLogits: tf.Tensor2D,
  noiseStd: tf.Tensor2D,
  k: number,
): tf.Tensor1D {
  const E = checkK(cleanLogits, k, 'noisyTopKLoad');
  const T = cleanLogits.shape[0];
  checkShape(noisyLogits, T, E, 'noisyTopKLoad: noisyLogits');
  checkShape(noiseStd, T, E, 'noisyTopKLoad: noiseStd');
  return tf.tidy(() => {
    if (k === E) return tf.fill([E], T) as tf.Tensor1D;
    const fixed = stopGradient(noisyLogits); // decisions are constants; thresholds keep their gradient
    const top = takeAlongRows(noisyLogits, topKIndices(fixed, k + 1)); // [T, k+1]
    const thresholdIfIn = tf.slice(top, [0, k], [T, 1]); // [T, 1] (k+1)-th largest
    const thresholdIfOut = tf.slice(top, [0, k - 1], [T, 1]); // [T, 1] k-th largest
    // 1 where H > the (k+1)-th largest (i is in the top k). step, not greater + where: a comparison
    // on the tape has no gradient function and tfjs refuses to backprop past it, even with dy = 0.
    const isIn = tf.step(tf.sub(fixed, stopGradient(thresholdIfIn))); // [T, E]
    const threshold = tf.add(tf.mul(isIn, thresholdIfIn), tf.mul(tf.sub(1, isIn), thresholdIfOut)); // [T, E]
    const margin = tf.sub(cleanLogits, threshold); // [T, E]
    const z = tf.div(margin, tf.maximum(noiseStd, 1e-9)); // [T, E]
    const prob = normalCdf(z); // [T, E]
    return tf.sum(prob, 0) as tf.Tensor1D; // [E]
  });
}

/** Φ(z) = ½ (1 + erf(z / √2)). */
export function normalCdf(z: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(0.5, tf.add(1, tf.erf(tf.mul(z, Math.SQRT1_2)))));
}

function checkShape(t: tf.Tensor, T: number, E: number, what: string): void {
  if (t.rank !== 2 || t.shape[0] !== T || t.shape[1] !== E) {
    throw new Error(`${what} must have shape [${T}, ${E}], got [${t.shape}]`);
  }
}
