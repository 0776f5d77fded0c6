/**
 * Expert-gradient reweighting (seed 004 §4.3, ExpertGradientReweighter): before the optimizer step, each
 * expert's gradient slices (row e of the stacked [E, …] gradients of w1, w2, w3) are multiplied by
 *   scale_e = raw_e / mean_{j ∈ A} raw_j   for e ∈ A,   scale_e = 1 otherwise,
 * A = experts that computed tokens this step (load > 0; their gradient is zero otherwise, so a scale
 * would only shift the normalisation onto the others). The mean over experts is therefore 1 (the seed's
 * `reweight_factors / reweight_factors.mean()`). raw_e by mode:
 *   'utilization': u_e = load_e / T (seed's calculate_expert_utilization: assignments per token seen;
 *                  T = Σ routed / k); u < low → low_scale (2.0), u > high → high_scale (0.5), else 1;
 *   'importance':  the seed's expert_importance statistic, EMA_e ← 0.9·EMA_e + 0.1·mean|g_e| over the
 *                  expert's raw gradient entries, updated after the scale is taken (so step t uses the
 *                  statistic through t − 1, the seed's order; it starts at 1) and only for experts in A
 *                  (the seed's `param.grad is not None`);
 *   'inverse_norm': 1 / (‖g_e‖ + 1e-6), ‖g_e‖ the L2 norm of the expert's slices of w1, w2, w3 together.
 *                  The seed records the norms after the update and uses them a step later; we use the
 *                  current gradient, which is what "inverse gradient norm" says. Every active expert's
 *                  scaled norm becomes the harmonic mean of their norms (before clipping/Adam).
 * Under expert parallelism (ctx.experts) the statistics come from the workers and the scales are applied there.
 * Note that Adam is invariant to a constant per-parameter gradient scale: under AdamW a scale that stays
 * the same for many steps mostly cancels in m̂/√v̂; the reweighting acts through its step-to-step changes
 * and through global-norm clipping. SGD sees it fully.
 */
import * as tf from '@tensorflow/tfjs';
import { checkContext, checkRows, expertKeys, sumOf, type Controller, type ControllerContext } from './types.ts';

export type ReweightMode = 'importance' | 'utilization' | 'inverse_norm';

export interface GradReweightOptions {
  mode: ReweightMode;
  low: number;
  high: number;
  lowScale: number;
  highScale: number;
}

/** Seed 004's EMA decay of expert importance. */
export const IMPORTANCE_DECAY = 0.9;

/** scale_e = raw_e / mean_{j ∈ A} raw_j on the active experts A, 1 elsewhere (1 everywhere if A = ∅). */
export function normaliseScales(raw: ArrayLike<number>, active: ArrayLike<boolean>): number[] {
  let sum = 0;
  let n = 0;
  for (let e = 0; e < raw.length; e++) {
    if (!active[e]) continue;
    if (!(Number.isFinite(raw[e]) && raw[e] > 0)) throw new Error(`normaliseScales: raw scale of expert ${e} must be a finite number > 0, got ${raw[e]}`);
    sum += raw[e];
    n++;
  }
  return Array.from(raw, (r, e) => (active[e] && n > 0 ? r / (sum / n) : 1));
}

/** Seed 004's utilization factor: u < low → lowScale, u > high → highScale, else 1. */
export function utilizationFactor(u: number, o: Pick<GradReweightOptions, 'low' | 'high' | 'lowScale' | 'highScale'>): number {
  return u < o.low ? o.lowScale : u > o.high ? o.highScale : 1;
}

export class GradReweightController implements Controller {
  readonly name = 'grad_reweight';
  readonly options: GradReweightOptions;
  /** 'importance': EMA of mean |g| per layer and expert. */
  private importance: number[][] | null = null;
  private lastScales: number[][] = [];

  constructor(o: GradReweightOptions) {
    if (!['importance', 'utilization', 'inverse_norm'].includes(o.mode)) throw new Error(`GradReweightController: mode must be importance | utilization | inverse_norm, got '${String(o.mode)}'`);
    if (!(o.low >= 0 && o.low < o.high && o.high <= 1)) throw new Error(`GradReweightController: need 0 ≤ low < high ≤ 1, got low = ${o.low}, high = ${o.high}`);
    if (!(o.lowScale > 0 && o.highScale > 0)) throw new Error(`GradReweightController: low_scale and high_scale must be > 0, got ${o.lowScale}, ${o.highScale}`);
    this.options = { ...o };
  }

