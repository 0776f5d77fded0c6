/**
 * Training on the webgpu backend, end to end. Off a GPU these run on Mesa's lavapipe (software Vulkan):
 * `test/lavapipe/run.sh npx vitest run test/webgpu_train.test.ts`; CI runs them so with
 * SWITCHYARD_REQUIRE_WEBGPU=1, where a missing adapter fails the file instead of skipping it.
 * - configs/tiny.yaml for 20 steps on webgpu equals the same run on wasm within 1e-4 relative loss at every step;
 * - a run stopped at a checkpoint and resumed on webgpu logs the same losses (to 1e-5) as an uninterrupted one, and
 *   evaluation and generation work on it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.ts';
import { readMetrics } from '../src/metrics/jsonl.ts';
import { generateTokens } from '../src/model/generate.ts';
import { Rng } from '../src/rng.ts';
import { evaluate } from '../src/train/evaluate.ts';
import { openTrainer, train } from '../src/train/run.ts';
import { webgpuAvailable } from './helpers.ts';

const gpu = await webgpuAvailable();
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'sy-webgpu-'));
/**
 * tiny.yaml's model (its architecture unchanged) and data on 4 sequences of 32 bytes per step (tiny's 8 × 64
 * takes minutes on a software GPU), 20 steps, a line per step, no evaluation or checkpoint unless asked.
 */
const tiny = (backend: string, more: string[] = []) =>
  loadConfig('configs/tiny.yaml', [`backend=${backend}`, 'batch_size=4', 'seq_len=32', 'steps=20', 'log_every=1', 'eval_every=0', 'eval_batches=2', 'checkpoint_every=0', ...more]);

describe.skipIf(!gpu)('training on webgpu (skipped without a GPU adapter)', () => {
  it('tiny.yaml, 20 steps: every logged loss equals the wasm run within 1e-4 relative', async () => {
    const losses = async (backend: string) => {
      const dir = tmp();
      await train(tiny(backend), { outDir: dir });
      return readMetrics(path.join(dir, 'metrics.jsonl')).map((r) => [r.step, r.loss ?? NaN] as const);
    };
    const onGpu = await losses('webgpu');
    const onWasm = await losses('wasm');
    expect(onGpu.map((r) => r[0])).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    onGpu.forEach(([step, loss], i) => {
      const ref = onWasm[i][1];
      expect(Math.abs(loss - ref) / Math.abs(ref), `step ${step}: webgpu ${loss}, wasm ${ref}`).toBeLessThanOrEqual(1e-4);
    });
    expect(onGpu[19][1]).toBeLessThan(onGpu[0][1] - 0.3); // and it learned
  }, 600_000);

  it('stopped at a checkpoint and resumed on webgpu: the same losses; eval and generate on the run', async () => {
    const straightDir = tmp();
    await train(tiny('webgpu', ['steps=6', 'warmup_steps=2']), { outDir: straightDir });
    const dir = tmp();
    const stop = { requested: false };
    const first = await train(tiny('webgpu', ['steps=6', 'warmup_steps=2']), { outDir: dir, stop, onRecord: (r) => { if (r.step === 3) stop.requested = true; } });
    expect(first.stopped_early).toBe(true);
    await train(tiny('webgpu', ['steps=6', 'warmup_steps=2']), { outDir: dir, resume: true });
    const a = readMetrics(path.join(straightDir, 'metrics.jsonl')).map((r) => r.loss ?? NaN);
    const b = readMetrics(path.join(dir, 'metrics.jsonl')).map((r) => r.loss ?? NaN);
    expect(b.length).toBe(6);
    // equal up to float summation order: tfjs-webgpu's scatter kernels add with atomics (order not fixed)
    b.forEach((l, i) => expect(Math.abs(l - a[i]) / a[i], `step ${i + 1}: resumed ${l}, straight ${a[i]}`).toBeLessThanOrEqual(1e-5));
    const t = openTrainer(tiny('webgpu', ['steps=6', 'warmup_steps=2']), dir);
    expect(t.restore()).toBe(6);
    const ev = await evaluate(t.model, t.data);
    expect(ev.loss).toBeGreaterThan(0);
    expect(ev.loss).toBeLessThan(Math.log(256)); // better than uniform over bytes after 6 steps
    expect(ev.perLayerLoad.map((l) => l.reduce((x, y) => x + y, 0))).toEqual(ev.perLayerLoad.map(() => t.cfg.eval_batches * t.cfg.batch_size * t.cfg.seq_len * t.cfg.top_k));
    const ids = await generateTokens(t.model, Int32Array.from([84, 104, 101, 32]), { maxTokens: 5, temperature: 0, topK: 1 }, new Rng(0));
    expect(ids.length).toBe(9);
    expect(Array.from(ids).every((v) => v >= 0 && v < 256)).toBe(true);
    t.dispose();
  }, 600_000);
});
