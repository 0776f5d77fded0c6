/**
 * Router configuration (plain data, one variant per router family) and the one switch that runs it.
 * The layer owns parameters and noise; routers stay pure functions of tensors.
 */
import type * as tf from '@tensorflow/tfjs';
import { routeTopK } from './topk.ts';
import type { Routing } from './types.ts';

export type RouterConfig =
  | { type: 'topk'; scoring?: 'softmax' | 'sigmoid'; order?: 'softmax-topk' | 'topk-softmax'; renormalize?: boolean };

export type RouterType = RouterConfig['type'];

/** Per-call inputs the layer supplies: expert bias (aux-loss-free), noise, temperature. */
export interface RouteContext {
  k: number;
  training: boolean;
  bias?: tf.Tensor1D;
}

/** Runs the configured router on logits [T, E]. */
export function route(cfg: RouterConfig, logits: tf.Tensor2D, ctx: RouteContext): Routing {
  switch (cfg.type) {
    case 'topk':
      return routeTopK(logits, { k: ctx.k, scoring: cfg.scoring, order: cfg.order, renormalize: cfg.renormalize, bias: ctx.bias });
    default:
      throw new Error(`router.type: unknown router '${(cfg as { type: string }).type}'`);
  }
}
