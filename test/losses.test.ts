import * as tf from '@tensorflow/tfjs';
import { it, expect } from 'vitest';
import {
  switchLoss, switchLossFromStats, expertCounts, klUniformLoss, klUniformFromStats, klUniformCountMetric,
  cvSquaredLoss, cvSquaredFromStats, loadVarianceLoss, zLoss, sequenceAuxLoss, sequenceAuxFromStats,
  groupAuxLoss, groupAuxFromStats,
} from '../src/losses/index.ts';
import { describeBackends, expectClose, finiteDiff, randomArray } from './helpers.ts';

// ---- independent plain-number references (float64 loops; no tfjs, no module code) ----
type M = number[][];
const rows = (a: ArrayLike<number>, T: number, E: number): M =>
  Array.from({ length: T }, (_, t) => Array.from({ length: E }, (_, i) => a[t * E + i]));
const softmaxRows = (x: M): M => x.map((r) => {
  const m = Math.max(...r);
  const e = r.map((v) => Math.exp(v - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
});
/** k distinct experts per token: the k largest logits (ties impossible for random floats). */
const topk = (x: M, k: number): M => x.map((r) => r.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]).slice(0, k).map((p) => p[1]));
function counts(idx: M, E: number): number[] {
  const c = new Array(E).fill(0);
  for (const r of idx) for (const i of r) c[i] += 1;
  return c;
}
function meanP(p: M): number[] {
  const E = p[0].length;
  const s = new Array(E).fill(0);
  for (const r of p) for (let i = 0; i < E; i++) s[i] += r[i] / p.length;
  return s;
}
function refSwitch(p: M, idx: M): number {
  const E = p[0].length, T = p.length, k = idx[0].length;
  const c = counts(idx, E), P = meanP(p);
  let s = 0;
  for (let i = 0; i < E; i++) s += (c[i] / (T * k)) * P[i];
  return E * s;
}
function refKL(p: M): number {
  const P = meanP(p), E = P.length;
  let s = 0;
  for (const q of P) s += (1 / E) * Math.log(1 / E / q);
  return s;
}
function cv2(x: number[]): number {
  const mu = x.reduce((a, b) => a + b, 0) / x.length;
  const v = x.reduce((a, b) => a + (b - mu) ** 2, 0) / x.length;
  return v / (mu * mu + 1e-10);
}
function refCV(p: M, idx: M): number {
  const imp = meanP(p).map((v) => v * p.length);
  return cv2(imp) + cv2(counts(idx, p[0].length));
}
function varUnbiased(x: number[]): number {
  const mu = x.reduce((a, b) => a + b, 0) / x.length;
  return x.reduce((a, b) => a + (b - mu) ** 2, 0) / (x.length - 1);
}
const refLoadVar = (p: M): number => varUnbiased(meanP(p).map((v) => v * p.length)) + varUnbiased(meanP(p));
const refZ = (x: M): number => x.reduce((a, r) => a + Math.log(r.reduce((s, v) => s + Math.exp(v), 0)) ** 2, 0) / x.length;
function refSeq(p: M, idx: M, L: number): number {
  let s = 0;
  for (let a = 0; a < p.length; a += L) s += refSwitch(p.slice(a, a + L), idx.slice(a, a + L));
  return s / (p.length / L);
}
function refGroup(p: M, idx: M, g: number[]): number {
  const E = p[0].length, T = p.length, k = idx[0].length, D = Math.max(...g) + 1;
  const c = counts(idx, E), P = meanP(p);
  let s = 0;
  for (let d = 0; d < D; d++) {
    const members = g.map((gd, i) => (gd === d ? i : -1)).filter((i) => i >= 0);
    const fd = members.reduce((a, i) => a + (E * c[i]) / (T * k), 0) / members.length;
    const Pd = members.reduce((a, i) => a + P[i], 0);
    s += fd * Pd;
  }
  return s;
}

// ---- fixtures ----
const t2 = (x: M) => tf.tensor2d(x);
const i2 = (x: M) => tf.tensor2d(x, undefined, 'int32');
const val = (s: tf.Scalar) => { const v = s.dataSync()[0]; s.dispose(); return v; };
function randomRouting(T: number, E: number, k: number, seed: number) {
  const logits = rows(randomArray(T * E, seed, 2), T, E);
  const p = softmaxRows(logits);
  // choices from a second draw, so counts and probabilities are not tied together
  const idx = topk(rows(randomArray(T * E, seed + 100), T, E), k);
  return { logits, p, idx };
}
const GROUPS8 = [0, 0, 1, 1, 1, 2, 2, 3]; // uneven group sizes 2, 3, 2, 1

