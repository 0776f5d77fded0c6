/**
 * metrics.jsonl: one JSON object per logged training step, appended as the run goes.
 * Each line is handed to the kernel in one write before write() returns, so a SIGKILL loses at most
 * the line being written; the reader tolerates that torn last line and is strict about everything else.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import { readRegularText } from '../io/regular_file.ts';
import { MAX_EP_RANKS, MAX_EXPERTS, MAX_LAYERS } from '../limits.ts';

/** Largest metrics.jsonl read whole (V8 strings end near 512 MiB). */
export const MAX_METRICS_BYTES = 480 * 1024 ** 2;

export { toJsonLine, type EpRankTiming, type MetricRecord } from './record.ts';
import { toJsonLine, type MetricRecord } from './record.ts';

/** Appends MetricRecords to a file, one line each, handed to the kernel on every write. */
export class MetricsWriter {
  readonly path: string;
  private fd: number | null;
  private lastStep: number;
  private readonly fsync: boolean;

  /** Opens `file` for appending; a torn last line left by a killed run is cut off first. */
  constructor(file: string, opts: { fsync?: boolean } = {}) {
    if (typeof file !== 'string' || file.length === 0) throw new Error(`MetricsWriter: file must be a non-empty path, got ${String(file)}`);
    this.path = file;
    this.fsync = opts.fsync ?? false;
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    this.lastStep = -1;
    // O_NOFOLLOW: a planted symbolic link is refused (ELOOP), never appended through.
    const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK, 0o644);
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new Error(`MetricsWriter: ${file} is not a regular file`);
      if (st.size > MAX_METRICS_BYTES) throw new Error(`MetricsWriter: ${file} is ${st.size} bytes, above the ${MAX_METRICS_BYTES}-byte bound`);
      if (st.size > 0) {
        const { records, torn } = parseMetrics(fs.readFileSync(fd, 'utf8'), file);
        // Appending after a torn line would glue the next record onto it: a corrupt middle line.
        if (torn !== null) fs.ftruncateSync(fd, st.size - Buffer.byteLength(torn, 'utf8'));
        if (records.length > 0) this.lastStep = records[records.length - 1].step;
      }
    } catch (e) {
      fs.closeSync(fd);
      if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw new Error(`MetricsWriter: ${file} is a symbolic link; metrics are never written through a link`);
      throw e;
    }
    this.fd = fd;
  }

  /** Appends one record; steps must strictly increase (a duplicate would mean a resume that did not truncate). */
  write(record: MetricRecord): void {
    if (this.fd === null) throw new Error(`MetricsWriter: ${this.path} is closed`);
    const line = toJsonLine(record);
    if (record.step <= this.lastStep) throw new Error(`MetricsWriter: step ${record.step} is not after the last written step ${this.lastStep} in ${this.path}`);
    const buf = Buffer.from(line, 'utf8');
    // One writeSync per line (looping only on a short write): no user-space buffer to lose on SIGKILL.
    let off = 0;
    while (off < buf.length) off += fs.writeSync(this.fd, buf, off, buf.length - off);
    if (this.fsync) fs.fsyncSync(this.fd);
    this.lastStep = record.step;
  }

  /** Closes the file; later writes throw. Idempotent. */
  close(): void {
    if (this.fd === null) return;
    fs.closeSync(this.fd);
    this.fd = null;
  }
}

