/**
 * One small-lm training step (configs/small-lm.yaml, wasm) timed and profiled by kernel: where the CPU time goes.
 *   node bin/run-ts.js bench/step_profile.ts [--steps N] [--json FILE]
 * Prints the median step time (wall and this process's CPU time, the steadier one on a shared machine) and tokens/s
 * over N timed steps (after 3 warm-up steps), then the kernels by total
 * time and the matrix products by shape with their GFLOP/s. Run it pinned (`taskset -c 0`) for a per-core figure.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.ts';
import { loadConfig } from '../src/config/load.ts';
import { openTrainer } from '../src/train/run.ts';

const arg = (name: string): string | undefined => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : undefined; };
const steps = Number(arg('--steps') ?? 10);
await initBackend('wasm', { quiet: true });
const cfg = loadConfig(path.join(import.meta.dirname, '..', 'configs', 'small-lm.yaml'), ['eval_every=0', 'checkpoint_every=0']);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchyard-profile-'));
const trainer = openTrainer(cfg, dir);
for (let i = 0; i < 3; i++) await trainer.trainStep();
const times: number[] = [];
const cpuTimes: number[] = []; // this process's CPU time (user + system): steadier than wall time on a shared machine
for (let i = 0; i < steps; i++) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await trainer.trainStep();
  times.push(performance.now() - t0);
  const c = process.cpuUsage(c0);
  cpuTimes.push((c.user + c.system) / 1000);
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const median = med(times);
const cpuMedian = med(cpuTimes);
const tokens = cfg.batch_size * cfg.seq_len * cfg.grad_accum_steps;
console.log(`small-lm step (wasm, ${trainer.model.numParams()} parameters, ${tokens} tokens): median ${median.toFixed(1)} ms over ${steps} steps, ${Math.round(tokens / (median / 1000))} tokens/s; CPU time median ${cpuMedian.toFixed(1)} ms`);
const prof = await tf.profile(async () => { await trainer.trainStep(); });
const byName = new Map<string, { n: number; ms: number }>();
const byMatmul = new Map<string, { n: number; ms: number; flop: number }>();
let total = 0;
for (const k of prof.kernels) {
  const ms = Number(k.kernelTimeMs) || 0;
  total += ms;
  const e = byName.get(k.name) ?? { n: 0, ms: 0 };
  e.n++; e.ms += ms; byName.set(k.name, e);
  if (k.name === 'BatchMatMul') {
    const [a] = k.inputShapes as number[][];
    const out = (k.outputShapes as number[][])[0];
    const key = `${JSON.stringify(a)} → ${JSON.stringify(out)}`;
    const m = byMatmul.get(key) ?? { n: 0, ms: 0, flop: 0 };
    m.n++; m.ms += ms; m.flop += 2 * out.reduce((x, y) => x * y, 1) * a[a.length - 1]; byMatmul.set(key, m);
  }
}
console.log(`profiled step: ${prof.kernels.length} kernels, ${total.toFixed(0)} ms in kernels`);
console.log('kernel                    calls       ms   share');
for (const [n, e] of [...byName].sort((a, b) => b[1].ms - a[1].ms).slice(0, 15)) console.log(`${n.padEnd(24)} ${String(e.n).padStart(6)} ${e.ms.toFixed(1).padStart(8)} ${(100 * e.ms / total).toFixed(1).padStart(6)}%`);
console.log('matrix products (a → out)                       calls       ms  GFLOP/s');
for (const [n, e] of [...byMatmul].sort((a, b) => b[1].ms - a[1].ms).slice(0, 8)) console.log(`${n.padEnd(46)} ${String(e.n).padStart(6)} ${e.ms.toFixed(1).padStart(8)} ${(e.flop / e.ms / 1e6).toFixed(2).padStart(8)}`);
const json = arg('--json');
if (json) fs.writeFileSync(json, JSON.stringify({ median_ms: median, cpu_median_ms: cpuMedian, steps_ms: times, steps_cpu_ms: cpuTimes, tokens_per_s: Math.round(tokens / (median / 1000)), kernels: Object.fromEntries(byName) }, null, 1));
trainer.dispose();
fs.rmSync(dir, { recursive: true, force: true });
