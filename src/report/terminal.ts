/**
 * Terminal views of expert load for users on SSH: a one-line load bar, a block heatmap, aligned tables,
 * and the training progress display (cli-progress on a TTY, plain log lines otherwise, e.g. under CI or nohup).
 * Widths count UTF-16 code units; every glyph used here is one column wide.
 */
import cliProgress from 'cli-progress';
import { checkLoad, maxLoadShare } from '../metrics/balance.ts';

const BLOCKS = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
const SHADES = [' ', '░', '▒', '▓', '█'];
/** An expert with no tokens: visibly empty, unlike the lowest block. */
const ZERO = '·';

/** Averages `values` into `n` contiguous buckets (bucket g = [⌊g·len/n⌋, ⌊(g+1)·len/n⌋)); unchanged if len ≤ n. */
export function downsample(values: ArrayLike<number>, n: number): number[] {
  if (!Number.isInteger(n) || n < 1) throw new Error(`downsample: n must be a positive integer, got ${n}`);
  if (values.length <= n) return Array.from(values);
  return Array.from({ length: n }, (_, g) => {
    const lo = Math.floor((g * values.length) / n);
    const hi = Math.floor(((g + 1) * values.length) / n);
    let s = 0;
    for (let i = lo; i < hi; i++) s += values[i];
    return s / (hi - lo);
  });
}

/**
 * One line, one glyph per expert: '·' for zero load, else ▁…█ = BLOCKS[⌈8·load/max⌉ − 1], then the max share
 * and its expert, e.g. [10, 30, 0, 0] → "▃█·· max 75.0% e1". More than `width` experts are averaged in buckets.
 */
export function loadBar(load: ArrayLike<number>, width = 64): string {
  const sum = checkLoad(load, 'loadBar');
  if (!Number.isInteger(width) || width < 1) throw new Error(`loadBar: width must be a positive integer, got ${width}`);
  const shown = downsample(load, width);
  const top = Math.max(...shown);
  const bar = shown.map((v) => (v > 0 ? BLOCKS[Math.min(7, Math.ceil((8 * v) / top) - 1)] : ZERO)).join('');
  if (sum === 0) return `${bar} no load`;
  let arg = 0;
  for (let i = 1; i < load.length; i++) if (load[i] > load[arg]) arg = i;
  return `${bar} max ${(100 * maxLoadShare(load)).toFixed(1)}% e${arg}`;
}

export interface HeatmapOptions {
  /** one label per row (default: row index). */
  rowLabels?: string[];
  title?: string;
  /** labels printed under the first and last column (e.g. first and last step). */
  colLabels?: [string, string];
  /** columns to draw at most; wider rows are averaged into buckets (default 80). */
  maxCols?: number;
  /** 'global': shade against the max of all cells (default); 'row': against each row's max. */
  scale?: 'global' | 'row';
}

/**
 * Block heatmap, one text line per row: cell = SHADES[⌈4·v/max⌉] (' ' zero, ░ ≤25%, ▒ ≤50%, ▓ ≤75%, █ ≤100%
 * of max), framed with the row labels, an axis, optional column labels and a legend line.
 */
