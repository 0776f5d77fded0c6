/**
 * Data parallelism (parallel.dp_size): two ranks (the main thread and a worker thread, each a replica on half
 * the batch's sequences) train to the losses, loads, router statistics and weights of one thread, with the
 * balance losses over the whole batch (switch + z-loss; aux-free bias; gradient accumulation; cpu backend; moe_mlp), a dp run resumes
 * from its checkpoint exactly, and what cannot be equal is refused naming the field.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it, expect } from 'vitest';
import { parseConfig, type Config } from '../src/config/load.ts';
import { readSafetensorsFile } from '../src/io/safetensors.ts';
import { readMetrics, type MetricRecord } from '../src/metrics/jsonl.ts';
import { train } from '../src/train/run.ts';
import { resolveDataParallel } from '../src/train/step.ts';
import { expectClose } from './helpers.ts';

const STEPS = 6;
const cfg = (over: Record<string, unknown>): Config => parseConfig({
  layers: 2, dim: 32, heads: 2, expert_num: 4, top_k: 2, expert_hidden: 32, seq_len: 16, batch_size: 4,
  steps: STEPS, eval_every: 0, log_every: 1, checkpoint_every: 3, warmup_steps: 0, lr: 1e-2, grad_clip: 0.5,
  aux_loss: { type: 'switch', weight: 0.1 }, z_loss_weight: 0.01, data: { source: 'nlp-corpus', max_chars: 100_000 }, ...over,
});

/** A finished run's metrics and final weights. */
function readRun(dir: string, steps = STEPS) {
  const recs = readMetrics(path.join(dir, 'metrics.jsonl'));
  const weights = readSafetensorsFile(path.join(dir, 'checkpoints', `step-${String(steps).padStart(8, '0')}`, 'model.safetensors')).tensors;
  return { dir, recs, weights };
}

async function run(over: Record<string, unknown>, steps = STEPS) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-dp-'));
  await train(cfg(over), { outDir: dir });
  return readRun(dir, steps);
}

type Run = ReturnType<typeof readRun>;
const series = (recs: MetricRecord[], f: (r: MetricRecord) => number | null | undefined) => recs.map((r) => f(r) ?? NaN);

/** Same losses (task and each aux), loads, entropies and weights, within float tolerance. */
function expectSameRun(two: Run, one: Run, steps = STEPS): void {
  expect(two.recs).toHaveLength(steps);
  expectClose(series(two.recs, (r) => r.loss), series(one.recs, (r) => r.loss), 1e-5, 1e-5);
  for (const name of Object.keys(one.recs[0].aux)) expectClose(series(two.recs, (r) => r.aux[name]), series(one.recs, (r) => r.aux[name]), 1e-6, 1e-4);
  expectClose(series(two.recs, (r) => r.router_entropy), series(one.recs, (r) => r.router_entropy), 1e-5, 1e-5);
  expectClose(series(two.recs, (r) => r.grad_norm), series(one.recs, (r) => r.grad_norm), 1e-5, 1e-4);
  expect(two.recs.map((r) => r.expert_load)).toEqual(one.recs.map((r) => r.expert_load));
  expect(Object.keys(two.weights).sort()).toEqual(Object.keys(one.weights).sort());
  for (const [name, t] of Object.entries(one.weights)) expectClose(two.weights[name].data as Float32Array, t.data as Float32Array, 1e-5, 1e-3);
}

