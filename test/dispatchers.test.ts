/**
 * The row kernels, permute / unpermute and the three dispatchers: against plain-array references,
 * finite differences, and each other (same y and gradients from gather, onehot and padded).
 */
import * as tf from '@tensorflow/tfjs';
import { it, expect, describe } from 'vitest';
import { moeExperts, paddedRows, resolveDispatcher, type Dispatcher } from '../src/moe/dispatch/index.ts';
import { planTokenChoice } from '../src/moe/plan.ts';
import { createExperts } from '../src/moe/experts.ts';
import { localExperts, type ExpertExecutor } from '../src/moe/executors.ts';
import { MoELayer, type MoEConfig } from '../src/moe/layer.ts';
import { gatherRowsScaled, permute, rowDot, rowMaps, sumRows, unpermute } from '../src/moe/dispatch/permute.ts';
import { Rng } from '../src/rng.ts';
import { describeBackends, expectClose, finiteDiff, randomArray } from './helpers.ts';

describeBackends('row kernels', () => {
  it('gather with scale, sum over slots, row dot: plain-array references, −1 entries skipped', () => {
    const R = 4, D = 3;
    const x = randomArray(R * D, 11);
    const rows = [2, -1, 0, 2, 3];
    const scale = [1, 5, -2, 0.5, 3];
    const got = gatherRowsScaled(tf.tensor2d(x, [R, D]), tf.tensor1d(rows, 'int32'), tf.tensor1d(scale)).dataSync();
    const ref = rows.flatMap((r, n) => (r < 0 ? [0, 0, 0] : [0, 1, 2].map((d) => scale[n] * x[r * D + d])));
    expectClose(got, ref);
    const slots = [[0, 3], [-1, 1], [4, -1]]; // T = 3 tokens, S = 2 slots
    const w = [[1, 2], [3, 4], [5, 6]];
    const ys = randomArray(5 * D, 12);
    const sum = sumRows(tf.tensor2d(ys, [5, D]), tf.tensor2d(slots, [3, 2], 'int32'), tf.tensor2d(w)).dataSync();
    const sref = slots.flatMap((sl, t) => [0, 1, 2].map((d) => sl.reduce((acc, r, s) => acc + (r < 0 ? 0 : w[t][s] * ys[r * D + d]), 0)));
    expectClose(sum, sref);
    const a = randomArray(3 * D, 13);
    const dot = rowDot(tf.tensor2d(a, [3, D]), tf.tensor2d(ys, [5, D]), tf.tensor2d(slots, [3, 2], 'int32')).dataSync();
    const dref = slots.flatMap((sl, t) => sl.map((r) => (r < 0 ? 0 : [0, 1, 2].reduce((acc, d) => acc + a[t * D + d] * ys[r * D + d], 0))));
    expectClose(dot, dref);
  });

  it('rejects an out-of-range row naming it', () => {
    expect(() => gatherRowsScaled(tf.ones([2, 4]) as tf.Tensor2D, tf.tensor1d([0, 2], 'int32'))).toThrow(/row 2/);
  });
});

/** A small token-choice plan: T=5, k=2, E=3, with one dropped assignment. */
function smallPlan(padTo?: number) {
  const indices = Int32Array.from([0, 1, 2, 0, 1, 2, 0, 2, 1, 0]);
  const keep = Uint8Array.from([1, 1, 1, 1, 1, 0, 1, 1, 1, 1]);
  return planTokenChoice(indices, keep, 5, 2, 3, padTo);
}

