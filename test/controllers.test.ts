import * as tf from '@tensorflow/tfjs';
import { describe, it, expect } from 'vitest';
import { MoELayer, type MoEConfig } from '../src/moe/layer.ts';
import { Rng } from '../src/rng.ts';
import { parseConfig } from '../src/config/load.ts';
import { droppedFraction, maxLoadShare, maxVio } from '../src/metrics/balance.ts';
import {
  AuxFreeController, DeadExpertController, DynamicCapacityController, GateAdjustController, GradReweightController,
  SparseGradientAccumulator, createControllers, createSparseAccumulator, expertUpdateMask, linearTrend, noiseScaleAt, tauAt,
  type Controller, type ControllerContext, type DynamicCapacityOptions,
} from '../src/train/controllers/index.ts';
import { describeBackends, expectClose, randomArray } from './helpers.ts';

const D = 8;
const E = 8;
const T = 128;

function layerCfg(over: Partial<MoEConfig> = {}): MoEConfig {
  return { dim: D, hidden: 4, numExperts: E, topK: 2, activation: 'relu', router: { type: 'topk' }, capacityFactor: null, capacityPolicy: 'dropless', sharedExperts: 0, auxLosses: [], ...over };
}

/** A router biased toward `hot` experts: feature 0 of every token is 1 and gate row 0 gives them +1.5. */
function skewedLayer(over: Partial<MoEConfig> = {}, hot = 2, gateScale = 0.5): MoELayer {
  const layer = new MoELayer(layerCfg(over), new Rng(1));
  const g = randomArray(D * E, 11, gateScale);
  for (let e = 0; e < E; e++) g[e] = e < hot ? 1.5 : 0;
  tf.tidy(() => layer.gate.assign(tf.tensor2d(g, [D, E])));
  return layer;
}

/** T random tokens in [−1, 1)^D with a constant feature 0 = 1 (different each step). */
function tokens(step: number): tf.Tensor2D {
  const a = randomArray(T * D, 1000 + step, 1);
  for (let t = 0; t < T; t++) a[t * D] = 1;
  return tf.tensor2d(a, [T, D]);
}

interface StepStats { load: Int32Array; routed: Int32Array; dropped: number; assignments: number; capacity: number | null }

function measure(layer: MoELayer, x: tf.Tensor2D): StepStats {
  let out: StepStats | null = null;
  tf.tidy(() => {
    const { stats } = layer.forward(x, { training: true });
    out = { load: stats.load, routed: stats.routed, dropped: stats.dropped, assignments: stats.assignments, capacity: stats.capacity };
  });
  return out!;
}

function ctxOf(layers: MoELayer[], st: StepStats[], step: number, taskLoss = 1): ControllerContext {
  return { step, layers, loads: st.map((s) => s.load), routed: st.map((s) => s.routed), capacities: st.map((s) => s.capacity), taskLoss };
}

/** `steps` routing steps on fresh tokens, calling afterStep with the measured loads (no gate training). */
function simulate(layer: MoELayer, ctl: Controller | null, steps: number): StepStats[] {
  const out: StepStats[] = [];
  for (let s = 0; s < steps; s++) {
    const x = tokens(s);
    const st = measure(layer, x);
    x.dispose();
    out.push(st);
    ctl?.afterStep?.(ctxOf([layer], [st], s));
  }
  return out;
}

const meanOf = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const lastMean = (r: StepStats[], n: number, f: (s: StepStats) => number) => meanOf(r.slice(-n).map(f));
const i32 = (xs: number[]) => Int32Array.from(xs);
/** Plain CV (population std / mean), independent of metrics/balance.ts. */
const plainCv = (xs: number[]) => { const m = meanOf(xs); return Math.sqrt(meanOf(xs.map((x) => (x - m) ** 2))) / m; };

const ratioOpts: DynamicCapacityOptions = { rule: 'ratio', overloadThreshold: 1.5, underloadThreshold: 0.5, grow: 1.2, shrink: 0.8, window: 100, minFactor: 0.5, maxFactor: 2 };

