/**
 * Dead ("zombie", 僵尸专家: seed 001's name for long-idle experts) expert detection and revival.
 *   dead_l = { e : load_{l,e} = 0 in each of the last W steps }   (W = balance.dead_expert.window; load =
 *                                                                  ctx.loads, after capacity: an expert whose
 *                                                                  tokens are all dropped gets no gradient either)
 * Detection is always on (metrics: dead experts per layer). Revival (revive ≠ 'none') acts on each dead
 * expert at the step it is detected, then restarts its count (it gets W fresh steps):
 *   'reinit_gate': gate[:, e] ← N(0, gate_std²) noise (the layer's init std 0.02), seeded. The expert
 *                  competes again at an init-sized logit; its FFN weights are kept.
 *   'copy_hot':    h = a hot expert (the live experts by this step's load, hottest first; the i-th dead
 *                  expert of a layer takes the (i mod #live)-th); w{1,2,3}[e] ← w{1,2,3}[h] + noise and
 *                  gate[:, e] ← gate[:, h] + noise, noise ~ N(0, (ρ·rms(slice))²) with ρ = copy_noise
 *                  (0.01): e starts as h's near-twin and splits h's tokens with it.
 * Both run on the device (nothing is read back); under expert parallelism copy_hot copies inside the workers
 * (ctx.experts.copyExpert) with the same noise draws. Neither touches the optimizer: the trainer may reset the revived slices' Adam moments (metrics list
 * them as `revived`). Biases and logit adjustments are left to their own controllers.
 */
import * as tf from '@tensorflow/tfjs';
import { DeadExpertTracker } from '../../metrics/dead_experts.ts';
import type { MoELayer } from '../../moe/layer.ts';
import type { Rng } from '../../rng.ts';
import { addRelNoise } from '../../ops/rel_noise.ts';
import { checkContext, sameLayers, type Controller, type ControllerContext } from './types.ts';

export type ReviveMode = 'none' | 'reinit_gate' | 'copy_hot';

export interface DeadExpertOptions {
  window: number;
  revive: ReviveMode;
  /** std of the re-initialised gate column ('reinit_gate'); default 0.02 (MoELayer's gate init). */
  gateStd?: number;
  /** noise std relative to the copied slice's RMS ('copy_hot'); default 0.01. */
  copyNoise?: number;
}

export interface Revival {
  layer: number;
  expert: number;
  /** the expert copied ('copy_hot'). */
  from?: number;
}

interface DeadState {
  streaks: number[][] | null;
  revivedTotal: number;
  rng: ReturnType<Rng['getState']>;
}

export class DeadExpertController implements Controller {
  readonly name = 'dead_expert';
  readonly window: number;
  readonly revive: ReviveMode;
  readonly gateStd: number;
  readonly copyNoise: number;
  private readonly rng: Rng;
  private layers: MoELayer[] | null = null;
  private trackers: DeadExpertTracker[] = [];
  private pendingStreaks: number[][] | null = null;
  private lastDead: number[][] = [];
  private lastRevived: Revival[] = [];
  private revivedTotal = 0;

  /** rng: the revival noise (seeded, so a run is reproducible). */
  constructor(o: DeadExpertOptions, rng: Rng) {
    if (!Number.isInteger(o.window) || o.window < 1) throw new Error(`DeadExpertController: window must be an integer ≥ 1, got ${o.window}`);
    if (!['none', 'reinit_gate', 'copy_hot'].includes(o.revive)) throw new Error(`DeadExpertController: revive must be none | reinit_gate | copy_hot, got '${String(o.revive)}'`);
    this.window = o.window;
    this.revive = o.revive;
    this.gateStd = o.gateStd ?? 0.02;
    this.copyNoise = o.copyNoise ?? 0.01;
    if (!(this.gateStd >= 0) || !(this.copyNoise >= 0)) throw new Error(`DeadExpertController: gateStd and copyNoise must be ≥ 0, got ${this.gateStd}, ${this.copyNoise}`);
    this.rng = rng;
  }

  attach(layers: MoELayer[]): void {
    this.layers = sameLayers(this.layers, layers, 'DeadExpertController');
    if (this.trackers.length === 0) this.trackers = layers.map((l) => new DeadExpertTracker(l.config.numExperts, this.window));
    if (this.pendingStreaks !== null) {
      if (this.pendingStreaks.length !== layers.length) throw new Error(`DeadExpertController.restore: ${this.pendingStreaks.length} layers of streaks, the model has ${layers.length}`);
      this.pendingStreaks.forEach((s, l) => this.trackers[l].restore(s));
      this.pendingStreaks = null;
    }
  }

