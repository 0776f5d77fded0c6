/**
 * Sparse expert gradient accumulation (seed 004 §4.2, SparseGradientAccumulator). Under
 * gradient accumulation over n micro-batches, with a_{l,e} = #micro-batches in which expert e of MoE
 * layer l computed ≥ 1 assignment (load after capacity > 0) and ρ = min_active_share:
 *   expert slices (row e of the stacked [E, …] gradients of w1, w2, w3):
 *     a_e ≥ ρ·n  →  ĝ_e = (1/a_e) · Σ_{m : e active in m} g_{e,m}     (mean over the ACTIVE micro-batches)
 *     else       →  ĝ_e = 0 and e is FROZEN: no update at all this step
 *   every other parameter (gate, attention, shared experts, …): ĝ = (1/n) Σ_m g_m, as plain accumulation.
 * Why the active-only mean: plain accumulation divides a cold expert's gradient by n although it saw
 * tokens in few micro-batches, so its effective learning rate shrinks with its traffic; here each expert
 * update is the mean of the micro-batch gradients it actually has. The share threshold keeps an expert
 * from taking a full step on one micro-batch's worth of tokens.
 * Differences from the seed's code, on purpose: the seed masks counts ≥ 0.5·accumulation_steps (ours:
 * min_active_share, default 0.5, same rule) but divides by accumulation_steps, i.e. the mean over all
 * micro-batches, and keeps "top-k important" entries in a sparse buffer; ours is the mean over
 * the active micro-batches and whole expert slices, which is what this does.
 * Frozen means frozen: the zero gradient must not reach AdamW as a gradient (that would still decay the
 * weights and move m, v). finish() returns frozenExperts so the trainer can mask the optimizer step for
 * those rows (expertUpdateMask gives the [E, 1, 1] mask).
 */
import * as tf from '@tensorflow/tfjs';
import type { Config } from '../../config/schema.ts';
import type { MoELayer } from '../../moe/layer.ts';
import { expertKeys } from './types.ts';

export interface SparseAccumResult {
  /** accumulated gradients, new tensors the caller owns; same keys as the micro-batch gradients. */
  grads: Record<string, tf.Tensor>;
  /** per MoE layer: experts not updated this step (ascending ids). */
  frozenExperts: number[][];
  /** per MoE layer: [E] micro-batches each expert was active in. */
  activeCounts: Int32Array[];
}

/** [E, 1, 1] float mask: 0 for frozen experts, 1 elsewhere (to mask an optimizer step's expert rows). */
export function expertUpdateMask(frozen: readonly number[], numExperts: number): tf.Tensor3D {
  const m = new Float32Array(numExperts).fill(1);
  for (const e of frozen) {
    if (!Number.isInteger(e) || e < 0 || e >= numExperts) throw new Error(`expertUpdateMask: expert ${e} is outside 0..${numExperts - 1}`);
    m[e] = 0;
  }
  return tf.tensor3d(m, [numExperts, 1, 1]);
}

export class SparseGradientAccumulator {
  readonly name = 'sparse_accumulation';
  readonly minActiveShare: number;
  private readonly layers: MoELayer[];
  /** variable name → MoE layer index, for the stacked expert weights. */
  private readonly expertOf = new Map<string, number>();
  private sums: Record<string, tf.Tensor> = {};
  private counts: Int32Array[];
  private micro = 0;
  /** cumulative: steps each expert was updated, and steps finished. */
  private updates: number[][];
  private steps = 0;
  private lastFrozen: number[][] = [];

  constructor(layers: MoELayer[], minActiveShare: number) {
    if (!Array.isArray(layers) || layers.length < 1) throw new Error(`SparseGradientAccumulator: layers must be a non-empty array of MoELayer, got ${String(layers)}`);
    if (!(Number.isFinite(minActiveShare) && minActiveShare > 0 && minActiveShare <= 1)) throw new Error(`SparseGradientAccumulator: min_active_share must be in (0, 1], got ${minActiveShare}`);
    this.layers = layers;
    this.minActiveShare = minActiveShare;
    layers.forEach((layer, l) => { for (const k of expertKeys(layer)) this.expertOf.set(k, l); });
    this.counts = layers.map((l) => new Int32Array(l.config.numExperts));
    this.updates = layers.map((l) => new Array<number>(l.config.numExperts).fill(0));
  }

  /** Starts an optimizer step: drops any partial sums. */
  beginStep(): void {
    for (const t of Object.values(this.sums)) t.dispose();
    this.sums = {};
    this.counts.forEach((c) => c.fill(0));
    this.micro = 0;
  }

