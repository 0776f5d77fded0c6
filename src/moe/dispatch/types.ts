/** The dispatcher seam's types (apart from index.ts so that each dispatcher module can name them). */
import type * as tf from '@tensorflow/tfjs';
import type { ExpertExecutor } from '../executors.ts';
import type { DispatchPlan } from '../plan.ts';

export type Dispatcher = 'gather' | 'onehot' | 'padded';

/** One way to move tokens: y [T, D] = Σ_j w[t, j] · expert_{e(t, j)}(x[t]), the experts run by `executor`. */
export interface TokenDispatcher {
  name: Dispatcher;
  /** true: needs a plan whose expert blocks all have the same C rows (paddedRows), and executor.blocks. */
  paddedBlocks: boolean;
  run(x: tf.Tensor2D, weights: tf.Tensor, plan: DispatchPlan, executor: ExpertExecutor): tf.Tensor2D;
}
