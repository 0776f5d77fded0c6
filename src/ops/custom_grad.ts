/**
 * A typed wrapper over tf.customGrad for ops of (x, index): the int32 index goes in as an input and is
 * `save`d, so the engine keeps it alive for the backward pass even when the caller's tidy has ended.
 */
import * as tf from '@tensorflow/tfjs';

/** op(x, index) = forward(x, index), with d op / dx = backward(dy, index); the index gets no gradient. */
export function customGradIndexed<T extends tf.Tensor>(
  forward: (x: tf.Tensor, index: tf.Tensor) => T,
  backward: (dy: tf.Tensor, index: tf.Tensor) => tf.Tensor,
): (x: tf.Tensor, index: tf.Tensor) => T {
  const f = (x: tf.Tensor, index: tf.Tensor, save: (ts: tf.Tensor[]) => void) => {
    save([index]);
    return {
      value: forward(x, index),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [backward(dy, saved[0]), tf.zeros(saved[0].shape)], // tfjs wants float zeros
    };
  };
  const op = tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]);
  return (x, index) => op(x, index) as T;
}
