/**
 * Dynamic capacity factor (from the seeds). One factor f per MoE layer (capacity is shared by
 * the layer's experts, as in Switch/GShard/Megatron: C = ⌈f·T·k/E⌉), changed after each step. Two rules:
 *
 * 'ratio' — seed 002, `adaptive_expert_capacity(current_load, target_load)`:
 *     ratio = load / target;  ratio > 1.5 → target·1.2;  elif ratio < 0.5 → target·0.8;  else target.
 *   The seed decides per expert and returns a new capacity from a target. Called again with its own
 *   result as the target, it is a multiplicative controller, which is how we run it, with the seed's
 *   thresholds and steps as config fields and a clamp:
 *     r = max_i c_i / (f · c̄)      (hottest expert's demand over the capacity in force; c = ctx.routed,
 *                                    c̄ = mean over experts, f·c̄ = the unrounded capacity over the step)
 *     r > overload_threshold  → f ← f·grow
 *     elif r < underload_threshold → f ← f·shrink
 *     f ← clamp(f, min_factor, max_factor)
 *   Both tests look at the hottest expert because the capacity is shared: the seed would grow an
 *   overloaded expert's capacity (so the shared one must grow if ANY expert is over), and shrink only
 *   underloaded ones (so the shared one may shrink only if EVERY expert is under, i.e. the hottest is).
 *   At f = 1, r = max load / mean load, the config's wording. We do NOT shrink on min/mean < 0.5: that
 *   would cut the shared capacity below the demand of the hot experts whenever one expert starves.
 *   Demand c is counted before capacity: after it, an overloaded expert's count is clipped at C.
 *
 * 'trend' — seed 004, `DynamicCapacityAdjuster.adjust_capacity_factor`, reproduced branch for branch:
 *     history ← last `window` (seed: adapt_window = 100) utilizations;
 *     trend = least-squares slope of history over 0..n−1 if n ≥ 10, else 0   (np.polyfit(…, 1)[0]);
 *     if u < 0.6 and imbalance > 0.3 → f ← max(min, f·0.9)
 *     elif u > 0.9 and imbalance < 0.1 → f ← min(max, f·1.1)
 *     elif trend < −0.01 → f ← max(min, f·0.95)
 *     else f unchanged.
 *   The seed leaves its two inputs undefined; ours: u = Σ_i load_i / (f · Σ_i c_i), the share of the
 *   capacity in force actually used ("expert utilization", unrounded C), and imbalance = CV of
 *   the router's demand c (0 = even). Its bounds 0.5–2.0 are min_factor/max_factor (config defaults);
 *   its constants 0.6/0.3/0.9/0.1/−0.01 and steps 0.9/1.1/0.95 are TREND_RULE below (not config fields;
 *   the 'ratio' fields grow/shrink/thresholds do not apply to this rule). The seed reads an undefined
 *   `current_capacity`; we use the layer's factor in force.
 */
import { loadCv } from '../../metrics/balance.ts';
import type { MoELayer } from '../../moe/layer.ts';
import { checkContext, sameLayers, sumOf, type Controller, type ControllerContext } from './types.ts';

export type CapacityRule = 'ratio' | 'trend';

export interface DynamicCapacityOptions {
  rule: CapacityRule;
  overloadThreshold: number;
  underloadThreshold: number;
  grow: number;
  shrink: number;
  window: number;
  minFactor: number;
  maxFactor: number;
}

/** Seed 004's constants for the 'trend' rule. */
export const TREND_RULE = {
  lowUtilization: 0.6, highImbalance: 0.3, down: 0.9,
  highUtilization: 0.9, lowImbalance: 0.1, up: 1.1,
  minHistory: 10, slopeBelow: -0.01, drift: 0.95,
} as const;

/** One 'ratio' step: r = max_i c_i / (f·c̄); r > over → f·grow, elif r < under → f·shrink; clamp. */
export function ratioRuleFactor(routed: ArrayLike<number>, f: number, o: DynamicCapacityOptions): { factor: number; ratio: number } {
  const total = sumOf(routed);
  if (total === 0) return { factor: f, ratio: 0 }; // no tokens: nothing to decide on
  const ratio = Math.max(...Array.from(routed)) / (f * (total / routed.length));
  let g = f;
  if (ratio > o.overloadThreshold) g = f * o.grow;
  else if (ratio < o.underloadThreshold) g = f * o.shrink;
  return { factor: clamp(g, o.minFactor, o.maxFactor), ratio };
}

/** Least-squares slope of ys over xs = 0..n−1: Σ(x−x̄)(y−ȳ) / Σ(x−x̄)² (np.polyfit degree 1). */
export function linearTrend(ys: ArrayLike<number>): number {
  const n = ys.length;
  if (n < 2) return 0;
  const xm = (n - 1) / 2;
  const ym = sumOf(ys) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (i - xm) * (ys[i] - ym);
    den += (i - xm) ** 2;
  }
  return num / den;
}

