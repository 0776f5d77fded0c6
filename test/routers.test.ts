/**
 * Noisy top-k, Gumbel, expert-choice, Sinkhorn and group-limited routers against plain-array
 * references written here, invariants, and gradients against finite differences.
 */
import * as tf from '@tensorflow/tfjs';
import { it, expect } from 'vitest';
import { routeNoisyTopK, noisyTopKLoad, NOISE_EPSILON } from '../src/router/noisy.ts';
import { routeGumbel, gumbelNoise, annealTau } from '../src/router/gumbel.ts';
import { routeExpertChoice, expertChoiceCapacity } from '../src/router/expert_choice.ts';
import { routeSinkhorn, sinkhorn } from '../src/router/sinkhorn.ts';
import { sinkhornLogHost, topKRowsHost } from '../src/router/sinkhorn_host.ts';
import { routeGroupLimited } from '../src/router/group_limited.ts';
import { routeTopK } from '../src/router/topk.ts';
import { Rng } from '../src/rng.ts';
import { describeBackends, expectClose, finiteDiff, scalarAt, randomArray } from './helpers.ts';

// ---------- plain-array references ----------
type M = number[][];
const T = 7;
const E = 6;
const to2d = (a: ArrayLike<number>, R: number, C: number): M =>
  Array.from({ length: R }, (_, r) => Array.from({ length: C }, (_, c) => a[r * C + c]));
const flat = (m: M): number[] => m.flat();
const sum = (r: number[]): number => r.reduce((s, x) => s + x, 0);
const softmaxRow = (r: number[]): number[] => {
  const m = Math.max(...r);
  const e = r.map((x) => Math.exp(x - m));
  const s = sum(e);
  return e.map((x) => x / s);
};
const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));
const softplus = (x: number): number => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)));
const argsortDesc = (r: number[]): number[] => r.map((_, i) => i).sort((a, b) => r[b] - r[a] || a - b);
const topk = (r: number[], k: number): number[] => argsortDesc(r).slice(0, k);
const transpose = (m: M): M => m[0].map((_, c) => m.map((row) => row[c]));
/** Φ(z) = ½ + ∫₀^z φ, Simpson's rule (independent of any erf approximation). */
function phi(z: number): number {
  if (z > 12) return 1;
  if (z < -12) return 0;
  const n = 2000;
  const h = z / n;
  const pdf = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
  let s = pdf(0) + pdf(z);
  for (let i = 1; i < n; i++) s += (i % 2 ? 4 : 2) * pdf(i * h);
  return 0.5 + (s * h) / 3;
}
/** Smallest gap between adjacent values among each row's top n+1 (finite differences must not flip the top n). */
const minTopGap = (m: M, n: number): number =>
  Math.min(...m.map((r) => {
    const s = r.filter(Number.isFinite).sort((a, b) => b - a).slice(0, n + 1);
    return Math.min(...s.slice(1).map((v, i) => s[i] - v));
  }));
/** Each row a random permutation of rank·gap plus jitter < gap/4: no near-ties. */
function separated(R: number, C: number, seed: number, gap = 0.5): Float32Array {
  const keys = randomArray(R * C, seed);
  const jitter = randomArray(R * C, seed + 1, gap / 4);
  const out = new Float32Array(R * C);
  for (let r = 0; r < R; r++) {
    const order = argsortDesc(Array.from(keys.slice(r * C, (r + 1) * C)));
    order.forEach((c, rank) => { out[r * C + c] = (rank - C / 2) * gap + jitter[r * C + c]; });
  }
  return out;
}
const rows = (t: tf.Tensor): M => t.arraySync() as M;

/** Indices int32, in range, distinct per row, ordered best first by `by`. */
function checkPicks(indices: tf.Tensor, n: number, by?: M): void {
  expect(indices.dtype).toBe('int32');
  for (const [r, row] of rows(indices).entries()) {
    expect(new Set(row).size).toBe(row.length);
    for (const i of row) expect(i >= 0 && i < n).toBe(true);
    if (by) for (let j = 1; j < row.length; j++) expect(by[r][row[j - 1]]).toBeGreaterThanOrEqual(by[r][row[j]]);
  }
}
const expectRowSums = (w: tf.Tensor, target: number, atol = 1e-5) =>
  expectClose(rows(w).map(sum), rows(w).map(() => target), atol, 0);

/** tf.grad of fn at x0 vs central differences; also asserts the gradient is not trivially zero. */
function checkGrad(fn: (x: tf.Tensor2D) => tf.Scalar, x0: Float32Array, shape: [number, number], eps = 5e-3): void {
  const x = tf.tensor2d(x0, shape);
  const g = tf.grad((xx: tf.Tensor) => fn(xx as tf.Tensor2D))(x);
  const fd = finiteDiff(scalarAt((t) => fn(t as tf.Tensor2D), shape), Float32Array.from(x0), eps);
  const ga = g.dataSync();
  expectClose(ga, fd, 2e-3, 2e-2);
  expect(Math.max(...Array.from(ga, Math.abs))).toBeGreaterThan(1e-3);
  tf.dispose([x, g]);
}
/** Σ c ⊙ w for fixed coefficients c: a scalar that touches every weight differently. */
const dot = (w: tf.Tensor, seed = 99) => tf.sum(tf.mul(w, tf.tensor(randomArray(w.size, seed, 1), w.shape))) as tf.Scalar;

