/**
 * The training progress display: cli-progress on a TTY, plain log lines otherwise (CI, nohup). The load bar
 * comes from the CLI's onRecord (report/terminal.ts's loadBar).
 */
import cliProgress from 'cli-progress';
import { formatDuration, formatNumber } from '../report/terminal.ts';

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