describeBackends('aux-loss-free bias', () => {
  it('b_i += u·sign(mean − c_i) on the routed counts (hand-computed)', () => {
    const layer = new MoELayer(layerCfg({ numExperts: 4 }), new Rng(2));
    const c = new AuxFreeController(0.01);
    c.restore({ bias: [[0.1, 0, 0, -0.2]] }); // the controller owns the bias: it starts from its state
    c.attach([layer]);
    expectClose(layer.expertBias.dataSync(), [0.1, 0, 0, -0.2], 1e-7);
    // routed mean = 4: expert 0 over (−u), 1 and 3 under (+u), 2 at the mean (0); loads are ignored.
    c.afterStep(ctxOf([layer], [{ load: i32([0, 0, 0, 0]), routed: i32([10, 2, 4, 0]), dropped: 0, assignments: 16, capacity: null }], 0));
    expectClose(layer.expertBias.dataSync(), [0.09, 0.01, 0, -0.19], 1e-7);
    layer.dispose();
  });

  it('brings MaxVio of a skewed router below 0.6 within 100 steps; plain top-k stays above 2', () => {
    const plain = skewedLayer();
    const balanced = skewedLayer();
    const a = simulate(plain, null, 100);
    const b = simulate(balanced, new AuxFreeController(0.01), 100);
    const vioPlain = lastMean(a, 20, (s) => maxVio(s.routed));
    const vioFree = lastMean(b, 20, (s) => maxVio(s.routed));
    expect(vioPlain).toBeGreaterThan(2); // measured 2.86
    expect(vioFree).toBeLessThan(0.6); // measured 0.41
    // Bias selects only: the gate weights (and so the probabilities) are untouched.
    expect(Array.from(balanced.gate.dataSync())).toEqual(Array.from(plain.gate.dataSync()));
    plain.dispose();
    balanced.dispose();
  });
});