// ---------- noisy top-k ----------
function refNoisy(h: M, n: M, eps: M, k: number, training: boolean, scale = 1, bn = false) {
  let clean = h;
  if (bn) {
    const cols = transpose(h).map((c) => { const mu = sum(c) / c.length; const v = sum(c.map((x) => (x - mu) ** 2)) / c.length; return { mu, v }; });
    clean = h.map((r) => r.map((x, e) => (x - cols[e].mu) / Math.sqrt(cols[e].v + 1e-5)));
  }
  const std = n.map((r) => r.map((x) => (training ? (softplus(x) + NOISE_EPSILON) * scale : 0)));
  const H = clean.map((r, t) => r.map((x, e) => x + eps[t][e] * std[t][e]));
  const idx = H.map((r) => topk(r, k));
  const w = H.map((r, t) => softmaxRow(idx[t].map((i) => r[i])));
  return { clean, std, H, idx, w, probs: H.map(softmaxRow) };
}
/** Load_i = Σ_t Φ((clean_ti − kth_excluding(H_t, k, i)) / σ_ti), the definition taken literally. */
function refLoad(clean: M, H: M, std: M, k: number): number[] {
  const load = new Array(clean[0].length).fill(0);
  for (let t = 0; t < clean.length; t++) {
    for (let i = 0; i < clean[0].length; i++) {
      const others = H[t].filter((_, j) => j !== i).sort((a, b) => b - a);
      load[i] += phi((clean[t][i] - others[k - 1]) / std[t][i]);
    }
  }
  return load;
}

describeBackends('routeNoisyTopK / noisyTopKLoad', () => {
  const h = separated(T, E, 3);
  const n = randomArray(T * E, 5, 1).map((x) => x - 1); // σ = softplus(n) + 0.01 ∈ (0.14, 0.70)
  const eps = new Rng(7).normals(T * E);
  const ref = (k: number, training: boolean, scale = 1, bn = false) =>
    refNoisy(to2d(h, T, E), to2d(n, T, E), to2d(eps, T, E), k, training, scale, bn);

  for (const [training, scale, bn] of [[true, 1, false], [true, 0.5, true], [false, 1, false], [false, 1, true]] as const) {
    it(`matches the reference (training=${training}, noiseScale=${scale}, batchNorm=${bn})`, () => {
      for (const k of [1, 2, 3]) {
        const r = routeNoisyTopK(tf.tensor2d(h, [T, E]), tf.tensor2d(n, [T, E]), {
          k, noise: tf.tensor2d(eps, [T, E]), training, noiseScale: scale, batchNorm: bn,
        });
        const want = ref(k, training, scale, bn);
        expect(rows(r.indices)).toEqual(want.idx);
        expectClose(r.weights.dataSync(), flat(want.w));
        expectClose(r.probs.dataSync(), flat(want.probs));
        expectClose(r.noisyLogits.dataSync(), flat(want.H), 1e-4);
        expectClose(r.noiseStd.dataSync(), flat(want.std));
        checkPicks(r.indices, E, want.H);
        expectRowSums(r.weights, 1);
      }
    });
  }

  it('smooth load matches Σ Φ((clean − kth_excluding)/σ); σ → 0 gives the hard count; k = E gives T', () => {
    for (const k of [1, 2, 4]) {
      const r = routeNoisyTopK(tf.tensor2d(h, [T, E]), tf.tensor2d(n, [T, E]), { k, noise: tf.tensor2d(eps, [T, E]), training: true });
      const want = ref(k, true);
      const load = noisyTopKLoad(r.cleanLogits, r.noisyLogits, r.noiseStd, k);
      expect(load.shape).toEqual([E]);
      expectClose(load.dataSync(), refLoad(want.clean, want.H, want.std, k), 2e-5, 1e-4);
    }
    const clean = tf.tensor2d(h, [T, E]);
    const hard = noisyTopKLoad(clean, clean, tf.zeros([T, E]), 2).dataSync();
    const counts = new Array(E).fill(0);
    for (const r of to2d(h, T, E)) for (const i of topk(r, 2)) counts[i]++;
    expectClose(hard, counts);
    expectClose(noisyTopKLoad(clean, clean, tf.ones([T, E]), E).dataSync(), new Array(E).fill(T));
  });

  it('gradients of weights w.r.t. logits and noise logits match finite differences', () => {
    const noise = tf.tensor2d(eps, [T, E]);
    const nT = tf.tensor2d(n, [T, E]);
    checkGrad((x) => dot(routeNoisyTopK(x, nT, { k: 2, noise, training: false }).weights), h, [T, E]);
    // Training: logits chosen so that H = logits + ε·σ is the well-separated h (a ±5e-3 nudge of a
    // logit moves H by 5e-3, of a noise logit by ≤ 5e-3·|ε| ≤ 0.02: no pick flips).
    const sigma = Array.from(n, (x) => softplus(x) + NOISE_EPSILON);
    const hTrain = Float32Array.from(h, (x, i) => x - eps[i] * sigma[i]);
    expect(minTopGap(ref(2, true).H, 3)).toBeLessThan(0.05); // (the plain h would not do)
    expect(minTopGap(refNoisy(to2d(hTrain, T, E), to2d(n, T, E), to2d(eps, T, E), 2, true).H, 3)).toBeGreaterThan(0.1);
    checkGrad((x) => dot(routeNoisyTopK(x, nT, { k: 2, noise, training: true }).weights), hTrain, [T, E]);
    const hT = tf.tensor2d(hTrain, [T, E]);
    checkGrad((x) => dot(routeNoisyTopK(hT, x, { k: 2, noise, training: true }).weights), n, [T, E]);
    // the load estimator, through clean logits, σ and the thresholds taken from H = clean + ε·σ
    const std = tf.tensor2d(sigma, [T, E]);
    checkGrad((x) => dot(noisyTopKLoad(x, tf.add(x, tf.mul(noise, std)) as tf.Tensor2D, std, 2)), hTrain, [T, E]);
  });

  it('rejects bad arguments with the bad value', () => {
    const x = tf.zeros([T, E]) as tf.Tensor2D;
    expect(() => routeNoisyTopK(x, x, { k: 0, noise: x, training: true })).toThrow(/k must be an integer in 1\.\.6, got 0/);
    expect(() => routeNoisyTopK(x, x, { k: 2, training: true })).toThrow(/needs opts\.noise/);
    expect(() => routeNoisyTopK(x, tf.zeros([T, 5]), { k: 2, noise: x, training: true })).toThrow(/\[7, 6\], got \[7,5\]/);
    expect(() => routeNoisyTopK(x, x, { k: 2, noise: x, training: true, noiseScale: -1 })).toThrow(/noiseScale.*got -1/);
    expect(() => noisyTopKLoad(x, x, x, 7)).toThrow(/got 7/);
  });
});

