/**
 * The balancing features that change expert gradients or weights — grad_reweight, sparse accumulation,
 * dead-expert revival by copy_hot — and recompute, under expert parallelism: ep_size 2 trains to the same
 * losses, loads and weights as ep_size 1 (same tolerances as parallel_train.test.ts), and the worker's
 * recompute keeps only the input rows yet gives the same gradients.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { parseConfig, type Config } from '../src/config/load.ts';
import { initBackend } from '../src/backend.ts';
import { readSafetensorsFile } from '../src/io/safetensors.ts';
import { readMetrics, type MetricRecord } from '../src/metrics/jsonl.ts';
import { ExpertStore } from '../src/parallel/expert_store.ts';
import { ExpertParallel } from '../src/parallel/expert_parallel.ts';
import type { Placement } from '../src/parallel/placement.ts';
import { planTokenChoice } from '../src/moe/plan.ts';
import { createExperts, runExperts, type ExpertWeights } from '../src/moe/experts.ts';
import { Rng } from '../src/rng.ts';
import { startExpertParallel } from '../src/train/parallel_bridge.ts';
import { train } from '../src/train/run.ts';
import { Trainer } from '../src/train/step.ts';
import { createDataSource } from '../src/train/data_source.ts';
import { expectClose, randomArray } from './helpers.ts';

const STEPS = 6;

const cfg = (over: Record<string, unknown>, parallel: Record<string, unknown>): Config => parseConfig({
  layers: 1, dim: 16, heads: 2, expert_num: 4, top_k: 2, expert_hidden: 16, seq_len: 8, batch_size: 2,
  steps: STEPS, eval_every: 0, log_every: 1, checkpoint_every: STEPS, warmup_steps: 0, lr: 1e-2, grad_clip: 0.5,
  aux_loss: { type: 'switch', weight: 0.01 }, data: { source: 'nlp-corpus', max_chars: 20_000 }, backend: 'cpu', parallel, ...over,
});

async function run(over: Record<string, unknown>, parallel: Record<string, unknown>) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-epf-'));
  await train(cfg(over, parallel), { outDir: dir });
  const recs = readMetrics(path.join(dir, 'metrics.jsonl'));
  const weights = readSafetensorsFile(path.join(dir, 'checkpoints', `step-${String(STEPS).padStart(8, '0')}`, 'model.safetensors')).tensors;
  fs.rmSync(dir, { recursive: true, force: true });
  return { recs, weights };
}

/** The controllers' host numbers of a metrics record (scales, importance, frozen and revived experts). */
function controllerNumbers(r: MetricRecord): { exact: unknown[]; close: number[] } {
  const x = r as unknown as Record<string, unknown>;
  const close = [x.grad_scale, x.expert_importance].flat(2).filter((v) => v !== undefined) as number[];
  return { exact: [x.sparse_frozen, x.dead_experts, x.revived, x.revived_total], close };
}

/** `parallel` (default ep_size 2) against ep_size 1 on the same config: losses, loads, controller numbers and every weight; returns ep 1's records. */
async function expectSameAsEp1(over: Record<string, unknown>, parallel: Record<string, unknown> = { ep_size: 2 }): Promise<MetricRecord[]> {
  const one = await run(over, { ep_size: 1 });
  const two = await run(over, parallel);
  expect(two.recs).toHaveLength(STEPS);
  expectClose(two.recs.map((r) => r.loss ?? NaN), one.recs.map((r) => r.loss ?? NaN), 1e-4, 1e-4);
  expect(two.recs.map((r) => r.expert_load)).toEqual(one.recs.map((r) => r.expert_load));
  two.recs.forEach((r, i) => {
    const [a, b] = [controllerNumbers(r), controllerNumbers(one.recs[i])];
    expect(a.exact).toEqual(b.exact);
    expectClose(a.close, b.close, 1e-6, 1e-3);
  });
  for (const [name, t] of Object.entries(one.weights)) expectClose(two.weights[name].data as Float32Array, t.data as Float32Array, 1e-4, 1e-3);
  return one.recs;
}

