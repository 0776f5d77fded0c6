/**
 * Load-aware gate adjustment: the seeds' "RL gating controller" (seed 004 §2.2.2, RLGatingController).
 * The seed re-weights the gate's probabilities by inverse expert load,
 *   w_i = (1/load_i) / Σ_j (1/load_j),   p'_i = p_i · w_i / Σ_j p_j · w_j,
 * and updates an actor-critic "policy" from a reward. Ours, per MoE layer, after each step:
 *   share_i = (Σ_window c_i + 1) / (Σ_window Σ_j c_j + E)      (router demand c = ctx.routed over the last
 *                                                              `window` steps, Laplace-smoothed: no log 0)
 *   logitAdjust_i = −s · ln(E · share_i)
 * With softmax scoring softmax(h + adjust)_i = p_i·(1/(E·share_i))^s / Σ_j …, i.e. exactly the seed's
 * re-weighting with w_i ∝ (mean load / recent load)^s (s = 1 is the seed's); an expert above its fair
 * share 1/E gets a lower logit. The adjusted probabilities are the router's probabilities: they select
 * AND weight (unlike aux-free's bias) and the balance losses see them. It is a proportional controller on
 * windowed load: it reduces but does not remove a skew (aux-free's integral bias does).
 *
 * learned: true — the seed's policy-gradient update, shrunk to the one number it can usefully learn
 * here, the strength s (REINFORCE with a Gaussian policy and a running-mean baseline, Williams 1992).
 * One episode = `window` steps under one sampled strength (the window must fill with loads produced
 * under it before its effect can be judged; a per-step reward credits s_t with the lagged window's
 * oscillation and, measured, drove s to its cap):
 *   s = max(0, μ + σ·ε),  ε ~ N(0, 1)                   (held for an episode)
 *   r_t = −(CV_t + λ·(L_t − L_{t−1}))                   (CV_t: mean over layers of the demand CV of step t;
 *                                                         L: task loss; L_{−1} := L_0)
 *   at an episode's end, with r̄ the mean r_t over it:
 *   μ ← clamp(μ + η·(r̄ − b)·ε/σ, 0, s_max),  b ← β·b + (1−β)·r̄   (b starts at the first episode's r̄)
 * ε/σ is σ·∂ log N(s; μ, σ²)/∂μ. The first episode runs at s = μ (no sample), giving the baseline.
 * Constants: LEARNED_DEFAULTS. Whether the learned strength beats a fixed one is for `compare` to show.
 * Measured on the tests' skewed router (E = 8, k = 2, window 10, no gate training): s = 1 takes the max
 * load share 0.48 → 0.27; s = 3 oscillates with the window's lag (CV 1.1 vs 0.6 at s = 1, 300 steps);
 * learned from μ = 0.25 or 1, μ settles near 2 within 600 steps (CV 0.42–0.58).
 */
import * as tf from '@tensorflow/tfjs';
import { loadCv } from '../../metrics/balance.ts';
import type { MoELayer } from '../../moe/layer.ts';
import type { Rng } from '../../rng.ts';
import { checkContext, sameLayers, sumOf, type Controller, type ControllerContext } from './types.ts';

export const LEARNED_DEFAULTS = { sigma: 0.25, lr: 0.1, lambda: 1, baselineDecay: 0.9, maxStrength: 8 } as const;

export interface GateAdjustOptions {
  /** s ≥ 0 (the learned policy's initial mean μ). */
  strength: number;
  /** steps of load history. */
  window: number;
  learned: boolean;
  sigma?: number;
  lr?: number;
  lambda?: number;
  baselineDecay?: number;
  maxStrength?: number;
}

/** adjust_i = −s · ln(E · (C_i + 1)/(Σ_j C_j + E)), C = demand summed over the window. */
export function gateAdjustment(windowCounts: ArrayLike<number>, s: number): Float32Array {
  const E = windowCounts.length;
  if (E < 1) throw new Error('gateAdjustment: need at least one expert, got 0');
  if (!(Number.isFinite(s) && s >= 0)) throw new Error(`gateAdjustment: strength must be a finite number ≥ 0, got ${s}`);
  const total = sumOf(windowCounts);
  return Float32Array.from(windowCounts, (c) => -s * Math.log((E * (c + 1)) / (total + E)));
}