// ---------- Gumbel ----------
describeBackends('routeGumbel / gumbelNoise / annealTau', () => {
  const h = separated(T, E, 11);
  const refGumbel = (g: M, tau: number, k: number, renorm: boolean) => {
    const y = to2d(h, T, E).map((r, t) => softmaxRow(r.map((x, e) => (x + g[t][e]) / tau)));
    const idx = y.map((r) => topk(r, k));
    const w = y.map((r, t) => { const p = idx[t].map((i) => r[i]); const s = renorm ? sum(p) : 1; return p.map((x) => x / s); });
    return { y, idx, w };
  };

  it('matches the reference (soft and hard, k = 1 and 2)', () => {
    const g = gumbelNoise([T, E], new Rng(4));
    const gm = rows(g);
    for (const [k, tau] of [[1, 0.5], [2, 0.7], [3, 2]]) {
      const want = refGumbel(gm, tau, k, k > 1);
      const r = routeGumbel(tf.tensor2d(h, [T, E]), { k, tau, gumbel: g });
      expect(rows(r.indices)).toEqual(want.idx);
      checkPicks(r.indices, E, want.y);
      expectClose(r.weights.dataSync(), flat(want.w));
      expectClose(r.probs.dataSync(), flat(to2d(h, T, E).map(softmaxRow))); // clean probs
      if (k > 1) expectRowSums(r.weights, 1);
      const hard = routeGumbel(tf.tensor2d(h, [T, E]), { k, tau, gumbel: g, hard: true });
      expect(rows(hard.indices)).toEqual(want.idx);
      expectClose(hard.weights.dataSync(), new Array(T * k).fill(1 / k));
    }
  });

  it('soft gradients match finite differences; hard (straight-through) gradients equal the soft ones', () => {
    // Noise chosen so that h + g is well separated (real Gumbel draws can nearly tie).
    const gArr = Float32Array.from(separated(T, E, 13), (x, i) => x - h[i]);
    const hSmall = randomArray(T * E, 14, 0.05);
    const g = tf.tensor2d(gArr, [T, E]);
    const y = refGumbel(to2d(gArr, T, E), 0.7, 2, true).y; // same y for logits h + hSmall, to 0.05
    expect(minTopGap(y, 2)).toBeGreaterThan(0.02); // a ±5e-3 nudge moves y by ≤ 1.8e-3
    for (const k of [1, 2]) {
      const soft = (x: tf.Tensor2D) => dot(routeGumbel(x, { k, tau: 0.7, gumbel: g }).weights);
      const x0 = Float32Array.from(h, (v, i) => v + hSmall[i]);
      checkGrad(soft, x0, [T, E]);
      const hT = tf.tensor2d(x0, [T, E]);
      const gs = tf.grad((x: tf.Tensor) => soft(x as tf.Tensor2D))(hT).dataSync();
      const gh = tf.grad((x: tf.Tensor) => dot(routeGumbel(x as tf.Tensor2D, { k, tau: 0.7, gumbel: g, hard: true }).weights))(hT).dataSync();
      expectClose(gh, gs, 1e-6);
    }
  });

  it('gumbelNoise has the Gumbel(0,1) mean γ and variance π²/6, and top-1 samples softmax(logits)', () => {
    const N = 20000;
    const s = gumbelNoise([N, 1], new Rng(123)).dataSync();
    const mean = sum(Array.from(s)) / N;
    const variance = sum(Array.from(s, (x) => (x - mean) ** 2)) / N;
    expect(Math.abs(mean - 0.5772157)).toBeLessThan(0.03);
    expect(Math.abs(variance - Math.PI ** 2 / 6)).toBeLessThan(0.08);
    expect(gumbelNoise([2, 3], new Rng(5)).dataSync()).toEqual(gumbelNoise([2, 3], new Rng(5)).dataSync());
    // Gumbel-max: argmax(h + g) ~ Categorical(softmax(h)), whatever τ.
    const row = [1, 0, -0.5, 0.3];
    const Tn = 4000;
    const logits = tf.tile(tf.tensor2d([row]), [Tn, 1]) as tf.Tensor2D;
    const r = routeGumbel(logits, { k: 1, tau: 0.3, gumbel: gumbelNoise([Tn, 4], new Rng(9)) });
    const counts = [0, 0, 0, 0];
    for (const i of r.indices.dataSync()) counts[i]++;
    expectClose(counts.map((c) => c / Tn), softmaxRow(row), 0.03, 0);
  });

  it('annealTau follows the documented formulas', () => {
    const o = { tauStart: 2, tauEnd: 0.5, steps: 100 };
    expect(annealTau(0, { ...o, schedule: 'exponential' })).toBeCloseTo(2, 12);
    expect(annealTau(50, { ...o, schedule: 'exponential' })).toBeCloseTo(1, 12); // 2·(1/4)^(1/2)
    expect(annealTau(25, { ...o, schedule: 'exponential' })).toBeCloseTo(2 * 0.25 ** 0.25, 12); // 1.41421
    expect(annealTau(50, { ...o, schedule: 'linear' })).toBeCloseTo(1.25, 12);
    expect(annealTau(25, { ...o, schedule: 'linear' })).toBeCloseTo(1.625, 12);
    expect(annealTau(50, { ...o, schedule: 'cosine' })).toBeCloseTo(1.25, 12);
    expect(annealTau(25, { ...o, schedule: 'cosine' })).toBeCloseTo(0.5 + 0.75 * (1 + Math.SQRT1_2), 12); // 1.78033
    for (const schedule of ['exponential', 'linear', 'cosine'] as const) {
      expect(annealTau(100, { ...o, schedule })).toBeCloseTo(0.5, 12);
      expect(annealTau(1e6, { ...o, schedule })).toBeCloseTo(0.5, 12);
    }
    expect(() => annealTau(1, { ...o, tauEnd: 0, schedule: 'linear' })).toThrow(/tauEnd must be > 0, got 0/);
    expect(() => annealTau(-1, { ...o, schedule: 'linear' })).toThrow(/step .* got -1/);
    expect(() => annealTau(1, { ...o, steps: 0, schedule: 'linear' })).toThrow(/steps .* got 0/);
    expect(() => annealTau(1, { ...o, schedule: 'step' as 'linear' })).toThrow(/got 'step'/);
  });

  it('rejects bad arguments with the bad value', () => {
    const x = tf.zeros([T, E]) as tf.Tensor2D;
    expect(() => routeGumbel(x, { k: 2, tau: 0, gumbel: x })).toThrow(/tau must be .* got 0/);
    expect(() => routeGumbel(x, { k: 9, tau: 1, gumbel: x })).toThrow(/got 9/);
    expect(() => routeGumbel(x, { k: 2, tau: 1, gumbel: tf.zeros([6, 6]) })).toThrow(/\[7, 6\], got \[6,6\]/);
    expect(() => gumbelNoise([0, 3], new Rng(1))).toThrow(/got \[0,3\]/);
  });
});