describeBackends('balance losses', () => {
  it('match plain-number references on random routing', () => {
    for (const [T, E, k, seed] of [[12, 8, 2, 1], [10, 8, 1, 2], [16, 8, 3, 3]]) {
      const { logits, p, idx } = randomRouting(T, E, k, seed);
      const P = t2(p), I = i2(idx), X = t2(logits);
      expectClose([val(switchLoss(P, I, E))], [refSwitch(p, idx)], 1e-6, 1e-5);
      expectClose([val(klUniformLoss(P))], [refKL(p)], 1e-6, 1e-4);
      expectClose([val(cvSquaredLoss(P, I, E))], [refCV(p, idx)], 1e-6, 1e-4);
      expectClose([val(loadVarianceLoss(P, I, E))], [refLoadVar(p)], 1e-6, 1e-4);
      expectClose([val(zLoss(X))], [refZ(logits)], 1e-5, 1e-5);
      expectClose([val(sequenceAuxLoss(P, I, E, 2))], [refSeq(p, idx, 2)], 1e-6, 1e-5);
      expectClose([val(groupAuxLoss(P, I, GROUPS8))], [refGroup(p, idx, GROUPS8)], 1e-6, 1e-5);
      const c = expertCounts(I, E);
      expect(Array.from(c.dataSync())).toEqual(counts(idx, E));
      expect(c.dtype).toBe('float32');
      tf.dispose([P, I, X, c]);
    }
  });

  it('hand-computed values', () => {
    const U = t2([[0.25, 0.25, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25]]);
    const k1 = i2([[0], [1], [2], [3]]);
    const k2 = i2([[0, 1], [2, 3], [1, 0], [3, 2]]);
    // perfect balance: switch 1 (any k), group 1, KL 0, CV² 0, variance 0, sequence 1
    expect(val(switchLoss(U, k1, 4))).toBeCloseTo(1, 6);
    expect(val(switchLoss(U, k2, 4))).toBeCloseTo(1, 6);
    expect(val(groupAuxLoss(U, k2, [0, 0, 1, 1]))).toBeCloseTo(1, 6);
    expect(val(groupAuxLoss(U, k1, [0, 1, 1, 1]))).toBeCloseTo(1, 6); // uneven groups too
    expect(Math.abs(val(klUniformLoss(U)))).toBeLessThan(1e-6);
    expect(val(cvSquaredLoss(U, k1, 4))).toBeCloseTo(0, 6);
    expect(val(loadVarianceLoss(U, k1, 4))).toBeCloseTo(0, 6);
    expect(val(sequenceAuxLoss(U, k2, 4, 2))).toBeCloseTo(1, 6);
    // balanced counts give exactly Σ_i P_i = 1 whatever the probabilities
    const skew = t2([[0.7, 0.1, 0.1, 0.1], [0.4, 0.4, 0.1, 0.1], [0.6, 0.2, 0.1, 0.1], [0.5, 0.3, 0.1, 0.1]]);
    expect(val(switchLoss(skew, k1, 4))).toBeCloseTo(1, 6);
    // collapsed router, k = 1: every token to expert 0 with probability 1 gives E
    const hot = t2([[1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]]);
    const zeros = i2([[0], [0], [0]]);
    expect(val(switchLoss(hot, zeros, 4))).toBeCloseTo(4, 6);
    // group: tokens 0,1 of `skew` both to expert 0; f = [4,0,0,0], f' = [2, 0], P'_0 = 0.55+0.25 = 0.8 → 1.6
    const two = t2([[0.7, 0.1, 0.1, 0.1], [0.4, 0.4, 0.1, 0.1]]);
    expect(val(groupAuxLoss(two, i2([[0], [0]]), [0, 0, 1, 1]))).toBeCloseTo(1.6, 6);
    // sequence: seq 1 both to expert 0, P = [0.8, 0.2] → 1.6; seq 2 balanced with P uniform → 1; mean 1.3
    const sp = t2([[0.9, 0.1], [0.7, 0.3], [0.5, 0.5], [0.5, 0.5]]);
    const si = i2([[0], [0], [0], [1]]);
    expect(val(sequenceAuxLoss(sp, si, 2, 2))).toBeCloseTo(1.3, 6);
    expect(val(switchLoss(sp, si, 2))).toBeCloseTo(2 * (0.75 * 0.65 + 0.25 * 0.35), 6); // batch-level differs
    // CV²: importance [1.5, 0.5] → 0.25/1; load [2, 0] → 1/1; seed-004 variance 0.5 + 0.125
    const cp = t2([[0.75, 0.25], [0.75, 0.25]]);
    expect(val(cvSquaredLoss(cp, i2([[0], [0]]), 2))).toBeCloseTo(1.25, 6);
    expect(val(loadVarianceLoss(cp, i2([[0], [0]]), 2))).toBeCloseTo(0.625, 6);
    // KL(U ‖ [0.5, 0.25, 0.25])
    const kp = t2([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]]);
    expect(val(klUniformLoss(kp))).toBeCloseTo((Math.log(2 / 3) + 2 * Math.log(4 / 3)) / 3, 6);
    // z-loss of zero logits: (log E)²
    expect(val(zLoss(tf.zeros([3, 5]) as tf.Tensor2D))).toBeCloseTo(Math.log(5) ** 2, 5);
    tf.dispose([U, k1, k2, skew, hot, zeros, two, sp, si, cp, kp]);
  });

  it('gradients w.r.t. logits match finite differences (probs = softmax(logits))', () => {
    const T = 6, E = 4;
    const x0 = randomArray(T * E, 7, 1.5);
    const idx = i2(topk(rows(randomArray(T * E, 8), T, E), 2));
    const losses: [string, (p: tf.Tensor2D, l: tf.Tensor2D) => tf.Scalar][] = [
      ['switch', (p) => switchLoss(p, idx, E)],
      ['kl', (p) => klUniformLoss(p)],
      ['cv', (p) => cvSquaredLoss(p, idx, E)],
      ['variance', (p) => loadVarianceLoss(p, idx, E)],
      ['z', (_p, l) => zLoss(l)],
      ['sequence', (p) => sequenceAuxLoss(p, idx, E, 3)],
      ['group', (p) => groupAuxLoss(p, idx, [0, 1, 1, 0])],
    ];
    for (const [name, loss] of losses) {
      const f = (l: tf.Tensor) => loss(tf.softmax(l) as tf.Tensor2D, l as tf.Tensor2D);
      const g = tf.tidy(() => tf.grad(f)(tf.tensor2d(x0, [T, E])).dataSync());
      const fd = finiteDiff((x) => tf.tidy(() => f(tf.tensor2d(x, [T, E])).dataSync()[0]), Float32Array.from(x0), 1e-2);
      expect(Math.max(...Array.from(g, Math.abs)), name).toBeGreaterThan(1e-3); // not trivially zero
      try {
        expectClose(g, fd, 2e-4, 1e-2);
      } catch (e) {
        throw new Error(`${name}: ${(e as Error).message}`);
      }
    }
    idx.dispose();
  });

  it('FromStats forms: micro-batch aggregates reproduce the full-batch loss; f gets no gradient', () => {
    const E = 8, k = 2;
    const a = randomRouting(6, E, k, 11), b = randomRouting(6, E, k, 12);
    const p = [...a.p, ...b.p], idx = [...a.idx, ...b.idx];
    const c = counts(idx, E);
    const f = tf.tensor1d(c.map((v) => v / (12 * k)));
    const P = tf.tensor1d(meanP(p));
    expectClose([val(switchLossFromStats(f, P))], [refSwitch(p, idx)], 1e-6, 1e-5);
    expectClose([val(klUniformFromStats(P))], [refKL(p)], 1e-6, 1e-4);
    expectClose([val(groupAuxFromStats(f, P, GROUPS8))], [refGroup(p, idx, GROUPS8)], 1e-6, 1e-5);
    const imp = tf.tensor1d(meanP(p).map((v) => v * 12)), load = tf.tensor1d(c);
    expectClose([val(cvSquaredFromStats(imp, load))], [refCV(p, idx)], 1e-6, 1e-4);
    // per-sequence stats [S, E] for seqLen 3
    const fs: M = [], Ps: M = [];
    for (let s = 0; s < 4; s++) {
      fs.push(counts(idx.slice(3 * s, 3 * s + 3), E).map((v) => v / (3 * k)));
      Ps.push(meanP(p.slice(3 * s, 3 * s + 3)));
    }
    expectClose([val(sequenceAuxFromStats(t2(fs), t2(Ps)))], [refSeq(p, idx, 3)], 1e-6, 1e-5);
    // d/dP = E·f, d/df = 0 (f is a routing statistic, a constant)
    const [gf, gP] = tf.grads((ff: tf.Tensor, pp: tf.Tensor) => switchLossFromStats(ff as tf.Tensor1D, pp as tf.Tensor1D))([f, P]);
    expectClose(gP.dataSync(), c.map((v) => (E * v) / (12 * k)), 1e-6, 1e-5);
    expect(Array.from(gf.dataSync()).every((v) => v === 0)).toBe(true);
    tf.dispose([f, P, imp, load, gf, gP]);
  });

  it('leaks no tensors', () => {
    const { logits, p, idx } = randomRouting(6, 4, 2, 5);
    const P = t2(p), I = i2(idx), X = t2(logits);
    const before = tf.memory().numTensors;
    for (const s of [switchLoss(P, I, 4), klUniformLoss(P), cvSquaredLoss(P, I, 4), loadVarianceLoss(P, I, 4), zLoss(X),
      sequenceAuxLoss(P, I, 4, 2), groupAuxLoss(P, I, [0, 0, 1, 1])]) s.dispose();
    tf.dispose(tf.grad((x: tf.Tensor) => switchLoss(tf.softmax(x) as tf.Tensor2D, I, 4))(X));
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([P, I, X]);
  });

  it('rejects bad inputs, naming the bad value', () => {
    const { p, idx } = randomRouting(6, 4, 2, 9);
    const P = t2(p), I = i2(idx);
    expect(() => switchLoss(tf.tensor1d([0.5, 0.5]) as unknown as tf.Tensor2D, I, 4)).toThrow(/shape \[2\]/);
    expect(() => switchLoss(P, I, 5)).toThrow(/numExperts = 5 but probs has E = 4/);
    expect(() => switchLoss(P, tf.tensor2d(idx), 4)).toThrow(/int32, got float32/);
    expect(() => switchLoss(P, i2(idx.slice(1)), 4)).toThrow(/5 rows, probs has T = 6/);
    expect(() => cvSquaredLoss(P, i2([...idx.slice(1), [1, 4]]), 4)).toThrow(/indices\[5, 1\] = 4 is not an expert id in 0..3/);
    expect(() => expertCounts(i2([[0], [-1]]), 4)).toThrow(/indices\[1, 0\] = -1/);
    expect(() => switchLoss(P, i2(p.map(() => [0, 1, 2, 3, 0])), 4)).toThrow(/k = 5/);
    expect(() => sequenceAuxLoss(P, I, 4, 4)).toThrow(/T = 6 .* seqLen = 4/);
    expect(() => sequenceAuxLoss(P, I, 4, 0)).toThrow(/seqLen .* got 0/);
    expect(() => groupAuxLoss(P, I, [0, 1, 1])).toThrow(/\(4\), got length 3/);
    expect(() => groupAuxLoss(P, I, [0, 0.5, 1, 1])).toThrow(/expertToGroup\[1\] = 0.5/);
    expect(() => groupAuxLoss(P, I, [0, 0, 2, 2])).toThrow(/group 1 of 0\.\.2/);
    expect(() => loadVarianceLoss(t2([[1], [1]]), i2([[0], [0]]), 1)).toThrow(/E = 1/);
    expect(() => switchLossFromStats(tf.tensor1d([0.5, 0.5]), tf.tensor1d([1, 0, 0]))).toThrow(/P has 3 experts, expected 2/);
    expect(() => zLoss(tf.tensor3d([[[1]]]) as unknown as tf.Tensor2D)).toThrow(/logits must be \[T, E\], got shape \[1,1,1\]/);
    expect(() => klUniformCountMetric([1, NaN])).toThrow(/counts\[1\] = NaN/);
    tf.dispose([P, I]);
  });
});

