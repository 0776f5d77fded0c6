/**
 * Optimisation building blocks: AdamW against a plain-JS float64 AdamW written here, the decay mask, exact
 * state round trip; the LR schedule at hand-computed steps; global-norm clipping against hand-computed norms.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, it, expect } from 'vitest';
import { AdamW, defaultDecay } from '../src/optim/adamw.ts';
import { learningRate, type ScheduleConfig } from '../src/optim/schedule.ts';
import { clipByGlobalNorm } from '../src/optim/clip.ts';
import { describeBackends, expectClose, randomArray } from './helpers.ts';

let uid = 0;
/** Fresh variable names per test: tfjs variable names are global to the process. */
const fresh = (base: string): string => `${base}_${uid++}`;
/** A trainable variable; tidy frees the initial tensor (the variable keeps its data). */
const mkVar = (vals: ArrayLike<number>, shape: number[], name: string): tf.Variable =>
  tf.tidy(() => tf.variable(tf.tensor(Array.from(vals), shape), true, name));

interface RefParam { theta: number[]; m: number[]; v: number[]; decay: boolean }

/** Reference AdamW step (PyTorch order, float64): decay θ by lr·λ, then the bias-corrected Adam step. */
function refStep(ps: RefParam[], grads: number[][], lr: number, t: number, o: { b1: number; b2: number; eps: number; wd: number }): void {
  ps.forEach((p, j) => {
    for (let i = 0; i < p.theta.length; i++) {
      const g = grads[j][i];
      if (p.decay) p.theta[i] *= 1 - lr * o.wd;
      p.m[i] = o.b1 * p.m[i] + (1 - o.b1) * g;
      p.v[i] = o.b2 * p.v[i] + (1 - o.b2) * g * g;
      const mh = p.m[i] / (1 - o.b1 ** t);
      const vh = p.v[i] / (1 - o.b2 ** t);
      p.theta[i] -= (lr * mh) / (Math.sqrt(vh) + o.eps);
    }
  });
}