export function heatmap(rows: ArrayLike<number>[], opts: HeatmapOptions = {}): string {
  if (rows.length < 1) throw new Error('heatmap: rows must be non-empty, got 0 rows');
  const cols = rows[0].length;
  rows.forEach((r, i) => {
    if (r.length !== cols) throw new Error(`heatmap: row ${i} has ${r.length} columns, row 0 has ${cols}`);
    checkLoad(r, `heatmap (row ${i})`);
  });
  const maxCols = opts.maxCols ?? 80;
  const labels = opts.rowLabels ?? rows.map((_, i) => String(i));
  if (labels.length !== rows.length) throw new Error(`heatmap: got ${labels.length} row labels for ${rows.length} rows`);
  const shown = rows.map((r) => downsample(r, maxCols));
  const n = shown[0].length;
  const globalMax = Math.max(...shown.map((r) => Math.max(...r)));
  const w = Math.max(...labels.map((l) => l.length));
  const out: string[] = [];
  if (opts.title) out.push(opts.title);
  shown.forEach((r, i) => {
    const top = opts.scale === 'row' ? Math.max(...r) : globalMax;
    const cells = r.map((v) => (v > 0 ? SHADES[Math.min(4, Math.ceil((4 * v) / top))] : SHADES[0])).join('');
    out.push(`${labels[i].padStart(w)} │${cells}│`);
  });
  out.push(`${' '.repeat(w)} └${'─'.repeat(n)}┘`);
  if (opts.colLabels) {
    const [left, right] = opts.colLabels;
    const gap = n - left.length - right.length;
    out.push(`${' '.repeat(w + 2)}${gap >= 1 ? left + ' '.repeat(gap) + right : left}`);
  }
  const of = opts.scale === 'row' ? 'of row max' : `of max ${formatNumber(globalMax, 3)}`;
  const bucketNote = cols > n ? ` (${cols} columns averaged into ${n})` : '';
  out.push(`${' '.repeat(w + 2)}░ ≤25% ▒ ≤50% ▓ ≤75% █ ≤100% ${of}${bucketNote}`);
  return out.join('\n');
}

/** Integers as they are, other numbers with `digits` decimals; null/undefined/NaN as '–'. */
export function formatNumber(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '−∞';
  return Number.isInteger(v) ? String(v) : v.toFixed(digits);
}

/** A table column: a key, or a key with header label, decimals and alignment (numbers right, text left). */
export type TableColumn = string | { key: string; label?: string; digits?: number; align?: 'left' | 'right' };

/** Aligned text table: header, a ─ rule, one line per row; columns separated by two spaces. */
export function summaryTable(rows: Record<string, string | number | null | undefined>[], columns: TableColumn[]): string {
  if (columns.length < 1) throw new Error('summaryTable: columns must be non-empty');
  const specs = columns.map((c) => (typeof c === 'string' ? { key: c } : c));
  const cells = rows.map((r) => specs.map((c) => {
    const v = r[c.key];
    return typeof v === 'number' || v === null || v === undefined ? formatNumber(v, c.digits) : v;
  }));
  const align = specs.map((c) => c.align ?? (rows.every((r) => typeof r[c.key] !== 'string') ? 'right' : 'left'));
  return textTable(specs.map((c) => c.label ?? c.key), cells, align, true);
}

/** A plain table for the plan and simulate commands: the first column left-aligned, the others right, no rule. */
export function formatTable(header: string[], rows: string[][]): string {
  return textTable(header, rows, header.map((_, c) => (c === 0 ? 'left' : 'right')), false);
}

/** The one table layout: columns as wide as their widest cell, two spaces apart, an optional ─ rule under the header. */
export function textTable(header: string[], rows: string[][], align: ('left' | 'right')[], rule: boolean): string {
  const width = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]): string => width.map((w, c) => (align[c] === 'right' ? (r[c] ?? '').padStart(w) : (r[c] ?? '').padEnd(w))).join('  ').trimEnd();
  return [line(header), ...(rule ? [line(width.map((w) => '─'.repeat(w)))] : []), ...rows.map(line)].join('\n');
}

/** Seconds as milliseconds with 3 decimals. */
export const ms = (s: number): string => (s * 1e3).toFixed(3);
/** A ratio as a percentage with 1 decimal. */
export const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
/** A number with d decimals. */
export const fix = (x: number, d = 3): string => (Number.isFinite(x) ? x.toFixed(d) : '-');
/** Bytes in MB (1e6) with 1 decimal. */
export const mb = (b: number): string => `${(b / 1e6).toFixed(1)} MB`;

/** Seconds as 45s, 3m05s or 2h07m. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