describeBackends('dynamic capacity', () => {
  const dropLayer = (f: number, hot = 2) => skewedLayer({ capacityPolicy: 'drop-position', capacityFactor: f }, hot);
  const step = (c: DynamicCapacityController, layer: MoELayer, routed: number[], load = routed, s = 0) =>
    c.afterStep(ctxOf([layer], [{ load: i32(load), routed: i32(routed), dropped: 0, assignments: 0, capacity: null }], s));

  it("'ratio': r = max c / (f·mean c); > 1.5 → ×1.2, < 0.5 → ×0.8, clamped (hand-computed)", () => {
    const layer = dropLayer(1);
    const c = new DynamicCapacityController(ratioOpts);
    step(c, layer, [25, 5, 5, 5, 0, 0, 0, 0]); // mean 5, r = 25/5 = 5 → 1.2
    expect(layer.capacityFactor).toBeCloseTo(1.2, 12);
    step(c, layer, [10, 5, 5, 5, 5, 5, 5, 0]); // mean 5, r = 10/(1.2·5) = 1.67 → 1.44
    expect(layer.capacityFactor).toBeCloseTo(1.44, 12);
    step(c, layer, [5, 5, 5, 5, 5, 5, 5, 5]); // r = 1/1.44 = 0.69: no change
    expect(layer.capacityFactor).toBeCloseTo(1.44, 12);
    layer.capacityFactor = 1.9;
    step(c, layer, [40, 0, 0, 0, 0, 0, 0, 0]); // r = 8/1.9 → 2.28, clamped to 2
    expect(layer.capacityFactor).toBe(2);
    step(c, layer, [5, 5, 5, 5, 5, 5, 5, 5]); // r = 1/2 = 0.5, not < 0.5: no change
    expect(layer.capacityFactor).toBe(2);
    layer.capacityFactor = 2.5;
    step(c, layer, [5, 5, 5, 5, 5, 5, 5, 5]); // r = 0.4 → 2.0
    expect(layer.capacityFactor).toBeCloseTo(2.0, 12);
    expect((c.metrics().capacity_factor as number[])[0]).toBeCloseTo(2.0, 12);
    layer.capacityFactor = 0.55;
    step(c, layer, [1, 1, 1, 1, 1, 1, 1, 1]); // r = 1/0.55 = 1.82 → 0.66
    expect(layer.capacityFactor).toBeCloseTo(0.66, 12);
    layer.dispose();
  });

  it("'trend': seed 004's four branches (hand-computed)", () => {
    const layer = dropLayer(1);
    const c = new DynamicCapacityController({ ...ratioOpts, rule: 'trend' });
    step(c, layer, [10, 10, 10, 10, 10, 10, 10, 10]); // u = 80/(1·80) = 1 > 0.9, CV 0 < 0.1 → ×1.1
    expect(layer.capacityFactor).toBeCloseTo(1.1, 12);
    layer.capacityFactor = 2;
    step(c, layer, [80, 0, 0, 0, 0, 0, 0, 0], [20, 0, 0, 0, 0, 0, 0, 0]); // u = 20/160 < 0.6, CV = √7 > 0.3 → ×0.9
    expect(layer.capacityFactor).toBeCloseTo(1.8, 12);
    layer.capacityFactor = 0.52;
    step(c, layer, [80, 0, 0, 0, 0, 0, 0, 0], [20, 0, 0, 0, 0, 0, 0, 0]); // → 0.468, clamped to 0.5
    expect(layer.capacityFactor).toBe(0.5);
    // Middle utilization with CV 0.2 (no first two branches): ×0.95 only once ≥ 10 points trend down by > 0.01/step.
    const fresh = dropLayer(1);
    const t = new DynamicCapacityController({ ...ratioOpts, rule: 'trend' });
    const routed = [12, 12, 12, 12, 8, 8, 8, 8]; // CV = 0.2
    const us: number[] = [];
    const factors: number[] = [];
    for (let s = 0; s < 10; s++) {
      const f = fresh.capacityFactor!;
      const kept = Math.round((0.85 - 0.02 * s) * f * 80); // u_s ≈ 0.85 − 0.02 s
      step(t, fresh, routed, [kept, 0, 0, 0, 0, 0, 0, 0], s);
      us.push(kept / (f * 80));
      factors.push(fresh.capacityFactor!);
    }
    expect(factors.slice(0, 9)).toEqual(new Array(9).fill(1)); // fewer than 10 points: trend 0
    // np.polyfit slope by the normal equations, from the recorded utilizations.
    const n = us.length;
    const sx = (n * (n - 1)) / 2, sxx = ((n - 1) * n * (2 * n - 1)) / 6;
    const sy = us.reduce((a, b) => a + b, 0), sxy = us.reduce((a, y, i) => a + i * y, 0);
    const slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
    expect(linearTrend(us)).toBeCloseTo(slope, 12);
    expect(slope).toBeLessThan(-0.01);
    expect(factors[9]).toBeCloseTo(0.95, 12);
    layer.dispose();
    fresh.dispose();
  });

  it('grows the factor under overload and drops fewer tokens than a fixed factor; shrinks an oversized one without drops', () => {
    const fixed = dropLayer(1);
    const dyn = dropLayer(1);
    const a = simulate(fixed, null, 30);
    const b = simulate(dyn, new DynamicCapacityController(ratioOpts), 30);
    const dropFixed = lastMean(a, 10, (s) => droppedFraction(s.dropped, s.assignments));
    const dropDyn = lastMean(b, 10, (s) => droppedFraction(s.dropped, s.assignments));
    expect(dyn.capacityFactor).toBe(2); // grew 1 → 1.2 → 1.44 → 1.728 → 2 (clamp)
    expect(b.map((s) => s.capacity).slice(0, 5)).toEqual([32, 39, 47, 56, 64]); // ⌈f·128·2/8⌉
    expect(dropFixed).toBeGreaterThan(0.65); // measured 0.70
    expect(dropDyn).toBeLessThan(dropFixed - 0.2); // measured 0.45
    // A balanced router at factor 4: capacity is 3× the hottest expert's demand → shrinks, never below demand.
    const roomy = dropLayer(4, 0);
    const c = simulate(roomy, new DynamicCapacityController({ ...ratioOpts, maxFactor: 4 }), 20);
    expect(roomy.capacityFactor).toBeLessThan(2.6);
    expect(roomy.capacityFactor).toBeGreaterThan(1.5);
    expect(c.reduce((n, s) => n + s.dropped, 0)).toBe(0);
    for (const l of [fixed, dyn, roomy]) l.dispose();
  });
});