interface GateState {
  history: number[][][];
  mu: number;
  strength: number;
  eps: number | null;
  baseline: number | null;
  prevLoss: number | null;
  /** last episode's mean reward. */
  reward: number | null;
  rewardSum: number;
  episodeSteps: number;
  rng: ReturnType<Rng['getState']> | null;
}

export class GateAdjustController implements Controller {
  readonly name = 'gate_adjust';
  readonly window: number;
  readonly learned: boolean;
  readonly sigma: number;
  readonly lr: number;
  readonly lambda: number;
  readonly baselineDecay: number;
  readonly maxStrength: number;
  private layers: MoELayer[] | null = null;
  private readonly rng: Rng | null;
  private st: GateState;
  private pendingAdjust = false;
  /** per layer: the adjustment last written to layer.logitAdjust (host copy: metrics read no tensor). */
  private lastAdjust: Float32Array[] = [];

  /** rng: the exploration noise of the learned strength (needed only with learned: true). */
  constructor(o: GateAdjustOptions, rng: Rng | null = null) {
    if (!(Number.isFinite(o.strength) && o.strength >= 0)) throw new Error(`GateAdjustController: strength must be a finite number ≥ 0, got ${o.strength}`);
    if (!Number.isInteger(o.window) || o.window < 1) throw new Error(`GateAdjustController: window must be an integer ≥ 1, got ${o.window}`);
    if (o.learned && rng === null) throw new Error('GateAdjustController: learned: true needs an Rng for the exploration noise');
    this.window = o.window;
    this.learned = o.learned;
    this.sigma = o.sigma ?? LEARNED_DEFAULTS.sigma;
    this.lr = o.lr ?? LEARNED_DEFAULTS.lr;
    this.lambda = o.lambda ?? LEARNED_DEFAULTS.lambda;
    this.baselineDecay = o.baselineDecay ?? LEARNED_DEFAULTS.baselineDecay;
    this.maxStrength = o.maxStrength ?? Math.max(LEARNED_DEFAULTS.maxStrength, o.strength);
    if (!(this.sigma > 0) || !(this.lr >= 0) || !(this.lambda >= 0) || !(this.baselineDecay >= 0 && this.baselineDecay < 1) || !(this.maxStrength >= o.strength)) {
      throw new Error(`GateAdjustController: need sigma > 0, lr ≥ 0, lambda ≥ 0, baselineDecay in [0, 1), maxStrength ≥ strength; got ${JSON.stringify({ sigma: this.sigma, lr: this.lr, lambda: this.lambda, baselineDecay: this.baselineDecay, maxStrength: this.maxStrength })}`);
    }
    this.rng = rng;
    this.st = { history: [], mu: o.strength, strength: o.strength, eps: null, baseline: null, prevLoss: null, reward: null, rewardSum: 0, episodeSteps: 0, rng: null };
  }

  /** The strength s in force (the learned policy's last sample, or the fixed strength). */
  get strength(): number {
    return this.st.strength;
  }

  /** The learned policy's mean μ (= strength when not learned). */
  get mu(): number {
    return this.st.mu;
  }

  attach(layers: MoELayer[]): void {
    this.layers = sameLayers(this.layers, layers, 'GateAdjustController');
    if (this.st.history.length === 0) this.st.history = layers.map(() => []);
    if (this.st.history.length !== layers.length) throw new Error(`GateAdjustController: restored history has ${this.st.history.length} layers, the model has ${layers.length}`);
    if (this.pendingAdjust) {
      this.writeAdjust();
      this.pendingAdjust = false;
    }
  }

