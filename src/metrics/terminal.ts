/**
 * Terminal views of expert load for users on SSH: a one-line load bar, a block heatmap, aligned tables,
 * and the training progress display (cli-progress on a TTY, plain log lines otherwise, e.g. under CI or nohup).
 * Widths count UTF-16 code units; every glyph used here is one column wide.
 */
import cliProgress from 'cli-progress';
import { checkLoad, maxLoadShare } from './balance.ts';

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
  const table = specs.map((c) => {
    const cells = rows.map((r) => {
      const v = r[c.key];
      return typeof v === 'number' || v === null || v === undefined ? formatNumber(v, c.digits) : v;
    });
    const numeric = rows.every((r) => typeof r[c.key] !== 'string');
    const align = c.align ?? (numeric ? 'right' : 'left');
    const header = c.label ?? c.key;
    const width = Math.max(header.length, ...cells.map((s) => s.length));
    const pad = (s: string) => (align === 'right' ? s.padStart(width) : s.padEnd(width));
    return { lines: [pad(header), '─'.repeat(width), ...cells.map(pad)] };
  });
  const lines: string[] = [];
  for (let i = 0; i < rows.length + 2; i++) lines.push(table.map((c) => c.lines[i]).join('  ').trimEnd());
  return lines.join('\n');
}

/** Seconds as 45s, 3m05s or 2h07m. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export interface ProgressInfo {
  loss?: number | null;
  load_cv?: number;
  maxvio?: number;
  /** a loadBar() line. */
  loadBar?: string;
}

export interface ProgressOptions {
  /** the last step of the run. */
  total: number;
  /** draw a live bar (process.stderr.isTTY, usually); false → plain log lines. */
  tty: boolean;
  /** step the run starts from (resume); default 0. */
  start?: number;
  /** default process.stderr. */
  stream?: NodeJS.WritableStream;
  /** plain mode: a line every this many steps (and at the last step); default ⌈(total − start) / 20⌉. */
  logEvery?: number;
  /** clock in ms, for tests; default Date.now. */
  now?: () => number;
}

export interface Progress {
  update(step: number, info: ProgressInfo): void;
  /** Prints a line (e.g. a validation result) without breaking the bar. */
  log(line: string): void;
  stop(): void;
}

function fields(info: ProgressInfo): { loss: string; load_cv: string; maxvio: string; loadBar: string } {
  return {
    loss: info.loss === null || info.loss === undefined || !Number.isFinite(info.loss) ? 'nan' : info.loss.toFixed(4),
    load_cv: formatNumber(info.load_cv ?? null, 3),
    maxvio: formatNumber(info.maxvio ?? null, 3),
    loadBar: info.loadBar ?? '',
  };
}

/** Training progress: cli-progress bar with ETA, loss and balance on a TTY; periodic plain lines otherwise. */
export function createProgress(opts: ProgressOptions): Progress {
  const { total, tty } = opts;
  const start = opts.start ?? 0;
  if (!Number.isInteger(total) || total < 1) throw new Error(`createProgress: total must be a positive integer, got ${total}`);
  if (!Number.isInteger(start) || start < 0 || start > total) throw new Error(`createProgress: start must be an integer in 0..${total}, got ${start}`);
  const stream = opts.stream ?? process.stderr;
  return tty ? ttyProgress(total, start, stream) : plainProgress(total, start, stream, opts);
}

function ttyProgress(total: number, start: number, stream: NodeJS.WritableStream): Progress {
  const bar = new cliProgress.SingleBar({
    format: '{bar} {percentage}% | step {value}/{total} | ETA {eta_formatted} | loss {loss} | cv {load_cv} maxvio {maxvio} | {loadBar}',
    stream,
    barsize: 24,
    hideCursor: false, // a SIGKILLed run must not leave the user's cursor hidden
    gracefulExit: false, // the trainer owns SIGINT (it checkpoints, then stops the bar)
    etaBuffer: 50,
  });
  bar.start(total, start, fields({}));
  let stopped = false;
  return {
    update: (step, info) => bar.update(step, fields(info)),
    log: (line) => {
      stream.write(`\r\x1b[K${line}\n`);
      bar.render();
    },
    stop: () => {
      if (!stopped) bar.stop();
      stopped = true;
    },
  };
}

function plainProgress(total: number, start: number, stream: NodeJS.WritableStream, opts: ProgressOptions): Progress {
  const now = opts.now ?? Date.now;
  const every = opts.logEvery ?? Math.max(1, Math.ceil((total - start) / 20));
  if (!Number.isInteger(every) || every < 1) throw new Error(`createProgress: logEvery must be a positive integer, got ${every}`);
  const t0 = now();
  let last = start;
  return {
    update: (step, info) => {
      if (step - last < every && step !== total) return;
      last = step;
      const f = fields(info);
      const elapsed = (now() - t0) / 1000;
      const done = step - start;
      const eta = done > 0 ? formatDuration((elapsed / done) * (total - step)) : '?';
      const pct = Math.floor((100 * step) / total);
      const parts = [`step ${step}/${total} (${pct}%)`, `loss ${f.loss}`, `cv ${f.load_cv} maxvio ${f.maxvio}`];
      if (f.loadBar) parts.push(f.loadBar);
      parts.push(`elapsed ${formatDuration(elapsed)} eta ${eta}`);
      stream.write(`${parts.join(' | ')}\n`);
    },
    log: (line) => {
      stream.write(`${line}\n`);
    },
    stop: () => {},
  };
}
