/**
 * The balance controllers a config asks for, in the order the trainer runs them:
 *   aux_free → dynamic_capacity → gate_adjust → grad_reweight → dead_expert.
 * dead_expert is always present (detection is a metric; revival only if balance.dead_expert.revive ≠ none).
 * use_load_balance: false (the seeds' master switch) gives none. Sparse accumulation works across
 * micro-batches and is not a Controller: createSparseAccumulator.
 */
import type { Config } from '../../config/schema.ts';
import type { MoELayer } from '../../moe/layer.ts';
import { Rng } from '../../rng.ts';
import { AuxFreeController } from './aux_free.ts';
import { DeadExpertController } from './dead_expert.ts';
import { DynamicCapacityController } from './dynamic_capacity.ts';
import { GateAdjustController } from './gate_adjust.ts';
import { GradReweightController } from './grad_reweight.ts';
import type { Controller } from './types.ts';

export type { Controller, ControllerContext, RemoteExperts, ExpertSlices } from './types.ts';
export { AuxFreeController, auxFreeBiasDelta } from './aux_free.ts';
export { DynamicCapacityController, ratioRuleFactor, trendRuleFactor, linearTrend, TREND_RULE, type DynamicCapacityOptions, type CapacityRule } from './dynamic_capacity.ts';
export { GateAdjustController, gateAdjustment, LEARNED_DEFAULTS, type GateAdjustOptions } from './gate_adjust.ts';
export { GradReweightController, normaliseScales, utilizationFactor, IMPORTANCE_DECAY, type GradReweightOptions, type ReweightMode } from './grad_reweight.ts';
export { DeadExpertController, type DeadExpertOptions, type ReviveMode, type Revival } from './dead_expert.ts';
export { SparseGradientAccumulator, createSparseAccumulator, expertUpdateMask, type SparseAccumResult } from './sparse_accumulation.ts';
export { tauAt, noiseScaleAt } from './anneal.ts';
export { expertKeys } from './types.ts';

export interface CreateControllersOptions {
  /** the model's MoE layers: binds the controllers now (so restore() writes into them before step 0). */
  layers?: MoELayer[];
  /** parent of the controllers' own noise streams; default Rng(cfg.seed + 0x0c0ffee). */
  rng?: Rng;
}

/** Controllers from cfg.balance; [] when cfg.use_load_balance is false. */
export function createControllers(cfg: Config, opts: CreateControllersOptions = {}): Controller[] {
  if (!cfg.use_load_balance) return [];
  const b = cfg.balance;
  const parent = opts.rng ?? new Rng(cfg.seed + 0x0c0ffee);
  // Each stochastic controller gets its own stream, so switching one on does not change another's draws.
  const gateRng = new Rng(parent.seed());
  const deadRng = new Rng(parent.seed());
  const out: Controller[] = [];
  if (b.aux_free.enabled) out.push(new AuxFreeController(b.aux_free.update_rate));
  if (b.dynamic_capacity.enabled) {
    const d = b.dynamic_capacity;
    out.push(new DynamicCapacityController({
      rule: d.rule, overloadThreshold: d.overload_threshold, underloadThreshold: d.underload_threshold,
      grow: d.grow, shrink: d.shrink, window: d.window, minFactor: d.min_factor, maxFactor: d.max_factor,
    }));
  }
  if (b.gate_adjust.enabled) {
    const g = b.gate_adjust;
    out.push(new GateAdjustController({ strength: g.strength, window: g.window, learned: g.learned }, g.learned ? gateRng : null));
  }
  if (b.grad_reweight.enabled) {
    const r = b.grad_reweight;
    out.push(new GradReweightController({ mode: r.mode, low: r.low, high: r.high, lowScale: r.low_scale, highScale: r.high_scale }));
  }
  out.push(new DeadExpertController({ window: b.dead_expert.window, revive: b.dead_expert.revive }, deadRng));
  if (opts.layers) for (const c of out) c.attach?.(opts.layers);
  return out;
}
