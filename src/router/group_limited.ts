/**
 * Group-limited routing (DeepSeek-V2 device-limited routing, DeepSeek-V3 node-limited routing):
 * the E experts form numGroups contiguous groups (a device or node each); each token first keeps
 * its topkGroups best groups, then picks its top-k experts among those groups only, so its
 * all-to-all touches at most topkGroups devices/nodes.
 * Semantics follow DeepSeek-V3's reference `Gate.forward` (deepseek-ai/DeepSeek-V3, inference/model.py):
 *   s = softmax(h) or σ(h); s' = s + bias (bias selects only);
 *   group score = max of s' in the group when there is no bias (V2), sum of the group's top-2 s'
 *   with a bias (V3's noaux_tc); keep the topk_groups best groups, mask the rest;
 *   indices = top-k of the masked s'; weights = s at the picks, divided by their sum for sigmoid.
 * We mask with −1e30 ≈ −∞ (the reference's `masked_fill_(…, -inf)`; HF's port fills 0.0, which differs
 * only when a biased score is negative). Megatron-Core's `group_limited_topk` scores a group by the
 * sum of its top-(k / topkGroups) scores instead; DeepSeek's `route_scale` (2.5 in V3) is a constant
 * factor left to the caller.
 */
import * as tf from '@tensorflow/tfjs';
import { stopGradient } from '../ops/stop_gradient.ts';
import { takeAlongRows } from '../ops/take_along_rows.ts';
import { checkK, topKIndices } from './topk.ts';
import type { TokenChoiceRouting } from './types.ts';

export interface GroupLimitedOptions {
  k: number;
  /** number of contiguous expert groups; must divide E. */
  numGroups: number;
  /** groups kept per token; 1..numGroups. */
  topkGroups: number;
  scoring?: 'softmax' | 'sigmoid';
  /** [E] selection-only bias (aux-loss-free balancing); never reaches the weights. */
  bias?: tf.Tensor1D;
  /** group score; default as DeepSeek-V3's reference: 'top2-sum' with a bias, 'max' without. */
  groupScore?: 'max' | 'top2-sum';
  /** divide the k softmax weights by their sum (sigmoid weights always are); default false. */
  renormalize?: boolean;
}

/** Group-limited top-k: keep topkGroups groups by group score, top-k of s' inside them; weights = s at picks. */
export function routeGroupLimited(logits: tf.Tensor2D, opts: GroupLimitedOptions): TokenChoiceRouting {
  const { k, numGroups, topkGroups, scoring = 'softmax', bias, renormalize = false } = opts;
  const E = checkK(logits, k, 'routeGroupLimited');
  const T = logits.shape[0];
  const groupScore = opts.groupScore ?? (bias ? 'top2-sum' : 'max');
  if (!Number.isInteger(numGroups) || numGroups < 1 || E % numGroups !== 0) {
    throw new Error(`routeGroupLimited: numGroups must be a positive integer dividing E=${E}, got ${numGroups}`);
  }
  const perGroup = E / numGroups;
  if (!Number.isInteger(topkGroups) || topkGroups < 1 || topkGroups > numGroups) {
    throw new Error(`routeGroupLimited: topkGroups must be an integer in 1..${numGroups}, got ${topkGroups}`);
  }
  if (k > topkGroups * perGroup) {
    throw new Error(
      `routeGroupLimited: k=${k} exceeds the ${topkGroups * perGroup} experts in ${topkGroups} kept group(s) of ${perGroup}`,
    );
  }
  if (scoring !== 'softmax' && scoring !== 'sigmoid') {
    throw new Error(`routeGroupLimited: scoring must be 'softmax' or 'sigmoid', got '${String(scoring)}'`);
  }
  if (groupScore !== 'max' && groupScore !== 'top2-sum') {
    throw new Error(`routeGroupLimited: groupScore must be 'max' or 'top2-sum', got '${String(groupScore)}'`);
  }
  if (groupScore === 'top2-sum' && perGroup < 2) {
    throw new Error(`routeGroupLimited: groupScore 'top2-sum' needs ≥ 2 experts per group, got ${perGroup}`);
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== E)) {
    throw new Error(`routeGroupLimited: bias must have shape [${E}], got [${bias.shape}]`);
  }
  return tf.tidy(() => {
    const scores = (scoring === 'sigmoid' ? tf.sigmoid(logits) : tf.softmax(logits)) as tf.Tensor2D; // [T, E]
    // Selection is a constant: only the weights, taken from s, carry gradient.
    const select = stopGradient(bias ? (tf.add(scores, bias) as tf.Tensor2D) : scores); // [T, E]
    const byGroup = tf.reshape(select, [T * numGroups, perGroup]) as tf.Tensor2D; // [T·G, E/G]
    const groupScores = (groupScore === 'max'
      ? tf.max(byGroup, 1)
      : tf.sum(tf.topk(byGroup, 2, true).values, 1)
    ).reshape([T, numGroups]) as tf.Tensor2D; // [T, G]
    const keptGroups = topKIndices(groupScores, topkGroups); // [T, topkGroups]
    const groupMask = tf.sum(tf.oneHot(keptGroups, numGroups), 1); // [T, G] 1 where kept
    const expertMask = tf.reshape(
      tf.tile(tf.reshape(groupMask, [T, numGroups, 1]), [1, 1, perGroup]), [T, E],
    ); // [T, E]
    // s' − 1e30 outside the kept groups (our −∞; arithmetic, because a comparison on the tape has no
    // gradient function and tfjs refuses to backprop past it).
    const masked = tf.sub(select, tf.mul(tf.sub(1, tf.cast(expertMask, 'float32')), 1e30)) as tf.Tensor2D;
    const indices = topKIndices(masked, k); // [T, k]
    let weights = takeAlongRows(scores, indices); // [T, k], bias never reaches the weights
    if (scoring === 'sigmoid' || renormalize) weights = tf.div(weights, tf.sum(weights, 1, true)) as tf.Tensor2D;
    // As routeTopK: the balance losses see softmax probabilities, or σ normalised over all experts.
    const probs = scoring === 'sigmoid' ? (tf.div(scores, tf.sum(scores, 1, true)) as tf.Tensor2D) : scores;
    return { kind: 'token-choice' as const, probs, indices, weights, logits };
  });
}
