/**
 * Where routed experts run: an ExpertExecutor takes rows already grouped by expert and returns the experts'
 * outputs in the same order (differentiable in the rows). Three kinds:
 *   local       this thread, on the layer's weights: one matmul pair per expert block (rows), or one batched
 *               GEMM per projection over padded blocks [E, C, D] (blocks)
 *   recompute   local, but the FFN activations are dropped in forward and recomputed in backward
 *   expert-parallel   worker threads that own the experts (src/parallel/: ExpertParallel.executor(l))
 * A dispatcher that moves tokens in padded blocks needs `blocks`; executors without it get gather's rows.
 */
import type * as tf from '@tensorflow/tfjs';
import { runExperts, type Activation, type ExpertWeights } from './experts.ts';
import { paddedExpertFfn } from './expert_ffn.ts';
import type { DispatchPlan } from './plan.ts';
import { recompute } from '../ops/recompute.ts';

export interface ExpertExecutor {
  /** ys [N, D] = expert_e(xs) on each expert's block of plan.tokensPerExpert rows. */
  run(xs: tf.Tensor2D, plan: DispatchPlan): tf.Tensor2D;
  /** ys [E, C, D] = expert_e(xp[e]) on padded blocks of C rows; absent where only rows are supported. */
  blocks?(xp: tf.Tensor3D): tf.Tensor3D;
}

/** The experts of this thread, on `weights`. */
export function localExperts(weights: ExpertWeights, activation: Activation): ExpertExecutor {
  return {
    run: (xs, plan) => runExperts(xs, weights, plan.tokensPerExpert, activation),
    blocks: (xp) => paddedExpertFfn(xp, weights, activation),
  };
}

/** Local experts with their activations recomputed in the backward pass (memory for time); rows only. */
export function recomputedExperts(weights: ExpertWeights, activation: Activation): ExpertExecutor {
  return {
    run: (xs, plan) => {
      const { w1, w2, w3 } = weights;
      const inputs: tf.Tensor[] = w3 ? [xs, w1, w2, w3] : [xs, w1, w2];
      return recompute((x, a, b, c) => runExperts(x as tf.Tensor2D, { w1: a, w2: b, w3: c ?? null } as unknown as ExpertWeights, plan.tokensPerExpert, activation), inputs);
    },
  };
}
