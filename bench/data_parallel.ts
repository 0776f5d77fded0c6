/**
 * Data parallelism on the CPU: tokens/s of small-lm's training step on one thread (parallel.dp_size 1)
 * against dp_size 2 (the main thread and one worker thread), timed in interleaved rounds of a few steps
 * each (bench/interleave.ts), with the ratio of every round. A third arm trains one rank's share alone (one
 * thread, batch_size/dp_size): no data-parallel step can beat it, so full / share bounds the speed-up.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { loadConfig } from '../src/config/load.ts';
import { openTrainer } from '../src/train/run.ts';
import type { Trainer } from '../src/train/step.ts';
import { roundRatio, timeInterleaved } from './interleave.ts';

const SPIN = 'let x = 0; for (let i = 0; i < 1e8; i++) x += i % 7;';

/**
 * How many cores this process gets now: a fixed JS loop timed alone and then on two threads at once,
 * 2·alone/both (2 on an idle 2-core machine, 1 when other work takes a core).
 */
export async function twoThreadCapacity(): Promise<number> {
  const spin = new Function(SPIN) as () => void;
  let t0 = performance.now();
  spin();
  const alone = performance.now() - t0;
  const w = new Worker(`${SPIN} require('node:worker_threads').parentPort.postMessage(0);`, { eval: true });
  const done = new Promise((r) => w.once('message', r));
  t0 = performance.now();
  spin();
  const mine = performance.now() - t0;
  await done;
  await w.terminate();
  return +((2 * alone) / Math.max(mine, performance.now() - t0)).toFixed(2);
}

/** small-lm (or `config`) trained with dp_size 1 and `size` in alternation: `steps` steps per arm and round. */
export async function benchDataParallel(opts: { config?: string; size?: number; steps?: number; rounds?: number; warmSteps?: number } = {}): Promise<Record<string, unknown>> {
  const config = opts.config ?? 'small-lm.yaml';
  const size = opts.size ?? 2;
  const steps = opts.steps ?? 3;
  const rounds = opts.rounds ?? 5;
  const warmSteps = opts.warmSteps ?? 6; // a fresh worker's wasm code is tiered up in the background during its first steps
  const file = path.join(import.meta.dirname, '..', 'configs', config);
  const open = async (dp: number, over: string[] = []): Promise<{ t: Trainer; dir: string }> => {
    const cfg = loadConfig(file, [`backend=${tf.getBackend()}`, `parallel.dp_size=${dp}`, ...over]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchyard-dp-'));
    const t = openTrainer(cfg, dir);
    await t.startParallel();
    return { t, dir };
  };
  const one = await open(1);
  const many = await open(size);
  const share = await open(1, [`batch_size=${one.t.cfg.batch_size / size}`]);
  try {
    // CPU time of the whole process (every thread) per step: what a busy machine has to find for each arm
    for (const a of [one, many, share]) for (let i = 0; i < warmSteps; i++) await a.t.trainStep();
    const cpu: Record<'one' | 'many' | 'share', number[]> = { one: [], many: [], share: [] };
    const run = (t: Trainer, arm: 'one' | 'many' | 'share') => async () => {
      const c0 = process.cpuUsage();
      for (let i = 0; i < steps; i++) await t.trainStep();
      const c = process.cpuUsage(c0);
      cpu[arm].push((c.user + c.system) / 1000 / steps);
    };
    const capacity: number[] = [];
    const arms = await timeInterleaved({ capacity: async () => { capacity.push(await twoThreadCapacity()); }, one: run(one.t, 'one'), many: run(many.t, 'many'), share: run(share.t, 'share') }, rounds, 1);
    for (const x of [capacity, cpu.one, cpu.many, cpu.share]) x.shift(); // the warm-up round's
    const tokens = one.t.cfg.batch_size * one.t.cfg.seq_len * one.t.cfg.grad_accum_steps * steps;
    const tps = (ms: number) => Math.round(tokens / (ms / 1000));
    return {
      config: `configs/${config}`, dp_size: size, steps_per_round: steps, rounds, warm_steps: warmSteps, cores: os.availableParallelism(),
      tokens_per_s_one: tps(arms.one.median_ms), tokens_per_s_dp: tps(arms.many.median_ms),
      speedup: +roundRatio(arms.one, arms.many).toFixed(3),
      speedup_per_round: arms.one.ms.map((x, r) => +(x / arms.many.ms[r]).toFixed(3)),
      bound: +roundRatio(arms.one, arms.share).toFixed(3), // full batch / one rank's share, both on one thread
      ms_per_step_share: arms.share.ms.map((x) => +(x / steps).toFixed(1)), cpu_ms_per_step_share: cpu.share.map((x) => +x.toFixed(1)),
      two_thread_capacity_per_round: capacity,
      cpu_ms_per_step_one: cpu.one.map((x) => +x.toFixed(1)), cpu_ms_per_step_dp: cpu.many.map((x) => +x.toFixed(1)),
      ms_per_step_one: arms.one.ms.map((x) => +(x / steps).toFixed(1)), ms_per_step_dp: arms.many.ms.map((x) => +(x / steps).toFixed(1)),
    };
  } finally {
    for (const a of [one, many, share]) { await a.t.dp?.dispose(); a.t.dp = null; a.t.dispose(); fs.rmSync(a.dir, { recursive: true, force: true }); }
  }
}