describeBackends('gate adjustment', () => {
  it('logitAdjust_i = −s·ln(E·(C_i + 1)/(ΣC + E)) over the last `window` steps (hand-computed)', () => {
    const layer = new MoELayer(layerCfg({ numExperts: 4 }), new Rng(2));
    const c = new GateAdjustController({ strength: 0.5, window: 2, learned: false });
    const rows = [[100, 0, 0, 0], [6, 2, 0, 0], [4, 4, 0, 0]];
    rows.forEach((r, s) => c.afterStep(ctxOf([layer], [{ load: i32(r), routed: i32(r), dropped: 0, assignments: 8, capacity: null }], s)));
    // window 2: C = [10, 6, 0, 0], Σ = 16; share = [11, 7, 1, 1]/20.
    const expected = [11, 7, 1, 1].map((n) => -0.5 * Math.log((4 * n) / 20));
    expectClose(layer.logitAdjust.dataSync(), expected, 1e-6);
    layer.dispose();
  });

  it('lowers the max-load share of a skewed router (0.48 → below 0.32)', () => {
    const plain = skewedLayer();
    const adjusted = skewedLayer();
    const a = simulate(plain, null, 60);
    const b = simulate(adjusted, new GateAdjustController({ strength: 1, window: 10, learned: false }), 60);
    const sharePlain = lastMean(a, 20, (s) => maxLoadShare(s.routed));
    const shareAdj = lastMean(b, 20, (s) => maxLoadShare(s.routed));
    expect(sharePlain).toBeGreaterThan(0.45); // measured 0.48
    expect(shareAdj).toBeLessThan(0.32); // measured 0.27
    plain.dispose();
    adjusted.dispose();
  });

  it('learned strength: episodes of `window` steps, REINFORCE on μ from r = −(CV + λ·ΔL), hand-computed', () => {
    const layer = new MoELayer(layerCfg({ numExperts: 4 }), new Rng(2));
    const c = new GateAdjustController({ strength: 1, window: 2, learned: true }, new Rng(5));
    const twin = new Rng(5);
    const sigma = 0.25, lr = 0.1, lambda = 1, beta = 0.9;
    const rows = [[6, 1, 1, 0], [3, 2, 2, 1], [4, 2, 1, 1], [2, 2, 2, 2]];
    const losses = [2.0, 1.9, 1.95, 1.7];
    const feed = (s: number) => c.afterStep(ctxOf([layer], [{ load: i32(rows[s]), routed: i32(rows[s]), dropped: 0, assignments: 8, capacity: null }], s, losses[s]));
    const r = rows.map((row, s) => -(plainCv(row) + lambda * (losses[s] - losses[Math.max(0, s - 1)])));
    feed(0);
    expect(c.strength).toBe(1); // first episode runs at s = μ, unsampled
    feed(1);
    const m1 = (r[0] + r[1]) / 2; // baseline; no sample was in force, so μ stays
    const eps1 = twin.normal();
    expect(c.mu).toBe(1);
    expect(c.strength).toBeCloseTo(Math.max(0, 1 + sigma * eps1), 12);
    feed(2);
    feed(3);
    const m2 = (r[2] + r[3]) / 2;
    const mu = Math.min(8, Math.max(0, 1 + (lr * (m2 - m1) * eps1) / sigma));
    expect(c.mu).toBeCloseTo(mu, 10);
    const s2 = Math.max(0, mu + sigma * twin.normal());
    expect(c.strength).toBeCloseTo(s2, 10);
    expect(c.metrics().gate_adjust_reward).toBeCloseTo(m2, 10);
    expect((c.state() as { baseline: number }).baseline).toBeCloseTo(beta * m1 + (1 - beta) * m2, 10);
    const C = [6, 4, 3, 3]; // window 2: steps 2 and 3, Σ 16
    expectClose(layer.logitAdjust.dataSync(), C.map((n) => -s2 * Math.log((4 * (n + 1)) / 20)), 1e-5);
    layer.dispose();
  });
});