describeBackends('permute / unpermute', () => {
  it('permute then unpermute with weights equals Σ_j w · x (plain arrays), gradients match finite differences', () => {
    const plan = smallPlan(4);
    const maps = rowMaps(plan, 2);
    const D = 3;
    const x0 = randomArray(5 * D, 21);
    const w0 = randomArray(10, 22, 1);
    const f = (x: tf.Tensor, w: tf.Tensor) => unpermute(tf.mul(permute(x as tf.Tensor2D, maps), 1.5) as tf.Tensor2D, w, maps);
    const y = f(tf.tensor2d(x0, [5, D]), tf.tensor2d(w0, [5, 2])).dataSync();
    const keep = [1, 1, 1, 1, 1, 0, 1, 1, 1, 1];
    const ref = Array.from({ length: 5 * D }, (_, i) => { const t = Math.floor(i / D); return 1.5 * x0[i] * (w0[2 * t] * keep[2 * t] + w0[2 * t + 1] * keep[2 * t + 1]); });
    expectClose(y, ref);
    const c = tf.tensor2d(randomArray(5 * D, 23), [5, D]);
    const loss = (x: tf.Tensor, w: tf.Tensor) => tf.sum(tf.mul(tf.square(f(x, w)), c)) as tf.Scalar;
    const [gx, gw] = tf.grads(loss)([tf.tensor2d(x0, [5, D]), tf.tensor2d(w0, [5, 2])]);
    expectClose(gx.dataSync(), Array.from(finiteDiff((v) => loss(tf.tensor2d(v, [5, D]), tf.tensor2d(w0, [5, 2])).dataSync()[0], x0.slice())), 3e-3, 3e-3);
    expectClose(gw.dataSync(), Array.from(finiteDiff((v) => loss(tf.tensor2d(x0, [5, D]), tf.tensor2d(v, [5, 2])).dataSync()[0], w0.slice())), 3e-3, 3e-3);
  });
});

describeBackends('dispatchers agree', () => {
  it('gather, onehot and padded give the same y and the same gradients (drops and padding included)', () => {
    const rng = new Rng(5);
    const D = 4, H = 6;
    for (const activation of ['relu', 'swiglu'] as const) {
      const experts = createExperts(rng, 3, D, H, activation);
      const x = tf.tensor2d(randomArray(5 * D, 31), [5, D]);
      const w = tf.tensor2d(randomArray(10, 32, 1), [5, 2]);
      const run = (d: Dispatcher) => {
        const plan = smallPlan(d === 'gather' ? undefined : 4);
        const vars = [experts.w1, experts.w2, ...(experts.w3 ? [experts.w3] : [])];
        const f = () => tf.sum(tf.square(moeExperts(d, x, w, plan, 2, experts, activation))) as tf.Scalar;
        const { value, grads } = tf.variableGrads(f, vars);
        const gxw = tf.grads((xx: tf.Tensor, ww: tf.Tensor) => tf.sum(tf.square(moeExperts(d, xx as tf.Tensor2D, ww, plan, 2, experts, activation))) as tf.Scalar)([x, w]);
        return [value.dataSync()[0], ...vars.map((v) => Array.from(grads[v.name].dataSync())), ...gxw.map((g) => Array.from(g.dataSync()))];
      };
      const ref = run('gather');
      for (const d of ['onehot', 'padded'] as const) {
        const got = run(d);
        expectClose([got[0] as number], [ref[0] as number], 1e-5, 1e-4);
        for (let i = 1; i < ref.length; i++) expectClose(got[i] as number[], ref[i] as number[], 1e-5, 1e-4);
      }
      tf.dispose([experts.w1, experts.w2, ...(experts.w3 ? [experts.w3] : [])]);
    }
  });

  it('MoELayer: readRouting + hostRouting gives the sync path\'s output and stats', async () => {
    const cfg: MoEConfig = { dim: 8, hidden: 8, numExperts: 4, topK: 2, activation: 'relu', router: { type: 'topk' }, capacityFactor: 1, capacityPolicy: 'drop-probability', sharedExperts: 0, auxLosses: ['switch'], dispatcher: 'padded' };
    const layer = new MoELayer(cfg, new Rng(3));
    const x = tf.tensor2d(randomArray(12 * 8, 41), [12, 8]);
    const sync = layer.forward(x, { training: true });
    const hostRouting = await layer.readRouting(x, { training: true });
    const viaHost = layer.forward(x, { training: true, hostRouting });
    expectClose(viaHost.y.dataSync(), sync.y.dataSync());
    expect(Array.from(viaHost.stats.load)).toEqual(Array.from(sync.stats.load));
    expect(Array.from(viaHost.stats.routed)).toEqual(Array.from(sync.stats.routed));
    layer.dispose();
  });

  it('MoELayer: an executor set from outside runs the experts; padded blocks where it has them, gather rows where not', () => {
    const cfg: MoEConfig = { dim: 8, hidden: 8, numExperts: 4, topK: 2, activation: 'relu', router: { type: 'topk' }, capacityFactor: null, capacityPolicy: 'dropless', sharedExperts: 0, auxLosses: [], dispatcher: 'padded' };
    const layer = new MoELayer(cfg, new Rng(5));
    const x = tf.tensor2d(randomArray(10 * 8, 42), [10, 8]);
    const ref = layer.forward(x, { training: false }).y.dataSync(); // local experts, padded dispatcher
    const local = localExperts(layer.experts, 'relu');
    const calls = { run: 0, blocks: 0 };
    const both: ExpertExecutor = { run: (xs, plan) => { calls.run++; return local.run(xs, plan); }, blocks: (xp) => { calls.blocks++; return local.blocks!(xp); } };
    layer.executor = both;
    expectClose(layer.forward(x, { training: false }).y.dataSync(), ref, 1e-6, 1e-5);
    expect(calls).toEqual({ run: 0, blocks: 1 });
    layer.executor = { run: both.run }; // rows only (as recompute and expert parallelism): the layer falls back to gather
    expectClose(layer.forward(x, { training: false }).y.dataSync(), ref, 1e-5, 1e-4);
    expect(calls).toEqual({ run: 1, blocks: 1 });
    layer.dispose();
  });
});