// ---------- expert choice ----------
describeBackends('routeExpertChoice', () => {
  it('capacity is min(T, ⌈T·k·cf/E⌉) and ignores float noise', () => {
    expect(expertChoiceCapacity(8, 4, 1, 1)).toBe(2);
    expect(expertChoiceCapacity(7, 6, 1, 1.25)).toBe(2); // 1.458 → 2
    expect(expertChoiceCapacity(50, 11, 1, 1.1)).toBe(5); // 50·1.1/11 = 5.000000000000001 in doubles
    expect(expertChoiceCapacity(50, 55, 1, 1.1)).toBe(1);
    expect(expertChoiceCapacity(8, 4, 2, 1.5)).toBe(6);
    expect(expertChoiceCapacity(4, 2, 1, 3)).toBe(4); // 6 clamped to T
    expect(expertChoiceCapacity(3, 64, 1, 1)).toBe(1);
    expect(() => expertChoiceCapacity(8, 4, 1, 0)).toThrow(/capacityFactor .* got 0/);
    expect(() => expertChoiceCapacity(8, 4, -1, 1)).toThrow(/k must .* got -1/);
    expect(() => expertChoiceCapacity(0, 4, 1, 1)).toThrow(/T must .* got 0/);
  });

  const h = randomArray(T * E, 21, 2);
  it('each expert takes its top-C tokens by probability, weights = probs there', () => {
    const probs = to2d(h, T, E).map(softmaxRow);
    for (const [k, cf] of [[1, 1], [2, 1.25], [1, 3]]) {
      const C = Math.min(T, Math.ceil((T * k * cf) / E));
      const r = routeExpertChoice(tf.tensor2d(h, [T, E]), { capacityFactor: cf, k });
      expect(r.tokenIndices.shape).toEqual([E, C]);
      const cols = transpose(probs);
      expect(rows(r.tokenIndices)).toEqual(cols.map((c) => topk(c, C)));
      checkPicks(r.tokenIndices, T, cols); // C distinct tokens per expert, best first
      expectClose(r.weights.dataSync(), cols.flatMap((c) => topk(c, C).map((t) => c[t])));
      expectClose(r.probs.dataSync(), flat(probs));
    }
  });

  it('gradient of the weights matches finite differences', () => {
    const cols = transpose(to2d(h, T, E).map(softmaxRow));
    expect(minTopGap(cols, 3)).toBeGreaterThan(3e-3); // C = 3; a ±5e-3 logit nudge moves a prob by ≤ 1.25e-3
    checkGrad((x) => dot(routeExpertChoice(x, { capacityFactor: 1.25, k: 2 }).weights), h, [T, E]);
  });
});