  afterStep(ctx: ControllerContext): void {
    checkContext(ctx, 'GateAdjustController.afterStep');
    if (this.layers === null) this.attach(ctx.layers);
    this.layers = sameLayers(this.layers, ctx.layers, 'GateAdjustController.afterStep');
    ctx.routed.forEach((row, l) => {
      const h = this.st.history[l];
      h.push(Array.from(row));
      if (h.length > this.window) h.shift();
    });
    if (this.learned) this.learn(ctx);
    this.writeAdjust();
  }

  /** Accumulates r_t; at an episode's end one REINFORCE step on μ, then a fresh sample of s. */
  private learn(ctx: ControllerContext): void {
    if (!Number.isFinite(ctx.taskLoss)) return; // a non-finite step teaches nothing
    const st = this.st;
    const cv = ctx.routed.reduce((a, row) => a + loadCv(row), 0) / ctx.routed.length;
    const reward = -(cv + this.lambda * (ctx.taskLoss - (st.prevLoss ?? ctx.taskLoss)));
    st.prevLoss = ctx.taskLoss;
    st.rewardSum += reward;
    st.episodeSteps += 1;
    if (st.episodeSteps < this.window) return;
    const mean = st.rewardSum / st.episodeSteps;
    st.reward = mean;
    st.rewardSum = 0;
    st.episodeSteps = 0;
    if (st.baseline === null) st.baseline = mean;
    else {
      if (st.eps !== null) st.mu = Math.min(this.maxStrength, Math.max(0, st.mu + (this.lr * (mean - st.baseline) * st.eps) / this.sigma));
      st.baseline = this.baselineDecay * st.baseline + (1 - this.baselineDecay) * mean;
    }
    st.eps = this.rng!.normal();
    st.strength = Math.max(0, st.mu + this.sigma * st.eps);
  }

  private writeAdjust(): void {
    this.layers!.forEach((layer, l) => {
      const h = this.st.history[l];
      if (h.length === 0) return;
      const counts = new Array<number>(h[0].length).fill(0);
      for (const row of h) row.forEach((c, i) => { counts[i] += c; });
      const adj = gateAdjustment(counts, this.st.strength);
      this.lastAdjust[l] = adj;
      tf.tidy(() => layer.logitAdjust.assign(tf.tensor1d(adj)));
    });
  }

  /** Strength in force, learned μ and reward, and max |adjust| per layer. */
  metrics(): Record<string, unknown> {
    const out: Record<string, unknown> = { gate_adjust_strength: this.st.strength };
    if (this.learned) Object.assign(out, { gate_adjust_mu: this.st.mu, gate_adjust_reward: this.st.reward });
    if (this.layers !== null) out.gate_adjust_absmax = this.layers.map((l, i) => (this.lastAdjust[i] ? Math.max(...Array.from(this.lastAdjust[i], Math.abs)) : 0));
    return out;
  }

  state(): unknown {
    return { ...structuredClone(this.st), rng: this.rng?.getState() ?? null } satisfies GateState;
  }

  restore(s: unknown): void {
    const st = s as GateState | null;
    const num = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
    const numOrNull = (v: unknown) => v === null || num(v);
    if (st === null || typeof st !== 'object' || !Array.isArray(st.history) || !num(st.mu) || !num(st.strength)
      || !numOrNull(st.eps) || !numOrNull(st.baseline) || !numOrNull(st.prevLoss) || !numOrNull(st.reward) || !num(st.rewardSum) || !Number.isInteger(st.episodeSteps)) {
      throw new Error(`GateAdjustController.restore: not a gate_adjust state: ${JSON.stringify(s)?.slice(0, 120)}`);
    }
    if (this.layers !== null && st.history.length !== this.layers.length) throw new Error(`GateAdjustController.restore: history has ${st.history.length} layers, the model has ${this.layers.length}`);
    this.st = structuredClone({ ...st, rng: null });
    if (st.rng !== null && this.rng !== null) this.rng.setState(st.rng);
    if (this.layers !== null) this.writeAdjust();
    else this.pendingAdjust = true;
  }
}
