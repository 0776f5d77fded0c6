/**
 * takeAlongRows: out[t, j] = x[t, index[t, j]]  (numpy's take_along_axis on axis 1).
 * Differentiable in x through gatherRows on the flattened [T·E, 1] view, so it works on wasm too.
 */
import * as tf from '@tensorflow/tfjs';
import { gatherRows } from './gather_rows.ts';

/** out[t, j] = x[t, index[t, j]] for x [T, E] and int32 index [T, k]. */
export function takeAlongRows(x: tf.Tensor2D, index: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const [T, E] = x.shape;
    const k = index.shape[1];
    if (index.shape[0] !== T) throw new Error(`takeAlongRows: index has ${index.shape[0]} rows, x has ${T}`);
    const rowBase = tf.mul(tf.range(0, T, 1, 'int32'), tf.scalar(E, 'int32')).reshape([T, 1]);
    const flatIndex = tf.add(rowBase, index).reshape([T * k]) as tf.Tensor1D; // [T·k]
    return gatherRows(x.reshape([T * E, 1]), flatIndex).reshape([T, k]) as tf.Tensor2D;
  });
}