describe('data parallelism in training', () => {
  it('dp_size 2 equals one thread with the Switch loss and z-loss over the whole batch, and resumes exactly', async () => {
    const one = await run({});
    const two = await run({ parallel: { dp_size: 2 } });
    expect(one.recs[0].aux.switch).toBeGreaterThan(0);
    expect(one.recs[0].aux.z).toBeGreaterThan(0);
    expectSameRun(two, one);
    // stop at step 3 (its checkpoint), resume under dp: the replicas take the restored weights
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-dp-resume-'));
    const stop = { requested: false };
    await train(cfg({ parallel: { dp_size: 2 } }), { outDir: dir, stop, onRecord: (r) => { if (r.step === 3) stop.requested = true; } });
    expect(readMetrics(path.join(dir, 'metrics.jsonl'))).toHaveLength(3);
    await train(cfg({ parallel: { dp_size: 2 } }), { outDir: dir, resume: true });
    expectSameRun(readRun(dir), one);
  }, 300_000);

  it('dp_size 2 equals one thread with the aux-free bias (loads summed over ranks) and with gradient accumulation', async () => {
    const free = { aux_loss: { type: 'none' }, z_loss_weight: 0, balance: { aux_free: { enabled: true, update_rate: 0.05 } } };
    const one = await run(free);
    const two = await run({ ...free, parallel: { dp_size: 2 } });
    expectSameRun(two, one);
    const bias = one.weights['moe.0.expert_bias'].data as Float32Array;
    expect(Math.max(...Array.from(bias, Math.abs))).toBeGreaterThan(0); // the bias moved, so equal biases say something
    const accum = { grad_accum_steps: 2, aux_loss: { type: 'cv2', weight: 0.1 } };
    expectSameRun(await run({ ...accum, parallel: { dp_size: 2 } }), await run(accum));
  }, 300_000);

  it('dp_size 2 equals one thread on the cpu backend too (its read-backs are the backend\'s own arrays)', async () => {
    const cpu = { backend: 'cpu', steps: 3, checkpoint_every: 3 };
    const one = await run(cpu, 3);
    expectSameRun(await run({ ...cpu, parallel: { dp_size: 2 } }, 3), one, 3);
  }, 300_000);

  it('dp_size 2 equals one thread for seed 000\'s moe_mlp (the batch split by rows)', async () => {
    const mlp = { model_type: 'moe_mlp', layers: 1, dim: 16, expert_hidden: 16, seq_len: 8, steps: 3, checkpoint_every: 3, z_loss_weight: 0, data: { source: 'synthetic' } };
    expectSameRun(await run({ ...mlp, parallel: { dp_size: 2 } }, 3), await run(mlp, 3), 3);
  }, 300_000);

  it('refuses what cannot equal one thread, naming the field; auto falls back to one thread and says why', () => {
    const refused: [Record<string, unknown>, string, RegExp][] = [
      [{ batch_size: 9 }, 'parallel.dp_size', /does not divide batch_size = 9.*allowed: 1, 3, 9/],
      [{ router: { type: 'expert_choice' }, capacity_factor: 1 }, 'router.type', /expert_choice.*allowed with dp_size > 1: topk \| group_limited/],
      [{ router: { type: 'noisy_topk' } }, 'router.type', /noisy_topk draws its noise/],
      [{ router: { type: 'sinkhorn' } }, 'router.type', /sinkhorn normalises/],
      [{ drop_policy: 'drop-position', capacity_factor: 1.25 }, 'drop_policy', /capacity per rank/],
      [{ aux_loss: { type: 'variance', weight: 0.01 } }, 'aux_loss.type', /"variance" is not linear/],
      [{ parallel: { dp_size: 2, ep_size: 2 } }, 'parallel.dp_size', /together with parallel.ep_size = 2/],
      [{ backend: 'webgpu' }, 'parallel.dp_size', /backend webgpu/],
      [{ grad_accum_steps: 2, balance: { sparse_accumulation: { enabled: true } } }, 'balance.sparse_accumulation.enabled', /sparse accumulation/],
    ];
    for (const [over, field, message] of refused) {
      const parallel = { dp_size: 2, ...(over.parallel as object ?? {}) };
      let err: Error | null = null;
      try { cfg({ ...over, parallel }); } catch (e) { err = e as Error; }
      expect(err, `${JSON.stringify(over)} was not refused`).toBeInstanceOf(Error);
      expect(err!.message, JSON.stringify(over)).toContain(`${field}:`);
      expect(err!.message, JSON.stringify(over)).toMatch(message);
    }
    expect(() => cfg({ parallel: { dp_size: 'two' } })).toThrow(/parallel\.dp_size.*an integer in 1\.\.64 or auto/);
    expect(resolveDataParallel(cfg({ parallel: { dp_size: 'auto' } }), 2, true)).toEqual({ size: 2, note: null });
    expect(resolveDataParallel(cfg({ parallel: { dp_size: 'auto' } }), 1, true)).toEqual({ size: 1, note: null });
    expect(resolveDataParallel(cfg({ parallel: { dp_size: 'auto' } }), 2, false)).toEqual({ size: 1, note: null });
    const ec = resolveDataParallel(cfg({ parallel: { dp_size: 'auto' }, router: { type: 'expert_choice' }, capacity_factor: 1 }), 2, true);
    expect(ec.size).toBe(1);
    expect(ec.note).toMatch(/auto: one thread \(router\.type: router\.type expert_choice picks/);
    expect(() => resolveDataParallel(cfg({ parallel: { dp_size: 2 } }), 2, false)).toThrow(/parallel\.dp_size = 2 needs worker threads/);
  });
});