// ---------- Sinkhorn ----------
/** Linear-space float64 Sinkhorn (rows → 1, columns → T/E, column step last). */
function refSinkhorn(h: M, iters = 2000): M {
  const Tn = h.length;
  const En = h[0].length;
  const K = h.map((r) => r.map(Math.exp));
  const a = new Array(Tn).fill(1);
  const b = new Array(En).fill(1);
  for (let it = 0; it < iters; it++) {
    for (let t = 0; t < Tn; t++) a[t] = 1 / sum(K[t].map((x, e) => x * b[e]));
    for (let e = 0; e < En; e++) b[e] = Tn / En / sum(K.map((r, t) => r[e] * a[t]));
  }
  return K.map((r, t) => r.map((x, e) => x * a[t] * b[e]));
}

describeBackends('sinkhorn / routeSinkhorn', () => {
  const h = randomArray(T * E, 31, 2);
  const plan = refSinkhorn(to2d(h, T, E));

  it('converges to the reference plan; rows sum to 1 and columns to T/E; a constant (no gradient)', () => {
    const P = sinkhorn(tf.tensor2d(h, [T, E]), 300, 0);
    expectClose(P.dataSync(), flat(plan), 2e-5, 1e-3);
    const defaults = sinkhorn(tf.tensor2d(h, [T, E]));
    expectRowSums(defaults, 1, 1.01e-3);
    expectRowSums(tf.transpose(defaults), T / E, 1e-4);
    const g = tf.grad((x: tf.Tensor) => dot(sinkhorn(x as tf.Tensor2D)))(tf.tensor2d(h, [T, E]));
    expect(Array.from(g.dataSync()).every((v) => v === 0)).toBe(true);
  });

  it('works in log space: huge logits stay finite; per-token and per-expert shifts do not change the plan', () => {
    const big = tf.add(tf.mul(tf.tensor2d(h, [T, E]), 40), 500) as tf.Tensor2D; // exp overflows float32
    const P = sinkhorn(big, 500, 1e-4);
    expect(Array.from(P.dataSync()).every(Number.isFinite)).toBe(true);
    expectRowSums(P, 1, 1.01e-4);
    expectRowSums(tf.transpose(P), T / E, 1e-3);
    const shift = tf.add(tf.tensor2d(h, [T, E]), tf.add(tf.tensor2d(randomArray(T, 2, 5), [T, 1]), tf.tensor2d(randomArray(E, 3, 5), [1, E])));
    expectClose(sinkhorn(shift as tf.Tensor2D, 300, 0).dataSync(), flat(plan), 1e-4, 1e-3);
  });

  it('picks the top-k of the balanced plan; weights = activation at the picks (Megatron)', () => {
    const probs = to2d(h, T, E).map(softmaxRow);
    for (const k of [1, 2, 3]) {
      const r = routeSinkhorn(tf.tensor2d(h, [T, E]), { k, tolerance: 1e-5, iterations: 200 });
      const idx = plan.map((row) => topk(row, k));
      expect(rows(r.indices)).toEqual(idx);
      checkPicks(r.indices, E, plan);
      // k = 1: sigmoid(logit); k > 1: softmax prob — neither renormalised.
      const act = k === 1 ? to2d(h, T, E).map((row) => row.map(sigmoid)) : probs;
      expectClose(r.weights.dataSync(), idx.flatMap((row, t) => row.map((i) => act[t][i])));
      expectClose(r.probs.dataSync(), flat(probs));
      const rn = routeSinkhorn(tf.tensor2d(h, [T, E]), { k, scoring: 'softmax', renormalize: true, iterations: 200 });
      expectRowSums(rn.weights, 1);
      const ev = routeSinkhorn(tf.tensor2d(h, [T, E]), { k, training: false });
      expect(rows(ev.indices)).toEqual(probs.map((row) => topk(row, k))); // eval: plain top-k
    }
  });

  it('balances a skewed router that plain top-k sends to one expert', () => {
    const Tn = 60;
    const skew = to2d(randomArray(Tn * E, 41, 1), Tn, E).map((r) => r.map((x, e) => x + (e === 0 ? 2.5 : 0)));
    const logits = tf.tensor2d(flat(skew), [Tn, E]);
    const load = (idx: tf.Tensor) => { const c = new Array(E).fill(0); for (const i of idx.dataSync()) c[i]++; return c; };
    const plain = load(routeTopK(logits, { k: 1 }).indices);
    const balanced = load(routeSinkhorn(logits, { k: 1 }).indices);
    const refLoadCounts = new Array(E).fill(0);
    for (const row of refSinkhorn(skew, 500)) refLoadCounts[topk(row, 1)[0]]++;
    expect(balanced).toEqual(refLoadCounts);
    expect(Math.max(...plain)).toBeGreaterThanOrEqual(50); // of 60 tokens, ideal 10 per expert
    expect(Math.max(...balanced)).toBeLessThanOrEqual(12); // measured [11, 8, 10, 11, 10, 10]
    expect(Math.min(...balanced)).toBeGreaterThanOrEqual(8);
  });

  it('gradients of the weights match finite differences (k = 1 sigmoid, k = 2 softmax)', () => {
    expect(minTopGap(plan, 2)).toBeGreaterThan(3e-3);
    for (const k of [1, 2]) checkGrad((x) => dot(routeSinkhorn(x, { k, iterations: 30, tolerance: 0 }).weights), h, [T, E]);
  });

  it('the host version (from the routing read) gives the reference plan and the same picks; a given selection skips the loop', () => {
    const hostPlan = Array.from(sinkhornLogHost(h, T, E, 300, 0), Math.exp);
    expectClose(hostPlan, flat(plan), 1e-6, 1e-5);
    const host = sinkhornLogHost(h, T, E, 50, 1e-3); // the defaults: stops early, rows within 1e-3
    const P = to2d(Array.from(host, Math.exp), T, E);
    for (const row of P) expect(Math.abs(sum(row) - 1)).toBeLessThanOrEqual(1.01e-3);
    for (let e = 0; e < E; e++) expect(Math.abs(sum(P.map((row) => row[e])) - T / E)).toBeLessThan(1e-9);
    for (const k of [1, 2, 3]) {
      const picks = topKRowsHost(host, T, E, k);
      expect(to2d(Array.from(picks), T, k)).toEqual(plan.map((row) => topk(row, k)));
      const given = routeSinkhorn(tf.tensor2d(h, [T, E]), { k, selected: tf.tensor2d(picks, [T, k], 'int32') });
      expect(Array.from(given.indices.dataSync())).toEqual(Array.from(picks));
    }
    expect(Array.from(topKRowsHost([1, 3, 3, 0], 1, 4, 3))).toEqual([1, 2, 0]); // ties: the lower index first
  });

  it('rejects bad arguments with the bad value', () => {
    const x = tf.zeros([T, E]) as tf.Tensor2D;
    expect(() => routeSinkhorn(x, { k: 7 })).toThrow(/got 7/);
    expect(() => sinkhorn(x, 0, 1e-3)).toThrow(/iterations .* got 0/);
    expect(() => routeSinkhorn(x, { k: 1, scoring: 'relu' as 'softmax' })).toThrow(/got 'relu'/);
  });
});

