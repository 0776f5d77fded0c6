/**
 * What every router returns (Megatron-Core's seam: the router gives probabilities and a routing map,
 * the dispatcher moves tokens, experts only compute).
 */
import type * as tf from '@tensorflow/tfjs';

/** Token-choice routing: each token picks k experts. */
export interface TokenChoiceRouting {
  kind: 'token-choice';
  /** [T, E] the routing distribution the balance losses see (rows sum to 1). Differentiable. */
  probs: tf.Tensor2D;
  /** [T, k] int32 chosen experts, best first. A constant: no gradient flows through choices. */
  indices: tf.Tensor2D;
  /** [T, k] gate weights multiplying each chosen expert's output. Differentiable. */
  weights: tf.Tensor2D;
  /** [T, E] the logits the router saw (for the z-loss). */
  logits: tf.Tensor2D;
}

/** Expert-choice routing (Zhou et al. 2022): each expert picks its top-C tokens. */
export interface ExpertChoiceRouting {
  kind: 'expert-choice';
  /** [T, E] softmax over experts per token. */
  probs: tf.Tensor2D;
  /** [E, C] int32 tokens picked by each expert, best first. */
  tokenIndices: tf.Tensor2D;
  /** [E, C] gate weights probs[token, expert] for the picks. Differentiable. */
  weights: tf.Tensor2D;
  logits: tf.Tensor2D;
}

export type Routing = TokenChoiceRouting | ExpertChoiceRouting;
