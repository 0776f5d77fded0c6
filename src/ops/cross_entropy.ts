/**
 * Mean softmax cross-entropy with a fused gradient:
 *   L = (1/N) Σ_n [logsumexp(z_n) − z_n[y_n]],    ∂L/∂z_n = (softmax(z_n) − onehot(y_n)) / N
 * tfjs's chain for this (logSumExp through max, its Equal-based gradient, gather) costs a dozen kernels and a
 * broadcast Equal over [N, V]; the closed-form gradient is three.
 */
import * as tf from '@tensorflow/tfjs';
import { takeAlongRows } from './take_along_rows.ts';

const op = tf.customGrad(((logits: tf.Tensor2D, targets: tf.Tensor2D, save: (ts: tf.Tensor[]) => void) => {
  save([logits, targets]);
  const value = tf.mean(tf.sub(tf.logSumExp(logits, 1, true), takeAlongRows(logits, targets))) as tf.Scalar;
  return {
    value,
    gradFunc: (dy: tf.Tensor, [z, y]: tf.Tensor[]) => {
      const [N, V] = z.shape;
      const g = tf.mul(tf.sub(tf.softmax(z), tf.oneHot(tf.reshape(y, [N]) as tf.Tensor1D, V)), tf.div(dy, N));
      return [g, tf.zeros(y.shape)]; // targets get no gradient (tfjs wants float zeros)
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]);

/** Mean token cross-entropy (1/N) Σ_n [logsumexp(logits_n) − logits_n[target_n]] (nats), fused gradient (header). */
export function crossEntropy(logits: tf.Tensor2D, targets: Int32Array): tf.Scalar {
  const N = logits.shape[0];
  if (targets.length !== N) throw new Error(`crossEntropy: ${targets.length} targets for ${N} rows of logits`);
  return op(logits, tf.tensor2d(targets, [N, 1], 'int32')) as tf.Scalar;
}
