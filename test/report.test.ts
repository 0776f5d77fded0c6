/**
 * `switchyard report` without a browser: input detection and errors, a self-contained page (no external
 * resources), the page's data checked against plain-JS recomputations from the inputs (line series, heatmap
 * cells, final shares, per-rank EP means, compare bars, per-GPU loads of a plan, simulate time breakdown),
 * min/max downsampling by hand, and the --text view. Pure JS, no tensors: no describeBackends.
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MetricsWriter, type MetricRecord } from '../src/metrics/jsonl.ts';
import { decodeCells, encodeCells, minMaxDownsample } from '../src/report/downsample.ts';
import { textReport, writeReport } from '../src/report/report.ts';

const run = promisify(execFile);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'switchyard-report-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const STEPS = 300, L = 2, E = 8;

/** A run folder written with MetricsWriter: layer 0 drifts, layer 1 is fixed [4,1,1,1,1,1,1,0]·64 (expert 7 dead). */
function fakeRun(dir: string, steps = STEPS): MetricRecord[] {
  fs.mkdirSync(dir, { recursive: true });
  const w = new MetricsWriter(path.join(dir, 'metrics.jsonl'));
  const recs: MetricRecord[] = [];
  for (let s = 1; s <= steps; s++) {
    const l0 = Array.from({ length: E }, (_, i) => 100 + ((s * (i + 3)) % 37) + (i === 2 ? 200 * Math.exp(-s / 50) : 0));
    const l1 = [4, 1, 1, 1, 1, 1, 1, 0].map((x) => 64 * x);
    const r: MetricRecord = {
      step: s, loss: 5 * Math.exp(-s / 100) + 1 + (s === 150 ? 3 : 0), aux: { switch: 1 + 1 / s, z_loss: 2 - s / 1000 }, lr: 1e-3 * Math.min(1, s / 30),
      grad_norm: 1 + 1 / s, tokens_per_s: 5000, expert_load: [l0, l1], dropped: [s % 5, 0], load_cv: 0.5, max_load_share: 0.3, maxvio: 1.2,
      router_entropy: 1.8, dropped_fraction: 0.01, capacity_factor: 1 + 1 / s, dead_experts: [[], [7]],
      ep: [0, 1, 2].map((rank) => ({ rank, compute_ms: 10 + rank + (s % 3), comm_ms: 5, idle_ms: 2 - rank / 2 })),
    };
    if (s % 50 === 0) r.val_loss = 1.5 + 10 / s;
    w.write(r);
    recs.push(r);
  }
  w.close();
  fs.writeFileSync(path.join(dir, 'config.yaml'), 'model_type: moe_llama\nlayers: 2\nexpert_num: 8\ntop_k: 2\nrouter:\n  type: topk\naux_loss:\n  type: switch\n  weight: 0.01\nlr: 1.0e-3\nsecret_field: not-shown-in-header\n');
  fs.writeFileSync(path.join(dir, 'summary.json'), JSON.stringify({ steps, first_loss: recs[0].loss, final_loss: 1.234567, val_loss: 1.5, val_ppl: 4.48, tokens_per_s: 5000, per_layer_load: [[1, 1, 1, 1, 1, 1, 1, 9], recs[0].expert_load[1]] }));
  return recs;
}

interface PageData { charts: Array<{ id: string; option: any; layered?: { selector: string; series: any[][] }; meta?: any }> }

/** The page's inlined data (the JSON script element). */
function pageData(html: string): PageData {
  const m = /<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/.exec(html);
  expect(m).not.toBeNull();
  return JSON.parse(m![1]);
}
const chart = (d: PageData, id: string) => { const c = d.charts.find((x) => x.id === id); expect(c, `chart ${id}`).toBeDefined(); return c!; };
/** A heat series' cells, decoded independently of the page script. */
const heatCells = (series: any) => decodeCells(series['@heatSeries'].b64, series['@heatSeries'].rows, series['@heatSeries'].cols);

