/**
 * The balance-controller seam of the trainer. A controller owns its state, sees the loads the
 * step measured, and acts between optimizer steps (biases, capacity factors, logit adjustments, dead
 * experts) or on the gradients just before the step (expert-gradient reweighting).
 *
 * Order inside one optimizer step, as the trainer runs it:
 *   micro-batches (forward, backward; SparseGradientAccumulator if on) → transformGrads (each controller,
 *   in createControllers order) → clip → optimizer step → afterStep (each controller) → metrics.
 */
import type * as tf from '@tensorflow/tfjs';
import type { MoELayer } from '../../moe/layer.ts';

export interface ControllerContext {
  /** optimizer step just taken (0-based). */
  step: number;
  /** the model's MoE layers. */
  layers: MoELayer[];
  /** per MoE layer: [E] assignments each expert computed this step (after capacity), summed over micro-batches. */
  loads: Int32Array[];
  /** per MoE layer: [E] router choices per expert before capacity, summed over micro-batches. */
  routed: Int32Array[];
  /** per MoE layer: capacity in assignments per expert and micro-batch (null: dropless). */
  capacities: (number | null)[];
  /** this step's task loss. */
  taskLoss: number;
  /** under expert parallelism: the routed experts' weights and gradients, which live in the workers (absent: on the layers). */
  experts?: RemoteExperts;
}

/** Weights of one expert (row-major slices of the stacked w1 [D, H], w2 [H, D], w3 [D, H]). */
export interface ExpertSlices {
  w1: Float32Array;
  w2: Float32Array;
  w3: Float32Array | null;
}

/**
 * Per-expert access to routed experts held elsewhere (expert-parallel workers), for the controllers that
 * change expert gradients or weights. Calls block until the workers answer (expert parallelism runs on
 * wasm/cpu only).
 */
export interface RemoteExperts {
  /** Per expert e of layer l over its accumulated gradient slices of w1, w2, w3: ‖g_e‖₂ and mean |g_e| (a read). */
  expertGradStats(layer: number): { norm: number[]; absMean: number[] };
  /** g_e ← s_e·g_e for every expert e of layer l (s: [E]). */
  scaleExpertGrads(layer: number, s: ArrayLike<number>): void;
  /** w[to] ← w[from] + z·ρ·rms(w[from]) for w = w1, w2, w3 of layer l (z: unit normals per slice, drawn by the caller). */
  copyExpert(layer: number, from: number, to: number, z: ExpertSlices, rho: number): void;
}

export interface Controller {
  readonly name: string;
  /**
   * Binds the controller to the model's layers and writes restored state (biases, factors, logit
   * adjustments) into them. createControllers(cfg, { layers }) calls it; afterStep binds on first use.
   */
  attach?(layers: MoELayer[]): void;
  /** after the optimizer step: update biases, capacity factors, gate adjustments, dead-expert state. */
  afterStep?(ctx: ControllerContext): void;
  /**
   * Scales gradients before the optimizer step. `grads` is keyed by tf variable name (layer.experts.w1.name …).
   * Returns NEW tensors for the entries it changed only; the caller owns both them and the inputs.
   */
  transformGrads?(grads: Record<string, tf.Tensor>, ctx: ControllerContext): Record<string, tf.Tensor>;
  /** numbers for metrics.jsonl (e.g. capacity_factor per layer, dead experts). */
  metrics?(): Record<string, unknown>;
  /** JSON-serialisable state for a checkpoint. */
  state(): unknown;
  /** Restores state(); written into the layers now if attached, else at attach(). */
  restore(s: unknown): void;
}

/** Checks a ControllerContext: one loads/routed row per layer, each of the layer's E; returns nothing. */
export function checkContext(ctx: ControllerContext, who: string): void {
  if (ctx === null || typeof ctx !== 'object') throw new Error(`${who}: context must be an object, got ${String(ctx)}`);
  if (!Number.isInteger(ctx.step) || ctx.step < 0) throw new Error(`${who}: step must be an integer ≥ 0, got ${ctx.step}`);
  const L = ctx.layers?.length;
  if (!Array.isArray(ctx.layers) || L < 1) throw new Error(`${who}: layers must be a non-empty array of MoELayer, got ${String(ctx.layers)}`);
  for (const key of ['loads', 'routed'] as const) {
    const rows = ctx[key];
    if (!Array.isArray(rows) || rows.length !== L) throw new Error(`${who}: ${key} must have one row per MoE layer (${L}), got ${Array.isArray(rows) ? rows.length : String(rows)}`);
    rows.forEach((row, l) => {
      const E = ctx.layers[l].config.numExperts;
      if (!(row instanceof Int32Array) || row.length !== E) throw new Error(`${who}: ${key}[${l}] must be an Int32Array of the layer's ${E} experts, got ${row instanceof Int32Array ? `length ${row.length}` : String(row)}`);
      for (let e = 0; e < E; e++) if (row[e] < 0) throw new Error(`${who}: ${key}[${l}][${e}] = ${row[e]} must be ≥ 0`);
    });
  }
}

/** Σ_i x_i of an integer row. */
export function sumOf(row: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < row.length; i++) s += row[i];
  return s;
}

/** The layers a controller is bound to: the attached ones, checked against the context's. */
export function sameLayers(attached: MoELayer[] | null, layers: MoELayer[], who: string): MoELayer[] {
  if (attached !== null && (attached.length !== layers.length || attached.some((l, i) => l !== layers[i]))) {
    throw new Error(`${who}: the context's ${layers.length} layers are not the ${attached.length} layers the controller was attached to`);
  }
  return layers;
}

/** Reads state saved as { [key]: number[][] } (one row per layer), checking the shape against the layers. */
export function checkRows(rows: unknown, layers: MoELayer[] | null, who: string, what: string): number[][] {
  if (!Array.isArray(rows) || rows.some((r) => !Array.isArray(r) || r.some((v) => typeof v !== 'number' || !Number.isFinite(v)))) {
    throw new Error(`${who}.restore: ${what} must be an array of number arrays, got ${JSON.stringify(rows)?.slice(0, 80)}`);
  }
  if (layers !== null) {
    if (rows.length !== layers.length) throw new Error(`${who}.restore: ${what} has ${rows.length} layers, the model has ${layers.length}`);
    rows.forEach((r, l) => {
      const E = layers[l].config.numExperts;
      if ((r as number[]).length !== E) throw new Error(`${who}.restore: ${what}[${l}] has ${(r as number[]).length} experts, the layer has ${E}`);
    });
  }
  return rows as number[][];
}

/** Names of a layer's stacked expert weights in the gradient map: w1, w2 (and w3 with SwiGLU). */
export function expertKeys(layer: MoELayer): string[] {
  const { w1, w2, w3 } = layer.experts;
  return w3 ? [w1.name, w2.name, w3.name] : [w1.name, w2.name];
}