// ---------- top-k (GShard/Switch, Mixtral, DeepSeek-V3) ----------
type TopKRef = { k: number; scoring: 'softmax' | 'sigmoid'; order: 'softmax-topk' | 'topk-softmax'; renorm: boolean; bias?: number[] };
/** The three top-k forms written out per row: selection scores, picks, gate weights, and the probs the losses see. */
function refTopK(h: M, o: TopKRef) {
  const b = (e: number) => (o.bias ? o.bias[e] : 0);
  return h.map((r) => {
    if (o.scoring === 'sigmoid') { // DeepSeek-V3: s = σ(h); pick by s + b; w = s / Σ picked s
      const s = r.map(sigmoid);
      const idx = topk(s.map((x, e) => x + b(e)), o.k);
      const z = sum(idx.map((i) => s[i]));
      return { sel: s.map((x, e) => x + b(e)), idx, w: idx.map((i) => s[i] / z), probs: s.map((x) => x / sum(s)) };
    }
    const p = softmaxRow(r);
    if (o.order === 'topk-softmax') { // Mixtral: pick by logits; w = softmax over the k picked logits only
      const idx = topk(r.map((x, e) => x + b(e)), o.k);
      return { sel: r.map((x, e) => x + b(e)), idx, w: softmaxRow(idx.map((i) => r[i])), probs: p };
    }
    const idx = topk(p.map((x, e) => x + b(e)), o.k); // GShard/Switch: pick by p; w = p (renormalised over the k picks)
    const z = o.renorm ? sum(idx.map((i) => p[i])) : 1;
    return { sel: p.map((x, e) => x + b(e)), idx, w: idx.map((i) => p[i] / z), probs: p };
  });
}

