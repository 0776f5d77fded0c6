/**
 * Switch/GShard load-balancing loss in the Megatron-Core convention:
 *   loss = E · Σ_i f_i · P_i,  f_i = count_i / (T·k),  P_i = (1/T) Σ_t probs[t, i].
 * Under perfect balance (f_i = P_i = 1/E) it equals 1, whatever k is; a router that sends every
 * token to one expert with probability 1 (k = 1) gives E.
 *
 * Hugging Face's Mixtral `load_balancing_loss_func` divides the counts by T instead of T·k, so its
 * value is k times this one (k at perfect balance): a coefficient α tuned there acts like k·α here.
 *
 * f is a constant (routing decisions carry no gradient); the gradient reaches the router through P.
 */
import * as tf from '@tensorflow/tfjs';
import { stopGradient } from '../ops/stop_gradient.ts';
export { stopGradient };
import { checkIndices, checkNumExperts, checkRouting, checkStat } from './check.ts';

/** counts_i = Σ_{t,j} [indices[t,j] = i] as float32 [E]; no checks (callers validate). */
export function oneHotCounts(indices: tf.Tensor2D, numExperts: number): tf.Tensor1D {
  return tf.tidy(() => {
    // float before the sum, as 2-D: tfjs-webgpu's int32 transpose inside a 3-D reduction emits invalid WGSL
    const hot = tf.reshape(tf.cast(tf.oneHot(indices, numExperts), 'float32'), [-1, numExperts]); // [T·k, E]
    return tf.sum(hot, 0) as tf.Tensor1D; // [E]
  });
}

/** count_i = number of the T·k assignments in indices [T, k] that went to expert i (float32 [E], no gradient). */
export function expertCounts(indices: tf.Tensor2D, numExperts: number): tf.Tensor1D {
  checkNumExperts(numExperts, null, 'expertCounts');
  checkIndices(indices, null, numExperts, 'expertCounts');
  return oneHotCounts(indices, numExperts);
}

/**
 * loss = E · Σ_i f_i · P_i from aggregated statistics: f [E] assignment shares (Σ f = 1),
 * P [E] mean router probabilities. Lets a trainer use counts summed over micro-batches
 * (or ranks, as in Megatron's global-batch variant) with the local mean probabilities.
 */
export function switchLossFromStats(f: tf.Tensor1D, P: tf.Tensor1D): tf.Scalar {
  const E = checkStat(f, 'f', null, 'switchLossFromStats');
  checkStat(P, 'P', E, 'switchLossFromStats');
  return tf.tidy(() => tf.mul(tf.sum(tf.mul(stopGradient(f), P)), E) as tf.Scalar);
}

/** loss = E · Σ_i f_i · P_i with f_i = count_i/(T·k) and P_i = mean_t probs[t, i] (1 at perfect balance). */
export function switchLoss(probs: tf.Tensor2D, indices: tf.Tensor2D, numExperts: number): tf.Scalar {
  const { T, E, k } = checkRouting(probs, indices, numExperts, 'switchLoss');
  return tf.tidy(() => {
    const f = tf.div(oneHotCounts(indices, E), T * k) as tf.Tensor1D; // [E]
    const P = tf.mean(probs, 0) as tf.Tensor1D; // [E]
    return tf.mul(tf.sum(tf.mul(f, P)), E) as tf.Scalar;
  });
}
