/**
 * The metrics layer: balance metrics against hand-computed values, metrics.jsonl writing/reading
 * (NaN, torn last line, corrupt lines, truncation, a real SIGKILL), and the terminal views as exact strings.
 * Pure JS numbers, no tensors: no backend to vary, so no describeBackends.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { describe, it, expect, afterAll } from 'vitest';
import {
  loadShare, loadCv, maxLoadShare, maxVio, maxVioGlobal, droppedFraction, routerEntropyNormalized,
  expertUtilization, utilizationStd, tokenUtilization, activeExpertFraction, summarizeLoad, summarizeLayers,
  deadExperts, DeadExpertTracker, std,
} from '../src/metrics/balance.ts';
import { MetricsWriter, readMetrics, truncateMetricsAfter, parseMetrics, type MetricRecord } from '../src/metrics/jsonl.ts';
import { loadBar, heatmap, summaryTable, formatDuration, formatTable } from '../src/report/terminal.ts';
import { createProgress } from '../src/cli/progress.ts';
import { expectClose } from './helpers.ts';

describe('balance metrics', () => {
  it('load [10, 30, 0, 0]: share, CV, max share, MaxVio by hand', () => {
    const load = [10, 30, 0, 0];
    expectClose(loadShare(load), [0.25, 0.75, 0, 0], 1e-12);
    // mean 10; deviations 0, 20, −10, −10 → variance (0 + 400 + 100 + 100)/4 = 150
    expect(loadCv(load)).toBeCloseTo(Math.sqrt(150) / 10, 12);
    expect(maxLoadShare(load)).toBe(0.75);
    expect(maxVio(load)).toBe(2); // (30 − 10) / 10
    expect(activeExpertFraction(load)).toBe(0.5);
  });

  it('perfectly even load: CV 0, MaxVio 0, max share 1/E', () => {
    const load = Int32Array.from([5, 5, 5, 5]);
    expect(loadCv(load)).toBe(0);
    expect(maxVio(load)).toBe(0);
    expect(maxLoadShare(load)).toBe(0.25);
    expect(utilizationStd(load, null)).toBe(0);
  });

  it('all-zero load is defined (zeros, never NaN)', () => {
    const z = [0, 0, 0];
    expect(loadShare(z)).toEqual([0, 0, 0]);
    expect([loadCv(z), maxLoadShare(z), maxVio(z), activeExpertFraction(z), utilizationStd(z, null), utilizationStd(z, 4)]).toEqual([0, 0, 0, 0, 0, 0]);
    expect(expertUtilization(z, null)).toEqual([0, 0, 0]);
    expect(maxVioGlobal([z, z])).toBe(0);
    const s = summarizeLoad(z, { dropped: 0 });
    expect(s.droppedFraction).toBe(0);
    expect(Object.values(s).flat().every((v) => v === null || !Number.isNaN(v))).toBe(true);
  });

  it('rejects bad loads, naming the entry', () => {
    expect(() => loadCv([])).toThrow(/at least one expert/);
    expect(() => loadCv([1, -1])).toThrow(/load\[1\] = -1/);
    expect(() => maxVio([1, NaN])).toThrow(/load\[1\] = NaN/);
    expect(() => maxVioGlobal([[1, 2], [1]])).toThrow(/step 1 has 1 experts/);
    expect(() => expertUtilization([1, 2], 0)).toThrow(/capacity must be a positive number/);
  });

  it('MaxVio_global: violations that cancel across batches vanish globally', () => {
    expect(maxVio([10, 0])).toBe(1);
    expect(maxVioGlobal([[10, 0], [0, 10]])).toBe(0);
    expect(maxVioGlobal([[3, 1], [1, 1]])).toBeCloseTo(1 / 3, 12); // sum [4, 2], mean 3 → (4 − 3)/3
  });

  it('dropped fraction and normalised router entropy', () => {
    expect(droppedFraction(5, 20)).toBe(0.25);
    expect(droppedFraction(0, 0)).toBe(0);
    expect(() => droppedFraction(3, 2)).toThrow(/dropped must be in \[0, assignments = 2\], got 3/);
    expect(routerEntropyNormalized(Math.log(8), 8)).toBeCloseTo(1, 12);
    expect(routerEntropyNormalized(Math.log(2), 4)).toBeCloseTo(0.5, 12);
    expect(routerEntropyNormalized(0, 1)).toBe(0);
    expect(() => routerEntropyNormalized(-0.5, 4)).toThrow(/got -0.5/);
    expect(() => routerEntropyNormalized(2, 4)).toThrow(/ln 4/);
  });

  it('utilization: load / capacity, dropless load / mean load (σ then equals CV)', () => {
    expectClose(expertUtilization([10, 30, 0, 0], 30), [1 / 3, 1, 0, 0], 1e-12);
    expectClose(expertUtilization([10, 30, 0, 0], null), [1, 3, 0, 0], 1e-12);
    expect(utilizationStd([10, 30, 0, 0], null)).toBeCloseTo(loadCv([10, 30, 0, 0]), 12);
  });

  it('utilization std on a seed-000-style batch, by hand', () => {
    // 40 tokens, k = 2, E = 8, capacity factor 1 → C = 80/8 = 10 slots; kept loads after capacity:
    const load = [10, 10, 10, 10, 6, 2, 0, 0];
    // u = [1, 1, 1, 1, 0.6, 0.2, 0, 0], mean 0.6; squared deviations 4·0.16 + 0 + 0.16 + 2·0.36 = 1.52
    expect(utilizationStd(load, 10)).toBeCloseTo(Math.sqrt(1.52 / 8), 12);
    expect(utilizationStd(load, 10, 1)).toBeCloseTo(Math.sqrt(1.52 / 7), 12); // torch's unbiased form
    expect(std([1, 2, 3, 4])).toBeCloseTo(Math.sqrt(1.25), 12);
    // seed 004's per-token utilization: load / T, sums to k = 2 when nothing is dropped
    const u = tokenUtilization([34, 30, 10, 4, 2, 0, 0, 0], 40);
    expectClose(u, [0.85, 0.75, 0.25, 0.1, 0.05, 0, 0, 0], 1e-12);
    expect(u.reduce((a, b) => a + b, 0)).toBeCloseTo(2, 12);
  });

  it('summarizeLoad and summarizeLayers (mean and worst over layers)', () => {
    const s = summarizeLoad([10, 30, 0, 0], { capacity: 30, dropped: 10, entropy: Math.log(2) });
    expect(s.computed).toBe(40);
    expect(s.droppedFraction).toBe(0.2); // 10 / (40 + 10)
    expect(s.entropyNormalized).toBeCloseTo(0.5, 12);
    expect(s.maxVio).toBe(2);
    const two = summarizeLayers([[10, 30, 0, 0], [5, 5, 5, 5]]);
    const cv0 = Math.sqrt(150) / 10;
    expect(two.mean.cv).toBeCloseTo(cv0 / 2, 12);
    expect(two.worst.cv).toBeCloseTo(cv0, 12);
    expect(two.mean.maxVio).toBe(1);
    expect(two.worst.maxLoadShare).toBe(0.75);
    expect(two.mean.droppedFraction).toBeNull();
    const withH = summarizeLayers([[1, 1], [2, 0]], [{ entropy: Math.log(2) }, { entropy: 0.5 * Math.log(2) }]);
    expect(withH.worst.entropyNormalized).toBeCloseTo(0.5, 12); // worst entropy = the lowest
    expect(() => summarizeLayers([[1]], [{}, {}])).toThrow(/2 option sets for 1 layers/);
  });
});

describe('dead experts', () => {
  const history = [[1, 0, 0], [0, 0, 1], [0, 0, 0]];

  it('deadExperts: zero load in each of the last W steps', () => {
    expect(deadExperts(history, 2)).toEqual([0, 1]);
    expect(deadExperts(history, 3)).toEqual([1]);
    expect(deadExperts(history, 1)).toEqual([0, 1, 2]);
    expect(deadExperts(history, 4)).toEqual([]); // not observable yet
    expect(() => deadExperts(history, 0)).toThrow(/window must be a positive integer, got 0/);
  });

  it('DeadExpertTracker follows a scripted history', () => {
    const t = new DeadExpertTracker(3, 2);
    t.update(history[0]);
    expect([t.zeroStreak(0), t.zeroStreak(1), t.zeroStreak(2)]).toEqual([0, 1, 1]);
    expect(t.dead()).toEqual([]);
    t.update(history[1]);
    expect(t.dead()).toEqual([1]);
    t.update(history[2]);
    expect(t.dead()).toEqual([0, 1]);
    expect([t.zeroStreak(0), t.zeroStreak(1), t.zeroStreak(2)]).toEqual([2, 3, 1]);
    t.update([0, 4, 0]); // expert 1 revived by traffic
    expect(t.dead()).toEqual([0, 2]);
    const saved = t.state();
    t.reset(0);
    expect(t.dead()).toEqual([2]);
    const u = new DeadExpertTracker(3, 2);
    u.restore(saved);
    expect(u.dead()).toEqual([0, 2]);
    expect(() => t.update([1, 2])).toThrow(/2 experts, expected 3/);
    expect(() => t.zeroStreak(3)).toThrow(/0\.\.2, got 3/);
  });
});

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'switchyard-metrics-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function rec(step: number, extra: Partial<MetricRecord> = {}): MetricRecord {
  return {
    step, loss: 2 - step / 10, aux: { switch: 1.01 }, lr: 1e-3, grad_norm: 0.5, tokens_per_s: 1234.5,
    expert_load: [[10, 30, 0, 0]], dropped: [0], load_cv: 1.2247, max_load_share: 0.75, maxvio: 2, router_entropy: 1.1,
    ...extra,
  };
}

describe('metrics.jsonl', () => {
  it('round-trips records, one line each', () => {
    const file = path.join(tmp, 'a', 'metrics.jsonl');
    const w = new MetricsWriter(file);
    const recs = [rec(1), rec(2, { val_loss: 1.5, val_ppl: Math.exp(1.5) }), rec(3, { dead_experts: [[2, 3]], ep: [{ rank: 0, compute_ms: 1, comm_ms: 2, idle_ms: 0 }] })];
    for (const r of recs) w.write(r);
    w.close();
    expect(fs.readFileSync(file, 'utf8').split('\n')).toHaveLength(4); // 3 lines + final ''
    expect(readMetrics(file)).toEqual(recs);
    expect(() => w.write(rec(4))).toThrow(/closed/);
  });

  it('writes NaN / ±Infinity as null and flags them', () => {
    const file = path.join(tmp, 'nan.jsonl');
    const w = new MetricsWriter(file);
    w.write(rec(1, { loss: NaN, aux: { switch: Infinity, z: 0.1 }, grad_norm: -Infinity }));
    w.close();
    const text = fs.readFileSync(file, 'utf8');
    expect(text).not.toMatch(/NaN|Infinity/);
    const [r] = readMetrics(file);
    expect(r.loss).toBeNull();
    expect(r.aux).toEqual({ switch: null, z: 0.1 });
    expect(r.grad_norm).toBeNull();
    expect(r.nonfinite).toEqual(['loss', 'aux.switch', 'grad_norm']);
  });

  it('tolerates a torn last line, and a reopened writer cuts it before appending', () => {
    const file = path.join(tmp, 'torn.jsonl');
    const w = new MetricsWriter(file);
    w.write(rec(1));
    w.write(rec(2));
    w.close();
    fs.appendFileSync(file, '{"step":3,"loss":1.7,"aux":{"swi');
    expect(readMetrics(file).map((r) => r.step)).toEqual([1, 2]);
    expect(parseMetrics(fs.readFileSync(file, 'utf8')).torn).toBe('{"step":3,"loss":1.7,"aux":{"swi');
    const w2 = new MetricsWriter(file);
    w2.write(rec(3));
    w2.close();
    expect(readMetrics(file).map((r) => r.step)).toEqual([1, 2, 3]);
  });

  it('rejects a corrupt middle line, a missing field and a repeated step, naming the line', () => {
    const ok = (s: number) => JSON.stringify(rec(s));
    const write = (lines: string[]) => {
      const f = path.join(tmp, 'bad.jsonl');
      fs.writeFileSync(f, lines.map((l) => `${l}\n`).join(''));
      return f;
    };
    expect(() => readMetrics(write([ok(1), '{"step":2,"loss":', ok(3)]))).toThrow(/bad\.jsonl: line 2 is not valid JSON/);
    const noLr = JSON.stringify({ ...rec(1), lr: undefined });
    expect(() => readMetrics(write([noLr]))).toThrow(/line 1: lr must be a number/);
    expect(() => readMetrics(write([ok(1), ok(2), ok(2)]))).toThrow(/line 3: step 2 does not follow step 2/);
    expect(() => readMetrics(write([ok(1), '', ok(2)]))).toThrow(/line 2 is empty/);
    const w = new MetricsWriter(path.join(tmp, 'dup.jsonl'));
    w.write(rec(5));
    expect(() => w.write(rec(5))).toThrow(/step 5 is not after the last written step 5/);
    w.close();
    expect(() => new MetricsWriter(path.join(tmp, 'dup.jsonl')).write(rec(4))).toThrow(/last written step 5/);
  });

  it('truncateMetricsAfter drops later steps and keeps the earlier bytes exactly', () => {
    const file = path.join(tmp, 'trunc.jsonl');
    const w = new MetricsWriter(file);
    for (let s = 1; s <= 5; s++) w.write(rec(s));
    w.close();
    const before = fs.readFileSync(file, 'utf8');
    expect(truncateMetricsAfter(file, 3)).toBe(2);
    const after = fs.readFileSync(file, 'utf8');
    expect(before.startsWith(after)).toBe(true);
    expect(readMetrics(file).map((r) => r.step)).toEqual([1, 2, 3]);
    expect(truncateMetricsAfter(file, 10)).toBe(0);
    expect(truncateMetricsAfter(path.join(tmp, 'absent.jsonl'), 1)).toBe(0);
  });

  it('a writer process killed with SIGKILL leaves a readable file that resumes cleanly', async () => {
    const file = path.join(tmp, 'killed.jsonl');
    const child = path.join(tmp, 'child.mts');
    const jsonl = path.resolve('src/metrics/jsonl.ts');
    fs.writeFileSync(child, `import { MetricsWriter } from ${JSON.stringify(jsonl)};
const w = new MetricsWriter(${JSON.stringify(file)});
const load = Array.from({ length: 12 }, () => Array.from({ length: 64 }, (_, i) => i));
for (let step = 1; ; step++) {
  w.write({ step, loss: 1, aux: {}, lr: 0.001, grad_norm: 1, tokens_per_s: 1, expert_load: load, dropped: [0],
    load_cv: 0, max_load_share: 0, maxvio: 0, router_entropy: 0 });
  if (step === 1) process.stdout.write('ready\\n');
}
`);
    const proc = spawn(process.execPath, [path.resolve('bin/run-ts.js'), child], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      proc.stdout.once('data', () => resolve());
      proc.once('exit', (code) => reject(new Error(`child exited early with ${code}`)));
    });
    await new Promise((r) => setTimeout(r, 150));
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
    const steps = readMetrics(file).map((r) => r.step);
    expect(steps.length).toBeGreaterThan(1);
    expect(steps).toEqual(steps.map((_, i) => i + 1));
    const resumeAt = steps.length - 1; // resume from a checkpoint one step back
    truncateMetricsAfter(file, resumeAt);
    const w = new MetricsWriter(file);
    w.write(rec(resumeAt + 1));
    w.close();
    expect(readMetrics(file).map((r) => r.step)).toEqual(steps);
  }, 30_000);
});

describe('terminal views', () => {
  it('loadBar: blocks scaled to the max, · for zero, max share and its expert', () => {
    expect(loadBar([10, 30, 0, 0])).toBe('▃█·· max 75.0% e1'); // ⌈8·10/30⌉ = 3 → ▃
    expect(loadBar([1, 2, 3, 4, 5, 6, 7, 8])).toBe('▁▂▃▄▅▆▇█ max 22.2% e7'); // 8/36
    expect(loadBar([0, 0, 0, 0])).toBe('···· no load');
    expect(loadBar([4, 0, 0, 0, 2, 2], 3)).toBe('█·█ max 50.0% e0'); // buckets [4,0] [0,0] [2,2] → 2, 0, 2
  });

  it('heatmap: shades, labels, axis and legend', () => {
    const out = heatmap([[0, 1, 2, 4], [4, 4, 0, 3]], { rowLabels: ['e0', 'e10'], colLabels: ['0', '3'], title: 'layer 0' });
    expect(out).toBe([
      'layer 0',
      ' e0 │ ░▒█│',
      'e10 │██ ▓│',
      '    └────┘',
      '     0  3',
      '     ░ ≤25% ▒ ≤50% ▓ ≤75% █ ≤100% of max 4',
    ].join('\n'));
    const wide = heatmap([[1, 1, 0, 0, 2, 2]], { maxCols: 3, scale: 'row' });
    expect(wide).toBe(['0 │▒ █│', '  └───┘', '   ░ ≤25% ▒ ≤50% ▓ ≤75% █ ≤100% of row max (6 columns averaged into 3)'].join('\n'));
    expect(() => heatmap([[1, 2], [1]])).toThrow(/row 1 has 1 columns/);
  });

  it('summaryTable: aligned columns, numbers right, text left', () => {
    const t = summaryTable(
      [{ method: 'none', cv: 1.2247, max: 0.75 }, { method: 'switch', cv: 0.1, max: 0.3, extra: 1 }],
      ['method', { key: 'cv', label: 'load CV', digits: 2 }, 'max'],
    );
    expect(t).toBe([
      'method  load CV    max',
      '──────  ───────  ─────',
      'none       1.22  0.750',
      'switch     0.10  0.300',
    ].join('\n'));
    expect(summaryTable([{ a: null, b: 'x' }], ['a', 'b'])).toBe(['a  b', '─  ─', '–  x'].join('\n'));
  });

  it('formatTable (plan, simulate): first column left, the rest right, no rule, trailing spaces trimmed', () => {
    expect(formatTable(['strategy', 'ms', 'eff'], [['flat', '1.250', '80.0%'], ['hierarchical', '12.5', ''], ['x']])).toBe([
      'strategy         ms    eff',
      'flat          1.250  80.0%',
      'hierarchical   12.5',
      'x',
    ].join('\n'));
  });

  it('plain (non-TTY) progress prints periodic lines with ETA', () => {
    const out: string[] = [];
    const stream = new Writable({ write(chunk, _enc, cb) { out.push(String(chunk)); cb(); } });
    let t = 0;
    const p = createProgress({ total: 10, tty: false, stream, logEvery: 5, now: () => t });
    for (let s = 1; s <= 10; s++) {
      t = s * 1000;
      p.update(s, { loss: s === 10 ? null : 3 - s / 5, load_cv: 0.1, maxvio: 0.5, loadBar: loadBar([10, 30, 0, 0]) });
    }
    p.log('val_loss 1.234');
    p.stop();
    expect(out).toEqual([
      'step 5/10 (50%) | loss 2.0000 | cv 0.100 maxvio 0.500 | ▃█·· max 75.0% e1 | elapsed 5s eta 5s\n',
      'step 10/10 (100%) | loss nan | cv 0.100 maxvio 0.500 | ▃█·· max 75.0% e1 | elapsed 10s eta 0s\n',
      'val_loss 1.234\n',
    ]);
    expect(formatDuration(185)).toBe('3m05s');
    expect(formatDuration(7620)).toBe('2h07m');
  });

  it('TTY progress draws a cli-progress bar with loss and balance', () => {
    const out: string[] = [];
    const stream = Object.assign(new Writable({ write(chunk, _enc, cb) { out.push(String(chunk)); cb(); } }), { isTTY: true, columns: 200 });
    const p = createProgress({ total: 10, tty: true, stream, start: 2 });
    p.update(3, { loss: 1.234, load_cv: 0.25, maxvio: 1.5, loadBar: '▃█··' });
    p.stop();
    const text = out.join('');
    expect(text).toMatch(/step 3\/10/);
    expect(text).toMatch(/loss 1\.2340 \| cv 0\.250 maxvio 1\.500 \| ▃█··/);
  });
});
