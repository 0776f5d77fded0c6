/**
 * `switchyard compare`: the same model, data and budget trained once per balancing method and seed,
 * then one table: task loss (mean ± std over seeds) and balance over the end of training.
 * Balance numbers are means over the last `window` logged steps (one step is too noisy to rank methods).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfig } from '../config/load.ts';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.ts';
import { mean } from '../metrics/balance.ts';
import { readMetrics, type MetricRecord } from '../metrics/jsonl.ts';
import { summaryTable } from '../report/terminal.ts';
import { train, type TrainSummary } from '../train/run.ts';
import { METHODS, methodOverrides } from './methods.ts';

export interface MethodResult {
  method: string;
  final_loss: number;
  final_loss_std: number;
  val_loss: number | null;
  load_cv: number;
  max_load_share: number;
  maxvio: number;
  dropped_fraction: number;
  dead_experts: number;
  step_time_ratio: number;
  step_time_ms: number;
  /** false where the method's training routing sees other (later) tokens: its training loss is not comparable. */
  causal: boolean;
}

export interface CompareOptions {
  config: string;
  methods: string[];
  seeds: number;
  out: string;
  sets?: string[];
  /** logged steps averaged for the balance numbers (default: the last 20% of steps, at least 1). */
  window?: number;
  log?: (line: string) => void;
}

const std = (xs: number[]) => (xs.length < 2 ? 0 : Math.sqrt(xs.reduce((s, x) => s + (x - mean(xs)) ** 2, 0) / (xs.length - 1)));

/** Balance over the last `window` records: means of the logged scalars, and experts idle throughout (dead). */
export function endOfRunBalance(recs: MetricRecord[], window: number) {
  const tail = recs.slice(-window);
  const dead = tail[0].expert_load.reduce((n, _, l) => n + tail[0].expert_load[l].filter((_, e) => tail.every((r) => r.expert_load[l][e] === 0)).length, 0);
  return {
    load_cv: mean(tail.map((r) => r.load_cv)),
    max_load_share: mean(tail.map((r) => r.max_load_share)),
    maxvio: mean(tail.map((r) => r.maxvio)),
    dropped_fraction: mean(tail.map((r) => r.dropped_fraction ?? 0)),
    dead_experts: dead,
  };
}

/** Trains every (method, seed) and writes compare.json and compare.md into opts.out. */
export async function runCompare(opts: CompareOptions): Promise<MethodResult[]> {
  const log = opts.log ?? (() => {});
  if (!Number.isInteger(opts.seeds) || opts.seeds < 1) throw new Error(`compare: --seeds must be a positive integer, got ${opts.seeds}`);
  if (opts.methods.length === 0) throw new Error('compare: --methods is empty');
  const overrides = Object.fromEntries(opts.methods.map((m) => [m, methodOverrides(m)])); // unknown names fail before any training
  const base = loadConfig(opts.config, opts.sets ?? []);
  fs.mkdirSync(opts.out, { recursive: true });
  const runs: Record<string, { summary: TrainSummary; recs: MetricRecord[] }[]> = {};
  for (const method of opts.methods) {
    runs[method] = [];
    for (let s = 0; s < opts.seeds; s++) {
      const cfg = loadConfig(opts.config, [...(opts.sets ?? []), ...overrides[method], `seed=${base.seed + s}`, 'log_every=1', 'checkpoint_every=0', 'keep_checkpoints=1']);
      const dir = path.join(opts.out, 'runs', `${method}-seed${base.seed + s}`);
      fs.rmSync(dir, { recursive: true, force: true });
      const summary = await train(cfg, { outDir: dir });
      runs[method].push({ summary, recs: readMetrics(path.join(dir, 'metrics.jsonl')) });
      log(`${method} seed ${base.seed + s}: loss ${summary.final_loss.toFixed(4)}, ${summary.step_time_ms} ms/step`);
    }
  }
  const window = opts.window ?? Math.max(1, Math.round(base.steps * 0.2));
  const reference = opts.methods.includes('none') ? 'none' : opts.methods[0];
  const results: MethodResult[] = opts.methods.map((method) => {
    const rs = runs[method];
    const bal = rs.map((r) => endOfRunBalance(r.recs, window));
    const vals = rs.map((r) => r.summary.val_loss).filter((v): v is number => v !== null);
    return {
      method,
      final_loss: mean(rs.map((r) => r.summary.final_loss)),
      final_loss_std: std(rs.map((r) => r.summary.final_loss)),
      val_loss: vals.length ? mean(vals) : null,
      load_cv: mean(bal.map((b) => b.load_cv)),
      max_load_share: mean(bal.map((b) => b.max_load_share)),
      maxvio: mean(bal.map((b) => b.maxvio)),
      dropped_fraction: mean(bal.map((b) => b.dropped_fraction)),
      dead_experts: mean(bal.map((b) => b.dead_experts)),
      // per seed against the reference method's same seed, then averaged
      step_time_ratio: mean(rs.map((r, i) => r.summary.step_time_ms / runs[reference][i].summary.step_time_ms)),
      step_time_ms: mean(rs.map((r) => r.summary.step_time_ms)),
      causal: METHODS[method].causal !== false,
    };
  });
  const notes = Object.fromEntries(opts.methods.filter((m) => METHODS[m].note).map((m) => [m, METHODS[m].note!]));
  writeJsonAtomic(path.join(opts.out, 'compare.json'), { config: opts.config, command: compareCommand(opts), seeds: opts.seeds, sets: opts.sets ?? [], steps: base.steps, window, reference, methods: results, notes });
  writeFileAtomic(path.join(opts.out, 'compare.md'), compareMarkdown(results, opts, window, base.steps));
  return results;
}

