/**
 * `npm run bench [-- --backend wasm|cpu|webgpu] [-- --only moe,plan]`: runs the benchmarks and writes
 * bench/results.json (merged per backend, so wasm and webgpu figures can live side by side).
 */
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { initBackend, type BackendName } from '../src/backend.ts';
import { writeJsonAtomic } from '../src/io/atomic.ts';
import { benchMoe } from './moe.ts';

const args = process.argv.slice(2);
const arg = (name: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : undefined; };
const requested = (arg('backend') ?? 'wasm') as BackendName;
const only = arg('only')?.split(',');
const out = arg('out') ?? 'bench/results.json';

const backend = await initBackend(requested);
const machine = { cpus: cpus().length, cpu_model: cpus()[0]?.model ?? 'unknown', node: process.version, backend };
const benches: Record<string, () => Promise<Record<string, unknown>>> = {
  moe: () => benchMoe(),
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
previous[backend] = { ...(previous[backend] ?? {}), ...results, machine, date: new Date().toISOString() };
writeJsonAtomic(out, previous);
console.log(JSON.stringify(results, null, 2));