describeBackends('routeTopK', () => {
  const h = separated(T, E, 71, 0.5);
  const hm = to2d(h, T, E);
  const bias = Array.from(randomArray(E, 72, 1.5));
  const cases: TopKRef[] = [];
  for (const k of [1, 2, 3]) {
    cases.push({ k, scoring: 'softmax', order: 'softmax-topk', renorm: false }, { k, scoring: 'softmax', order: 'softmax-topk', renorm: true },
      { k, scoring: 'softmax', order: 'topk-softmax', renorm: false }, { k, scoring: 'sigmoid', order: 'softmax-topk', renorm: false });
  }
  const withBias = cases.filter((c) => c.k === 2).map((c) => ({ ...c, bias }));
  const run = (c: TopKRef, x = h) => routeTopK(tf.tensor2d(x, [T, E]), {
    k: c.k, scoring: c.scoring, order: c.order, renormalize: c.renorm, bias: c.bias ? tf.tensor1d(c.bias) : undefined,
  });

  it('matches the plain-array reference in every mode: picks, weights, probs (with and without selection bias)', () => {
    for (const c of [...cases, ...withBias]) {
      const want = refTopK(hm, c);
      const r = run(c);
      const what = JSON.stringify({ ...c, bias: Boolean(c.bias) });
      expect(rows(r.indices), what).toEqual(want.map((w) => w.idx));
      checkPicks(r.indices, E, want.map((w) => w.sel));
      const named = (part: string, check: () => void) => { try { check(); } catch (e) { throw new Error(`${what} ${part}: ${(e as Error).message}`); } };
      named('weights', () => expectClose(r.weights.dataSync(), want.flatMap((w) => w.w), 1e-6, 1e-5));
      named('probs', () => expectClose(r.probs.dataSync(), want.flatMap((w) => w.probs), 1e-6, 1e-5));
      named('logits', () => expectClose(r.logits.dataSync(), h, 0, 0));
    }
  });

  it('the reference cases tell the modes apart: the bias changes picks, renormalize changes weights, the orders differ under bias', () => {
    // Without these the mode tests above could pass with one mode standing in for another.
    for (const c of withBias) expect(refTopK(hm, c).map((w) => w.idx)).not.toEqual(refTopK(hm, { ...c, bias: undefined }).map((w) => w.idx));
    const w = (c: TopKRef) => refTopK(hm, c).flatMap((x) => x.w);
    const base: TopKRef = { k: 2, scoring: 'softmax', order: 'softmax-topk', renorm: false };
    const differ = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i]))) > 1e-2;
    expect(differ(w(base), w({ ...base, renorm: true }))).toBe(true);
    // Without bias, Mixtral's softmax over the k picked logits is the renormalised softmax (same picks, same ratios);
    // with bias they differ, because the bias is added to probabilities in one order and to logits in the other.
    expect(differ(w({ ...base, renorm: true }), w({ ...base, order: 'topk-softmax' }))).toBe(false);
    const idx = (c: TopKRef) => refTopK(hm, c).map((x) => x.idx);
    expect(idx({ ...base, renorm: true, bias })).not.toEqual(idx({ ...base, order: 'topk-softmax', bias }));
    // k = 1: renormalised and Mixtral weights are exactly 1, the plain softmax weight is p < 1
    for (const c of cases.filter((x) => x.k === 1)) {
      const ones = c.renorm || c.order === 'topk-softmax' || c.scoring === 'sigmoid';
      for (const x of w(c)) expect(x === 1 || Math.abs(x - 1) < 1e-12).toBe(ones);
    }
  });

  it('gradients of the weights match finite differences (renormalised softmax, Mixtral order, sigmoid + bias)', () => {
    for (const c of [cases[5], cases[6], withBias[3]]) {
      expect(minTopGap(refTopK(hm, c).map((x) => x.sel), c.k)).toBeGreaterThan(3e-3);
      checkGrad((x) => dot(routeTopK(x, { k: c.k, scoring: c.scoring, order: c.order, renormalize: c.renorm, bias: c.bias ? tf.tensor1d(c.bias) : undefined }).weights), h, [T, E]);
    }
  });

  it('rejects a bad k or bias shape with the bad value', () => {
    const x = tf.zeros([T, E]) as tf.Tensor2D;
    expect(() => routeTopK(x, { k: 0 })).toThrow(/k must be an integer in 1\.\.6, got 0/);
    expect(() => routeTopK(x, { k: 7 })).toThrow(/got 7/);
    expect(() => routeTopK(x, { k: 2, bias: tf.zeros([5]) as tf.Tensor1D })).toThrow(/bias must have shape \[6\], got \[5\]/);
  });
});

// ---------- group-limited ----------
function refGroupLimited(h: M, o: { k: number; G: number; kg: number; scoring: 'softmax' | 'sigmoid'; bias?: number[]; groupScore: 'max' | 'top2-sum'; renorm?: boolean }) {
  const En = h[0].length;
  const n = En / o.G;
  const s = h.map((r) => (o.scoring === 'softmax' ? softmaxRow(r) : r.map(sigmoid)));
  const sel = s.map((r) => r.map((x, e) => x + (o.bias ? o.bias[e] : 0)));
  const groupScores = sel.map((r) => Array.from({ length: o.G }, (_, g) => {
    const part = r.slice(g * n, (g + 1) * n).sort((a, b) => b - a);
    return o.groupScore === 'max' ? part[0] : part[0] + part[1];
  }));
  const groups = groupScores.map((gs) => topk(gs, o.kg));
  const masked = sel.map((r, t) => r.map((x, e) => (groups[t].includes(Math.floor(e / n)) ? x : -Infinity)));
  const idx = masked.map((r) => topk(r, o.k));
  const w = idx.map((row, t) => {
    const p = row.map((i) => s[t][i]);
    const z = o.scoring === 'sigmoid' || o.renorm ? sum(p) : 1;
    return p.map((x) => x / z);
  });
  return { idx, w, groups, sel, groupScores, masked };
}

