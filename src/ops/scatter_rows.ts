/**
 * scatterRows: out[r, :] = Σ_{n : index[n] = r} y[n, :]  (a segment sum into `rows` rows).
 * Differentiable in y: dy = gatherRows(dout, index). Replaces unsortedSegmentSum, absent on wasm.
 */
import * as tf from '@tensorflow/tfjs';
import { customGradIndexed } from './custom_grad.ts';
import { gatherRows, scatterRowsRaw } from './gather_rows.ts';

/** out[r] = Σ_{n: index[n]=r} y[n] for y [N, D], int32 index [N], out [rows, D]. */
export function scatterRows(y: tf.Tensor2D, index: tf.Tensor1D, rows: number): tf.Tensor2D {
  if (y.rank !== 2) throw new Error(`scatterRows: y must be rank 2, got shape [${y.shape}]`);
  if (index.dtype !== 'int32') throw new Error(`scatterRows: index must be int32, got ${index.dtype}`);
  if (index.shape[0] !== y.shape[0]) {
    throw new Error(`scatterRows: index has ${index.shape[0]} entries but y has ${y.shape[0]} rows`);
  }
  return customGradIndexed(
    (yIn, idx) => scatterRowsRaw(yIn as tf.Tensor2D, idx as tf.Tensor1D, rows),
    (dout, idx) => gatherRows(dout as tf.Tensor2D, idx as tf.Tensor1D),
  )(y, index);
}