  /** Updates the zero-load streaks, records the dead experts and revives them if configured. */
  afterStep(ctx: ControllerContext): void {
    checkContext(ctx, 'DeadExpertController.afterStep');
    if (this.layers === null) this.attach(ctx.layers);
    this.layers = sameLayers(this.layers, ctx.layers, 'DeadExpertController.afterStep');
    this.lastRevived = [];
    this.lastDead = ctx.layers.map((layer, l) => {
      const tracker = this.trackers[l];
      tracker.update(ctx.loads[l]);
      const dead = tracker.dead();
      if (this.revive === 'none' || dead.length === 0) return dead;
      const load = ctx.loads[l];
      const live = Array.from(load.keys()).filter((e) => !dead.includes(e)).sort((a, b) => load[b] - load[a] || a - b);
      if (live.length === 0) return dead; // nothing alive to compete with or copy: leave it to the router
      dead.forEach((e, i) => {
        if (this.revive === 'reinit_gate') {
          setGateColumn(layer.gate, e, this.rng.normals(layer.config.dim, this.gateStd));
          this.lastRevived.push({ layer: l, expert: e });
        } else {
          const h = live[i % live.length];
          const ws = [layer.experts.w1, layer.experts.w2, layer.experts.w3];
          if (ctx.experts) { // expert parallelism: the weights live in the workers; same noise draws, same order
            const [z1, z2, z3] = ws.map((w) => (w ? this.rng.normals(w.size / w.shape[0]) : null));
            ctx.experts.copyExpert(l, h, e, { w1: z1!, w2: z2!, w3: z3 }, this.copyNoise);
          } else for (const w of ws) if (w) copyRow(w, h, e, this.copyNoise, this.rng);
          const col = gateColumn(layer.gate, h);
          const noisy = addRelNoise(col, this.rng.normals(col.size), this.copyNoise);
          setGateColumn(layer.gate, e, noisy);
          tf.dispose([col, noisy]);
          this.lastRevived.push({ layer: l, expert: e, from: h });
        }
        tracker.reset(e);
        this.revivedTotal++;
      });
      return dead;
    });
  }

  /** dead_experts (ids per layer, as detected this step), their count, and the revivals. */
  metrics(): Record<string, unknown> {
    return {
      dead_experts: this.lastDead.map((d) => d.slice()),
      dead_expert_count: this.lastDead.reduce((n, d) => n + d.length, 0),
      revived: this.lastRevived.map((r) => ({ ...r })),
      revived_total: this.revivedTotal,
    };
  }

  state(): unknown {
    const streaks = this.trackers.length > 0 ? this.trackers.map((t) => t.state()) : this.pendingStreaks;
    return { streaks, revivedTotal: this.revivedTotal, rng: this.rng.getState() } satisfies DeadState;
  }

  restore(s: unknown): void {
    const st = s as DeadState | null;
    if (st === null || typeof st !== 'object' || !Number.isInteger(st.revivedTotal) || typeof st.rng?.s !== 'number') {
      throw new Error(`DeadExpertController.restore: not a dead_expert state: ${JSON.stringify(s)?.slice(0, 120)}`);
    }
    this.revivedTotal = st.revivedTotal;
    this.rng.setState(st.rng);
    if (st.streaks === null) return;
    this.pendingStreaks = st.streaks.map((r) => r.slice());
    if (this.layers !== null) this.attach(this.layers);
  }
}

/** gate[:, e] ← col (on the device: no read-back). */
function setGateColumn(gate: tf.Variable, e: number, col: tf.Tensor | Float32Array): void {
  const [D, E] = gate.shape;
  tf.tidy(() => {
    const c = col instanceof Float32Array ? tf.tensor2d(col, [D, 1]) : tf.reshape(col, [D, 1]);
    const mask = tf.equal(tf.range(0, E, 1, 'int32'), e).reshape([1, E]); // [1, E] true at column e
    gate.assign(tf.where(tf.broadcastTo(mask, [D, E]), tf.broadcastTo(c, [D, E]), gate));
  });
}

/** gate[:, e] as a [D] tensor. */
function gateColumn(gate: tf.Variable, e: number): tf.Tensor1D {
  return tf.tidy(() => tf.reshape(tf.gather(gate, [e], 1), [-1]) as tf.Tensor1D);
}

/** Stacked [E, …] weights: row `to` ← row `from` + relative noise (on the device). */
function copyRow(w: tf.Variable, from: number, to: number, rho: number, rng: Rng): void {
  const E = w.shape[0];
  const row = tf.tidy(() => tf.gather(w, [from], 0)); // [1, …]
  const noisy = addRelNoise(row, rng.normals(row.size), rho);
  tf.tidy(() => {
    const mask = tf.equal(tf.range(0, E, 1, 'int32'), to).reshape([E, ...w.shape.slice(1).map(() => 1)]);
    w.assign(tf.where(tf.broadcastTo(mask, w.shape), tf.broadcastTo(noisy, w.shape), w));
  });
  tf.dispose([row, noisy]);
}
