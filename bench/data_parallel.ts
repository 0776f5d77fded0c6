/**
 * Data parallelism on the CPU: tokens/s of small-lm's training step on one thread (parallel.dp_size 1)
 * against dp_size 2 (the main thread and one worker thread), timed in interleaved rounds of a few steps
 * each (bench/interleave.ts), with the ratio of every round.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadConfig } from '../src/config/load.ts';
import { openTrainer } from '../src/train/run.ts';
import type { Trainer } from '../src/train/step.ts';
import { roundRatio, timeInterleaved } from './interleave.ts';

/** small-lm (or `config`) trained with dp_size 1 and `size` in alternation: `steps` steps per arm and round. */
export async function benchDataParallel(opts: { config?: string; size?: number; steps?: number; rounds?: number } = {}): Promise<Record<string, unknown>> {
  const config = opts.config ?? 'small-lm.yaml';
  const size = opts.size ?? 2;
  const steps = opts.steps ?? 3;
  const rounds = opts.rounds ?? 5;
  const file = path.join(import.meta.dirname, '..', 'configs', config);
  const open = async (dp: number): Promise<{ t: Trainer; dir: string }> => {
    const cfg = loadConfig(file, [`backend=${tf.getBackend()}`, `parallel.dp_size=${dp}`]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchyard-dp-'));
    const t = openTrainer(cfg, dir);
    await t.startParallel();
    return { t, dir };
  };
  const one = await open(1);
  const many = await open(size);
  try {
    const run = (t: Trainer) => async () => { for (let i = 0; i < steps; i++) await t.trainStep(); };
    const arms = await timeInterleaved({ one: run(one.t), many: run(many.t) }, rounds, 1);
    const tokens = one.t.cfg.batch_size * one.t.cfg.seq_len * one.t.cfg.grad_accum_steps * steps;
    const tps = (ms: number) => Math.round(tokens / (ms / 1000));
    return {
      config: `configs/${config}`, dp_size: size, steps_per_round: steps, rounds, cores: os.availableParallelism(),
      tokens_per_s_one: tps(arms.one.median_ms), tokens_per_s_dp: tps(arms.many.median_ms),
      speedup: +roundRatio(arms.one, arms.many).toFixed(3),
      speedup_per_round: arms.one.ms.map((x, r) => +(x / arms.many.ms[r]).toFixed(3)),
      ms_per_step_one: arms.one.ms.map((x) => +(x / steps).toFixed(1)), ms_per_step_dp: arms.many.ms.map((x) => +(x / steps).toFixed(1)),
    };
  } finally {
    for (const a of [one, many]) { await a.t.dp?.dispose(); a.t.dp = null; a.t.dispose(); fs.rmSync(a.dir, { recursive: true, force: true }); }
  }
}