/** The command line that reproduces a comparison: config, methods, seeds and every --set. */
export function compareCommand(opts: Pick<CompareOptions, 'config' | 'seeds' | 'sets'> & { methods?: string[] }): string {
  const sets = (opts.sets ?? []).map((s) => ` --set ${/^[\w.=+-]+$/.test(s) ? s : JSON.stringify(s)}`).join('');
  return `switchyard compare --config ${opts.config}${opts.methods ? ` --methods ${opts.methods.join(',')}` : ''} --seeds ${opts.seeds}${sets}`;
}

/** The markdown table of a comparison (what the README shows). */
export function compareMarkdown(results: MethodResult[], opts: Pick<CompareOptions, 'config' | 'seeds' | 'sets'> & { methods?: string[] }, window: number, steps: number): string {
  const f = (x: number, d = 3) => x.toFixed(d);
  const g = (x: number) => x.toPrecision(3); // losses span 1e-6 (memorised synthetic data) to ~5 (LM)
  const hasVal = results.some((r) => r.val_loss !== null);
  const head = `| method | final loss (± std) |${hasVal ? ' val loss |' : ''} load CV | max load share | MaxVio | dropped | dead experts | step time vs none |`;
  const sep = `|---|---|${hasVal ? '---|' : ''}---|---|---|---|---|---|`;
  const rows = results.map((r) => `| ${r.method}${r.causal ? '' : ' †'} | ${g(r.final_loss)} ± ${g(r.final_loss_std)} |${hasVal ? ` ${r.val_loss === null ? '—' : f(r.val_loss, 4)} |` : ''} ${f(r.load_cv)} | ${(100 * r.max_load_share).toFixed(1)}% | ${f(r.maxvio)} | ${(100 * r.dropped_fraction).toFixed(1)}% | ${f(r.dead_experts, 1)} | ${f(r.step_time_ratio, 2)}× |`);
  const leaks = results.filter((r) => !r.causal).map((r) => `\n† ${METHODS[r.method]?.note ?? `${r.method}: routing is not causal in training`}\n`);
  return `\`${compareCommand(opts)}\` — ${steps} steps; balance = mean over the last ${window} steps; means over ${opts.seeds} seed(s)\n\n${head}\n${sep}\n${rows.join('\n')}\n${leaks.join('')}`;
}

/** The terminal table of a comparison. */
export function compareTable(results: MethodResult[]): string {
  return summaryTable(results.map((r) => ({ ...r, method: r.causal ? r.method : `${r.method} †`, val_loss: r.val_loss ?? '—' })) as unknown as Record<string, number>[],
    ['method', { key: 'final_loss', digits: 6 }, { key: 'final_loss_std', digits: 6 }, { key: 'load_cv', digits: 3 }, { key: 'max_load_share', digits: 3 }, { key: 'maxvio', digits: 3 }, { key: 'dropped_fraction', digits: 3 }, { key: 'dead_experts', digits: 1 }, { key: 'step_time_ratio', digits: 2 }]);
}
