/**
 * `npm run bench [-- --backend wasm|cpu|webgpu] [-- --only profile,lm,speed,plan,parallel,data_parallel,report,sparse_accumulation,playground,moe] [-- --quick | --smoke] [-- --torch a.txt,b.txt] [-- --torch-lm c.txt] [-- --pytorch] [-- --profile-config FILE.yaml] [-- --label KEY]`:
 * runs the benchmarks and writes bench/results.json (merged per backend, so wasm and webgpu figures can
 * live side by side). `speed` (bench/run_speed.ts) prints its markdown table; `--torch` takes the output
 * of reference_moe_torch.py (as given, then with x.requires_grad) from the same device call; `lm` (bench/lm.ts)
 * times whole Trainer steps (gpu-lm on WebGPU, small-lm), `--torch-lm` the PyTorch LM reference's output. `profile`
 * (bench/profile.ts) times and profiles the small-lm step on the CPU, with `--pytorch` beside PyTorch's in the same
 * rounds. `data_parallel` (bench/data_parallel.ts) times small-lm's step on one thread against parallel.dp_size 2 in
 * alternation. `--label KEY` files the figures under KEY instead of the backend's name (e.g. a pinned-core run).
 */
import { execSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { cpus } from 'node:os';
import { initBackend, type BackendName } from '../src/backend.ts';
import { writeJsonAtomic } from '../src/io/atomic.ts';
import { benchLm } from './lm.ts';
import { benchStepProfile } from './profile.ts';
import { benchMoe } from './moe.ts';
import { benchSpeed } from './run_speed.ts';
import { benchPlan } from './plan.ts';
import { benchParallel } from './parallel.ts';
import { benchDataParallel } from './data_parallel.ts';
import { benchPlayground } from './playground.ts';
import { benchReport } from './report.ts';
import { benchSparseAccumulation } from './sparse_accum.ts';

const args = process.argv.slice(2);
const arg = (name: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : undefined; };
const requested = (arg('backend') ?? 'wasm') as BackendName;
// default: every CPU benchmark (the GPU run takes --only speed with --backend webgpu)
const only = arg('only')?.split(',') ?? (requested === 'webgpu' ? ['lm', 'speed'] : ['profile', 'speed', 'plan', 'parallel', 'data_parallel', 'report', 'sparse_accumulation', 'playground']);
const out = arg('out') ?? 'bench/results.json';

const backend = await initBackend(requested);
const machine: Record<string, unknown> = { cpus: cpus().length, cpu_model: cpus()[0]?.model ?? 'unknown', node: process.version, backend };
try { // Linux: the cores this process may run on (taskset)
  machine.cpus_allowed = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
} catch { /* not Linux */ }
if (backend === 'webgpu') {
  const info = (tf.backend() as unknown as { adapterInfo?: Record<string, string> }).adapterInfo; // GPUAdapterInfo: getters, not own fields
  machine.gpu = info ? { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description } : 'unknown';
  try { // Dawn's adapter info names no model: ask the driver
    machine.gpu_model = execSync('nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader', { encoding: 'utf8' }).trim();
  } catch { /* not an NVIDIA machine */ }
}
const benches: Record<string, () => Promise<Record<string, unknown>>> = {
  profile: () => benchStepProfile({ config: arg('profile-config'), pytorch: args.includes('--pytorch'), steps: args.includes('--quick') ? 2 : undefined, rounds: args.includes('--quick') ? 1 : undefined }),
  speed: () => benchSpeed({ quick: args.includes('--quick'), smoke: args.includes('--smoke'), torch: arg('torch')?.split(',') }),
  lm: () => benchLm({ torchLm: arg('torch-lm')?.split(','), steps: args.includes('--quick') ? 2 : undefined }),
  moe: () => benchMoe(),
  plan: () => benchPlan(),
  parallel: () => benchParallel(),
  data_parallel: () => benchDataParallel(args.includes('--quick') ? { steps: 1, rounds: 2, warmSteps: 2 } : {}),
  report: () => benchReport(),
  sparse_accumulation: () => benchSparseAccumulation(),
  playground: () => benchPlayground(),
};
const results: Record<string, unknown> = {};
for (const [name, fn] of Object.entries(benches)) {
  if (only && !only.includes(name)) continue;
  process.stderr.write(`bench ${name} on ${backend}…\n`);
  const t0 = performance.now();
  results[name] = await fn();
  process.stderr.write(`  done in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}
const previous = existsSync(out) ? JSON.parse(readFileSync(out, 'utf8')) : {};
const key = arg('label') ?? backend;
const kept = { ...(previous[key] ?? {}) };
if (results.speed) delete kept.moe; // the speed suite supersedes the older MoE-vs-dense figures
previous[key] = { ...kept, ...results, machine, date: new Date().toISOString() };
writeJsonAtomic(out, previous);
process.stderr.write(`figures written to ${out}\n`);
if (backend === 'webgpu') process.exit(0); // Dawn's instance keeps the event loop alive