describeBackends('routeGroupLimited', () => {
  const E8 = 8;
  const h = separated(T, E8, 51, 0.6);
  const hm = to2d(h, T, E8);
  const bias = Array.from(randomArray(E8, 52, 0.3));
  const cases = [
    { k: 3, G: 4, kg: 2, scoring: 'softmax', groupScore: 'max' },
    { k: 2, G: 4, kg: 1, scoring: 'softmax', groupScore: 'max', renorm: true },
    { k: 4, G: 4, kg: 2, scoring: 'sigmoid', bias, groupScore: 'top2-sum' },
    { k: 3, G: 2, kg: 1, scoring: 'sigmoid', groupScore: 'top2-sum' },
  ] as const;

  it('matches the DeepSeek-V3 reference semantics; picks lie in the kept groups', () => {
    for (const c of cases) {
      const want = refGroupLimited(hm, c);
      const r = routeGroupLimited(tf.tensor2d(h, [T, E8]), {
        k: c.k, numGroups: c.G, topkGroups: c.kg, scoring: c.scoring, groupScore: c.groupScore,
        bias: 'bias' in c ? tf.tensor1d(c.bias) : undefined, renormalize: 'renorm' in c ? c.renorm : false,
      });
      expect(rows(r.indices)).toEqual(want.idx);
      checkPicks(r.indices, E8, want.sel);
      expectClose(r.weights.dataSync(), flat(want.w));
      if (c.scoring === 'sigmoid' || 'renorm' in c) expectRowSums(r.weights, 1);
      const n = E8 / c.G;
      for (const [t, row] of rows(r.indices).entries()) {
        for (const i of row) expect(want.groups[t]).toContain(Math.floor(i / n));
        expect(new Set(row.map((i) => Math.floor(i / n))).size).toBeLessThanOrEqual(c.kg);
      }
    }
  });

  it('defaults the group score to max without bias and top-2 sum with bias; keeping every group is routeTopK', () => {
    const x = tf.tensor2d(h, [T, E8]);
    const b = tf.tensor1d(bias);
    const dflt = routeGroupLimited(x, { k: 3, numGroups: 4, topkGroups: 2, scoring: 'sigmoid', bias: b });
    expect(rows(dflt.indices)).toEqual(refGroupLimited(hm, { k: 3, G: 4, kg: 2, scoring: 'sigmoid', bias, groupScore: 'top2-sum' }).idx);
    const noBias = routeGroupLimited(x, { k: 3, numGroups: 4, topkGroups: 2 });
    expect(rows(noBias.indices)).toEqual(refGroupLimited(hm, { k: 3, G: 4, kg: 2, scoring: 'softmax', groupScore: 'max' }).idx);
    for (const scoring of ['softmax', 'sigmoid'] as const) {
      const all = routeGroupLimited(x, { k: 3, numGroups: 4, topkGroups: 4, scoring, bias: b });
      const plain = routeTopK(x, { k: 3, scoring, bias: b });
      expect(rows(all.indices)).toEqual(rows(plain.indices));
      expectClose(all.weights.dataSync(), plain.weights.dataSync());
      expectClose(all.probs.dataSync(), plain.probs.dataSync());
    }
  });

  it('gradients of the weights match finite differences', () => {
    for (const c of [cases[0], cases[2]]) {
      const want = refGroupLimited(hm, c);
      // a ±5e-3 logit nudge moves a score by ≤ 1.25e-3: group ranks and picks must have wider gaps
      expect(minTopGap(want.groupScores, c.kg)).toBeGreaterThan(6e-3);
      expect(minTopGap(want.masked, c.k)).toBeGreaterThan(3e-3);
      checkGrad((x) => dot(routeGroupLimited(x, {
        k: c.k, numGroups: c.G, topkGroups: c.kg, scoring: c.scoring, groupScore: c.groupScore,
        bias: 'bias' in c ? tf.tensor1d(c.bias) : undefined,
      }).weights), h, [T, E8]);
    }
  });

  it('rejects bad arguments with the bad value', () => {
    const x = tf.zeros([T, E8]) as tf.Tensor2D;
    expect(() => routeGroupLimited(x, { k: 2, numGroups: 3, topkGroups: 1 })).toThrow(/dividing E=8, got 3/);
    expect(() => routeGroupLimited(x, { k: 2, numGroups: 4, topkGroups: 5 })).toThrow(/1\.\.4, got 5/);
    expect(() => routeGroupLimited(x, { k: 5, numGroups: 4, topkGroups: 2 })).toThrow(/k=5 exceeds the 4 experts/);
    expect(() => routeGroupLimited(x, { k: 2, numGroups: 8, topkGroups: 2, groupScore: 'top2-sum' })).toThrow(/≥ 2 experts per group, got 1/);
    expect(() => routeGroupLimited(x, { k: 2, numGroups: 4, topkGroups: 2, bias: tf.zeros([6]) as tf.Tensor1D })).toThrow(/\[8\], got \[6\]/);
  });
});

describeBackends('routers leak no tensors', () => {
  it('every router and helper frees its intermediates', () => {
    const x = tf.tensor2d(randomArray(T * E, 61, 2), [T, E]);
    const g = gumbelNoise([T, E], new Rng(1));
    const ones = tf.onesLike(x) as tf.Tensor2D;
    const before = tf.memory().numTensors;
    const outs = [
      routeNoisyTopK(x, x, { k: 2, noise: g, training: true, batchNorm: true }),
      routeGumbel(x, { k: 2, tau: 1, gumbel: g, hard: true }),
      routeExpertChoice(x, { capacityFactor: 1 }),
      routeSinkhorn(x, { k: 2 }),
      routeGroupLimited(x, { k: 2, numGroups: 3, topkGroups: 2, scoring: 'sigmoid', groupScore: 'top2-sum' }),
    ];
    const made = new Set<tf.Tensor>([noisyTopKLoad(x, x, ones, 2), sinkhorn(x)]);
    for (const o of outs) for (const v of Object.values(o)) if (v instanceof tf.Tensor && v !== x) made.add(v);
    expect(tf.memory().numTensors - before).toBe(made.size);
  });
});
