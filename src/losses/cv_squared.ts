/**
 * Importance and load balance losses of Shazeer et al. 2017 (sparsely-gated MoE):
 *   loss = CV²(importance) + CV²(load),  CV²(x) = Var(x) / (mean(x)² + 1e-10)  (population variance),
 *   importance_i = Σ_t probs[t, i],  load_i = number of assignments to expert i.
 * Shazeer's load is a smooth estimator built from the noise of noisy top-k gating; ours is the
 * hard count, a constant, so only the importance term carries gradient. CV² is scale-free, so
 * sums accumulated over micro-batches can be fed to cvSquaredFromStats as they are.
 *
 * Also the variance form of seed article 004 (loadVarianceLoss), reproduced for comparison.
 */
import * as tf from '@tensorflow/tfjs';
import { checkRouting, checkStat } from './check.ts';
import { oneHotCounts, stopGradient } from './switch.ts';

/** Shazeer's epsilon in the CV² denominator (keeps an all-zero vector finite). */
export const CV_EPSILON = 1e-10;

/** CV²(x) = Var(x) / (mean(x)² + 1e-10), population variance over the E entries of x [E]. */
export function cvSquared(x: tf.Tensor1D): tf.Scalar {
  checkStat(x, 'x', null, 'cvSquared');
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x);
    return tf.div(variance, tf.add(tf.square(mean), CV_EPSILON)) as tf.Scalar;
  });
}

/** loss = CV²(importance) + CV²(load) from aggregated [E] statistics; load is treated as a constant. */
export function cvSquaredFromStats(importance: tf.Tensor1D, load: tf.Tensor1D): tf.Scalar {
  const E = checkStat(importance, 'importance', null, 'cvSquaredFromStats');
  checkStat(load, 'load', E, 'cvSquaredFromStats');
  return tf.tidy(() => tf.add(cvSquared(importance), cvSquared(stopGradient(load))) as tf.Scalar);
}

/** loss = CV²(importance) + CV²(load), importance_i = Σ_t probs[t,i], load_i = count_i. */
export function cvSquaredLoss(probs: tf.Tensor2D, indices: tf.Tensor2D, numExperts: number): tf.Scalar {
  const { E } = checkRouting(probs, indices, numExperts, 'cvSquaredLoss');
  return tf.tidy(() => {
    const importance = tf.sum(probs, 0) as tf.Tensor1D; // [E]
    const load = oneHotCounts(indices, E); // [E]
    return tf.add(cvSquared(importance), cvSquared(load)) as tf.Scalar;
  });
}

/** Var_{E−1}(x) = Σ_i (x_i − x̄)² / (E − 1): torch's default Tensor.var() (Bessel-corrected). */
function unbiasedVariance(x: tf.Tensor1D): tf.Scalar {
  const E = x.shape[0];
  return tf.div(tf.sum(tf.square(tf.sub(x, tf.mean(x)))), E - 1) as tf.Scalar;
}

/**
 * Seed 004's BalancedGatingNetwork.compute_balance_loss, without its balance_loss_weight:
 *   loss = Var(importance) + Var(load),  importance_i = Σ_t probs[t,i],  load_i = mean_t probs[t,i],
 * with torch's default unbiased variance (divide by E − 1). Note the seed's "load" is the mean
 * probability, not a count, so the loss is (1 + 1/T²)·Var(importance) and depends on batch size
 * (≈T²·Var(P̄)); indices are only validated, kept for a signature uniform with the other losses.
 * Zero at perfect balance; needs E ≥ 2.
 */
export function loadVarianceLoss(probs: tf.Tensor2D, indices: tf.Tensor2D, numExperts: number): tf.Scalar {
  const { E } = checkRouting(probs, indices, numExperts, 'loadVarianceLoss');
  if (E < 2) throw new Error(`loadVarianceLoss: needs E ≥ 2 experts for an unbiased variance, got E = ${E}`);
  return tf.tidy(() => {
    const importance = tf.sum(probs, 0) as tf.Tensor1D; // [E]
    const load = tf.mean(probs, 0) as tf.Tensor1D; // [E]
    return tf.add(unbiasedVariance(importance), unbiasedVariance(load)) as tf.Scalar;
  });
}