describe('balancing features under expert parallelism', () => {
  it('the trainer no longer refuses them at ep_size 2', async () => {
    await initBackend('cpu', { quiet: true });
    const c = cfg({ recompute: true, grad_accum_steps: 2, balance: { grad_reweight: { enabled: true }, sparse_accumulation: { enabled: true }, dead_expert: { revive: 'copy_hot' } } }, { ep_size: 2 });
    const t = new Trainer(c, { data: createDataSource(c, fs.mkdtempSync(path.join(os.tmpdir(), 'sy-epf-'))) });
    t.dispose();
  });

  // the project checks numbers on both CPU backends: the runs alternate between cpu and wasm (main thread and workers)
  for (const [mode, backend] of [['inverse_norm', 'wasm'], ['importance', 'cpu'], ['utilization', 'cpu']]) {
    it(`grad_reweight (${mode}, ${backend}): ep_size 2 equals ep_size 1`, async () => {
      const recs = await expectSameAsEp1({ backend, balance: { grad_reweight: { enabled: true, mode, low: 0.3, high: 0.6 } } });
      // the scales did something: some expert's scale differs from 1
      expect(recs.some((r) => ((r as unknown as Record<string, unknown>).grad_scale as number[][]).flat().some((s) => Math.abs(s - 1) > 1e-3))).toBe(true);
    }, 120_000);
  }

  it('sparse accumulation (wasm): ep_size 2 equals ep_size 1, frozen experts held', async () => {
    const recs = await expectSameAsEp1({ backend: 'wasm', grad_accum_steps: 3, top_k: 1, batch_size: 1, seq_len: 4, balance: { sparse_accumulation: { enabled: true, min_active_share: 0.6 } } });
    const frozen = recs.map((r) => ((r as unknown as Record<string, unknown>).sparse_frozen as number[][]).flat().length);
    expect(frozen.some((n) => n > 0)).toBe(true); // some steps freeze experts …
    expect(frozen.some((n) => n < 4)).toBe(true); // … and some update others
  }, 120_000);

  it('dead-expert revival by copy_hot (cpu): ep_size 2 equals ep_size 1', async () => {
    // 4 tokens, top-1 of 8 experts: at least 4 experts idle each step, dead after one (window 1)
    const recs = await expectSameAsEp1({ expert_num: 8, top_k: 1, batch_size: 1, seq_len: 4, balance: { dead_expert: { window: 1, revive: 'copy_hot' } } });
    expect((recs[recs.length - 1] as unknown as Record<string, unknown>).revived_total as number).toBeGreaterThan(0);
  }, 120_000);

  it('recompute (wasm): ep_size 2 equals ep_size 1, and the trainer asks its workers to recompute', async () => {
    await expectSameAsEp1({ backend: 'wasm', recompute: true, activation: 'swiglu' });
    const c = cfg({ recompute: true }, { ep_size: 2 });
    const t = new Trainer(c, { data: createDataSource(c, fs.mkdtempSync(path.join(os.tmpdir(), 'sy-epf-'))), startExpertParallel });
    await t.startParallel();
    expect((t.ep as ExpertParallel).recompute).toBe(true);
    await t.ep!.dispose();
    t.dispose();
  }, 120_000);

  it('all four together at ep_size 4 on 2 nodes (hierarchical, wasm) equal ep_size 1', async () => {
    const all = {
      backend: 'wasm', expert_num: 8, top_k: 1, batch_size: 1, seq_len: 4, grad_accum_steps: 3, recompute: true, activation: 'swiglu',
      balance: { grad_reweight: { enabled: true, mode: 'inverse_norm' }, sparse_accumulation: { enabled: true, min_active_share: 0.6 }, dead_expert: { window: 1, revive: 'copy_hot' } },
    };
    const recs = await expectSameAsEp1(all, { ep_size: 4, nodes: 2, mode: 'hierarchical' });
    expect((recs[recs.length - 1] as unknown as Record<string, unknown>).revived_total as number).toBeGreaterThan(0);
  }, 180_000);
});

