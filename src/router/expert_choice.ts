/**
 * Expert Choice routing (Zhou et al. 2022, "Mixture-of-Experts with Expert Choice Routing"):
 * S = softmax(logits) over experts [T, E]; each expert takes its top-C tokens by its column of S;
 * the gate weight of a pick is S[token, expert]. Every expert gets exactly C tokens (perfect load
 * balance by construction); a token may be picked by 0..E experts.
 * The paper's capacity factor c ("average experts per token") is k · capacityFactor here.
 * Not causal: whether a token is picked depends on every other token's score, later ones included (the
 * DeepSeek aux-loss-free paper's objection). route() therefore evaluates it per token (top-k of S).
 */
import * as tf from '@tensorflow/tfjs';
import { stopGradient } from '../ops/stop_gradient.ts';
import { takeAlongRows } from '../ops/take_along_rows.ts';
import type { ExpertChoiceRouting } from './types.ts';

export interface ExpertChoiceOptions {
  /** slack on the per-expert capacity; > 0. */
  capacityFactor: number;
  /** average number of experts per token; > 0, default 1. */
  k?: number;
}

/**
 * C = min(T, ⌈T·k·capacityFactor / E⌉). The ceiling ignores float noise below 1e-9 relative
 * (50·1.1/11 is 5.000000000000001 in doubles and must give 5, not 6); C ≥ 1; an expert
 * cannot take more than the T tokens there are.
 */
export function expertChoiceCapacity(T: number, E: number, k: number, capacityFactor: number): number {
  if (!Number.isInteger(T) || T < 1) throw new Error(`expertChoiceCapacity: T must be an integer ≥ 1, got ${T}`);
  if (!Number.isInteger(E) || E < 1) throw new Error(`expertChoiceCapacity: E must be an integer ≥ 1, got ${E}`);
  if (!Number.isFinite(k) || k <= 0) throw new Error(`expertChoiceCapacity: k must be a finite number > 0, got ${k}`);
  if (!Number.isFinite(capacityFactor) || capacityFactor <= 0) {
    throw new Error(`expertChoiceCapacity: capacityFactor must be a finite number > 0, got ${capacityFactor}`);
  }
  const exact = (T * k * capacityFactor) / E;
  const C = Math.ceil(exact * (1 - 1e-9));
  return Math.min(T, Math.max(1, C));
}

/** Expert choice: S = softmax(h); tokenIndices[e] = top-C of S[:, e]; weights[e, c] = S[tokenIndices[e, c], e]. */
export function routeExpertChoice(logits: tf.Tensor2D, opts: ExpertChoiceOptions): ExpertChoiceRouting {
  if (logits.rank !== 2) throw new Error(`routeExpertChoice: logits must be [T, E], got shape [${logits.shape}]`);
  const [T, E] = logits.shape;
  const { capacityFactor, k = 1 } = opts;
  const C = expertChoiceCapacity(T, E, k, capacityFactor);
  return tf.tidy(() => {
    const probs = tf.softmax(logits) as tf.Tensor2D; // [T, E]
    const probsByExpert = tf.transpose(probs) as tf.Tensor2D; // [E, T]
    const tokenIndices = tf.topk(stopGradient(probsByExpert), C, true).indices as tf.Tensor2D; // [E, C] best first
    const weights = takeAlongRows(probsByExpert, tokenIndices); // [E, C], differentiable in logits
    return { kind: 'expert-choice' as const, probs, tokenIndices, weights, logits };
  });
}