  /**
   * Adds one micro-batch: Σ g for dense parameters, Σ g·[load_e > 0] per expert row, a_e += [load_e > 0].
   * perLayerLoads: per MoE layer, [E] assignments each expert computed in this micro-batch. The grads stay
   * the caller's (not disposed here).
   */
  addMicroBatch(grads: Record<string, tf.Tensor>, perLayerLoads: ArrayLike<number>[]): void {
    if (!Array.isArray(perLayerLoads) || perLayerLoads.length !== this.layers.length) {
      throw new Error(`SparseGradientAccumulator.addMicroBatch: need loads for ${this.layers.length} MoE layers, got ${Array.isArray(perLayerLoads) ? perLayerLoads.length : String(perLayerLoads)}`);
    }
    const active = perLayerLoads.map((load, l) => {
      const E = this.layers[l].config.numExperts;
      if (load?.length !== E) throw new Error(`SparseGradientAccumulator.addMicroBatch: loads[${l}] must have ${E} experts, got ${load?.length}`);
      return Array.from(load, (c, e) => {
        if (!(Number.isFinite(c) && c >= 0)) throw new Error(`SparseGradientAccumulator.addMicroBatch: loads[${l}][${e}] = ${c} must be a finite number ≥ 0`);
        return c > 0;
      });
    });
    const masks = active.map((a) => tf.tensor3d(a.map(Number), [a.length, 1, 1]));
    for (const [k, g] of Object.entries(grads)) {
      const l = this.expertOf.get(k);
      if (l !== undefined && (g.rank !== 3 || g.shape[0] !== active[l].length)) throw new Error(`SparseGradientAccumulator.addMicroBatch: ${k} must be [${active[l].length}, …, …], got [${g.shape}]`);
      const prev = this.sums[k];
      this.sums[k] = tf.tidy(() => {
        const add = l === undefined ? g : tf.mul(g, masks[l]); // [E, a, b] · [E, 1, 1]
        return prev === undefined ? tf.clone(add) : tf.add(prev, add);
      });
      prev?.dispose();
    }
    for (const m of masks) m.dispose();
    active.forEach((a, l) => a.forEach((on, e) => { if (on) this.counts[l][e]++; }));
    this.micro++;
  }

  /** Ends the step: experts with a_e ≥ ρ·n get Σ/a_e, others 0 (frozen); dense Σ/n. n must be the micro-batches added. */
  finish(numMicro: number): SparseAccumResult {
    if (!Number.isInteger(numMicro) || numMicro < 1 || numMicro !== this.micro) {
      throw new Error(`SparseGradientAccumulator.finish: numMicro must equal the ${this.micro} micro-batches added since beginStep, got ${numMicro}`);
    }
    const need = this.minActiveShare * numMicro - 1e-9; // 1e-9: 0.5·4 must admit 2
    const frozenExperts = this.counts.map((c) => Array.from(c.keys()).filter((e) => !(c[e] > 0 && c[e] >= need)));
    const scales = this.counts.map((c) => tf.tensor3d(Array.from(c, (a) => (a > 0 && a >= need ? 1 / a : 0)), [c.length, 1, 1]));
    const grads: Record<string, tf.Tensor> = {};
    for (const [k, sum] of Object.entries(this.sums)) {
      const l = this.expertOf.get(k);
      grads[k] = l === undefined ? tf.div(sum, numMicro) : tf.mul(sum, scales[l]);
    }
    for (const s of scales) s.dispose();
    frozenExperts.forEach((fr, l) => this.updates[l].forEach((_, e) => { if (!fr.includes(e)) this.updates[l][e]++; }));
    this.steps++;
    this.lastFrozen = frozenExperts;
    const activeCounts = this.counts.map((c) => c.slice());
    this.beginStep();
    return { grads, frozenExperts, activeCounts };
  }

  /** sparse_frozen: frozen experts per layer at the last step; sparse_update_rate: per expert, share of steps it was updated. */
  metrics(): Record<string, unknown> {
    return {
      sparse_frozen: this.lastFrozen.map((f) => f.length),
      sparse_update_rate: this.updates.map((u) => u.map((n) => (this.steps > 0 ? n / this.steps : 0))),
    };
  }

  state(): unknown {
    return { updates: this.updates.map((u) => u.slice()), steps: this.steps };
  }

  restore(s: unknown): void {
    const st = s as { updates?: unknown; steps?: unknown } | null;
    const ok = Number.isInteger(st?.steps) && Array.isArray(st?.updates) && st.updates.length === this.layers.length
      && st.updates.every((u, l) => Array.isArray(u) && u.length === this.layers[l].config.numExperts && u.every((n) => Number.isInteger(n) && n >= 0));
    if (!ok) throw new Error(`SparseGradientAccumulator.restore: not a sparse_accumulation state for these layers: ${JSON.stringify(s)?.slice(0, 120)}`);
    this.updates = (st!.updates as number[][]).map((u) => u.slice());
    this.steps = st!.steps as number;
  }

  /** Frees partial sums. */
  dispose(): void {
    this.beginStep();
  }
}

/** The accumulator a config asks for, or null (disabled, or use_load_balance: false). */
export function createSparseAccumulator(cfg: Config, layers: MoELayer[]): SparseGradientAccumulator | null {
  if (!cfg.use_load_balance || !cfg.balance.sparse_accumulation.enabled) return null;
  return new SparseGradientAccumulator(layers, cfg.balance.sparse_accumulation.min_active_share);
}
