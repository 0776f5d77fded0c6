/**
 * gather: Megatron-Core's token dispatcher on one device. Tokens are permuted into rows grouped by expert,
 * the executor computes on contiguous row blocks, and outputs are scattered back, weighted.
 *
 *   xs[n]  = x[tokenOfRow[n]]                                           dispatch   [N, D]
 *   y[t]   = Σ_{n : tokenOfRow[n] = t} w[assignmentOfRow[n]] · ys[n]    combine    [T, D]
 *
 * Dropped assignments have no row, so they contribute zero (the residual path carries the token). Needs no
 * padding (a 'pad' capacity policy may still pad), works for expert choice and for every executor.
 */
import * as tf from '@tensorflow/tfjs';
import { gatherRows } from '../../ops/gather_rows.ts';
import { scatterRows } from '../../ops/scatter_rows.ts';
import type { ExpertExecutor } from '../executors.ts';
import type { DispatchPlan } from '../plan.ts';
import type { TokenDispatcher } from './types.ts';

/** xs[n] = x[tokenOfRow[n]]: x [T, D] → xs [N, D], grouped by expert. */
export function dispatch(x: tf.Tensor2D, plan: DispatchPlan): tf.Tensor2D {
  if (x.shape[0] !== plan.numTokens) throw new Error(`dispatch: x has ${x.shape[0]} tokens, plan expects ${plan.numTokens}`);
  return tf.tidy(() => gatherRows(x, tf.tensor1d(plan.tokenOfRow, 'int32')));
}

/** y[t] = Σ_{rows n of token t} weights[assignmentOfRow[n]] · ys[n]: ys [N, D], weights [T,k] or [E,C] → y [T, D]. */
export function combine(ys: tf.Tensor2D, weights: tf.Tensor, plan: DispatchPlan): tf.Tensor2D {
  if (ys.shape[0] !== plan.tokenOfRow.length) throw new Error(`combine: ys has ${ys.shape[0]} rows, plan has ${plan.tokenOfRow.length}`);
  if (weights.size !== plan.numAssignments) throw new Error(`combine: weights has ${weights.size} entries, plan expects ${plan.numAssignments}`);
  return tf.tidy(() => {
    let w = tf.reshape(weights, [plan.numAssignments, 1]) as tf.Tensor2D; // [A, 1]
    if (plan.padded) w = tf.concat([w, tf.zeros([1, 1])]) as tf.Tensor2D; // padding rows get weight 0
    const rowWeights = gatherRows(w, tf.tensor1d(plan.assignmentOfRow, 'int32')); // [N, 1]
    return scatterRows(tf.mul(ys, rowWeights) as tf.Tensor2D, tf.tensor1d(plan.tokenOfRow, 'int32'), plan.numTokens);
  });
}

/** dispatch → executor.run → combine. */
export const gather: TokenDispatcher = {
  name: 'gather',
  paddedBlocks: false,
  run: (x, weights, plan, executor: ExpertExecutor) => combine(executor.run(dispatch(x, plan), plan), weights, plan),
};
