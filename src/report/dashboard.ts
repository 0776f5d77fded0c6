/**
 * `switchyard dashboard RUN_DIR…` and `train --dashboard`: a local web page that shows the report's charts of one
 * or more runs (side by side) while they train. The server follows each metrics.jsonl (follow.ts), rebuilds the
 * run's chart specs with the report's own code (runSections, live view) and pushes them to the page as
 * server-sent events; the page redraws with the report's chart script (page.ts CHART_LIB).
 *
 * Node's http module serves the three routes; better-sse does the event-stream protocol (headers, framing,
 * keep-alive comments, reconnection delay, broadcasting to every open page). It binds 127.0.0.1 unless a host is
 * given, and on a loopback address it answers only requests whose Host header names a loopback address (a web
 * page elsewhere cannot read the runs through DNS rebinding).
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { createChannel, createSession } from 'better-sse';
import type { MetricRecord } from '../metrics/jsonl.ts';
import { parseYamlSafe } from '../io/yaml_safe.ts';
import { cell, pctCell, type ChartSpec, type Section } from './charts.ts';
import { MetricsFollower } from './follow.ts';
import type { RunData } from './load.ts';
import { esc, section, table } from './page.ts';
import { configTable, DEFAULT_LIMITS, runSections, type RunLimits } from './run_charts.ts';
import { dashboardHtml } from './dashboard_page.ts';

/** Default port (TensorBoard's 6006 plus one hundred, so both can run). */
export const DEFAULT_DASHBOARD_PORT = 6106;

/** Options of startDashboard. */
export interface DashboardOptions {
  /** run folders, shown side by side in this order. */
  runs: string[];
  /** TCP port; 0 picks a free one (default 6106). */
  port?: number;
  /** interface to bind (default 127.0.0.1). */
  host?: string;
  /** how often each metrics.jsonl is checked, ms (default 250). */
  pollMs?: number;
  /** at most one update per run per this many ms (default 500). */
  minIntervalMs?: number;
  /** accept a folder that does not exist yet or holds no run yet (train --dashboard starts before its first step). */
  allowPending?: boolean;
  limits?: Partial<RunLimits>;
}

/** A running dashboard. */
export interface Dashboard {
  url: string;
  port: number;
  host: string;
  /** checks every run now (the trainer calls it after each logged step). */
  poke(): void;
  /** the current payload of every run (what the page last received or will receive). */
  snapshot(): RunPayload[];
  close(): Promise<void>;
}

/** What the page receives for one run. */
export interface RunPayload {
  index: number;
  name: string;
  dir: string;
  status: 'waiting' | 'training' | 'stopped' | 'finished' | 'error';
  message: string | null;
  step: number | null;
  totalSteps: number | null;
  records: number;
  /** times metrics.jsonl started over (a resumed run rewrites it). */
  resets: number;
  etaS: number | null;
  /** server time (ms since epoch) of the last change to metrics.jsonl. */
  changedAt: number | null;
  headHtml: string;
  /** changes when the set of charts changes: the page then rebuilds the run's column. */
  layoutKey: string;
  html: string;
  charts: ChartSpec[];
}

