/**
 * Aux-loss-free load balancing (DeepSeek-V3, §2.1.2; Wang et al. 2024, "Auxiliary-Loss-Free Load
 * Balancing Strategy for Mixture-of-Experts"): each expert has a bias b_i that is added to its routing
 * score for SELECTION only (the gate weights stay the unbiased scores), and after every step
 *   b_i ← b_i + u · sign(c̄ − c_i),   c_i = tokens routed to expert i this step, c̄ = (1/E) Σ_j c_j.
 * An overloaded expert's bias falls and an underloaded one's rises, so the top-k moves towards balance
 * without a gradient term that competes with the task loss.
 *
 * c_i is the router's choice count BEFORE capacity (ctx.routed): the bias acts on selection, so that is
 * what it controls; after capacity the count of an overloaded expert is clipped at C and would understate
 * how overloaded it is. sign(0) = 0: an expert exactly at the mean keeps its bias.
 * Only routers that select by score take the bias (topk, group_limited; config/checks.ts enforces it).
 * The biases live on the host (float32, the same arithmetic as on the device) and are written to the
 * layers each step: nothing is read back, so the controller costs no device sync on any backend.
 */
import * as tf from '@tensorflow/tfjs';
import type { MoELayer } from '../../moe/layer.ts';
import { checkContext, checkRows, sameLayers, sumOf, type Controller, type ControllerContext } from './types.ts';

/** Δb_i = u · sign(c̄ − c_i), c̄ = (1/E) Σ_j c_j (the DeepSeek-V3 bias update for one layer). */
export function auxFreeBiasDelta(counts: ArrayLike<number>, u: number): Float32Array {
  if (!(Number.isFinite(u) && u > 0)) throw new Error(`auxFreeBiasDelta: update rate u must be a finite number > 0, got ${u}`);
  if (counts.length < 1) throw new Error('auxFreeBiasDelta: counts must have at least one expert, got length 0');
  const mean = sumOf(counts) / counts.length;
  return Float32Array.from(counts, (c) => u * Math.sign(mean - c));
}

export class AuxFreeController implements Controller {
  readonly name = 'aux_free';
  readonly updateRate: number;
  private layers: MoELayer[] | null = null;
  private pending: number[][] | null = null;
  /** per layer: b, the host copy of layer.expertBias (the layers hold what this last wrote). */
  private bias: Float32Array[] = [];

  /** u = balance.aux_free.update_rate (DeepSeek-V3 uses 0.001 for its first 14.3T tokens). */
  constructor(updateRate: number) {
    if (!(Number.isFinite(updateRate) && updateRate > 0)) throw new Error(`AuxFreeController: update_rate must be a finite number > 0, got ${updateRate}`);
    this.updateRate = updateRate;
  }

  attach(layers: MoELayer[]): void {
    this.layers = sameLayers(this.layers, layers, 'AuxFreeController');
    if (this.pending !== null) {
      const rows = checkRows(this.pending, layers, 'AuxFreeController', 'bias');
      this.bias = rows.map((b) => Float32Array.from(b));
      this.pending = null;
    } else if (this.bias.length !== layers.length) this.bias = layers.map((l) => new Float32Array(l.config.numExperts));
    this.write();
  }

  /** layer.expertBias ← b for every layer. */
  private write(): void {
    this.layers!.forEach((layer, l) => tf.tidy(() => layer.expertBias.assign(tf.tensor1d(this.bias[l]))));
  }

  /** b ← b + u · sign(c̄ − c) on every layer's expertBias. */
  afterStep(ctx: ControllerContext): void {
    checkContext(ctx, 'AuxFreeController.afterStep');
    if (this.layers === null) this.attach(ctx.layers);
    this.layers = sameLayers(this.layers, ctx.layers, 'AuxFreeController.afterStep');
    ctx.layers.forEach((_, l) => {
      const delta = auxFreeBiasDelta(ctx.routed[l], this.updateRate);
      const b = this.bias[l];
      for (let e = 0; e < b.length; e++) b[e] += delta[e]; // a Float32Array rounds as float32 addition does
    });
    this.write();
  }

  /** max_i |b_i| per layer: how far the bias had to move to balance the router. */
  metrics(): Record<string, unknown> {
    if (this.layers === null) return {};
    return { aux_free_bias_absmax: this.biases().map((b) => Math.max(...b.map(Math.abs))) };
  }

  /** The biases themselves (they are not trainable, so the model's checkpoint may not hold them). */
  state(): unknown {
    return { bias: this.layers === null ? this.pending : this.biases() };
  }

  restore(s: unknown): void {
    const bias = (s as { bias?: unknown } | null)?.bias;
    if (bias === null || bias === undefined) return; // saved before attach: nothing had been learned
    this.pending = checkRows(bias, this.layers, 'AuxFreeController', 'bias');
    if (this.layers !== null) this.attach(this.layers);
  }

  private biases(): number[][] {
    return this.bias.map((b) => Array.from(b));
  }
}
