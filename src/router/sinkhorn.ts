/**
 * Sinkhorn routing (BASE layers' balanced assignment relaxed to entropic optimal transport, as in
 * S-BASE of Clark et al. 2022, "Unified Scaling Laws for Routed Language Models").
 * The selection follows Megatron-Core's `sinkhorn` router (megatron/core/transformer/moe/moe_utils.py
 * `sinkhorn`, router.py `TopKRouter.sinkhorn_load_balancing`): in training, pick the top-k experts
 * of the Sinkhorn-balanced matrix computed without gradient; the weights are the router activation
 * (sigmoid for k = 1, softmax for k > 1) at those picks, not renormalised; in evaluation, pick the
 * top-k of the activation directly. Megatron uses no aux loss with this router.
 */
import * as tf from '@tensorflow/tfjs';
import { stopGradient } from '../ops/stop_gradient.ts';
import { takeAlongRows } from '../ops/take_along_rows.ts';
import { checkK, topKIndices } from './topk.ts';
import type { TokenChoiceRouting } from './types.ts';

/** Default cap on Sinkhorn iterations (each is one row and one column normalisation). */
export const SINKHORN_MAX_ITERATIONS = 50;
/** Default stop: every row sum within 1e-3 of 1 (columns are exact after each iteration). */
export const SINKHORN_TOLERANCE = 1e-3;

/**
 * P = diag(e^u) · exp(cost) · diag(e^v) with Σ_e P[t,e] = 1 and Σ_t P[t,e] = T/E, by alternating
 * u = −logsumexp_e(cost + v), v = log(T/E) − logsumexp_t(cost + u) in log space (no overflow for
 * large logits). Stops at the first iteration whose row sums are all within `tol` of 1 (columns are
 * exact after each iteration's column step), or after `iterations` passes; tol ≤ 0 runs all of them.
 * The stop is decided on the device (v freezes once converged; later passes leave it as it was), so
 * nothing is read back: the same result as breaking out of the loop, on every backend.
 * Megatron's version scales the same matrix to rows 1/T, columns 1/E (P/T): the same row-wise top-k.
 * A constant: no gradient flows into `cost`.
 */
export function sinkhorn(
  cost: tf.Tensor2D,
  iterations: number = SINKHORN_MAX_ITERATIONS,
  tol: number = SINKHORN_TOLERANCE,
): tf.Tensor2D {
  if (cost.rank !== 2) throw new Error(`sinkhorn: cost must be [T, E], got shape [${cost.shape}]`);
  if (!Number.isInteger(iterations) || iterations < 1) {
    throw new Error(`sinkhorn: iterations must be an integer ≥ 1, got ${iterations}`);
  }
  if (!Number.isFinite(tol)) throw new Error(`sinkhorn: tol must be a finite number, got ${tol}`);
  const [T, E] = cost.shape;
  const logColTarget = Math.log(T / E);
  const logK = stopGradient(cost); // [T, E]
  let v: tf.Tensor = tf.zeros([1, E]);
  // 1 once converged at an earlier iteration (v stays). Float, and ops that have gradients: the loop is
  // on the tape when a caller differentiates through the router (no gradient reaches cost either way).
  let done: tf.Tensor = tf.scalar(0);
  try {
    for (let i = 0; i < iterations; i++) {
      const [vNext, doneNext] = tf.tidy(() => {
        const u = tf.neg(tf.logSumExp(tf.add(logK, v), 1, true)); // [T, 1] rows → 1
        const vN = tf.sub(logColTarget, tf.logSumExp(tf.add(logK, u), 0, true)); // [1, E] columns → T/E
        if (tol <= 0) return [vN, done.clone()];
        // After the column step the columns are exact; the rows drift: measure how far.
        const rowSums = tf.exp(tf.logSumExp(tf.add(tf.add(logK, u), vN), 1)); // [T]
        const ok = tf.greaterEqual(tol, tf.max(tf.abs(tf.sub(rowSums, 1))));
        return [tf.where(tf.greaterEqual(done, 0.5), v, vN), tf.maximum(done, tf.cast(ok, 'float32'))];
      });
      tf.dispose([v, done]);
      v = vNext;
      done = doneNext;
    }
    return tf.tidy(() => {
      const u = tf.neg(tf.logSumExp(tf.add(logK, v), 1, true)); // [T, 1]
      const logP = tf.add(logK, u); // [T, E] rows sum to 1 exactly
      // Re-apply the column scaling so columns hold T/E; rows stay within tol of 1.
      return tf.exp(tf.add(logP, tf.sub(logColTarget, tf.logSumExp(logP, 0, true)))) as tf.Tensor2D;
    });
  } finally {
    tf.dispose([v, done, logK]);
  }
}

export interface SinkhornRouterOptions {
  k: number;
  /** cap on Sinkhorn iterations; default 50. */
  iterations?: number;
  /** stop when all row sums are within this of 1; default 1e-3; ≤ 0 runs every iteration. */
  tolerance?: number;
  /** gate activation; default as Megatron: 'sigmoid' when k = 1, 'softmax' when k > 1. */
  scoring?: 'softmax' | 'sigmoid';
  /** divide the k weights by their sum; default false (Megatron does not). */
  renormalize?: boolean;
  /** Sinkhorn selection in training; plain top-k of the activation in evaluation. Default true. */
  training?: boolean;
  /** [T, k] int32: the training selection made already (on the host from the routing read, sinkhorn_host.ts); the loop is skipped. */
  selected?: tf.Tensor2D;
}

/** Sinkhorn router: indices = topk(sinkhorn(h)) (training) or topk(act(h)); weights = act(h) at picks; probs = softmax(h). */
export function routeSinkhorn(logits: tf.Tensor2D, opts: SinkhornRouterOptions): TokenChoiceRouting {
  const { k, iterations = SINKHORN_MAX_ITERATIONS, tolerance = SINKHORN_TOLERANCE } = opts;
  checkK(logits, k, 'routeSinkhorn');
  const scoring = opts.scoring ?? (k === 1 ? 'sigmoid' : 'softmax');
  const { renormalize = false, training = true } = opts;
  if (scoring !== 'softmax' && scoring !== 'sigmoid') {
    throw new Error(`routeSinkhorn: scoring must be 'softmax' or 'sigmoid', got '${String(scoring)}'`);
  }
  const plan = training && !opts.selected ? sinkhorn(logits, iterations, tolerance) : null; // [T, E] constant
  try {
    return tf.tidy(() => {
      const probs = tf.softmax(logits) as tf.Tensor2D; // [T, E]
      const scores = scoring === 'sigmoid' ? (tf.sigmoid(logits) as tf.Tensor2D) : probs; // [T, E]
      const indices = training && opts.selected ? opts.selected.clone() : topKIndices(plan ?? stopGradient(scores), k); // [T, k] a constant
      let weights = takeAlongRows(scores, indices); // [T, k]
      if (renormalize) weights = tf.div(weights, tf.sum(weights, 1, true)) as tf.Tensor2D;
      return { kind: 'token-choice' as const, probs, indices, weights, logits };
    });
  } finally {
    plan?.dispose();
  }
}
