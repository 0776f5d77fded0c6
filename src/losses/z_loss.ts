/**
 * Router z-loss (ST-MoE, Zoph et al. 2022): penalises large router logits, which keeps the
 * softmax out of float saturation:  loss = (1/T) Σ_t (log Σ_j exp(logits[t, j]))².
 */
import * as tf from '@tensorflow/tfjs';
import { checkProbs } from './check.ts';

/** loss = mean_t (logsumexp_j logits[t, j])² for logits [T, E]. */
export function zLoss(logits: tf.Tensor2D): tf.Scalar {
  checkProbs(logits, 'zLoss', 'logits');
  return tf.tidy(() => {
    const lse = tf.logSumExp(logits, 1); // [T]
    return tf.mean(tf.square(lse)) as tf.Scalar;
  });
}