/** Checks a run folder argument; returns the folder (a metrics.jsonl path is taken as its folder). */
export function checkRunDir(p: string, allowPending = false): string {
  if (typeof p !== 'string' || p.length === 0) throw new Error(`dashboard: a run folder must be a non-empty path, got ${JSON.stringify(p)}`);
  const dir = path.basename(p) === 'metrics.jsonl' ? path.dirname(p) : p;
  if (!fs.existsSync(dir)) {
    if (allowPending) return dir;
    throw new Error(`dashboard: ${dir} does not exist (give a run folder: the --out of switchyard train)`);
  }
  if (!fs.statSync(dir).isDirectory()) throw new Error(`dashboard: ${dir} is a file, not a run folder (give the folder that holds metrics.jsonl)`);
  if (!allowPending && !fs.existsSync(path.join(dir, 'metrics.jsonl')) && !fs.existsSync(path.join(dir, 'config.yaml'))) {
    const hint = fs.existsSync(path.join(dir, 'compare.json')) ? ' (a compare folder: give its runs/<method>-seed<N> folders)' : '';
    throw new Error(`dashboard: ${dir} is not a run folder: it holds neither metrics.jsonl nor config.yaml${hint}`);
  }
  return dir;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** One followed run folder: its metrics.jsonl and config.yaml. */
export class RunSource {
  readonly follower: MetricsFollower;
  config: Record<string, unknown> | null = null;
  configText: string | null = null;
  private configMtime = -1;
  changedAt: number | null = null;
  /** mtimes (ms) of summary.json and metrics.jsonl, −1 when absent: a summary written after the last record means the run ended. */
  summaryMtime = -1;
  metricsMtime = -1;
  /** [time ms, last step] when new records arrived (the last minute), for the ETA. */
  arrivals: Array<[number, number]> = [];
  configError: string | null = null;

  constructor(readonly index: number, readonly dir: string) {
    this.follower = new MetricsFollower(path.join(dir, 'metrics.jsonl'));
  }

  /** Reads new records (and config.yaml when it changed); true when something changed. */
  poll(): boolean {
    let changed = false;
    const cfgFile = path.join(this.dir, 'config.yaml');
    const st = fs.statSync(cfgFile, { throwIfNoEntry: false });
    const mtime = st ? st.mtimeMs : -1;
    if (mtime !== this.configMtime) {
      this.configMtime = mtime;
      this.configText = st ? fs.readFileSync(cfgFile, 'utf8') : null;
      try {
        const parsed = this.configText === null ? null : parseYamlSafe(this.configText, cfgFile);
        this.config = isObject(parsed) ? parsed : null;
        this.configError = null;
      } catch (e) {
        this.config = null;
        this.configError = (e as Error).message;
      }
      changed = true;
    }
    const sum = fs.statSync(path.join(this.dir, 'summary.json'), { throwIfNoEntry: false });
    const sumMtime = sum ? sum.mtimeMs : -1;
    if (sumMtime !== this.summaryMtime) { this.summaryMtime = sumMtime; changed = true; }
    const r = this.follower.poll();
    const met = fs.statSync(this.follower.file, { throwIfNoEntry: false });
    this.metricsMtime = met ? met.mtimeMs : -1;
    if (r.changed) {
      const now = Date.now();
      // When the file last changed (not when it was read): a folder opened later shows its true age.
      this.changedAt = met ? met.mtimeMs : now;
      changed = true;
      const recs = this.follower.records;
      if (r.reset) this.arrivals = [];
      if (recs.length) this.arrivals.push([now, recs[recs.length - 1].step]);
      while (this.arrivals.length > 2 && now - this.arrivals[0][0] > 60_000) this.arrivals.shift();
    }
    return changed;
  }
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** "1 h 02 min", "3 min 05 s", "12 s". */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '–';
  const t = Math.round(s);
  if (t >= 3600) return `${Math.floor(t / 3600)} h ${String(Math.floor((t % 3600) / 60)).padStart(2, '0')} min`;
  if (t >= 60) return `${Math.floor(t / 60)} min ${String(t % 60).padStart(2, '0')} s`;
  return `${t} s`;
}

/**
 * ETA of a run still training. From the steps seen arriving when they span ≥ 3 s: (total − step) · Δt / Δstep over
 * the arrivals of the last minute (evaluations and checkpoints included). Otherwise from the logged throughput:
 * (total − step) · tokens per step / tokens/s, tokens per step = batch_size · seq_len · grad_accum_steps and
 * tokens/s the median of the last 5 logged values.
 */
export function etaSeconds(records: MetricRecord[], config: Record<string, unknown> | null, arrivals: Array<[number, number]> = []): number | null {
  if (!config || !records.length) return null;
  const total = num(config.steps);
  if (total === null) return null;
  const left = Math.max(0, total - records[records.length - 1].step);
  if (arrivals.length >= 2) {
    const [t0, s0] = arrivals[0], [t1, s1] = arrivals[arrivals.length - 1];
    if (t1 - t0 >= 3000 && s1 > s0) return (left * (t1 - t0)) / 1000 / (s1 - s0);
  }
  const b = num(config.batch_size), s = num(config.seq_len), g = num(config.grad_accum_steps) ?? 1;
  if (b === null || s === null) return null;
  const tps = records.slice(-5).map((r) => r.tokens_per_s).filter((v): v is number => typeof v === 'number' && v > 0).sort((x, y) => x - y);
  if (!tps.length) return null;
  return (left * b * s * g) / tps[Math.floor(tps.length / 2)];
}

/** Gives every chart and selector of a run a prefix, so several runs share one page. */
function prefixed(sections: Section[], p: string): Section[] {
  return sections.map((s) => ({
    ...s,
    selectors: s.selectors?.map((sel) => ({ ...sel, id: p + sel.id })),
    charts: s.charts.map((c) => ({ ...c, id: p + c.id, ...(c.layered ? { layered: { ...c.layered, selector: p + c.layered.selector } } : {}) })),
  }));
}

function lastNum(records: MetricRecord[], f: (r: MetricRecord) => number | null | undefined): number | null {
  for (let i = records.length - 1; i >= 0; i--) { const v = f(records[i]); if (typeof v === 'number' && Number.isFinite(v)) return v; }
  return null;
}

/** The page payload of a run. */
export function runPayload(src: RunSource, limits: RunLimits): RunPayload {
  const { records } = src.follower;
  const last = records.length ? records[records.length - 1] : null;
  const total = num(src.config?.steps);
  const error = src.follower.error ?? src.configError;
  // train writes summary.json when it ends (also after Ctrl-C); a resume rewrites metrics.jsonl after it.
  const ended = src.summaryMtime >= 0 && src.summaryMtime >= src.metricsMtime;
  const status: RunPayload['status'] = error ? 'error' : !last ? 'waiting' : total !== null && last.step >= total ? 'finished' : ended ? 'stopped' : 'training';
  const name = path.basename(path.resolve(src.dir));
  let sections: Section[] = [];
  let notes: string[] = [];
  let message: string | null = error;
  if (last) {
    const run: RunData = { dir: src.dir, name, config: src.config, configText: src.configText, summary: null, records };
    try {
      ({ sections, notes } = runSections(run, limits, { live: true }));
    } catch (e) {
      message = (e as Error).message;
    }
  } else if (!error) {
    message = fs.existsSync(src.dir) ? 'waiting for the first logged step (metrics.jsonl)…' : 'waiting for the run folder to appear…';
  }
  sections = prefixed(sections, `r${src.index}-`);
  const etaS = status === 'training' ? etaSeconds(records, src.config, src.arrivals) : null;
  const pct = last && total ? Math.min(100, (100 * last.step) / total) : 0;
  const kpi = (label: string, value: string, cls = '') => `<div class="kpi ${cls}"><span>${esc(label)}</span><b>${esc(value)}</b></div>`;
  const headHtml = `<div class="run-title"><span class="badge ${status}">${status}</span><h2 title="${esc(path.resolve(src.dir))}">${esc(name)}</h2>` +
    `<span class="changed" data-changed="${src.changedAt ?? ''}"></span></div>` +
    `<div class="progress" title="${pct.toFixed(1)}%"><div style="width:${pct.toFixed(2)}%"></div></div>` +
    `<div class="kpis">${kpi('step', last ? `${last.step}${total !== null ? ` / ${total}` : ''}` : '–')}` +
    kpi('ETA', status === 'finished' ? 'done' : status === 'stopped' ? 'stopped' : etaS === null ? '–' : formatDuration(etaS)) +
    kpi('tokens/s', cell(lastNum(records, (r) => r.tokens_per_s), 3)) +
    kpi('loss', cell(lastNum(records, (r) => r.loss))) + kpi('val loss', cell(lastNum(records, (r) => r.val_loss))) +
    kpi('load CV', cell(last?.load_cv ?? null, 3)) + kpi('MaxVio', cell(last?.maxvio ?? null, 3)) +
    kpi('max share', pctCell(last?.max_load_share ?? null)) + `</div>` +
    (message ? `<p class="run-msg ${error ? 'err' : ''}">${esc(message)}</p>` : '');
  const cfg = configTable(src.config);
  const html = (cfg ? `<details class="cfg"><summary>Key config</summary>${table(cfg)}</details>` : '') +
    sections.map(section).join('') + (notes.length ? `<ul class="notes">${notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : '');
  const layoutKey = JSON.stringify([src.configText?.length ?? 0, src.follower.resets, notes, sections.map((s) => [s.title, s.selectors?.map((x) => x.options), s.charts.map((c) => c.id)])]);
  return {
    index: src.index, name, dir: path.resolve(src.dir), status, message, step: last?.step ?? null, totalSteps: total, records: records.length,
    resets: src.follower.resets, etaS, changedAt: src.changedAt, headHtml, layoutKey, html, charts: sections.flatMap((s) => s.charts),
  };
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[?::1\]?)$/i;

/** Starts the dashboard server; resolves once it listens (errors name the port or folder and what to do). */
export async function startDashboard(opts: DashboardOptions): Promise<Dashboard> {
  if (!Array.isArray(opts.runs) || opts.runs.length === 0) throw new Error('dashboard: give at least one run folder');
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? DEFAULT_DASHBOARD_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`dashboard: --port must be an integer in 0..65535, got ${port}`);
  const pollMs = opts.pollMs ?? 250, minIntervalMs = opts.minIntervalMs ?? 500;
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const dirs = opts.runs.map((r) => checkRunDir(r, opts.allowPending));
  const sources = dirs.map((d, i) => new RunSource(i, d));
  for (const s of sources) s.poll();
  const payloads = sources.map((s) => runPayload(s, limits));
  const page = dashboardHtml(dirs.map((d) => path.basename(path.resolve(d))));
  const channel = createChannel();
  const loopbackOnly = LOOPBACK.test(host);

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const hostHeader = (req.headers.host ?? '').replace(/:\d+$/, '');
    if (loopbackOnly && !LOOPBACK.test(hostHeader)) {
      res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8' }).end('dashboard: only loopback host names are served\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    if (url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(page);
    } else if (url.pathname === '/api/runs') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(payloads));
    } else if (url.pathname === '/events') {
      createSession(req, res, { keepAlive: 15_000, retry: 1000 }).then((session) => {
        channel.register(session);
        for (const p of payloads) session.push(p, 'run');
      }).catch((e: unknown) => { if (!res.headersSent) res.writeHead(500).end(String(e)); });
    } else if (url.pathname === '/favicon.ico') {
      res.writeHead(204).end();
    } else {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`not found: ${url.pathname}\n`);
    }
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      const at = `${host}:${port}`;
      if (e.code === 'EADDRINUSE') reject(new Error(`dashboard: port ${port} on ${host} is already in use (another dashboard or TensorBoard?): choose another with --port N, or --port 0 for any free port`));
      else if (e.code === 'EACCES') reject(new Error(`dashboard: not allowed to listen on ${at} (ports below 1024 need privileges): choose --port 1024 or above`));
      else if (e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND') reject(new Error(`dashboard: --host ${host} is not an address of this machine`));
      else reject(new Error(`dashboard: cannot listen on ${at}: ${e.message}`));
    };
    server.once('error', onError);
    server.listen(port, host, () => { server.off('error', onError); resolve(); });
  });

  const lastSent = sources.map(() => 0);
  const timers: Array<NodeJS.Timeout | null> = sources.map(() => null);
  const send = (i: number) => {
    timers[i] = null;
    lastSent[i] = Date.now();
    payloads[i] = runPayload(sources[i], limits);
    channel.broadcast(payloads[i], 'run');
  };
  const pollAll = () => {
    for (const s of sources) {
      let changed: boolean;
      try {
        changed = s.poll();
      } catch (e) {
        s.follower.error = `${s.follower.file}: ${(e as Error).message}`;
        changed = true;
      }
      if (!changed || timers[s.index]) continue;
      const wait = lastSent[s.index] + minIntervalMs - Date.now();
      if (wait <= 0) send(s.index);
      else timers[s.index] = setTimeout(() => send(s.index), wait);
    }
  };
  const interval = setInterval(pollAll, pollMs);
  const addr = server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  const urlHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  return {
    url: `http://${urlHost}:${actualPort}/`, port: actualPort, host,
    poke: pollAll,
    snapshot: () => payloads.slice(),
    close: async () => {
      clearInterval(interval);
      for (const t of timers) if (t) clearTimeout(t);
      for (const s of channel.activeSessions) channel.deregister(s);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