describeBackends('AdamW', () => {
  it('matches a plain-JS AdamW over 5 steps (decay on the matrix only)', async () => {
    const shapes: [string, number[]][] = [[fresh('layer0/w'), [2, 3]], [fresh('layer0/bias'), [3]], [fresh('norm/gain'), [4]]];
    const vars = shapes.map(([n, s], j) => mkVar(randomArray(s.reduce((a, b) => a * b, 1), 10 + j), s, n));
    const o = { b1: 0.9, b2: 0.95, eps: 1e-8, wd: 0.1 };
    const opt = new AdamW(vars, { beta1: o.b1, beta2: o.b2, eps: o.eps, weightDecay: o.wd });
    expect(vars.map((v) => opt.decays(v.name))).toEqual([true, false, false]);
    const ref: RefParam[] = vars.map((v, j) => ({ theta: Array.from(v.dataSync()), m: Array(v.size).fill(0), v: Array(v.size).fill(0), decay: j === 0 }));
    const lrs = [1e-2, 2e-2, 3e-2, 1e-2, 5e-3];
    for (let t = 1; t <= 5; t++) {
      const g = vars.map((v, j) => Array.from(randomArray(v.size, 100 * t + j, j === 2 ? 1e-3 : 2)));
      const grads = Object.fromEntries(vars.map((v, j) => [v.name, tf.tensor(g[j], v.shape)]));
      opt.step(grads, lrs[t - 1]);
      tf.dispose(Object.values(grads));
      refStep(ref, g, lrs[t - 1], t, o);
    }
    expect(opt.stepCount).toBe(5);
    vars.forEach((v, j) => expectClose(v.dataSync(), ref[j].theta, 1e-6, 1e-5));
    const st = await opt.getState();
    vars.forEach((v, j) => {
      expectClose(st.m[v.name], ref[j].m, 1e-7, 1e-5);
      expectClose(st.v[v.name], ref[j].v, 1e-9, 1e-5);
    });
    opt.dispose();
    tf.dispose(vars);
  });

  it('decays θ by (1 − lr·λ) under zero gradients only where the mask says so; custom masks', () => {
    const a = mkVar([1, -2, 3, 4], [2, 2], fresh('router/gate'));
    const b = mkVar([1, -2, 3, 4], [2, 2], fresh('expert/w1'));
    const opt = new AdamW([a, b], { weightDecay: 0.5, decay: (name) => !name.includes('gate') });
    expect([opt.decays(a.name), opt.decays(b.name)]).toEqual([false, true]);
    const z = tf.zeros([2, 2]);
    opt.step({ [a.name]: z, [b.name]: z }, 0.1); // m = v = 0: the Adam term is 0
    z.dispose();
    expectClose(a.dataSync(), [1, -2, 3, 4], 0, 0);
    expectClose(b.dataSync(), [0.95, -1.9, 2.85, 3.8], 1e-7, 1e-6); // θ·(1 − 0.1·0.5)
    expect(defaultDecay('blocks.0.attn.wq', [8, 8])).toBe(true);
    expect(defaultDecay('blocks.0.norm1.gain', [8])).toBe(false);
    expect(defaultDecay('head.bias', [8, 1])).toBe(false);
    opt.dispose();
    tf.dispose([a, b]);
  });

  it('leaves params without a gradient alone; rejects unknown names, wrong shapes, bad lr; leaks nothing', () => {
    const before = tf.memory().numTensors;
    const a = mkVar([1, 2], [2], fresh('a'));
    const b = mkVar([3, 4], [2], fresh('b'));
    const opt = new AdamW([a, b]);
    const g = tf.tensor1d([1, 1]);
    opt.step({ [a.name]: g }, 0.1);
    expectClose(b.dataSync(), [3, 4], 0, 0);
    expectClose(a.dataSync(), [0.9, 1.9], 1e-6, 1e-6); // first step: m̂/√v̂ = sign(g); vectors do not decay
    expect(() => opt.step({ nope: g }, 0.1)).toThrow(/unknown param nope/);
    const wrong = tf.zeros([3]);
    expect(() => opt.step({ [a.name]: wrong }, 0.1)).toThrow(/shape \[3\], param has \[2\]/);
    expect(() => opt.step({}, -1)).toThrow(/lr must be.*got -1/);
    expect(() => new AdamW([a, b], { beta2: 1 })).toThrow(/beta2 must be in \[0, 1\), got 1/);
    opt.dispose();
    tf.dispose([a, b, g, wrong]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('getState → fresh optimizer + setState gives a bitwise-identical next step', async () => {
    const names = [fresh('emb'), fresh('w')];
    const shapes = [[5, 3], [3, 3]];
    const make = (vals: Float32Array[]) => names.map((n, j) => mkVar(vals[j], shapes[j], n));
    const gradsAt = (t: number) => Object.fromEntries(names.map((n, j) => [n, tf.tensor(randomArray(shapes[j][0] * shapes[j][1], 7 * t + j), shapes[j])]));
    const run = (opt: AdamW, t: number) => { const g = gradsAt(t); opt.step(g, 0.01 * t); tf.dispose(Object.values(g)); };

    let vars = make(names.map((_, j) => randomArray(shapes[j][0] * shapes[j][1], 50 + j)));
    let opt = new AdamW(vars, { weightDecay: 0.1 });
    for (let t = 1; t <= 3; t++) run(opt, t);
    const saved = { params: vars.map((v) => (v.dataSync() as Float32Array).slice()), state: await opt.getState() };
    run(opt, 4);
    const straight = vars.map((v) => (v.dataSync() as Float32Array).slice());
    opt.dispose();
    tf.dispose(vars);

    vars = make(saved.params); // same names: the disposed variables freed them
    opt = new AdamW(vars, { weightDecay: 0.1 });
    opt.setState(saved.state);
    expect(opt.stepCount).toBe(3);
    run(opt, 4);
    vars.forEach((v, j) => expect(Array.from(v.dataSync())).toEqual(Array.from(straight[j])));
    expect(() => opt.setState({ ...saved.state, m: { [names[0]]: saved.state.m[names[0]] } })).toThrow(/missing: \[.*w_/);
    opt.dispose();
    tf.dispose(vars);
  });
});

describeBackends('clipByGlobalNorm', () => {
  it('norm √(Σ‖g‖²) and scale min(1, maxNorm/(norm + 1e-6)) on hand-computed values', () => {
    const grads = { a: tf.tensor1d([3, 4]), b: tf.tensor2d([[12]]) }; // √(9 + 16 + 144) = 13
    const r = clipByGlobalNorm(grads, 6.5);
    expect(r.norm).toBeCloseTo(13, 5);
    expect(r.finite).toBe(true);
    const s = 6.5 / (13 + 1e-6);
    expect(r.scale).toBeCloseTo(s, 7);
    expectClose(r.grads.a.dataSync(), [3 * s, 4 * s], 1e-6, 1e-6);
    expectClose(r.grads.b.dataSync(), [12 * s], 1e-6, 1e-6);
    for (const maxNorm of [100, null]) {
      const u = clipByGlobalNorm(grads, maxNorm);
      expect(u.scale).toBe(1);
      expectClose(u.grads.a.dataSync(), [3, 4], 0, 0);
      tf.dispose(Object.values(u.grads));
    }
    tf.dispose([...Object.values(r.grads), ...Object.values(grads)]);
  });

  it('matches a JS norm on random grads; all-zero grads give 0; huge finite grads stay finite', () => {
    const xs = [randomArray(37, 1, 3), randomArray(64, 2, 0.01), randomArray(5, 3, 100)];
    const want = Math.sqrt(xs.reduce((s, x) => s + x.reduce((t, v) => t + v * v, 0), 0));
    const grads = Object.fromEntries(xs.map((x, i) => [`g${i}`, tf.tensor1d(x)]));
    const r = clipByGlobalNorm(grads, null);
    expect(Math.abs(r.norm - want) / want).toBeLessThan(1e-6);
    const z = clipByGlobalNorm({ z: tf.zeros([3]) }, 1);
    expect([z.norm, z.finite, z.scale]).toEqual([0, true, 1]);
    const big = clipByGlobalNorm({ h: tf.tensor1d([3e20, -4e20]) }, 1); // squares overflow float32
    expect(big.finite).toBe(true);
    expect(Math.abs(big.norm - 5e20) / 5e20).toBeLessThan(1e-6);
    expectClose(big.grads.h.dataSync(), [0.6, -0.8], 1e-6, 1e-5);
    tf.dispose([...Object.values(grads), ...Object.values(r.grads), ...Object.values(z.grads), ...Object.values(big.grads)]);
  });

  it('flags NaN and Inf gradients as non-finite and does not scale them', () => {
    const n = clipByGlobalNorm({ a: tf.tensor1d([1, 2]), b: tf.tensor1d([NaN, 0]) }, 1);
    expect(n.finite).toBe(false);
    expect(n.norm).toBeNaN();
    expect(n.scale).toBe(1);
    const i = clipByGlobalNorm({ a: tf.tensor1d([1, -Infinity]) }, 1);
    expect(i.finite).toBe(false);
    expect(i.norm).toBe(Infinity);
    expect(() => clipByGlobalNorm({}, 0)).toThrow(/maxNorm.*got 0/);
  });
});

describe('learningRate', () => {
  const cfg = (schedule: ScheduleConfig['schedule']): ScheduleConfig => ({ lr: 1e-3, warmupSteps: 10, steps: 110, schedule, minLrRatio: 0.1 });
  it('schedule: warmup lr·(s+1)/W, cosine midpoint (lr + lr_min)/2, end lr_min; linear; constant', () => {
    const c = cfg('cosine');
    expect(learningRate(0, c)).toBeCloseTo(1e-4, 15);
    expect(learningRate(4, c)).toBeCloseTo(5e-4, 15);
    expect(learningRate(9, c)).toBeCloseTo(1e-3, 15);
    expect(learningRate(10, c)).toBeCloseTo(1e-3, 15);
    expect(learningRate(60, c)).toBeCloseTo(5.5e-4, 15); // p = ½
    expect(learningRate(35, c)).toBeCloseTo(1e-4 + 9e-4 * 0.5 * (1 + Math.SQRT1_2), 15); // p = ¼: cos(π/4)
    expect(learningRate(110, c)).toBeCloseTo(1e-4, 15);
    expect(learningRate(500, c)).toBeCloseTo(1e-4, 15);
    const l = cfg('linear');
    expect(learningRate(35, l)).toBeCloseTo(1e-3 - 9e-4 * 0.25, 15);
    expect(learningRate(110, l)).toBeCloseTo(1e-4, 15);
    expect(learningRate(0, cfg('constant'))).toBeCloseTo(1e-4, 15);
    expect(learningRate(100, cfg('constant'))).toBe(1e-3);
    expect(learningRate(0, { ...c, warmupSteps: 0 })).toBe(1e-3);
    expect(learningRate(12, { ...c, steps: 5 })).toBe(1e-3); // steps ≤ warmup: nothing to decay over
    expect(() => learningRate(-1, c)).toThrow(/step.*got -1/);
    expect(() => learningRate(0, { ...c, minLrRatio: 2 })).toThrow(/minLrRatio.*got 2/);
    expect(() => learningRate(0, { ...c, schedule: 'step' as 'linear' })).toThrow(/"step"/);
  });
});

describeBackends('AdamW masks', () => {
  it('a zero mask row holds that slice of the weights and both moments; a one row updates as usual', async () => {
    const p = tf.variable(tf.tensor3d([1, 2, 3, 4], [2, 2, 1]));
    const q = tf.variable(tf.tensor3d([1, 2, 3, 4], [2, 2, 1]));
    const masked = new AdamW([p], { weightDecay: 0.1 });
    const plain = new AdamW([q], { weightDecay: 0.1 });
    const g = tf.tensor3d([0.5, -0.5, 1, 2], [2, 2, 1]);
    const mask = tf.tensor3d([0, 1], [2, 1, 1]); // expert 0 frozen
    masked.step({ [p.name]: g }, 0.1, { [p.name]: mask });
    plain.step({ [q.name]: g }, 0.1);
    const pv = Array.from(p.dataSync()), qv = Array.from(q.dataSync());
    expect(pv.slice(0, 2)).toEqual([1, 2]); // frozen: untouched, no decay
    expect(pv.slice(2)).toEqual(qv.slice(2)); // active rows: exactly the plain update
    const st = await masked.getState();
    expect(Array.from(st.m[p.name].slice(0, 2))).toEqual([0, 0]);
    expect(Array.from(st.v[p.name].slice(0, 2))).toEqual([0, 0]);
  });
});