describeBackends('expert-gradient reweighting', () => {
  const swiglu = () => new MoELayer(layerCfg({ numExperts: 4, activation: 'swiglu' }), new Rng(3));
  const gradsOf = (layer: MoELayer, seed: number) => Object.fromEntries([layer.experts.w1, layer.experts.w2, layer.experts.w3!, layer.gate]
    .map((v, i) => [v.name, tf.tensor(randomArray(v.size, seed + i, 1), v.shape)]));
  /** row e of a stacked [E, …] array times s_e, in plain JS. */
  const scaleRows = (a: Float32Array, scales: number[]) => { const n = a.length / scales.length; return Array.from(a, (v, i) => v * scales[Math.floor(i / n)]); };

  it("'utilization': u < 0.1 → 2, u > 0.9 → 0.5, normalised to mean 1; every stacked weight scaled by row (exact)", () => {
    const layer = swiglu();
    const grads = gradsOf(layer, 40);
    const c = new GradReweightController({ mode: 'utilization', low: 0.1, high: 0.9, lowScale: 2, highScale: 0.5 });
    // k = 2, Σ routed = 100 → T = 50; u = [0.08, 0.92, 0.5, 0.5] → raw [2, 0.5, 1, 1], mean 1.125.
    const loads = i32([4, 46, 25, 25]);
    const out = c.transformGrads(grads, { step: 0, layers: [layer], loads: [loads], routed: [loads], capacities: [null], taskLoss: 1 });
    const scales = [16 / 9, 4 / 9, 8 / 9, 8 / 9];
    expectClose(c.scales[0], scales, 1e-12);
    expect(Object.keys(out).sort()).toEqual([layer.experts.w1.name, layer.experts.w2.name, layer.experts.w3!.name].sort()); // the gate is not an expert weight
    for (const v of [layer.experts.w1, layer.experts.w2, layer.experts.w3!]) {
      expectClose(out[v.name].dataSync(), scaleRows(grads[v.name].dataSync() as Float32Array, scales), 1e-6);
    }
    tf.dispose([...Object.values(out), ...Object.values(grads)]);
    layer.dispose();
  });

  it("'inverse_norm': scale ∝ 1/‖g_e‖ over the active experts; an idle expert keeps 1 and is left out of the mean", () => {
    const layer = swiglu();
    const grads = gradsOf(layer, 50);
    // expert 3 computed nothing: its gradient rows are zero, as in training.
    for (const v of [layer.experts.w1, layer.experts.w2, layer.experts.w3!]) {
      const a = grads[v.name].dataSync().slice() as Float32Array;
      a.fill(0, (3 * a.length) / 4);
      grads[v.name].dispose();
      grads[v.name] = tf.tensor(a, v.shape);
    }
    const norms = [0, 1, 2, 3].map((e) => Math.sqrt([layer.experts.w1, layer.experts.w2, layer.experts.w3!].reduce((s, v) => {
      const a = grads[v.name].dataSync(); const n = a.length / 4;
      let ss = 0; for (let i = e * n; i < (e + 1) * n; i++) ss += a[i] * a[i];
      return s + ss;
    }, 0)));
    const raw = norms.slice(0, 3).map((n) => 1 / (n + 1e-6));
    const m = (raw[0] + raw[1] + raw[2]) / 3;
    const c = new GradReweightController({ mode: 'inverse_norm', low: 0.1, high: 0.9, lowScale: 2, highScale: 0.5 });
    const loads = i32([10, 20, 30, 0]);
    const out = c.transformGrads(grads, { step: 0, layers: [layer], loads: [loads], routed: [loads], capacities: [null], taskLoss: 1 });
    expectClose(c.scales[0], [raw[0] / m, raw[1] / m, raw[2] / m, 1], 1e-5);
    // Every active expert's scaled norm is the same (the harmonic mean of the norms).
    const h = 3 / (1 / norms[0] + 1 / norms[1] + 1 / norms[2]);
    for (let e = 0; e < 3; e++) expect(norms[e] * c.scales[0][e]).toBeCloseTo(h, 4);
    const w2 = layer.experts.w2.name;
    expectClose(out[w2].dataSync(), scaleRows(grads[w2].dataSync() as Float32Array, [raw[0] / m, raw[1] / m, raw[2] / m, 1]), 1e-6);
    tf.dispose([...Object.values(out), ...Object.values(grads)]);
    layer.dispose();
  });

  it("'importance': scale = EMA of mean |g_e| (0.9·old + 0.1·new, from 1) of earlier steps, normalised", () => {
    const layer = swiglu();
    const grads = gradsOf(layer, 60);
    const c = new GradReweightController({ mode: 'importance', low: 0.1, high: 0.9, lowScale: 2, highScale: 0.5 });
    const loads = i32([10, 20, 30, 40]);
    const ctx = { step: 0, layers: [layer], loads: [loads], routed: [loads], capacities: [null], taskLoss: 1 };
    const first = c.transformGrads(grads, ctx);
    expect(Object.keys(first)).toEqual([]); // importance starts at 1 everywhere: nothing to scale
    const absMean = [0, 1, 2, 3].map((e) => {
      let s = 0, n = 0;
      for (const v of [layer.experts.w1, layer.experts.w2, layer.experts.w3!]) {
        const a = grads[v.name].dataSync(); const per = a.length / 4;
        for (let i = e * per; i < (e + 1) * per; i++) { s += Math.abs(a[i]); n++; }
      }
      return s / n;
    });
    const imp = absMean.map((m) => 0.9 + 0.1 * m);
    const mi = meanOf(imp);
    const second = c.transformGrads(grads, { ...ctx, step: 1 });
    expectClose(c.scales[0], imp.map((v) => v / mi), 1e-6);
    expectClose(second[layer.experts.w2.name].dataSync(), scaleRows(grads[layer.experts.w2.name].dataSync() as Float32Array, imp.map((v) => v / mi)), 1e-6);
    tf.dispose([...Object.values(second), ...Object.values(grads)]);
    layer.dispose();
  });
});

