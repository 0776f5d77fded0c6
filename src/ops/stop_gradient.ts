/**
 * stopGradient: y = x with dy/dx = 0. Routing decisions (top-k of probabilities, Sinkhorn plans, load
 * counts) are constants to autodiff; without this, tfjs tries to backprop through TopK and fails.
 */
import * as tf from '@tensorflow/tfjs';

/** y = x, ∂y/∂x = 0. */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  const f = (a: tf.Tensor) => ({ value: tf.clone(a), gradFunc: (dy: tf.Tensor) => [tf.zerosLike(dy)] });
  return tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0])(x) as T;
}
