/**
 * A synthetic training run folder (config.yaml, metrics.jsonl, summary.json) for report tests, the report
 * benchmark and demos: a router that starts skewed (Zipf over a random expert order per layer) and balances
 * over training, with a decaying loss, warmup-cosine lr, validation points, dynamic capacity, an early dead
 * expert, and optional expert-parallel timings. Nothing here is a measurement.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadCv, maxLoadShare, maxVio } from '../src/metrics/balance.ts';
import { MetricsWriter, type MetricRecord } from '../src/metrics/jsonl.ts';
import { writeJsonAtomic, writeFileAtomic } from '../src/io/atomic.ts';
import { Rng } from '../src/rng.ts';

/** Size and shape of the synthetic run. */
export interface SyntheticRunOptions {
  /** logged steps (one record each, steps 1…steps). */
  steps: number;
  layers: number;
  experts: number;
  topK?: number;
  /** tokens per step (default 2048). */
  tokens?: number;
  /** validation every this many steps (default steps / 10). */
  valEvery?: number;
  /** expert-parallel ranks: adds `ep` timings to each record (default none). */
  epRanks?: number;
  seed?: number;
}

/** Writes the run folder `dir` and returns the records written. */
export function writeSyntheticRun(dir: string, o: SyntheticRunOptions): MetricRecord[] {
  const { steps, layers: L, experts: E } = o;
  for (const [k, v] of Object.entries({ steps, layers: L, experts: E })) if (!Number.isInteger(v) || v < 1) throw new Error(`writeSyntheticRun: ${k} must be a positive integer, got ${v}`);
  const k = o.topK ?? 2, T = o.tokens ?? 2048, valEvery = o.valEvery ?? Math.max(1, Math.round(steps / 10));
  const rng = new Rng(o.seed ?? 1);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'metrics.jsonl');
  if (fs.existsSync(file)) fs.unlinkSync(file);
  // Per layer, a random expert order and a Zipf skew that decays as the "balancer" works.
  const ranks = Array.from({ length: L }, () => { const p = Array.from({ length: E }, (_, i) => i); for (let i = E - 1; i > 0; i--) { const j = rng.int(i + 1); [p[i], p[j]] = [p[j], p[i]]; } return p; });
  const w = new MetricsWriter(file);
  const out: MetricRecord[] = [];
  try {
    for (let s = 1; s <= steps; s++) {
      const t = s / steps;
      const skew = 1.2 * Math.exp(-4 * t) + 0.1;
      const load = ranks.map((rank, l) => {
        const p = rank.map((r) => Math.pow(r + 1, -skew) * Math.exp(0.15 * rng.normal()));
        if (l === 0 && t < 0.2) p[rank.indexOf(E - 1)] = 0; // an early dead expert in layer 0
        const z = p.reduce((a, b) => a + b, 0);
        return p.map((x) => Math.round((T * k * x) / z));
      });
      const cap = 1.25 + 0.5 * Math.exp(-5 * t);
      const dropped = load.map((row) => { const c = (cap * T * k) / E; return Math.round(row.reduce((a, x) => a + Math.max(0, x - c), 0)); });
      const assigned = load.map((row) => row.reduce((a, b) => a + b, 0));
      const meanOf = (f: (row: number[]) => number) => load.reduce((a, row) => a + f(row), 0) / L;
      const lr = 1e-3 * (s < steps / 20 ? s / (steps / 20) : 0.1 + 0.45 * (1 + Math.cos(Math.PI * t)));
      const loss = 1.6 + 3.9 * Math.exp(-5 * t) + 0.05 * rng.normal();
      const rec: MetricRecord = {
        step: s, loss, aux: { switch: 1 + meanOf((row) => loadCv(row) ** 2) / 4 + 0.01 * rng.normal(), z_loss: 2 + 3 * Math.exp(-3 * t) }, lr,
        grad_norm: 0.5 + 2 * Math.exp(-6 * t) + 0.1 * Math.abs(rng.normal()), tokens_per_s: 9000 + 300 * rng.normal(),
        expert_load: load, dropped, load_cv: meanOf(loadCv), max_load_share: meanOf(maxLoadShare), maxvio: meanOf(maxVio),
        router_entropy: Math.log(E) * (1 - 0.5 * Math.exp(-4 * t)),
        dropped_fraction: dropped.reduce((a, b) => a + b, 0) / assigned.reduce((a, b) => a + b, 0), capacity_factor: cap,
        dead_experts: load.map((row) => (row.some((x) => x === 0) ? row.flatMap((x, i) => (x === 0 ? [i] : [])) : [])),
      };
      if (s % valEvery === 0) { rec.val_loss = loss + 0.08; rec.val_ppl = Math.exp(loss + 0.08); }
      if (o.epRanks) {
        rec.ep = Array.from({ length: o.epRanks }, (_, r) => {
          const compute = 20 + 8 * Math.exp(-4 * t) * (r === 0 ? 2 : 1) + rng.normal();
          return { rank: r, compute_ms: compute, comm_ms: 6 + 0.5 * rng.normal(), idle_ms: Math.max(0, 12 * Math.exp(-4 * t) * (r === 0 ? 0 : 1)) };
        });
      }
      w.write(rec);
      out.push(rec);
    }
  } finally {
    w.close();
  }
  const last = out[out.length - 1];
  const lastVal = [...out].reverse().find((r) => r.val_loss !== undefined);
  writeFileAtomic(path.join(dir, 'config.yaml'), [
    '# synthetic run (test/synthetic_run.ts)', 'model_type: moe_llama', `layers: ${L}`, 'dim: 64', `expert_num: ${E}`, `top_k: ${k}`,
    'router:', '  type: topk', 'capacity_factor: 1.25', 'drop_policy: drop', 'aux_loss:', '  type: switch', '  weight: 0.01', 'lr: 1.0e-3',
    `steps: ${steps}`, 'seed: 0', 'backend: wasm', '',
  ].join('\n'));
  writeJsonAtomic(path.join(dir, 'summary.json'), {
    steps, first_loss: out[0].loss, final_loss: last.loss, val_loss: lastVal?.val_loss ?? null, val_ppl: lastVal?.val_ppl ?? null,
    tokens_per_s: 9000, per_layer_load: last.expert_load,
  });
  return out;
}