describeBackends('dead experts', () => {
  /** Expert 7's gate column is −10 on the constant feature: it never wins a token. */
  const deadLayer = () => {
    const layer = new MoELayer(layerCfg(), new Rng(4));
    const g = randomArray(D * E, 21, 1);
    g[7] = -10;
    tf.tidy(() => layer.gate.assign(tf.tensor2d(g, [D, E])));
    return layer;
  };

  for (const revive of ['none', 'reinit_gate', 'copy_hot'] as const) {
    it(`reports an expert with no tokens for \`window\` steps; revive '${revive}' ${revive === 'none' ? 'leaves it dead' : 'gives it tokens on the same input'}`, () => {
      const layer = deadLayer();
      const x = tokens(0);
      const c = new DeadExpertController({ window: 5, revive }, new Rng(9));
      for (let s = 0; s < 5; s++) {
        const st = measure(layer, x);
        expect(st.load[7]).toBe(0);
        c.afterStep(ctxOf([layer], [st], s));
        expect(c.metrics().dead_experts).toEqual(s < 4 ? [[]] : [[7]]); // only expert 7, only from step window − 1
      }
      const after = measure(layer, x);
      const m = c.metrics();
      if (revive === 'none') {
        expect(after.load[7]).toBe(0);
        expect(m.revived).toEqual([]);
      } else {
        expect(after.load[7]).toBeGreaterThan(0);
        expect(m.revived_total).toBe(1);
      }
      if (revive === 'copy_hot') {
        const h = (m.revived as { from: number }[])[0].from;
        const g = layer.gate.arraySync() as number[][];
        expectClose(g.map((r) => r[7]), g.map((r) => r[h]), 0.05, 0.05); // a near-twin of the hot expert
        const w1 = layer.experts.w1.arraySync() as number[][][];
        expectClose(w1[7].flat(), w1[h].flat(), 0.01, 0.05);
      }
      x.dispose();
      layer.dispose();
    });
  }
});

describeBackends('sparse expert gradient accumulation', () => {
  const layer4 = () => new MoELayer(layerCfg({ numExperts: 4 }), new Rng(6));
  // Per micro-batch loads: expert 0 active in 1 of 4, expert 1 in 2, expert 2 in all 4, expert 3 never.
  const loads = [[3, 2, 1, 0], [0, 0, 2, 0], [0, 4, 1, 0], [0, 0, 3, 0]];
  /** Realistic micro-batch gradients: an expert's rows are zero where it computed nothing. */
  const microGrads = (layer: MoELayer) => loads.map((ld, m) => {
    const out: Record<string, Float32Array> = {};
    for (const v of [layer.experts.w1, layer.experts.w2]) {
      const a = randomArray(v.size, 100 + m * 7 + (v === layer.experts.w1 ? 0 : 3), 1);
      const n = a.length / 4;
      ld.forEach((c, e) => { if (c === 0) a.fill(0, e * n, (e + 1) * n); });
      out[v.name] = a;
    }
    out[layer.gate.name] = randomArray(layer.gate.size, 200 + m, 1);
    return out;
  });

  function accumulate(layer: MoELayer, share: number) {
    const acc = new SparseGradientAccumulator([layer], share);
    const mg = microGrads(layer);
    const shapes: Record<string, number[]> = { [layer.experts.w1.name]: layer.experts.w1.shape, [layer.experts.w2.name]: layer.experts.w2.shape, [layer.gate.name]: layer.gate.shape };
    acc.beginStep();
    mg.forEach((g, m) => {
      const ts = Object.fromEntries(Object.entries(g).map(([k, a]) => [k, tf.tensor(a, shapes[k])]));
      acc.addMicroBatch(ts, [i32(loads[m])]);
      tf.dispose(Object.values(ts));
    });
    return { acc, mg, res: acc.finish(4) };
  }

  it('min_active_share 0.5: 1-of-4 expert frozen (zero), 2-of-4 gets the mean over its 2, dense params the mean over 4', () => {
    const layer = layer4();
    const { acc, mg, res } = accumulate(layer, 0.5);
    expect(res.frozenExperts).toEqual([[0, 3]]);
    expect(Array.from(res.activeCounts[0])).toEqual([1, 2, 4, 0]);
    const activeIn = (e: number) => loads.map((ld, m) => (ld[e] > 0 ? m : -1)).filter((m) => m >= 0);
    for (const v of [layer.experts.w1, layer.experts.w2]) {
      const n = v.size / 4;
      const want = new Array<number>(v.size).fill(0);
      for (const e of [1, 2]) {
        const ms = activeIn(e);
        for (let i = e * n; i < (e + 1) * n; i++) want[i] = ms.reduce((s, m) => s + mg[m][v.name][i], 0) / ms.length;
      }
      expectClose(res.grads[v.name].dataSync(), want, 1e-6);
      // Plain accumulation would give expert 1 half of this (Σ/4) and expert 0 a nonzero g/4.
      const plain1 = (mg[0][v.name][n] + mg[2][v.name][n]) / 4;
      expect(Math.abs(res.grads[v.name].dataSync()[n] - plain1)).toBeGreaterThan(0.25 * Math.abs(plain1));
    }
    const g = layer.gate.name;
    expectClose(res.grads[g].dataSync(), Array.from(mg[0][g], (_, i) => (mg[0][g][i] + mg[1][g][i] + mg[2][g][i] + mg[3][g][i]) / 4), 1e-6);
    expect(acc.metrics().sparse_update_rate).toEqual([[0, 1, 1, 0]]);
    tf.dispose(Object.values(res.grads));
    layer.dispose();
  });

  it('min_active_share 0.25 admits the 1-of-4 expert with its single micro-batch gradient; mask helper; no leaks', () => {
    const layer = layer4();
    const before = tf.memory().numTensors;
    const { mg, res } = accumulate(layer, 0.25);
    expect(res.frozenExperts).toEqual([[3]]);
    const w1 = layer.experts.w1.name;
    const n = layer.experts.w1.size / 4;
    expectClose(res.grads[w1].dataSync().slice(0, n), mg[0][w1].slice(0, n), 1e-7);
    tf.dispose(Object.values(res.grads));
    expect(tf.memory().numTensors).toBe(before);
    const mask = expertUpdateMask(res.frozenExperts[0], 4);
    expect(Array.from(mask.dataSync())).toEqual([1, 1, 1, 0]);
    mask.dispose();
    layer.dispose();
  });
});

