/**
 * The live dashboard without a browser: the metrics.jsonl follower (growth, partial lines, a resume that rewrites
 * the file, in-place truncation, deletion, a corrupt line), the server's errors (missing folder, not a run, port
 * taken, foreign Host header) and its event stream (several runs, updates as the file grows and starts over).
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readMetrics, truncateMetricsAfter, type MetricRecord } from '../src/metrics/jsonl.ts';
import { checkRunDir, etaSeconds, formatDuration, runPayload, RunSource, startDashboard, type Dashboard, type RunPayload } from '../src/report/dashboard.ts';
import { DEFAULT_LIMITS } from '../src/report/run_charts.ts';
import { MetricsFollower } from '../src/report/follow.ts';
import { writeSyntheticRun } from './synthetic_run.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-dash-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A synthetic run's lines, to be appended bit by bit into a followed file. */
function sourceLines(name: string, steps: number, seed = 1): string[] {
  const dir = path.join(tmp, `src-${name}`);
  writeSyntheticRun(dir, { steps, layers: 2, experts: 4, seed });
  return fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => `${l}\n`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until pred() holds (checked every 20 ms; fails after 15 s, a bound for a loaded machine, not a speed test). */
async function waitFor(pred: () => boolean, what: string): Promise<void> {
  for (let t = 0; t < 750; t++) { if (pred()) return; await sleep(20); }
  throw new Error(`timed out waiting for ${what}`);
}

describe('MetricsFollower', () => {
  it('reads appended records, holds a partial line until its newline, and starts over on a rewrite', () => {
    const lines = sourceLines('f', 30);
    const file = path.join(tmp, 'follow.jsonl');
    const f = new MetricsFollower(file);
    expect(f.poll()).toEqual({ changed: false, reset: false }); // no file yet
    fs.writeFileSync(file, lines.slice(0, 10).join(''));
    expect(f.poll()).toEqual({ changed: true, reset: false });
    expect(f.records.map((r) => r.step)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    const half = lines[10].length >> 1;
    fs.appendFileSync(file, lines[10].slice(0, half));
    expect(f.poll().changed).toBe(false);
    expect(f.records.length).toBe(10);
    fs.appendFileSync(file, lines[10].slice(half) + lines.slice(11, 20).join(''));
    expect(f.poll().changed).toBe(true);
    expect(f.records.map((r) => r.step)).toEqual(readMetrics(file).map((r) => r.step));
    // A resume from step 12: truncateMetricsAfter replaces the file (new inode); the follower starts over.
    truncateMetricsAfter(file, 12);
    expect(f.poll()).toEqual({ changed: true, reset: true });
    expect(f.records.map((r) => r.step)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    fs.appendFileSync(file, lines.slice(12, 30).join(''));
    f.poll();
    expect(f.records.length).toBe(30);
    expect(f.resets).toBe(1);
    // Truncated in place (same inode, shorter): starts over.
    fs.truncateSync(file, 0);
    fs.appendFileSync(file, lines.slice(0, 3).join(''));
    expect(f.poll()).toEqual({ changed: true, reset: true });
    expect(f.records.map((r) => r.step)).toEqual([1, 2, 3]);
    // Rewritten in place with other values and grown past the old size before the next poll: the last line read
    // no longer matches, so it starts over (an append would have kept steps 1–3 of the old content).
    const other = sourceLines('o', 20, 9);
    fs.writeFileSync(file, other.join(''));
    expect(f.poll()).toEqual({ changed: true, reset: true });
    expect(f.records).toEqual(readMetrics(file));
    fs.writeFileSync(file, lines.slice(0, 3).join(''));
    f.poll();
    fs.appendFileSync(file, lines.slice(0, 30).join('')); // steps 1.. again after 3: not an append
    expect(f.poll().reset).toBe(true);
    expect(f.error).toMatch(/step 1 does not follow step 3/);
    // Deleted (a fresh run in the same folder): empty again.
    fs.rmSync(file);
    expect(f.poll()).toEqual({ changed: true, reset: true });
    expect(f.records).toEqual([]);
    expect(f.error).toBeNull();
  });

  it('names the file and line of a corrupt record', () => {
    const file = path.join(tmp, 'bad.jsonl');
    const lines = sourceLines('b', 3);
    fs.writeFileSync(file, lines[0] + lines[1] + '{"step": oops}\n');
    const f = new MetricsFollower(file);
    f.poll();
    expect(f.error).toMatch(/bad\.jsonl.*line 3 is not valid JSON/);
  });
});

describe('dashboard helpers', () => {
  it('formats durations and estimates the ETA from arrivals or from tokens/s (hand-computed)', () => {
    expect(formatDuration(5)).toBe('5 s');
    expect(formatDuration(185)).toBe('3 min 05 s');
    expect(formatDuration(3720)).toBe('1 h 02 min');
    const recs = [{ step: 10, tokens_per_s: 1000 }, { step: 20, tokens_per_s: 3000 }, { step: 30, tokens_per_s: 2000 }] as MetricRecord[];
    // 70 steps left · 8·64 tokens per step / median 2000 tokens/s = 17.92 s
    expect(etaSeconds(recs, { steps: 100, batch_size: 8, seq_len: 64 })).toBeCloseTo(17.92, 10);
    // 20 steps arrived in 4 s: 70 steps left take 14 s
    expect(etaSeconds(recs, { steps: 100, batch_size: 8, seq_len: 64 }, [[1000, 10], [5000, 30]])).toBeCloseTo(14, 10);
    expect(etaSeconds(recs, null)).toBeNull();
  });

  it('errors name the folder and what is wrong', () => {
    expect(() => checkRunDir(path.join(tmp, 'nope'))).toThrow(/nope does not exist/);
    fs.mkdirSync(path.join(tmp, 'empty'));
    expect(() => checkRunDir(path.join(tmp, 'empty'))).toThrow(/empty is not a run folder: it holds neither metrics.jsonl nor config.yaml/);
    fs.writeFileSync(path.join(tmp, 'file.txt'), 'x');
    expect(() => checkRunDir(path.join(tmp, 'file.txt'))).toThrow(/is a file, not a run folder/);
    expect(checkRunDir(path.join(tmp, 'nope'), true)).toBe(path.join(tmp, 'nope'));
  });
});

/** Reads the server's event stream, collecting 'run' payloads. */
function listen(url: string): { events: RunPayload[]; close: () => void } {
  const events: RunPayload[] = [];
  let buf = '';
  const req = http.get(`${url}events`, { headers: { accept: 'text/event-stream' } }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buf += chunk;
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev = /^event: ?(.*)$/m.exec(frame)?.[1];
        const data = frame.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
        if (ev === 'run') events.push(JSON.parse(data) as RunPayload);
      }
    });
  });
  req.on('error', () => {});
  return { events, close: () => req.destroy() };
}

