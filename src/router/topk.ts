/**
 * Top-k routing, in the three forms the literature uses:
 * - softmax-topk (GShard/Switch): p = softmax(logits); pick top-k of p; weights = p at the picks
 *   (optionally renormalised to sum 1 over the k picks);
 * - topk-softmax (Mixtral): pick top-k logits; weights = softmax over just those k logits;
 * - sigmoid (DeepSeek-V3): s = σ(logits); pick top-k of s + bias (bias selects only);
 *   weights = s at the picks / Σ of those picks.
 */
import * as tf from '@tensorflow/tfjs';
import '../ops/topk_grad.ts';
import { takeAlongRows } from '../ops/take_along_rows.ts';
import type { TokenChoiceRouting } from './types.ts';

export interface TopKOptions {
  k: number;
  scoring?: 'softmax' | 'sigmoid';
  order?: 'softmax-topk' | 'topk-softmax';
  /** renormalise the k softmax weights to sum 1 (softmax-topk only; sigmoid always normalises). */
  renormalize?: boolean;
  /** [E] per-expert bias added to the scores for selection only (aux-loss-free balancing). */
  bias?: tf.Tensor1D;
}

/** Checks k against E and returns E. */
export function checkK(logits: tf.Tensor2D, k: number, who: string): number {
  if (logits.rank !== 2) throw new Error(`${who}: logits must be [T, E], got shape [${logits.shape}]`);
  const E = logits.shape[1];
  if (!Number.isInteger(k) || k < 1 || k > E) throw new Error(`${who}: k must be an integer in 1..${E}, got ${k}`);
  return E;
}

/** Top-k indices [T, k] int32 of scores (a constant: routing decisions carry no gradient). */
export function topKIndices(scores: tf.Tensor2D, k: number): tf.Tensor2D {
  return tf.tidy(() => tf.topk(scores, k, true).indices as tf.Tensor2D);
}

/** Top-k router over logits [T, E]: returns probs [T,E], indices [T,k] (best first), weights [T,k]. */
export function routeTopK(logits: tf.Tensor2D, opts: TopKOptions): TokenChoiceRouting {
  const { k, scoring = 'softmax', order = 'softmax-topk', renormalize = false, bias } = opts;
  const E = checkK(logits, k, 'routeTopK');
  if (bias && (bias.rank !== 1 || bias.shape[0] !== E)) {
    throw new Error(`routeTopK: bias must have shape [${E}], got [${bias.shape}]`);
  }
  return tf.tidy(() => {
    if (scoring === 'sigmoid') {
      const scores = tf.sigmoid(logits) as tf.Tensor2D; // [T, E]
      const select = bias ? (tf.add(scores, bias) as tf.Tensor2D) : scores;
      const indices = topKIndices(select, k);
      const picked = takeAlongRows(scores, indices); // bias never reaches the weights
      const weights = tf.div(picked, tf.sum(picked, 1, true)) as tf.Tensor2D;
      // DeepSeek-V3's balance losses see the scores normalised over all experts.
      const probs = tf.div(scores, tf.sum(scores, 1, true)) as tf.Tensor2D;
      return { kind: 'token-choice' as const, probs, indices, weights, logits };
    }
    const probs = tf.softmax(logits) as tf.Tensor2D; // [T, E]
    const select = bias ? (tf.add(order === 'topk-softmax' ? logits : probs, bias) as tf.Tensor2D)
      : order === 'topk-softmax' ? logits : probs;
    const indices = topKIndices(select, k);
    let weights: tf.Tensor2D;
    if (order === 'topk-softmax') {
      weights = tf.softmax(takeAlongRows(logits, indices)) as tf.Tensor2D;
    } else {
      weights = takeAlongRows(probs, indices);
      if (renormalize) weights = tf.div(weights, tf.sum(weights, 1, true)) as tf.Tensor2D;
    }
    return { kind: 'token-choice' as const, probs, indices, weights, logits };
  });
}