describe('ExpertParallel per-expert commands, with a replicated expert', () => {
  const E = 3, D = 4, H = 5, T = 12;
  // expert 1 lives on both ranks: statistics, scaling, freezing and copies must treat its replicas as one expert
  const placement: Placement = { expertToRanks: [[0], [0, 1], [1]] };
  let weights: ExpertWeights, ep: ExpertParallel;
  beforeAll(async () => {
    await initBackend('cpu', { quiet: true });
    weights = createExperts(new Rng(5), E, D, H, 'gelu');
    ep = new ExpertParallel({ epSize: 2, placement, layerWeights: weights, activation: 'gelu', backend: 'cpu', recompute: true, timeoutMs: 20_000 });
    await ep.ready();
  });
  afterAll(async () => {
    await ep?.dispose();
    tf.dispose([weights.w1, weights.w2]);
  });
  const planOf = (choices: number[][]) => planTokenChoice(Int32Array.from(choices.flat()), null, choices.length, choices[0].length, E);
  const rowsOf = (w: Float32Array, e: number) => { const n = w.length / E; return w.slice(e * n, (e + 1) * n); };

  it('keeps input rows only (recompute), gives per-expert norms, scales per expert, freezes, and copies onto every replica', async () => {
    const plan = planOf(Array.from({ length: T }, (_, t) => [t % 3, (t + 1) % 3]));
    const x = tf.tensor2d(randomArray(T * D, 3, 1), [T, D]);
    const xs = tf.gather(x, tf.tensor1d(plan.tokenOfRow, 'int32')) as tf.Tensor2D;
    const dy = tf.tensor2d(randomArray(xs.size, 4, 1), xs.shape);
    let kept = -1;
    tf.tidy(() => { tf.grad((v: tf.Tensor) => { const y = ep.run(v as tf.Tensor2D, plan); kept = ep.keptActivationFloats(); return tf.sum(tf.mul(y, dy)); })(xs); });
    expect(kept).toBe(xs.size); // only the input rows wait for the backward
    expect(ep.keptActivationFloats()).toBe(0);
    const stats = ep.expertGradStats(0); // first: it must sum expert 1's replicas itself
    const g = await ep.getGrads();
    for (let e = 0; e < E; e++) {
      const all = [...rowsOf(g.w1, e), ...rowsOf(g.w2, e)];
      expect(stats.norm[e]).toBeCloseTo(Math.sqrt(all.reduce((a, v) => a + v * v, 0)), 6);
      expect(stats.absMean[e]).toBeCloseTo(all.reduce((a, v) => a + Math.abs(v), 0) / all.length, 7);
      expect(stats.norm[e]).toBeGreaterThan(0);
    }
    const f = [2, 0.5, 0];
    ep.scaleExpertGrads(0, f);
    const g2 = await ep.getGrads();
    for (let e = 0; e < E; e++) expectClose(rowsOf(g2.w1, e), rowsOf(g.w1, e).map((v) => v * f[e]), 1e-7, 1e-6);
    const w0 = await ep.getWeights();
    ep.step(0.1, [[1]]); // expert 1 frozen: weights and moments held on both replicas
    const w1 = await ep.getWeights();
    const opt = await ep.getOptimizerState();
    expect(Array.from(rowsOf(w1.w1, 1))).toEqual(Array.from(rowsOf(w0.w1, 1)));
    expect(rowsOf(opt.layers[0].m.w1, 1).every((v) => v === 0)).toBe(true);
    expect(rowsOf(opt.layers[0].m.w1, 0).some((v) => v !== 0)).toBe(true);
    expect(Array.from(rowsOf(w1.w1, 0))).not.toEqual(Array.from(rowsOf(w0.w1, 0)));
    // copy expert 0 onto expert 1 with noise z·ρ·rms
    const n1 = D * H, rho = 0.1;
    const z = { w1: randomArray(n1, 7, 1), w2: randomArray(n1, 8, 1), w3: null };
    ep.copyExpert(0, 0, 1, z, rho);
    const w2 = await ep.getWeights();
    for (const k of ['w1', 'w2'] as const) {
      const src = rowsOf(w1[k], 0);
      const rms = Math.sqrt(src.reduce((a, v) => a + v * v, 0) / src.length);
      expectClose(rowsOf(w2[k], 1), src.map((v, i) => v + z[k][i] * rho * rms), 1e-6, 1e-5);
      expect(Array.from(rowsOf(w2[k], 0))).toEqual(Array.from(src));
    }
    // both replicas of expert 1 hold the copy: tokens sent only to expert 1 are split between them
    const only1 = planOf(Array.from({ length: T }, () => [1]));
    const xs1 = tf.gather(x, tf.tensor1d(only1.tokenOfRow, 'int32')) as tf.Tensor2D;
    const ys = tf.tidy(() => ep.run(xs1, only1).dataSync().slice());
    const wt = { w1: tf.tensor3d(w2.w1, [E, D, H]), w2: tf.tensor3d(w2.w2, [E, H, D]), w3: null } as unknown as ExpertWeights;
    const ref = tf.tidy(() => runExperts(xs1, wt, Array.from(only1.tokensPerExpert), 'gelu').dataSync().slice());
    expectClose(ys, ref, 1e-6, 1e-5);
    tf.dispose([x, xs, dy, xs1, wt.w1, wt.w2]);
  });
});

describe('worker recompute (ExpertStore)', () => {
  beforeAll(async () => { await initBackend('cpu', { quiet: true }); });

  it('keeps only the input rows, recomputes in backward, and accumulates the same gradients', () => {
    const D = 4, H = 6, n = [3, 2]; // two slots, 3 and 2 rows
    const experts = [0, 1].map((e) => ({ w1: randomArray(D * H, 10 + e, 0.5), w2: randomArray(H * D, 20 + e, 0.5), w3: randomArray(D * H, 30 + e, 0.5) }));
    const init = (recompute: boolean) => new ExpertStore({
      dim: [D], hidden: [H], activation: 'swiglu', adamw: { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 },
      experts: [experts], slotExperts: [0, 1], primary: [true, true], recompute,
    });
    const x = randomArray(5 * D, 1, 1), dy = randomArray(5 * D, 2, 1);
    const before = tf.memory().numTensors;
    const out = [false, true].map((recompute) => {
      const s = init(recompute);
      const y = s.forward(0, 0, 0, x, Int32Array.from(n), true);
      const kept = s.keptFloats();
      const dx = s.backward(0, 0, 0, dy);
      const g = s.getGrads(0);
      const after = s.keptFloats();
      s.dispose();
      return { y, kept, dx, g, after };
    });
    expect(out[0].kept).toBe(5 * D + 3 * 5 * H); // x, h, h3, a
    expect(out[1].kept).toBe(5 * D); // x only
    expect(out[1].after).toBe(0);
    expect(Array.from(out[1].y)).toEqual(Array.from(out[0].y));
    expect(Array.from(out[1].dx)).toEqual(Array.from(out[0].dx));
    out[0].g.forEach((g, i) => { for (const k of ['w1', 'w2', 'w3'] as const) expect(Array.from(out[1].g[i][k]!)).toEqual(Array.from(g[k]!)); });
    expect(tf.memory().numTensors).toBe(before); // nothing kept past backward and dispose
  });
});