describeBackends('controllers: checkpoints and tensor hygiene', () => {
  it('state() → JSON → restore() reproduces bias, factor, logit adjustment, streaks and importance', () => {
    const run = (layer: MoELayer, cs: Controller[], from: number, to: number) => {
      for (let s = from; s < to; s++) {
        const x = tokens(s);
        const st = measure(layer, x);
        x.dispose();
        for (const c of cs) c.afterStep?.(ctxOf([layer], [st], s));
      }
    };
    const make = () => [new AuxFreeController(0.01), new DynamicCapacityController({ ...ratioOpts, rule: 'trend' }),
      new GateAdjustController({ strength: 1, window: 4, learned: true }, new Rng(8)), new DeadExpertController({ window: 3, revive: 'copy_hot' }, new Rng(9))];
    const a = skewedLayer({ capacityPolicy: 'drop-position', capacityFactor: 1.5 }, 2);
    const ca = make();
    run(a, ca, 0, 6);
    const saved = JSON.parse(JSON.stringify(ca.map((c) => c.state())));
    const b = skewedLayer({ capacityPolicy: 'drop-position', capacityFactor: 1.5 }, 2);
    const cb = make();
    for (const c of cb) c.attach!([b]);
    cb.forEach((c, i) => c.restore(saved[i]));
    tf.tidy(() => { for (const [va, vb] of [[a.gate, b.gate], [a.experts.w1, b.experts.w1], [a.experts.w2, b.experts.w2]]) vb.assign(va); });
    expect(Array.from(b.expertBias.dataSync())).toEqual(Array.from(a.expertBias.dataSync()));
    expect(Array.from(b.logitAdjust.dataSync())).toEqual(Array.from(a.logitAdjust.dataSync()));
    expect(b.capacityFactor).toBe(a.capacityFactor);
    run(a, ca, 6, 12);
    run(b, cb, 6, 12);
    expect(Array.from(b.expertBias.dataSync())).toEqual(Array.from(a.expertBias.dataSync()));
    expect(Array.from(b.logitAdjust.dataSync())).toEqual(Array.from(a.logitAdjust.dataSync()));
    expect(b.capacityFactor).toBe(a.capacityFactor);
    expect(cb.map((c) => c.metrics?.())).toEqual(ca.map((c) => c.metrics?.()));
    // Gradient importance (EMA of mean |g|) survives a checkpoint too.
    const opts = { mode: 'importance' as const, low: 0.1, high: 0.9, lowScale: 2, highScale: 0.5 };
    const ga = new GradReweightController(opts);
    const grads = { [a.experts.w1.name]: tf.tensor(randomArray(a.experts.w1.size, 3, 1), a.experts.w1.shape) };
    const ctx = ctxOf([a], [{ load: i32([1, 2, 3, 4, 5, 6, 7, 8]), routed: i32([1, 2, 3, 4, 5, 6, 7, 8]), dropped: 0, assignments: 36, capacity: null }], 0);
    tf.dispose(Object.values(ga.transformGrads(grads, ctx)));
    const gb = new GradReweightController(opts);
    gb.restore(JSON.parse(JSON.stringify(ga.state())));
    const [oa, ob] = [ga.transformGrads(grads, ctx), gb.transformGrads(grads, ctx)];
    expect(gb.scales).toEqual(ga.scales);
    expect(ga.scales[0].some((x) => Math.abs(x - 1) > 1e-3)).toBe(true);
    tf.dispose([...Object.values(oa), ...Object.values(ob), ...Object.values(grads)]);
    a.dispose();
    b.dispose();
  });

  it('afterStep and transformGrads leak no tensors', () => {
    const layer = skewedLayer({ capacityPolicy: 'drop-position', capacityFactor: 1 });
    const cs: Controller[] = [new AuxFreeController(0.01), new DynamicCapacityController(ratioOpts),
      new GateAdjustController({ strength: 1, window: 3, learned: true }, new Rng(1)), new DeadExpertController({ window: 1, revive: 'copy_hot' }, new Rng(2)),
      new GradReweightController({ mode: 'inverse_norm', low: 0.1, high: 0.9, lowScale: 2, highScale: 0.5 })];
    const x = tokens(0);
    const st = measure(layer, x);
    const grads = { [layer.experts.w1.name]: tf.onesLike(layer.experts.w1), [layer.experts.w2.name]: tf.onesLike(layer.experts.w2) };
    const before = tf.memory().numTensors;
    for (let s = 0; s < 3; s++) {
      for (const c of cs) c.afterStep?.(ctxOf([layer], [st], s));
      for (const c of cs) tf.dispose(Object.values(c.transformGrads?.(grads, ctxOf([layer], [st], s)) ?? {}));
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, ...Object.values(grads)]);
    layer.dispose();
  });
});