describe('dispatcher choice', () => {
  it('auto is padded on webgpu and gather elsewhere; expert choice and executors force gather', () => {
    expect(resolveDispatcher('auto', 'webgpu', true, false)).toBe('padded');
    expect(resolveDispatcher(undefined, 'wasm', true, false)).toBe('gather');
    expect(resolveDispatcher('onehot', 'wasm', true, false)).toBe('onehot');
    expect(resolveDispatcher('padded', 'webgpu', false, false)).toBe('gather');
    expect(resolveDispatcher('padded', 'wasm', true, true)).toBe('gather');
    expect(() => resolveDispatcher('scatter' as Dispatcher, 'wasm', true, false)).toThrow(/'scatter'/);
  });

  it('padded rows: the capacity when fixed, else the largest load rounded up to 4', () => {
    expect(paddedRows([3, 9, 1], null)).toBe(12);
    expect(paddedRows([3, 8, 1], null)).toBe(8);
    expect(paddedRows([3, 9, 1], 10)).toBe(10);
    // above 32 rows: eight size classes per doubling (steps of 2^(⌊log2 n⌋ − 3)), so few distinct buffer sizes
    expect(paddedRows([33], null)).toBe(36); // ⌊log2 33⌋ = 5: steps of 4
    expect(paddedRows([100, 7], null)).toBe(104); // ⌊log2 100⌋ = 6: steps of 8
    expect(paddedRows([1000], null)).toBe(1024); // steps of 64
    expect(paddedRows([1025], null)).toBe(1152); // steps of 128
    const classes = new Set(Array.from({ length: 4000 }, (_, i) => paddedRows([i + 1], null)));
    expect(classes.size).toBeLessThan(80); // vs 1000 multiples of 4
    for (let n = 1; n <= 4000; n++) { const r = paddedRows([n], null); expect(r >= n && r <= Math.max(n + 3, n * 1.125)).toBe(true); }
  });
});

describeBackends('dispatcher as a config field', () => {
  it('reaches every MoE layer of a model built from the config', async () => {
    const { parseConfig } = await import('../src/config/load.ts');
    const { MoEModel } = await import('../src/model/model.ts');
    for (const d of ['auto', 'gather', 'padded', 'onehot'] as const) {
      const model = new MoEModel(parseConfig({ dispatcher: d, layers: 2, dim: 16, heads: 2, expert_hidden: 8 }), 256, new Rng(1));
      expect(model.moeLayers.map((l) => l.config.dispatcher)).toEqual([d, d]);
      model.dispose();
    }
  });
});