/** Checks one parsed line against MetricRecord's required fields; returns an error message or null. */
function recordError(v: unknown): string | null {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return 'is not a JSON object';
  const r = v as Record<string, unknown>;
  const num = (k: string) => typeof r[k] === 'number';
  const numOrNull = (k: string) => typeof r[k] === 'number' || r[k] === null;
  if (!(Number.isInteger(r.step) && (r.step as number) >= 0)) return `step must be an integer ≥ 0, got ${JSON.stringify(r.step)}`;
  for (const k of ['loss', 'grad_norm', 'tokens_per_s']) if (!numOrNull(k)) return `${k} must be a number or null, got ${JSON.stringify(r[k])}`;
  for (const k of ['lr', 'load_cv', 'max_load_share', 'maxvio', 'router_entropy']) if (!num(k)) return `${k} must be a number, got ${JSON.stringify(r[k])}`;
  if (r.aux === null || typeof r.aux !== 'object' || Array.isArray(r.aux)) return `aux must be an object, got ${JSON.stringify(r.aux)}`;
  if (!Array.isArray(r.expert_load) || !r.expert_load.every((row) => Array.isArray(row))) return 'expert_load must be an array of per-layer arrays';
  if (r.expert_load.length > MAX_LAYERS) return `expert_load has ${r.expert_load.length} layers, above the bound ${MAX_LAYERS}`;
  if (r.expert_load.some((row) => (row as unknown[]).length > MAX_EXPERTS)) return `expert_load has a layer of more than ${MAX_EXPERTS} experts (the bound)`;
  if (r.ep !== undefined) {
    if (!Array.isArray(r.ep) || r.ep.length > MAX_EP_RANKS) return `ep must be an array of at most ${MAX_EP_RANKS} per-rank timings`;
    for (const t of r.ep as unknown[]) {
      const rank = (t as { rank?: unknown } | null)?.rank;
      if (!Number.isInteger(rank) || (rank as number) < 0 || (rank as number) >= MAX_EP_RANKS) return `ep[].rank = ${JSON.stringify(rank)?.slice(0, 40)}; allowed an integer in 0..${MAX_EP_RANKS - 1}`;
    }
  }
  if (!Array.isArray(r.dropped)) return `dropped must be an array (per layer), got ${JSON.stringify(r.dropped)}`;
  return null;
}

/** Parsed metrics text: the records and the torn last line (no '\n', not valid JSON) or null. */
export interface ParsedMetrics {
  records: MetricRecord[];
  torn: string | null;
}

/**
 * Parses metrics.jsonl text. A last line without '\n' that does not parse is a torn write and is
 * skipped; any other bad line throws, naming `source` and the 1-based line number.
 */
export function parseMetrics(text: string, source = 'metrics.jsonl'): ParsedMetrics {
  const lines = text.split('\n');
  const tail = lines.pop()!; // '' when the text ends with '\n'
  let torn: string | null = null;
  const records: MetricRecord[] = [];
  const take = (line: string, n: number): void => {
    if (line.trim() === '') throw new Error(`${source}: line ${n} is empty`);
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (err) {
      throw new Error(`${source}: line ${n} is not valid JSON (${(err as Error).message}): ${line.slice(0, 80)}`);
    }
    const bad = recordError(v);
    if (bad) throw new Error(`${source}: line ${n}: ${bad}`);
    const rec = v as MetricRecord;
    const prev = records.length > 0 ? records[records.length - 1].step : -1;
    if (rec.step <= prev) throw new Error(`${source}: line ${n}: step ${rec.step} does not follow step ${prev} (duplicate or out of order)`);
    records.push(rec);
  };
  lines.forEach((line, i) => take(line.endsWith('\r') ? line.slice(0, -1) : line, i + 1));
  if (tail !== '') {
    let complete = false;
    try {
      JSON.parse(tail);
      complete = true;
    } catch {
      torn = tail; // killed mid-write
    }
    if (complete) take(tail, lines.length + 1);
  }
  return { records, torn };
}

/** Reads metrics.jsonl: tolerant of a torn last line (a killed run), strict otherwise (errors name the line). */
export function readMetrics(file: string): MetricRecord[] {
  return parseMetrics(readRegularText(file, MAX_METRICS_BYTES, 'metrics file'), file).records;
}

/**
 * Drops every line with step > `step` (and a torn last line), rewriting the file atomically, so a
 * resumed run appends without duplicate steps. Returns the number of records removed; no file → 0.
 * Call it before opening a MetricsWriter on the file.
 */
export function truncateMetricsAfter(file: string, step: number): number {
  if (!Number.isInteger(step) || step < 0) throw new Error(`truncateMetricsAfter: step must be an integer ≥ 0, got ${step}`);
  if (!fs.existsSync(file)) return 0;
  const text = fs.readFileSync(file, 'utf8');
  const { records, torn } = parseMetrics(text, file);
  const kept = records.filter((r) => r.step <= step);
  if (kept.length === records.length && torn === null) return 0;
  // Rewrite from the original lines (not re-serialised): kept bytes stay exactly as written.
  const lines = text.split('\n').slice(0, kept.length);
  writeFileAtomic(file, lines.map((l) => `${l}\n`).join(''));
  return records.length - kept.length;
}
