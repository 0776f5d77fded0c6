/**
 * onehot: GShard's einsums with a one-hot dispatch matrix D [T, E·C] (built on the host: routing is a constant):
 *   xp = Dᵀ·x [E·C, D] → ys = executor.blocks(xp) → y = (D ⊙ w)·ys [T, D]
 * Needs a padded plan (every expert block C rows) and token-choice routing.
 */
import * as tf from '@tensorflow/tfjs';
import { gatherRows } from '../../ops/gather_rows.ts';
import type { TokenDispatcher } from './types.ts';

export const onehot: TokenDispatcher = {
  name: 'onehot',
  paddedBlocks: true,
  run: (x, weights, plan, executor) => tf.tidy(() => {
    if (!plan.padded) throw new Error(`dispatcher 'onehot' needs a padded plan (every expert block C rows)`);
    if (!executor.blocks) throw new Error(`dispatcher 'onehot' needs an executor that runs padded blocks`);
    const D = x.shape[1];
    const E = plan.numExperts;
    const N = plan.tokenOfRow.length;
    const C = N / E;
    const T = plan.numTokens;
    const A = plan.numAssignments;
    const dispatchT = new Float32Array(N * T); // [E·C, T] = Dᵀ
    const combineMask = new Float32Array(T * N); // [T, E·C] = D
    for (let n = 0; n < N; n++) {
      if (plan.assignmentOfRow[n] >= A) continue; // padding row
      const t = plan.tokenOfRow[n];
      dispatchT[n * T + t] = 1;
      combineMask[t * N + n] = 1;
    }
    const xp = tf.matMul(tf.tensor2d(dispatchT, [N, T]), x); // [E·C, D]
    const ys = executor.blocks(xp.reshape([E, C, D]) as tf.Tensor3D).reshape([N, D]); // [E·C, D]
    const wPadded = tf.concat([tf.reshape(weights, [A, 1]), tf.zeros([1, 1])]) as tf.Tensor2D; // padding rows → weight 0
    const rowW = gatherRows(wPadded, tf.tensor1d(plan.assignmentOfRow, 'int32')).reshape([1, N]); // [1, E·C]
    return tf.matMul(tf.mul(tf.tensor2d(combineMask, [T, N]), rowW), ys) as tf.Tensor2D; // [T, D]
  }),
};