/** One 'trend' step given the history (current utilization last): seed 004's four branches. */
export function trendRuleFactor(f: number, utilization: number, imbalance: number, history: ArrayLike<number>, minFactor: number, maxFactor: number): number {
  const R = TREND_RULE;
  const trend = history.length >= R.minHistory ? linearTrend(history) : 0;
  if (utilization < R.lowUtilization && imbalance > R.highImbalance) return Math.max(minFactor, f * R.down);
  if (utilization > R.highUtilization && imbalance < R.lowImbalance) return Math.min(maxFactor, f * R.up);
  if (trend < R.slopeBelow) return Math.max(minFactor, f * R.drift);
  return f;
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

function checkOptions(o: DynamicCapacityOptions): void {
  const pos = (v: number, n: string) => { if (!(Number.isFinite(v) && v > 0)) throw new Error(`DynamicCapacityController: ${n} must be a finite number > 0, got ${v}`); };
  if (o.rule !== 'ratio' && o.rule !== 'trend') throw new Error(`DynamicCapacityController: rule must be 'ratio' or 'trend', got '${String(o.rule)}'`);
  pos(o.overloadThreshold, 'overload_threshold'); pos(o.grow, 'grow'); pos(o.shrink, 'shrink'); pos(o.minFactor, 'min_factor'); pos(o.maxFactor, 'max_factor');
  if (!(o.underloadThreshold >= 0 && o.underloadThreshold < o.overloadThreshold)) throw new Error(`DynamicCapacityController: underload_threshold must be in [0, overload_threshold = ${o.overloadThreshold}), got ${o.underloadThreshold}`);
  if (o.minFactor > o.maxFactor) throw new Error(`DynamicCapacityController: min_factor = ${o.minFactor} exceeds max_factor = ${o.maxFactor}`);
  if (!Number.isInteger(o.window) || o.window < 1) throw new Error(`DynamicCapacityController: window must be an integer ≥ 1, got ${o.window}`);
}

interface CapacityState {
  factors: number[] | null;
  /** 'trend': utilization history per layer. */
  history: number[][];
}

export class DynamicCapacityController implements Controller {
  readonly name = 'dynamic_capacity';
  readonly options: DynamicCapacityOptions;
  private layers: MoELayer[] | null = null;
  private history: number[][] = [];
  private pending: CapacityState | null = null;
  private last: { ratio?: number; utilization?: number; imbalance?: number }[] = [];

  constructor(options: DynamicCapacityOptions) {
    checkOptions(options);
    this.options = { ...options };
  }

  attach(layers: MoELayer[]): void {
    this.layers = sameLayers(this.layers, layers, 'DynamicCapacityController');
    layers.forEach((layer, l) => {
      if (layer.capacityFactor === null) throw new Error(`DynamicCapacityController: MoE layer ${l} has no capacity factor (dropless) to adapt`);
      // Expert choice takes its capacity from its router config, so the layer's factor would change nothing.
      if (layer.config.router.type === 'expert_choice') throw new Error(`DynamicCapacityController: MoE layer ${l} uses router expert_choice, whose capacity is fixed by the router; dynamic capacity would have no effect`);
    });
    if (this.history.length !== layers.length) this.history = layers.map(() => []);
    if (this.pending !== null) {
      const { factors, history } = this.pending;
      if (factors !== null) {
        if (factors.length !== layers.length) throw new Error(`DynamicCapacityController.restore: ${factors.length} factors for ${layers.length} layers`);
        factors.forEach((f, l) => { layers[l].capacityFactor = f; });
      }
      if (history.length === layers.length) this.history = history.map((h) => h.slice());
      this.pending = null;
    }
  }

  /** Applies the configured rule to every layer and sets layer.capacityFactor for the next step. */
  afterStep(ctx: ControllerContext): void {
    checkContext(ctx, 'DynamicCapacityController.afterStep');
    if (this.layers === null) this.attach(ctx.layers);
    this.layers = sameLayers(this.layers, ctx.layers, 'DynamicCapacityController.afterStep');
    const o = this.options;
    this.last = ctx.layers.map((layer, l) => {
      const f = layer.capacityFactor!;
      const routed = ctx.routed[l];
      if (o.rule === 'ratio') {
        const r = ratioRuleFactor(routed, f, o);
        layer.capacityFactor = r.factor;
        return { ratio: r.ratio };
      }
      const total = sumOf(routed);
      if (total === 0) return {};
      const utilization = sumOf(ctx.loads[l]) / (f * total);
      const imbalance = loadCv(routed);
      const h = this.history[l];
      h.push(utilization);
      if (h.length > o.window) h.shift();
      layer.capacityFactor = trendRuleFactor(f, utilization, imbalance, h, o.minFactor, o.maxFactor);
      return { utilization, imbalance };
    });
  }

  /** capacity_factor per layer (in force for the next step), plus the rule's inputs of the last step. */
  metrics(): Record<string, unknown> {
    if (this.layers === null) return {};
    const out: Record<string, unknown> = { capacity_factor: this.layers.map((l) => l.capacityFactor) };
    if (this.options.rule === 'ratio') out.capacity_ratio = this.last.map((x) => x.ratio ?? null);
    else {
      out.capacity_utilization = this.last.map((x) => x.utilization ?? null);
      out.capacity_imbalance = this.last.map((x) => x.imbalance ?? null);
    }
    return out;
  }

  state(): unknown {
    if (this.layers === null) return this.pending ?? { factors: null, history: [] };
    return { factors: this.layers.map((l) => l.capacityFactor!), history: this.history.map((h) => h.slice()) } satisfies CapacityState;
  }

  restore(s: unknown): void {
    const st = s as Partial<CapacityState> | null;
    const factors = st?.factors ?? null;
    const history = st?.history ?? [];
    const isNums = (a: unknown) => Array.isArray(a) && a.every((v) => typeof v === 'number' && Number.isFinite(v));
    if (factors !== null && (!isNums(factors) || factors.some((f) => f <= 0))) throw new Error(`DynamicCapacityController.restore: factors must be positive numbers, got ${JSON.stringify(factors)}`);
    if (!Array.isArray(history) || !history.every(isNums)) throw new Error(`DynamicCapacityController.restore: history must be an array of number arrays, got ${JSON.stringify(history).slice(0, 80)}`);
    this.pending = { factors, history };
    if (this.layers !== null) this.attach(this.layers);
  }
}