/** GET with an explicit Host header. */
function getStatus(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get(url, { headers: { host } }, (res) => { res.resume(); resolve(res.statusCode ?? 0); }).on('error', reject);
  });
}

describe('dashboard server', () => {
  let d: Dashboard | null = null;
  afterAll(async () => { await d?.close(); });

  it('streams several runs as their metrics grow and start over, on 127.0.0.1 only', async () => {
    const a = path.join(tmp, 'run-a'), b = path.join(tmp, 'run-b');
    const la = sourceLines('a', 40, 1), lb = sourceLines('b2', 20, 2);
    for (const [dir, lines] of [[a, la], [b, lb]] as const) {
      fs.mkdirSync(dir);
      fs.copyFileSync(path.join(tmp, `src-${dir === a ? 'a' : 'b2'}`, 'config.yaml'), path.join(dir, 'config.yaml'));
      fs.writeFileSync(path.join(dir, 'metrics.jsonl'), lines.slice(0, 5).join(''));
    }
    d = await startDashboard({ runs: [a, b], port: 0, pollMs: 20, minIntervalMs: 40 });
    expect(d.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(d.host).toBe('127.0.0.1');
    expect(await getStatus(d.url, `127.0.0.1:${d.port}`)).toBe(200);
    expect(await getStatus(d.url, `localhost:${d.port}`)).toBe(200);
    expect(await getStatus(d.url, `evil.example:${d.port}`)).toBe(403);
    const s = listen(d.url);
    const ofA = () => s.events.filter((e) => e.index === 0);
    await waitFor(() => s.events.length >= 2, 'the snapshots');
    // The first two events are the snapshots of both runs.
    expect(s.events.slice(0, 2).map((e) => [e.index, e.records])).toEqual([[0, 5], [1, 5]]);
    for (let i = 5; i < 20; i += 5) {
      fs.appendFileSync(path.join(a, 'metrics.jsonl'), la.slice(i, i + 5).join(''));
      await waitFor(() => ofA().at(-1)!.records === i + 5, `${i + 5} records`);
    }
    expect(ofA().map((e) => e.records)).toEqual([5, 10, 15, 20]);
    const last = ofA().at(-1)!;
    const loss = last.charts.find((c) => c.id === 'r0-loss')!;
    expect(((loss.option.series as Array<{ data: unknown[] }>)[0]).data.length).toBe(20);
    expect(last.status).toBe('training');
    expect(last.charts.every((c) => c.id.startsWith('r0-'))).toBe(true);
    // Resume of run a from step 8: the file is rewritten shorter, then grows again.
    truncateMetricsAfter(path.join(a, 'metrics.jsonl'), 8);
    await waitFor(() => ofA().at(-1)!.resets === 1, 'the restart');
    expect(ofA().at(-1)!.records).toBe(8);
    fs.appendFileSync(path.join(a, 'metrics.jsonl'), la.slice(8, 40).join(''));
    await waitFor(() => ofA().at(-1)!.records === 40, '40 records');
    const done = ofA().at(-1)!;
    expect(done.resets).toBe(1);
    expect(done.status).toBe('finished');
    expect(done.headHtml).toContain('40 / 40');
    // Run b was untouched: only its snapshot went out.
    expect(s.events.filter((e) => e.index === 1).length).toBe(1);
    s.close();
  });

  it('says clearly when the port is taken', async () => {
    const a = path.join(tmp, 'run-a');
    await expect(startDashboard({ runs: [a], port: d!.port })).rejects.toThrow(new RegExp(`port ${d!.port} on 127.0.0.1 is already in use.*--port N`));
    await expect(startDashboard({ runs: [a], port: 70000 })).rejects.toThrow(/--port must be an integer in 0..65535, got 70000/);
    await expect(startDashboard({ runs: [path.join(tmp, 'missing')], port: 0 })).rejects.toThrow(/missing does not exist/);
  });
});

describe('live view of the report charts', () => {
  it('shows the newest step as the current load, and a capacity chart without a line for dropless layers', async () => {
    const { runSections } = await import('../src/report/run_charts.ts');
    const recs = writeSyntheticRun(path.join(tmp, 'live-view'), { steps: 12, layers: 2, experts: 4 });
    const run = { dir: tmp, name: 'x', config: null, configText: null, summary: null, records: recs };
    const live = runSections(run, undefined, { live: true }).sections.flatMap((s) => s.charts);
    const share = live.find((c) => c.id === 'finalshare')!;
    expect(share.title).toBe('Current load share');
    const last = recs[recs.length - 1].expert_load[1];
    const sum = last.reduce((a, b) => a + b, 0);
    const bars = (share.layered!.series[1] as Array<{ data: number[] }>)[0].data;
    bars.forEach((v, i) => expect(v).toBeCloseTo((100 * last[i]) / sum, 3));
    const dropless = recs.map((r) => ({ ...r, capacity_factor: [null, null] as unknown as number[] }));
    const cap = runSections({ ...run, records: dropless }).sections.flatMap((s) => s.charts).find((c) => c.id === 'capacity')!;
    expect(cap.caption).toContain('dropless: no capacity limit'); // said, not an empty frame
    expect((cap.option as { series: unknown[] }).series).toEqual([]);
    expect(live.map((c) => c.id)).toContain('capacity');
  });

  it('a run whose summary.json is newer than its last record has stopped (Ctrl-C); a finished one says so', () => {
    const dir = path.join(tmp, 'stopped');
    const lines = sourceLines('st', 10);
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(tmp, 'src-st', 'config.yaml'), path.join(dir, 'config.yaml'));
    fs.writeFileSync(path.join(dir, 'config.yaml'), fs.readFileSync(path.join(dir, 'config.yaml'), 'utf8').replace('steps: 10', 'steps: 40'));
    fs.writeFileSync(path.join(dir, 'metrics.jsonl'), lines.join(''));
    const src = new RunSource(0, dir);
    src.poll();
    const p1 = runPayload(src, DEFAULT_LIMITS);
    expect([p1.status, p1.step, p1.totalSteps]).toEqual(['training', 10, 40]);
    const t = new Date(Date.now() + 2000);
    fs.writeFileSync(path.join(dir, 'summary.json'), '{}');
    fs.utimesSync(path.join(dir, 'summary.json'), t, t);
    expect(src.poll()).toBe(true);
    const p2 = runPayload(src, DEFAULT_LIMITS);
    expect(p2.status).toBe('stopped');
    expect(p2.headHtml).toContain('<b>stopped</b>');
    expect(p2.etaS).toBeNull();
  });
});