  /** Per layer: the scales of the last transformGrads ([] before the first). */
  get scales(): number[][] {
    return this.lastScales.map((s) => s.slice());
  }

  transformGrads(grads: Record<string, tf.Tensor>, ctx: ControllerContext): Record<string, tf.Tensor> {
    checkContext(ctx, 'GradReweightController.transformGrads');
    if (this.importance === null) this.importance = ctx.layers.map((l) => new Array<number>(l.config.numExperts).fill(1));
    checkRows(this.importance, ctx.layers, 'GradReweightController', 'importance');
    const out: Record<string, tf.Tensor> = {};
    this.lastScales = ctx.layers.map((layer, l) => {
      const E = layer.config.numExperts;
      const keys = expertKeys(layer).filter((k) => grads[k] !== undefined);
      for (const k of keys) {
        const g = grads[k];
        if (g.rank !== 3 || g.shape[0] !== E) throw new Error(`GradReweightController: gradient ${k} must be [${E}, …, …] (stacked experts), got [${g.shape}]`);
      }
      const load = ctx.loads[l];
      const active = Array.from(load, (c) => c > 0);
      const remote = ctx.experts; // expert parallelism: the expert gradients are in the workers
      const needStats = this.options.mode !== 'utilization' && (remote !== undefined || keys.length > 0);
      const stats = !needStats ? null : remote ? remote.expertGradStats(l) : expertGradStats(keys.map((k) => grads[k]));
      let raw: number[];
      switch (this.options.mode) {
        case 'utilization': {
          const T = sumOf(ctx.routed[l]) / layer.config.topK;
          raw = Array.from(load, (c) => utilizationFactor(T > 0 ? c / T : 0, this.options));
          break;
        }
        case 'importance':
          raw = this.importance![l].slice();
          break;
        case 'inverse_norm':
          raw = stats === null ? new Array<number>(E).fill(1) : stats.norm.map((n) => 1 / (n + 1e-6));
          if (stats !== null) stats.norm.forEach((n, e) => { if (n === 0) active[e] = false; });
          break;
      }
      const scales = normaliseScales(raw, active);
      if (this.options.mode === 'importance' && stats !== null) {
        const imp = this.importance![l];
        stats.absMean.forEach((m, e) => { if (active[e]) imp[e] = IMPORTANCE_DECAY * imp[e] + (1 - IMPORTANCE_DECAY) * m; });
      }
      if (scales.every((s) => s === 1)) return scales;
      if (remote) {
        remote.scaleExpertGrads(l, scales);
        return scales;
      }
      const s = tf.tensor3d(scales, [E, 1, 1]);
      for (const k of keys) out[k] = tf.mul(grads[k], s); // [E, a, b] · [E, 1, 1]
      s.dispose();
      return scales;
    });
    return out;
  }

  /** grad_scale: per layer, the scale of each expert at the last step. */
  metrics(): Record<string, unknown> {
    const out: Record<string, unknown> = { grad_scale: this.scales };
    if (this.options.mode === 'importance' && this.importance !== null) out.expert_importance = this.importance.map((r) => r.slice());
    return out;
  }

  state(): unknown {
    return { importance: this.importance?.map((r) => r.slice()) ?? null };
  }

  restore(s: unknown): void {
    const imp = (s as { importance?: unknown } | null)?.importance ?? null;
    this.importance = imp === null ? null : checkRows(imp, null, 'GradReweightController', 'importance').map((r) => r.slice());
  }
}

/** Per expert over its slices of all the given [E, …] gradients: L2 norm and mean |g|. */
function expertGradStats(gs: tf.Tensor[]): { norm: number[]; absMean: number[] } {
  const E = gs[0].shape[0];
  const [sq, abs] = tf.tidy(() => {
    let s: tf.Tensor = tf.zeros([E]);
    let a: tf.Tensor = tf.zeros([E]);
    for (const g of gs) {
      const flat = tf.reshape(g, [E, -1]); // [E, a·b]
      s = tf.add(s, tf.sum(tf.square(flat), 1));
      a = tf.add(a, tf.sum(tf.abs(flat), 1));
    }
    return [s, a];
  });
  const perExpert = gs.reduce((n, g) => n + g.size / E, 0);
  const norm = Array.from(sq.dataSync(), Math.sqrt);
  const absMean = Array.from(abs.dataSync(), (v) => v / perExpert);
  sq.dispose();
  abs.dispose();
  return { norm, absMean };
}
