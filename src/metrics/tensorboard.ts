/**
 * TensorBoard logging of a run (`logging.tensorboard: true`): each metrics.jsonl record becomes one Summary
 * event in RUN/tensorboard/events.out.tfevents.* with the tags below (docs/metrics.md has the table).
 *
 * Restarts: every event file opens with file_version and a SessionLog START. TensorBoard treats the first
 * START of a run as the start and each later one as a restart, dropping every point with step ≥ the START's
 * step (plugin_event_accumulator.py, _CheckForRestartAndMaybePurge); its Rust data server drops, per tag, the
 * points at steps ≥ a new point's step. A resumed run from checkpoint step S writes a new file whose START
 * is at S + 1: the points logged after the checkpoint by the killed run vanish, as they do from metrics.jsonl.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { MetricRecord } from './jsonl.ts';
import { loadCv, maxLoadShare, maxVio } from './balance.ts';
import { EventFileWriter, listEventFiles, SessionStatus, type Histogram, type SummaryValue } from './tfevents.ts';

/** The folder inside a run folder that holds the event files. */
export const TENSORBOARD_DIR = 'tensorboard';

/** Quantiles reported across MoE layers. */
export const LAYER_QUANTILES = [50, 90, 95] as const;

/**
 * The q-th percentile with linear interpolation between order statistics (numpy's default):
 * sorted x, h = (n − 1)·q/100, value = x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋]).
 */
export function percentile(values: ArrayLike<number>, q: number): number {
  if (values.length < 1) throw new Error('percentile: values must be non-empty, got length 0');
  if (!(q >= 0 && q <= 100)) throw new Error(`percentile: q must be in [0, 100], got ${q}`);
  const x = Float64Array.from(values).sort();
  const h = ((x.length - 1) * q) / 100;
  const lo = Math.floor(h);
  return lo + 1 < x.length ? x[lo] + (h - lo) * (x[lo + 1] - x[lo]) : x[lo];
}

/** Layer tag part: layer_03 (two digits at least, so tags sort by layer). */
export function layerTag(l: number, layers: number): string {
  return `layer_${String(l).padStart(Math.max(2, String(layers - 1).length), '0')}`;
}

/**
 * Histogram of the expert ids the layer's assignments went to: bucket i covers (i − ½, i + ½] and holds load_i,
 * so TensorBoard's histogram shows the load per expert (num = Σ load, sum = Σ i·load_i, sum_squares = Σ i²·load_i).
 */
export function expertLoadHistogram(load: ArrayLike<number>): Histogram {
  let num = 0, sum = 0, sq = 0, min = Infinity, max = -Infinity;
  for (let i = 0; i < load.length; i++) {
    const c = load[i];
    if (!(c >= 0 && Number.isFinite(c))) throw new Error(`expertLoadHistogram: load[${i}] = ${c} must be a finite number ≥ 0`);
    num += c; sum += i * c; sq += i * i * c;
    if (c > 0) { min = Math.min(min, i); max = Math.max(max, i); }
  }
  if (num === 0) { min = 0; max = 0; }
  return { min, max, num, sum, sum_squares: sq, bucket_limit: Array.from(load, (_, i) => i + 0.5), bucket: Array.from(load) };
}

/** Scalars of a record: [tag, value] for every finite number (nulls, i.e. non-finite values, are left out). */
export function recordScalars(r: MetricRecord): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  const add = (tag: string, v: number | null | undefined) => { if (typeof v === 'number' && Number.isFinite(v)) out.push([tag, v]); };
  add('train/loss', r.loss);
  add('train/lr', r.lr);
  add('train/grad_norm', r.grad_norm);
  add('train/tokens_per_s', r.tokens_per_s);
  add('val/loss', r.val_loss);
  add('val/ppl', r.val_ppl);
  for (const name of Object.keys(r.aux).sort()) add(`aux/${name}`, r.aux[name]);
  add('moe/load_cv', r.load_cv);
  add('moe/max_load_share', r.max_load_share);
  add('moe/maxvio', r.maxvio);
  add('moe/router_entropy', r.router_entropy);
  add('moe/dropped_fraction', r.dropped_fraction);
  const L = r.expert_load.length;
  if (L === 0) return out;
  const cv = r.expert_load.map((load) => loadCv(load));
  const share = r.expert_load.map((load) => maxLoadShare(load));
  const vio = r.expert_load.map((load) => maxVio(load));
  for (const [name, xs] of [['load_cv', cv], ['maxvio', vio]] as const) {
    for (const q of LAYER_QUANTILES) add(`moe/${name}/p${q}`, percentile(xs, q));
    add(`moe/${name}/max`, Math.max(...xs));
  }
  for (let l = 0; l < L; l++) {
    const t = `moe/${layerTag(l, L)}`;
    add(`${t}/load_cv`, cv[l]);
    add(`${t}/max_load_share`, share[l]);
    add(`${t}/maxvio`, vio[l]);
  }
  return out;
}

/** Every Summary.Value of a record: its scalars, then one expert-load histogram per MoE layer. */
export function recordValues(r: MetricRecord): SummaryValue[] {
  const L = r.expert_load.length;
  return [
    ...recordScalars(r).map(([tag, v]) => ({ tag, simple_value: v })),
    ...r.expert_load.map((load, l) => ({ tag: `moe/${layerTag(l, L)}/expert_load`, histo: expertLoadHistogram(load) })),
  ];
}

/** Options of TensorBoardLogger. */
export interface TensorBoardOptions {
  /** the checkpoint step a resumed run continues from (absent: a fresh run, old event files are removed). */
  resumedFrom?: number;
  /** clock in ms (tests). */
  now?: () => number;
}

/** Writes a run's records as TensorBoard events into RUN/tensorboard/, one event file per (re)start. */
export class TensorBoardLogger {
  readonly dir: string;
  private readonly writer: EventFileWriter;

  /** A fresh run clears old event files; a resumed one keeps them and opens a new file whose START purges later steps. */
  constructor(runDir: string, opts: TensorBoardOptions = {}) {
    this.dir = path.join(runDir, TENSORBOARD_DIR);
    const resumed = opts.resumedFrom !== undefined;
    if (resumed && !(Number.isInteger(opts.resumedFrom) && opts.resumedFrom! >= 0)) {
      throw new Error(`TensorBoardLogger: resumedFrom must be an integer ≥ 0, got ${opts.resumedFrom}`);
    }
    if (!resumed) for (const f of listEventFiles(this.dir)) fs.rmSync(f);
    this.writer = new EventFileWriter(this.dir, opts.now);
    const startStep = resumed ? opts.resumedFrom! + 1 : 0;
    this.writer.write({ step: startStep, session_log: { status: SessionStatus.START, msg: resumed ? `resumed from checkpoint step ${opts.resumedFrom}` : 'start' } });
  }

  /** The event file being written. */
  get file(): string {
    return this.writer.path;
  }

  /** Writes one record as a Summary event at its step. */
  write(r: MetricRecord): void {
    this.writer.writeSummary(r.step, recordValues(r));
  }

  /** Closes the event file. Idempotent. */
  close(): void {
    this.writer.close();
  }
}