describe('createControllers and annealing', () => {
  it('builds the configured controllers in order; use_load_balance: false gives none', () => {
    const cfg = parseConfig({
      capacity_factor: 1.25, drop_policy: 'drop-position', grad_accum_steps: 4,
      balance: { aux_free: { enabled: true }, dynamic_capacity: { enabled: true }, gate_adjust: { enabled: true, learned: true }, grad_reweight: { enabled: true }, sparse_accumulation: { enabled: true } },
    });
    expect(createControllers(cfg).map((c) => c.name)).toEqual(['aux_free', 'dynamic_capacity', 'gate_adjust', 'grad_reweight', 'dead_expert']);
    expect(createControllers(parseConfig({})).map((c) => c.name)).toEqual(['dead_expert']);
    expect(createControllers({ ...cfg, use_load_balance: false })).toEqual([]);
    const layer = new MoELayer(layerCfg(), new Rng(1));
    expect(createSparseAccumulator(cfg, [layer])?.minActiveShare).toBe(0.5);
    expect(createSparseAccumulator(parseConfig({}), [layer])).toBeNull();
    layer.dispose();
  });

  it('τ goes tau_start → tau_end at the last step; noise decays linearly to 0 over noise_anneal_steps', () => {
    const cfg = parseConfig({ steps: 11, eval_every: 0, router: { type: 'gumbel', tau_start: 2, tau_end: 0.5, tau_schedule: 'linear', noise_scale: 1.5, noise_anneal_steps: 4 } });
    expect(tauAt(0, cfg)).toBe(2);
    expect(tauAt(5, cfg)).toBeCloseTo(1.25, 12); // halfway over 10 steps
    expect(tauAt(10, cfg)).toBeCloseTo(0.5, 12);
    expect(tauAt(50, cfg)).toBeCloseTo(0.5, 12);
    const exp = { ...cfg, router: { ...cfg.router, tau_schedule: 'exponential' as const } };
    expect(tauAt(5, exp)).toBeCloseTo(Math.sqrt(2 * 0.5), 12); // geometric midpoint
    expect([0, 1, 2, 3, 4, 9].map((s) => noiseScaleAt(s, cfg))).toEqual([1.5, 1.125, 0.75, 0.375, 0, 0]);
    expect(noiseScaleAt(1000, { router: { ...cfg.router, noise_anneal_steps: 0 } })).toBe(1.5);
    expect(() => tauAt(-1, cfg)).toThrow(/step must be an integer ≥ 0, got -1/);
  });
});
