/**
 * What a new user does first: shorten a shipped config's run, and train the config seed 001 shows.
 * Both must train; a run shorter than its intervals validates and checkpoints at its final step and
 * says so once in the log.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.ts';
import { listCheckpoints } from '../src/train/checkpoint.ts';
import { readMetrics } from '../src/metrics/jsonl.ts';
import { train } from '../src/train/run.ts';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'sy-short-'));
// smaller data and model only, to keep the test short; the schedule fields stay tiny.yaml's
const SMALL = ['data.max_chars=100000', 'eval_batches=1', 'batch_size=2', 'seq_len=16'];

it('tiny.yaml with --steps 4: trains, validates and checkpoints at the final step, says so once', async () => {
  const dir = tmp();
  const lines: string[] = [];
  const cfg = loadConfig('configs/tiny.yaml', [...SMALL, 'steps=4']);
  const s = await train(cfg, { outDir: dir, log: (l) => lines.push(l) });
  expect(s.steps).toBe(4);
  expect(s.val_loss).not.toBeNull();
  const recs = readMetrics(path.join(dir, 'metrics.jsonl'));
  expect(recs.filter((r) => typeof r.val_loss === 'number').map((r) => r.step)).toEqual([4]);
  expect(listCheckpoints(dir).map((d) => path.basename(d))).toEqual(['step-00000004']);
  const notes = lines.filter((l) => l.includes('final step'));
  expect(notes).toEqual(['steps = 4 is below eval_every = 100 and checkpoint_every = 100: validation and the checkpoint run at the final step (4)']);
  fs.rmSync(dir, { recursive: true, force: true });
}, 120_000);

it("seed 001's config trains as written (its aux_loss_weight reaches the loss); config.yaml writes our names", async () => {
  const dir = tmp();
  const f = path.join(dir, 'seed001.yaml');
  fs.writeFileSync(f, 'model_type: moe_llama\nexpert_num: 8\ntop_k: 2\nuse_load_balance: true\naux_loss_weight: 0.01\n');
  const cfg = loadConfig(f, [...SMALL, 'steps=2']);
  const out = path.join(dir, 'run');
  const s = await train(cfg, { outDir: out });
  expect(s.steps).toBe(2);
  const recs = readMetrics(path.join(out, 'metrics.jsonl'));
  expect(recs[0].aux.switch).toBeGreaterThan(0); // the Switch loss ran (its weight came from the alias)
  const saved = fs.readFileSync(path.join(out, 'config.yaml'), 'utf8');
  expect(saved).not.toContain('aux_loss_weight');
  expect(loadConfig(path.join(out, 'config.yaml')).aux_loss).toEqual({ type: 'switch', weight: 0.01 });
  fs.rmSync(dir, { recursive: true, force: true });
}, 120_000);
