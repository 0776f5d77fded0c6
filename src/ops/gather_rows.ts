/**
 * gatherRows: out[n, :] = x[index[n], :]. Differentiable in x: dx = scatterRows(dy, index, rows(x)).
 * tfjs's own `gather` gradient needs UnsortedSegmentSum, which the wasm backend lacks, and wasm's
 * `gatherND` is ≈10× faster than its `gather` on row copies; this op uses gatherND both ways.
 */
import * as tf from '@tensorflow/tfjs';
import { customGradIndexed } from './custom_grad.ts';

/** out[n] = x[index[n]] for x [R, D] and int32 index [N]; gradient scatters back (duplicates sum). */
export function gatherRows(x: tf.Tensor2D, index: tf.Tensor1D): tf.Tensor2D {
  if (x.rank !== 2) throw new Error(`gatherRows: x must be rank 2, got shape [${x.shape}]`);
  if (index.dtype !== 'int32') throw new Error(`gatherRows: index must be int32, got ${index.dtype}`);
  const rows = x.shape[0];
  return customGradIndexed(
    (xIn, idx) => tf.gatherND(xIn, tf.expandDims(idx, 1)) as tf.Tensor2D,
    (dy, idx) => scatterRowsRaw(dy as tf.Tensor2D, idx as tf.Tensor1D, rows),
  )(x, index);
}

/** Forward-only scatter-add used by both ops' gradients: out[index[n]] += y[n]. */
export function scatterRowsRaw(y: tf.Tensor2D, index: tf.Tensor1D, rows: number): tf.Tensor2D {
  return tf.scatterND(tf.expandDims(index, 1), y, [rows, y.shape[1]]) as tf.Tensor2D;
}
