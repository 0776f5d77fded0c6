/**
 * Router configuration (plain data, one variant per router family) and the one switch that runs it.
 * The layer owns parameters and noise; routers stay pure functions of tensors.
 */
import type * as tf from '@tensorflow/tfjs';
import { routeExpertChoice } from './expert_choice.ts';
import { routeGroupLimited } from './group_limited.ts';
import { routeGumbel } from './gumbel.ts';
import { routeNoisyTopK } from './noisy.ts';
import { routeSinkhorn } from './sinkhorn.ts';
import { routeTopK } from './topk.ts';
import type { Routing } from './types.ts';

type Scoring = 'softmax' | 'sigmoid';

export type RouterConfig =
  | { type: 'topk'; scoring?: Scoring; order?: 'softmax-topk' | 'topk-softmax'; renormalize?: boolean }
  | { type: 'noisy_topk'; batchNorm?: boolean }
  | { type: 'gumbel'; hard?: boolean; renormalize?: boolean }
  | { type: 'expert_choice'; capacityFactor: number }
  | { type: 'sinkhorn'; iterations?: number; scoring?: Scoring; renormalize?: boolean }
  | { type: 'group_limited'; numGroups: number; topkGroups: number; scoring?: Scoring; groupScore?: 'max' | 'top2-sum'; renormalize?: boolean };

export type RouterType = RouterConfig['type'];
export const ROUTER_TYPES: readonly RouterType[] = ['topk', 'noisy_topk', 'gumbel', 'expert_choice', 'sinkhorn', 'group_limited'];

/** Per-call inputs the layer supplies: expert bias (aux-loss-free), noise, temperature. */
export interface RouteContext {
  k: number;
  training: boolean;
  /** [E] selection bias (aux-loss-free balancing); routers that select by score use it. */
  bias?: tf.Tensor1D;
  /** [T, E] x·W_noise for noisy top-k. */
  noiseLogits?: tf.Tensor2D;
  /** [T, E] standard normal noise (noisy top-k). */
  noise?: tf.Tensor2D;
  /** noise multiplier (annealing) for noisy top-k. */
  noiseScale?: number;
  /** [T, E] Gumbel(0, 1) noise. */
  gumbel?: tf.Tensor2D;
  /** Gumbel-softmax temperature τ. */
  tau?: number;
  /** sinkhorn in training: the selection [T, k] made on the host already (its loop is then skipped). */
  selected?: tf.Tensor2D;
}

/** Runs the configured router on logits [T, E]. */
export function route(cfg: RouterConfig, logits: tf.Tensor2D, ctx: RouteContext): Routing {
  const { k, training, bias } = ctx;
  switch (cfg.type) {
    case 'topk':
      return routeTopK(logits, { k, scoring: cfg.scoring, order: cfg.order, renormalize: cfg.renormalize, bias });
    case 'noisy_topk':
      if (!ctx.noiseLogits) throw new Error('route: noisy_topk needs noiseLogits (x·W_noise)');
      return routeNoisyTopK(logits, ctx.noiseLogits, { k, training, noise: ctx.noise, noiseScale: ctx.noiseScale, batchNorm: cfg.batchNorm });
    case 'gumbel':
      // At evaluation the Gumbel router is plain softmax top-k (no noise, τ = 1).
      if (!training || !ctx.gumbel) return routeTopK(logits, { k, renormalize: cfg.renormalize ?? k > 1 });
      return routeGumbel(logits, { k, tau: ctx.tau ?? 1, gumbel: ctx.gumbel, hard: cfg.hard, renormalize: cfg.renormalize });
    case 'expert_choice':
      // Each expert ranks all T tokens, so in a causal LM a token's routing depends on later tokens. At
      // evaluation every token takes its own top-k experts by the same softmax (weights S[t, e], as in
      // training): causal, and what one-token-at-a-time decoding can do.
      if (!training) return routeTopK(logits, { k, scoring: 'softmax', order: 'softmax-topk', renormalize: false });
      return routeExpertChoice(logits, { capacityFactor: cfg.capacityFactor, k });
    case 'sinkhorn':
      return routeSinkhorn(logits, { k, iterations: cfg.iterations, scoring: cfg.scoring, renormalize: cfg.renormalize, training, selected: ctx.selected });
    case 'group_limited':
      return routeGroupLimited(logits, { k, numGroups: cfg.numGroups, topkGroups: cfg.topkGroups, scoring: cfg.scoring, groupScore: cfg.groupScore, renormalize: cfg.renormalize, bias });
    default:
      throw new Error(`router.type: unknown router '${(cfg as { type: string }).type}', expected one of ${ROUTER_TYPES.join(', ')}`);
  }
}
