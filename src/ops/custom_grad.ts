/** A typed wrapper over tf.customGrad for one-input ops (tfjs's own typing mixes inputs and `save`). */
import * as tf from '@tensorflow/tfjs';

/** op(x) = forward(x) with d op / dx given by backward(dy). */
export function customGrad1<T extends tf.Tensor>(
  forward: (x: tf.Tensor) => T,
  backward: (dy: tf.Tensor) => tf.Tensor,
): (x: tf.Tensor) => T {
  const f = (x: tf.Tensor) => ({ value: forward(x), gradFunc: (dy: tf.Tensor) => [backward(dy)] });
  const op = tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]);
  return (x) => op(x) as T;
}