/** No resource the page would fetch: no src/href to a URL, no <link>, no CSS url()/@import, every <script> inline. */
function expectSelfContained(html: string): void {
  const found = (re: RegExp) => [...html.matchAll(re)].map((m) => html.slice(Math.max(0, m.index! - 40), m.index! + 80));
  expect(found(/\ssrc\s*=\s*["']?(https?:)?\/\//gi)).toEqual([]);
  expect(found(/\shref\s*=\s*["']?(https?:)?\/\//gi)).toEqual([]);
  expect(found(/<link\b/gi)).toEqual([]);
  expect(found(/@import|url\(\s*["']?https?:/gi)).toEqual([]);
  expect(found(/<script\b[^>]*\ssrc\s*=/gi)).toEqual([]);
  expect(found(/<iframe\b/gi)).toEqual([]);
}

describe('report of a training run folder', () => {
  const dir = path.join(tmp, 'run');
  let recs: MetricRecord[];
  let html: string;
  let data: PageData;
  beforeAll(async () => {
    recs = fakeRun(dir);
    const out = await writeReport(dir);
    expect(out).toBe(path.join(dir, 'report.html'));
    html = fs.readFileSync(out, 'utf8');
    data = pageData(html);
  });

  it('is one self-contained file with ECharts inlined', () => {
    expectSelfContained(html);
    // the ECharts bundle, inline: the largest <script> is the library itself
    const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]);
    const echarts = fs.readFileSync(path.resolve('node_modules/echarts/dist/echarts.min.js'), 'utf8');
    expect(scripts.some((x) => x === echarts)).toBe(true);
    expect(html.length).toBeLessThan(echarts.length + 400_000); // 300 steps × 2 layers × 8 experts: well under 0.4 MB of data
  });

  it('has every chart of a run with all the inputs, and none missing', () => {
    expect(data.charts.map((c) => c.id).sort()).toEqual(['aux', 'capacity', 'cv', 'dead', 'dropped', 'entropy', 'ep', 'finalshare', 'grad', 'heatmap', 'loss', 'lr', 'maxshare', 'maxvio', 'overview'].sort());
    for (const c of data.charts) expect(html).toContain(`id="chart-${c.id}"`);
  });

  it('header tables show the key config and summary numbers (not every config field)', () => {
    expect(html).toMatch(/<td>expert_num<\/td><td>8<\/td>/);
    expect(html).toMatch(/<td>aux_loss\.weight<\/td><td>0\.01<\/td>/);
    expect(html).not.toContain('<td>secret_field</td>');
    expect(html).toMatch(/<td>final_loss<\/td><td>1\.235<\/td>/);
    expect(html).toContain('not-shown-in-header'); // …but the whole config.yaml is in the collapsed block
  });

  it('line series carry every logged value (300 ≤ 2000 points: no downsampling), validation as points', () => {
    const loss = chart(data, 'loss').option.series;
    expect(loss[0].data.length).toBe(STEPS);
    recs.forEach((r, i) => { expect(loss[0].data[i][0]).toBe(r.step); expect(loss[0].data[i][1]).toBeCloseTo(r.loss!, 4); });
    expect(loss[1].type).toBe('scatter');
    expect(loss[1].data).toEqual(recs.filter((r) => r.val_loss !== undefined).map((r) => [r.step, Number(r.val_loss!.toPrecision(5))]));
    const aux = chart(data, 'aux').option.series;
    expect(aux.map((s: any) => s.name)).toEqual(['switch', 'z_loss']);
    expect(aux[1].data[9][1]).toBeCloseTo(2 - 10 / 1000, 6);
    const cap = chart(data, 'capacity').option.series[0].data;
    expect(cap[3]).toEqual([4, 1.25]);
    expect(chart(data, 'dead').option.series[0].data[0]).toEqual([1, 1]); // one dead expert (layer 1, e7), summed over layers
  });

  it('heatmap cells are load ÷ mean load per step, per layer (one column per step)', () => {
    const layered = chart(data, 'heatmap').layered!;
    expect(layered.series.length).toBe(L);
    for (let l = 0; l < L; l++) {
      const cells = heatCells(layered.series[l][0]);
      expect(cells.length).toBe(E);
      expect(cells[0].length).toBe(STEPS);
      for (const s of [0, 1, 77, 299]) {
        const row = recs[s].expert_load[l];
        const mean = row.reduce((a, b) => a + b, 0) / E;
        for (let i = 0; i < E; i++) expect(Math.abs(cells[i][s] - row[i] / mean)).toBeLessThanOrEqual(0.0005 + 1e-12);
      }
    }
    // layer 1 by hand: mean load = 64·10/8 = 80 → expert 0: 256/80 = 3.2, expert 1: 0.8, expert 7: 0
    const c1 = heatCells(layered.series[1][0]);
    expect(c1[0][5]).toBe(3.2);
    expect(c1[1][5]).toBe(0.8);
    expect(c1[7][5]).toBe(0);
    expect(chart(data, 'heatmap').meta.stepRanges[10]).toEqual([11, 11]);
  });

  it('final shares come from summary.json per_layer_load; the overview is E·share per layer', () => {
    const bars = chart(data, 'finalshare').layered!.series;
    expect(bars[0][0].data).toEqual([1, 1, 1, 1, 1, 1, 1, 9].map((x) => Number(((100 * x) / 16).toPrecision(5))));
    expect(bars[1][0].data[0]).toBeCloseTo(40, 10); // 256 / 640
    expect(bars[0][0].markLine.data[0].yAxis).toBe(12.5);
    const ov = heatCells(chart(data, 'overview').option.series[0]);
    expect(ov[0][7]).toBe(4.5); // 8 · 9/16
    expect(ov[1][0]).toBe(3.2);
  });

  it('expert-parallel bars are per-rank means of compute / comm / idle', () => {
    const s = chart(data, 'ep').option.series;
    const meanCompute = (rank: number) => recs.reduce((a, r) => a + r.ep![rank].compute_ms, 0) / recs.length;
    expect(s.map((x: any) => x.name)).toEqual(['compute', 'communication', 'idle']);
    for (const rank of [0, 2]) expect(s[0].data[rank]).toBeCloseTo(meanCompute(rank), 3);
    expect(s[2].data).toEqual([2, 1.5, 1]);
    expect(s.every((x: any) => x.stack === 't')).toBe(true);
  });

  it('downsamples long series with min/max kept and heatmaps into step buckets', async () => {
    const out = await writeReport(dir, { out: path.join(tmp, 'small.html'), limits: { maxPoints: 100, maxBuckets: 50 } });
    const d = pageData(fs.readFileSync(out, 'utf8'));
    const loss = chart(d, 'loss').option.series[0].data as Array<[number, number]>;
    expect(loss.length).toBeLessThanOrEqual(100);
    expect(loss.some(([x, y]) => x === 150 && Math.abs(y - recs[149].loss!) < 1e-4)).toBe(true); // the spike survives
    const ys = loss.map((p) => p[1]);
    expect(Math.max(...ys)).toBeCloseTo(Math.max(...recs.map((r) => r.loss!)), 4);
    expect(Math.min(...ys)).toBeCloseTo(Math.min(...recs.map((r) => r.loss!)), 4);
    const cells = heatCells(chart(d, 'heatmap').layered!.series[0][0]);
    expect(cells[0].length).toBe(50);
    // 300 records into 50 buckets: bucket g = records 6g … 6g+5; cell = mean of load ÷ mean load
    for (const g of [0, 17, 49]) for (const i of [0, 2, 7]) {
      let s = 0;
      for (let k = 6 * g; k < 6 * g + 6; k++) { const row = recs[k].expert_load[0]; s += row[i] / (row.reduce((a, b) => a + b, 0) / E); }
      expect(Math.abs(cells[i][g] - s / 6)).toBeLessThanOrEqual(0.0005 + 1e-12);
    }
    expect(chart(d, 'heatmap').meta.stepRanges[1]).toEqual([7, 12]);
    expect(fs.readFileSync(out, 'utf8')).toContain('Heatmaps average 300 logged steps into 50 step buckets.');
  });

  it('--text prints the summary and one heatmap per layer (expert rows × step columns)', () => {
    const text = textReport(dir);
    expect(text).toContain('final_loss');
    expect(text).toContain('1.235');
    expect(text).toMatch(/MoE layer 0\n/);
    const layer1 = text.slice(text.indexOf('MoE layer 1'));
    const row = (e: number) => new RegExp(`\\n\\s*e${e} │(.*)│`).exec(layer1)![1];
    // layer 1 is constant: expert 0 is always the max (█ everywhere), expert 7 always idle (blank), the rest 1/4 of max (░)
    expect(row(0)).toMatch(/^█{10,}$/);
    expect(row(7)).toMatch(/^ {10,}$/);
    expect(row(3)).toMatch(/^░{10,}$/);
    expect(row(0).length).toBe(72); // 300 steps averaged into 72 columns
    expect(text).toContain('step 1');
    expect(text).toContain('step 300');
    // final load bar of layer 1 by hand: e0 = max (█), 64/256 of max → ⌈8·0.25⌉ − 1 = 1 → ▂, e7 idle (·); 256/640 = 40%
    expect(text).toContain('layer 1 █▂▂▂▂▂▂· max 40.0% e0');
  });
});

describe('min/max downsampling and cell encoding', () => {
  it('keeps each bucket\'s min and max in step order, and gaps for nulls', () => {
    const xs = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    // buckets [0,5) and [5,10): min 1 @1, max 5 @4; max 9 @5, min 2 @6
    expect(minMaxDownsample(xs, [3, 1, 4, 1, 5, 9, 2, 6, 5, 3], 4)).toEqual([[1, 1], [4, 5], [5, 9], [6, 2]]);
    expect(minMaxDownsample(xs, [3, 1, null, 1, 5, 9, 2, 6, 5, 3], 4)).toEqual([[1, 1], [2, null], [4, 5], [5, 9], [6, 2]]);
    expect(minMaxDownsample([1, 2], [NaN, 2], 10)).toEqual([[1, null], [2, 2]]);
    expect(() => minMaxDownsample([1], [1, 2], 10)).toThrow(/1 x values for 2 y values/);
  });

  it('encodes cells as fixed point to 0.001 and round-trips', () => {
    const cells = [[0, 1.2344, 65.535], [2, 0.0004, 0.0005]];
    expect(decodeCells(encodeCells(cells), 2, 3)).toEqual([[0, 1.234, 65.535], [2, 0, 0.001]]);
    expect(() => encodeCells([[NaN]])).toThrow(/cell \[0\]\[0\] = NaN/);
  });
});

describe('report of compare, plan and simulate output', () => {
  const cmp = path.join(tmp, 'cmp');
  const planDir = path.join(tmp, 'plan');
  const methods = [
    { method: 'none', final_loss: 2.31, final_loss_std: 0.02, load_cv: 0.62, max_load_share: 0.31, maxvio: 1.5, dropped_fraction: 0.08, dead_experts: 1, step_time_ratio: 1 },
    { method: 'switch', final_loss: 2.28, final_loss_std: 0.01, load_cv: 0.21, max_load_share: 0.17, maxvio: 0.4, dropped_fraction: 0.01, dead_experts: 0, step_time_ratio: 1.04 },
    { method: 'aux_free', final_loss: 2.26, final_loss_std: null, load_cv: 0.12, max_load_share: 0.15, maxvio: 0.25, dropped_fraction: null, dead_experts: 0, step_time_ratio: 1.02 },
  ];
  // DeepSeek EPLB README example: 2 layers × 12 experts
  const weight = [[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86], [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]];
  beforeAll(async () => {
    fs.mkdirSync(cmp, { recursive: true });
    fs.writeFileSync(path.join(cmp, 'compare.json'), JSON.stringify({ methods }));
    for (const m of ['none', 'switch']) fakeRun(path.join(cmp, 'runs', `${m}-seed0`), 40);
    fs.mkdirSync(planDir, { recursive: true });
    fs.writeFileSync(path.join(planDir, 'load.json'), JSON.stringify(weight));
    const cli = path.resolve('bin/switchyard.js');
    await Promise.all([
      run('node', [cli, 'plan', '--load', path.join(planDir, 'load.json'), '--replicas', '16', '--groups', '4', '--nodes', '2', '--gpus', '8', '--out', path.join(planDir, 'plan.json')]),
      run('node', [cli, 'simulate', '--topology', 'configs/topology-tiny.yaml', '--model', 'configs/sim-model-switch.yaml', '--experts', '12', '--top-k', '2',
        '--load', 'trace', path.join(planDir, 'load.json'), '--out', path.join(planDir, 'sim.json')]),
    ]);
  }, 60_000);

  it('compare: table and one bar per method from compare.json; run curves from runs/', async () => {
    const out = await writeReport(cmp);
    expect(out).toBe(path.join(cmp, 'report.html'));
    const html = fs.readFileSync(out, 'utf8');
    expectSelfContained(html);
    expect(html).toContain('<td class="num">2.31 ± 0.02</td>');
    expect(html).toContain('<td class="num">1.04×</td>');
    const d = pageData(html);
    expect(chart(d, 'cmp-loss').option.series[0].data.map((x: any) => x.value)).toEqual([2.31, 2.28, 2.26]);
    expect(chart(d, 'cmp-maxshare').option.series[0].data.map((x: any) => x.value)).toEqual([31, 17, 15]);
    expect(chart(d, 'cmp-maxshare').option.series[0].markLine.data[0].yAxis).toBe(12.5); // 1/E from the runs' config
    expect(chart(d, 'cmp-dropped').option.series[0].data[2].value).toBeNull();
    const runs = chart(d, 'cmp-runs-loss').option.series;
    expect(runs.map((s: any) => s.name)).toEqual(['none', 'switch']);
    expect(runs[0].data.length).toBe(40);
    expect(textReport(cmp)).toMatch(/switch\s+2\.28 ± 0\.01\s+0\.21\s+17\.0%\s+0\.4\s+1\.00%\s+0\s+1\.04×/);
  });

  it('plan: per-GPU load before (round-robin) and after placement, ÷ mean GPU load', async () => {
    const planFile = path.join(planDir, 'plan.json');
    const out = await writeReport(planFile, { load: path.join(planDir, 'load.json') });
    expect(out).toBe(path.join(planDir, 'plan.report.html'));
    const html = fs.readFileSync(out, 'utf8');
    expectSelfContained(html);
    const plan = JSON.parse(fs.readFileSync(planFile, 'utf8'));
    const d = pageData(html);
    const G = 8;
    for (let l = 0; l < 2; l++) {
      const w = weight[l];
      const before = new Array(G).fill(0);
      w.forEach((x, e) => { before[e % G] += x; });
      const cnt = new Array(12).fill(0);
      for (const e of plan.phy2log[l]) cnt[e]++;
      const after = new Array(G).fill(0);
      plan.phy2log[l].forEach((e: number, s: number) => { after[Math.floor(s / 2)] += w[e] / cnt[e]; });
      const mean = w.reduce((a, b) => a + b, 0) / G;
      const [b, a] = chart(d, 'plan-gpu').layered!.series[l];
      before.forEach((x, g) => expect(b.data[g]).toBeCloseTo(x / mean, 4));
      after.forEach((x, g) => expect(a.data[g]).toBeCloseTo(x / mean, 4));
      expect(chart(d, 'plan-replicas').layered!.series[l][0].data).toEqual(cnt);
    }
    expect(chart(d, 'plan-bal').option.series[2].data.map((p: number[]) => p[1])).toEqual(plan.balancedness.map((x: number) => Number(x.toPrecision(5))));
    expect(textReport(planFile)).toContain('plan (best)');
  });

  it('plan without --load: placement charts only, with a note; the path inside the plan is never opened', async () => {
    const plan = JSON.parse(fs.readFileSync(path.join(planDir, 'plan.json'), 'utf8'));
    // source.file names a real, readable load file: a report that followed it would draw per-GPU loads
    expect(fs.existsSync(plan.source.file)).toBe(true);
    const html = fs.readFileSync(await writeReport(path.join(planDir, 'plan.json'), { out: path.join(tmp, 'noload.html') }), 'utf8');
    expect(html).toContain('pass the load file the plan was made from with --load FILE');
    expect(pageData(html).charts.map((c) => c.id)).toEqual(['plan-bal', 'plan-internode']);
    // a FIFO named inside the plan would hang a report that opened it
    const fifo = path.join(tmp, 'plan-fifo');
    execFileSync('mkfifo', [fifo]);
    const hostile = path.join(tmp, 'hostile-plan.json');
    fs.writeFileSync(hostile, JSON.stringify({ ...plan, source: { ...plan.source, file: fifo } }));
    expect(pageData(fs.readFileSync(await writeReport(hostile), 'utf8')).charts.map((c) => c.id)).toEqual(['plan-bal', 'plan-internode']);
  });

  it('plan and metrics sizes are bounded before anything is allocated', async () => {
    const plan = JSON.parse(fs.readFileSync(path.join(planDir, 'plan.json'), 'utf8'));
    const big = path.join(tmp, 'big-plan.json');
    fs.writeFileSync(big, JSON.stringify({ ...plan, numGpus: 3e8 }));
    await expect(writeReport(big)).rejects.toThrow(/plan field numGpus = 300000000; allowed an integer in 1\.\.65536/);
    const runDir = path.join(tmp, 'ep-run');
    fs.mkdirSync(runDir, { recursive: true });
    const rec = { step: 1, loss: 1, aux: {}, lr: 1e-3, grad_norm: 1, tokens_per_s: 1, expert_load: [[1, 2]], dropped: [0], load_cv: 0, max_load_share: 0.5, maxvio: 0, router_entropy: 0.6,
      ep: [{ rank: 1e9, compute_ms: 1, comm_ms: 1, idle_ms: 0 }] };
    fs.writeFileSync(path.join(runDir, 'metrics.jsonl'), `${JSON.stringify(rec)}\n`);
    await expect(writeReport(runDir)).rejects.toThrow(/ep\[\]\.rank = 1000000000; allowed an integer in 0\.\.1023/);
  });

  it('simulate: time breakdown per strategy is the mean over layers, in ms', async () => {
    const simFile = path.join(planDir, 'sim.json');
    const out = await writeReport(simFile, { out: path.join(tmp, 'sim-out', 'x.html') });
    expect(out).toBe(path.join(tmp, 'sim-out', 'x.html'));
    const html = fs.readFileSync(out, 'utf8');
    expectSelfContained(html);
    const sim = JSON.parse(fs.readFileSync(simFile, 'utf8'));
    const s = chart(pageData(html), 'sim-breakdown').option.series;
    expect(s.map((x: any) => x.name)).toEqual(['dispatch', 'expert compute (slowest GPU)', 'combine', 'overlapped total']);
    const mean = (k: string, strat: string) => (1e3 * sim.layers.reduce((a: number, r: any) => a + r[strat][k], 0)) / sim.layers.length;
    expect(s[0].data[0]).toBeCloseTo(mean('dispatch', 'flat'), 3);
    expect(s[1].data[1]).toBeCloseTo(mean('compute', 'hierarchical'), 3);
    expect(s[3].data[1]).toBeCloseTo(mean('overlapped', 'hierarchical'), 3);
    expect(textReport(simFile)).toMatch(/hierarchical\s+[\d.]+\s+[\d.]+\s+[\d.]+%/);
  });
});

describe('report errors name the path', () => {
  it('missing path, empty folder, folder without inputs, empty metrics, unknown JSON', async () => {
    const missing = path.join(tmp, 'nope');
    await expect(writeReport(missing)).rejects.toThrow(`report: ${missing} does not exist`);
    const empty = path.join(tmp, 'empty');
    fs.mkdirSync(empty);
    await expect(writeReport(empty)).rejects.toThrow(`report: ${empty} is an empty folder`);
    expect(() => textReport(empty)).toThrow(empty);
    const other = path.join(tmp, 'other');
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(other, 'notes.txt'), 'x');
    await expect(writeReport(other)).rejects.toThrow(`${other} is a folder without metrics.jsonl or compare.json`);
    const noRecords = path.join(tmp, 'norecords');
    fs.mkdirSync(noRecords);
    fs.writeFileSync(path.join(noRecords, 'metrics.jsonl'), '');
    await expect(writeReport(noRecords)).rejects.toThrow(`${path.join(noRecords, 'metrics.jsonl')} has no records`);
    const odd = path.join(tmp, 'odd.json');
    fs.writeFileSync(odd, '{"hello": 1}');
    await expect(writeReport(odd)).rejects.toThrow(`${odd} is not plan output`);
    const bad = path.join(tmp, 'bad.json');
    fs.writeFileSync(bad, '{"methods": [{"method": "x", "load_cv": "high"}]}');
    await expect(writeReport(bad)).rejects.toThrow(`${bad}: methods[0].load_cv must be a number or null, got "high"`);
  });

  it('the CLI writes the page and reports errors on one line', async () => {
    const dir = path.join(tmp, 'cli-run');
    fakeRun(dir, 20);
    const cli = path.resolve('bin/switchyard.js');
    const [ok, err] = await Promise.all([
      run('node', [cli, 'report', dir, '--out', path.join(tmp, 'cli.html')]),
      run('node', [cli, 'report', path.join(tmp, 'missing')]).catch((e) => e),
    ]);
    expect(ok.stdout).toBe(`wrote ${path.join(tmp, 'cli.html')}\n`);
    expect(fs.statSync(path.join(tmp, 'cli.html')).size).toBeGreaterThan(500_000);
    expect(err.code).toBe(1);
    expect(err.stderr).toBe(`switchyard: report: ${path.join(tmp, 'missing')} does not exist\n`);
  }, 30_000);
});

describe('report of a dropless run', () => {
  it('the capacity-factor chart says "dropless: no capacity limit" instead of staying empty', async () => {
    const dir = path.join(tmp, 'dropless');
    fs.mkdirSync(dir, { recursive: true });
    const w = new MetricsWriter(path.join(dir, 'metrics.jsonl'));
    for (let s = 1; s <= 5; s++) {
      w.write({ step: s, loss: 3 - s / 10, aux: {}, lr: 1e-3, grad_norm: 1, tokens_per_s: 100, expert_load: [[5, 3, 4, 4]], dropped: [0], load_cv: 0.2, max_load_share: 0.3, maxvio: 0.25, router_entropy: 1.3, dropped_fraction: 0, capacity_factor: [null] } as MetricRecord);
    }
    w.close();
    const data = pageData(fs.readFileSync(await writeReport(dir), 'utf8'));
    const cap = chart(data, 'capacity') as any;
    expect(cap.caption).toContain('dropless: no capacity limit');
    expect(JSON.stringify(cap.option.graphic)).toContain('dropless: no capacity limit');
    expect(cap.option.series).toEqual([]);
  });
});