// plain-number metric: no backend involved
it('klUniformCountMetric reproduces seed 000 (softmax of counts, KLDivLoss batchmean over E)', () => {
  // reference: MindSpore KLDivLoss L = target·(log target − input) with input = log(softmax(c) + 1e-8),
  // 'batchmean' = sum / input.shape[0] = sum / E; unshifted exp is fine for these counts in float64
  const ref = (c: number[]) => {
    const z = c.reduce((a, v) => a + Math.exp(v), 0);
    const E = c.length;
    return c.reduce((a, v) => a + (1 / E) * (Math.log(1 / E) - Math.log(Math.exp(v) / z + 1e-8)), 0) / E;
  };
  for (const c of [[128, 96, 3, 1], [5, 6, 7, 4, 5, 5, 6, 2], [0, 1]]) expectClose([klUniformCountMetric(c)], [ref(c)], 1e-12, 1e-9);
  // balanced counts: q uniform, metric = (1/E)·log((1/E)/(1/E + 1e-8)) ≈ −1e-8 (the seed's epsilon), not 0
  expect(klUniformCountMetric([10, 10, 10, 10])).toBeCloseTo(Math.log(0.25 / (0.25 + 1e-8)) / 4, 15);
  // saturation: counts 128 vs 96 already make q one-hot, so the metric equals that of a full collapse
  expect(klUniformCountMetric([128, 96, 3, 1])).toBeCloseTo(klUniformCountMetric([1000, 0, 0, 0]), 5);
  expect(() => klUniformCountMetric([])).toThrow(/non-empty/);
});
