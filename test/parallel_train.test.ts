/**
 * Expert parallelism inside the trainer: ep_size 2 (flat, and hierarchical over 2 nodes) trains to the same
 * losses and weights as ep_size 1 over 20 steps, and a checkpoint of a parallel run resumes exactly.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it, expect } from 'vitest';
import { parseConfig, type Config } from '../src/config/load.ts';
import { readSafetensorsFile } from '../src/io/safetensors.ts';
import { readMetrics } from '../src/metrics/jsonl.ts';
import { train } from '../src/train/run.ts';
import { expectClose } from './helpers.ts';

const cfg = (parallel: Record<string, unknown>, over: Record<string, unknown> = {}): Config => parseConfig({
  layers: 2, dim: 32, heads: 2, expert_num: 4, top_k: 2, expert_hidden: 32, seq_len: 16, batch_size: 4,
  steps: 20, eval_every: 0, log_every: 1, checkpoint_every: 10, warmup_steps: 0, lr: 3e-3, grad_clip: 0.5,
  aux_loss: { type: 'switch', weight: 0.01 }, data: { source: 'nlp-corpus', max_chars: 200_000 }, parallel, ...over,
});

async function run(parallel: Record<string, unknown>) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-ep-'));
  await train(cfg(parallel), { outDir: dir });
  const recs = readMetrics(path.join(dir, 'metrics.jsonl'));
  const weights = readSafetensorsFile(path.join(dir, 'checkpoints', 'step-00000020', 'model.safetensors')).tensors;
  return { dir, recs, weights };
}

describe('expert parallelism in training', () => {
  it('ep_size 2, flat and hierarchical, gives the same losses and weights as ep_size 1 for 20 steps', async () => {
    const one = await run({ ep_size: 1 });
    for (const parallel of [{ ep_size: 2 }, { ep_size: 2, nodes: 2, mode: 'hierarchical' }]) {
      const two = await run(parallel);
      expectClose(two.recs.map((r) => r.loss ?? NaN), one.recs.map((r) => r.loss ?? NaN), 1e-4, 1e-4);
      expect(two.recs.map((r) => r.expert_load)).toEqual(one.recs.map((r) => r.expert_load));
      for (const [name, t] of Object.entries(one.weights)) expectClose(two.weights[name].data as Float32Array, t.data as Float32Array, 1e-4, 1e-3);
      const ep = two.recs[two.recs.length - 1].ep!;
      expect(ep).toHaveLength(2); // per-rank timings land in metrics.jsonl
      for (const r of ep) expect(r.compute_ms).toBeGreaterThan(0);
    }
  }, 300_000);

  it('a parallel run resumes from its checkpoint to the same losses', async () => {
    const full = await run({ ep_size: 2 });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-ep-resume-'));
    const stop = { requested: false };
    await train(cfg({ ep_size: 2 }), { outDir: dir, stop, onRecord: (r) => { if (r.step === 10) stop.requested = true; } });
    expect(readMetrics(path.join(dir, 'metrics.jsonl'))).toHaveLength(10);
    await train(cfg({ ep_size: 2 }), { outDir: dir, resume: true });
    expectClose(readMetrics(path.join(dir, "metrics.jsonl")).map((r) => r.loss ?? NaN), full.recs.map((r) => r.loss ?? NaN), 1e-6, 1e-6);
  }, 300_000);
});
