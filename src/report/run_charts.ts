/**
 * The report of one training run: header tables (key config, summary numbers) and chart sections — losses,
 * optimisation, balance over time, per-layer expert load (heatmap over step buckets and final shares), and
 * expert-parallel per-rank timings. Long runs are downsampled (downsample.ts) to keep the page fast.
 */
import type { MetricRecord } from '../metrics/jsonl.ts';
import { loadRatioCells, minMaxDownsample, stepBuckets, type Point } from './downsample.ts';
import { barOption, barSeries, cell, COLORS, HEAT_MAX, heatmapOption, heatSeries, LOAD_RATIO_COLORS, lineOption, PALETTE, pctCell, type ChartSpec, type LineSeries, type Section, type TableSpec } from './charts.ts';
import type { RunData } from './load.ts';

/** Size limits of the page's data. */
export interface RunLimits {
  /** points per line series (min/max kept per bucket). */
  maxPoints: number;
  /** step buckets per heatmap. */
  maxBuckets: number;
}

/** 2000 points per line (the brief's cap), 500 step buckets per heatmap (≈2 px per column at 1280 px). */
export const DEFAULT_LIMITS: RunLimits = { maxPoints: 2000, maxBuckets: 500 };

/** Config entries shown in the header (dotted paths; a prefix matches its children). */
const KEY_CONFIG = ['model_type', 'layers', 'dim', 'heads', 'expert_num', 'top_k', 'expert_hidden', 'router', 'capacity_factor', 'drop_policy',
  'aux_loss', 'z_loss_weight', 'balance', 'lr', 'schedule', 'batch_size', 'seq_len', 'steps', 'seed', 'backend', 'data.source', 'data.tokenizer'];

/** Flattens nested config objects to [dotted path, value] pairs (arrays kept as JSON). */
function flatten(v: unknown, at: string, out: Array<[string, unknown]>): Array<[string, unknown]> {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) flatten(x, at ? `${at}.${k}` : k, out);
  } else out.push([at, v]);
  return out;
}

const show = (v: unknown): string => (typeof v === 'number' ? cell(v) : v === null ? 'null' : typeof v === 'string' ? v : JSON.stringify(v));

/** The key config as a table (empty when the run has no config.yaml). */
export function configTable(config: Record<string, unknown> | null): TableSpec | null {
  if (!config) return null;
  const rows = flatten(config, '', []).filter(([k]) => KEY_CONFIG.some((p) => k === p || k.startsWith(`${p}.`))).map(([k, v]) => [k, show(v)]);
  if (!rows.length) return null;
  // Long lists go in two column pairs: the header stays short next to the summary.
  if (rows.length <= 8) return { title: 'Key config', header: ['setting', 'value'], rows };
  const half = Math.ceil(rows.length / 2);
  return { title: 'Key config', header: ['setting', 'value', 'setting', 'value'], rows: rows.slice(0, half).map((r, i) => [...r, ...(rows[half + i] ?? ['', ''])]) };
}

/** Last record's value that is a finite number. */
function lastFinite(records: MetricRecord[], f: (r: MetricRecord) => number | null | undefined): number | null {
  for (let i = records.length - 1; i >= 0; i--) { const v = f(records[i]); if (typeof v === 'number' && Number.isFinite(v)) return v; }
  return null;
}

/** Summary numbers: summary.json's scalars (when present), then the final balance metrics from metrics.jsonl. */
export function summaryTable(run: RunData): TableSpec {
  const r = run.records;
  const rows: string[][] = [];
  const first = ['steps', 'first_loss', 'final_loss', 'val_loss', 'val_ppl', 'tokens_per_s'];
  const s = run.summary ?? {
    steps: r[r.length - 1].step, first_loss: r.find((x) => typeof x.loss === 'number')?.loss ?? null, final_loss: lastFinite(r, (x) => x.loss),
    val_loss: lastFinite(r, (x) => x.val_loss), val_ppl: lastFinite(r, (x) => x.val_ppl),
  };
  const keys = [...first.filter((k) => k in s), ...Object.keys(s).filter((k) => !first.includes(k))];
  for (const k of keys) {
    const v = s[k];
    if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean' || v === null) rows.push([k, show(v)]);
  }
  const last = r[r.length - 1];
  rows.push(['logged steps', `${r.length} (step ${r[0].step} to ${last.step})`]);
  rows.push(['final load CV', cell(last.load_cv)], ['final max-load share', pctCell(last.max_load_share)], ['final MaxVio', cell(last.maxvio)]);
  return { title: run.summary ? 'Summary (summary.json)' : 'Summary (from metrics.jsonl; no summary.json)', header: ['metric', 'value'], rows };
}

/** [steps, values] of the records where `f` is defined (null = logged but non-finite). */
function pick(records: MetricRecord[], f: (r: MetricRecord) => number | null | undefined, maxPoints: number): Point[] {
  const xs: number[] = [];
  const ys: Array<number | null> = [];
  for (const r of records) {
    const v = f(r);
    if (v === undefined) continue;
    xs.push(r.step);
    ys.push(v);
  }
  return minMaxDownsample(xs, ys, maxPoints);
}

/** dropped fraction = Σ_l dropped_l / (Σ_l dropped_l + Σ_l Σ_i load_li) when the record does not carry it. */
function droppedOf(r: MetricRecord): number {
  if (typeof r.dropped_fraction === 'number') return r.dropped_fraction;
  const d = r.dropped.reduce((a, b) => a + b, 0);
  const c = r.expert_load.reduce((a, row) => a + row.reduce((x, y) => x + y, 0), 0);
  return d + c > 0 ? d / (d + c) : 0;
}

/** The final per-layer load [L][E]: summary.per_layer_load when it fits, else the mean of the last 10% of records. */
export function finalLoad(run: RunData): { load: number[][]; source: string } {
  const L = run.records[0].expert_load.length, E = run.records[0].expert_load[0]?.length ?? 0;
  const pl = run.summary?.per_layer_load;
  if (Array.isArray(pl) && pl.length === L && pl.every((row) => Array.isArray(row) && row.length === E && row.every((v) => typeof v === 'number' && v >= 0))) {
    return { load: pl as number[][], source: 'summary.json per_layer_load' };
  }
  const n = Math.max(1, Math.ceil(run.records.length / 10));
  const tail = run.records.slice(-n);
  const load = Array.from({ length: L }, (_, l) => Array.from({ length: E }, (_, i) => tail.reduce((a, r) => a + r.expert_load[l][i], 0) / n));
  return { load, source: `mean of the last ${n} logged steps` };
}

const share = (row: number[]): number[] => { const s = row.reduce((a, b) => a + b, 0); return row.map((v) => (s > 0 ? v / s : 0)); };

/** How a run's charts are fed: after the run (report) or while it trains (dashboard: load bars show the newest step). */
export interface RunViewOptions {
  /** the newest logged step's load replaces the final load (summary.json or the tail mean). */
  live?: boolean;
}

/** The chart sections of a run. */
export function runSections(run: RunData, limits: RunLimits = DEFAULT_LIMITS, view: RunViewOptions = {}): { sections: Section[]; notes: string[] } {
  const { records } = run;
  const mp = limits.maxPoints;
  const L = records[0].expert_load.length;
  const E = records[0].expert_load[0]?.length ?? 0;
  if (L === 0 || E === 0) throw new Error(`report: ${run.dir}/metrics.jsonl: expert_load of step ${records[0].step} is empty (${L} layers × ${E} experts)`);
  const notes: string[] = [];
  if (records.length > mp) notes.push(`Line charts show the min and max of each of ${mp / 2} step buckets (${records.length} logged steps).`);
  const g = 'steps';
  const charts = (...cs: Array<ChartSpec | null>): ChartSpec[] => cs.filter((c): c is ChartSpec => c !== null);

  const valPts = pick(records, (r) => r.val_loss, mp);
  const losses: LineSeries[] = [{ name: 'train loss', data: pick(records, (r) => r.loss, mp), color: COLORS.loss }];
  if (valPts.length) losses.push({ name: 'val loss', data: valPts, color: COLORS.val, points: valPts.length < 200 });
  const auxNames = [...new Set(records.flatMap((r) => Object.keys(r.aux)))].sort();
  const lossSection: Section = {
    title: 'Losses',
    charts: charts(
      { id: 'loss', title: 'Task loss', caption: 'cross-entropy of the next token (nats/token), without aux terms; validation where measured', group: g, option: lineOption('loss (nats/token)', losses) },
      auxNames.length ? {
        id: 'aux', title: 'Auxiliary losses', caption: 'unweighted, summed over MoE layers', group: g,
        option: lineOption('aux loss', auxNames.map((n, i) => ({ name: n, data: pick(records, (r) => (n in r.aux ? r.aux[n] : undefined), mp), color: PALETTE[(i + 2) % PALETTE.length] }))),
      } : null,
    ),
  };

  const hasGrad = records.some((r) => r.grad_norm !== null);
  const optSection: Section = {
    title: 'Optimisation',
    charts: charts(
      { id: 'lr', title: 'Learning rate', caption: 'AdamW step size after warmup/decay schedule', group: g, option: lineOption('learning rate', [{ name: 'lr', data: pick(records, (r) => r.lr, mp), color: COLORS.lr }], { yMin: 0 }) },
      hasGrad ? { id: 'grad', title: 'Gradient norm', caption: 'global L2 norm before clipping', group: g, option: lineOption('‖g‖₂', [{ name: 'grad norm', data: pick(records, (r) => r.grad_norm, mp), color: COLORS.gradNorm }], { yMin: 0 }) } : null,
    ),
  };

  const capArrays = records.some((r) => Array.isArray(r.capacity_factor));
  // Dropless layers log capacity_factor null: a line only where some layer has a capacity.
  const finiteCap = (c: unknown) => typeof c === 'number' && Number.isFinite(c);
  const hasCap = records.some((r) => (Array.isArray(r.capacity_factor) ? r.capacity_factor.some(finiteCap) : finiteCap(r.capacity_factor)));
  const capSeries: LineSeries[] = !hasCap ? [] : capArrays
    ? Array.from({ length: L }, (_, l) => ({ name: `layer ${l}`, data: pick(records, (r) => (Array.isArray(r.capacity_factor) ? r.capacity_factor[l] : r.capacity_factor), mp), color: PALETTE[l % PALETTE.length] }))
    : [{ name: 'capacity factor', data: pick(records, (r) => r.capacity_factor as number | undefined, mp), color: COLORS.capacity }];
  // dropless: the run logs capacity factors, all null (no layer has a capacity): the chart says so instead of a line
  const dropless = !hasCap && records.some((r) => r.capacity_factor !== undefined);
  const DROPLESS = 'dropless: no capacity limit';
  const capChart: ChartSpec = dropless
    ? { id: 'capacity', title: 'Capacity factor', caption: `${DROPLESS} (every assignment is computed)`, group: g, option: { ...lineOption('capacity factor (×)', []), graphic: [{ type: 'text', left: 'center', top: 'middle', silent: true, style: { text: DROPLESS, fontSize: 16, fill: '#666' } }] } }
    : { id: 'capacity', title: 'Capacity factor', caption: 'C = factor · k · T / E slots per expert (dynamic capacity)', group: g, option: lineOption('capacity factor (×)', capSeries) };
  const hasDead = records.some((r) => r.dead_experts !== undefined);
  const balSection: Section = {
    title: 'Balance over time',
    intro: `Means over the ${L} MoE layer${L > 1 ? 's' : ''} of each step's metric. Perfect balance: CV 0, MaxVio 0, max-load share 1/E = ${pctCell(1 / E)}.`,
    charts: charts(
      { id: 'cv', title: 'Load CV', caption: 'CV = σ(load) / μ(load) over experts', group: g, option: lineOption('CV (σ/μ)', [{ name: 'load CV', data: pick(records, (r) => r.load_cv, mp), color: COLORS.cv }], { yMin: 0 }) },
      { id: 'maxvio', title: 'MaxVio', caption: 'MaxVio = (max load − mean load) / mean load', group: g, option: lineOption('MaxVio (× mean)', [{ name: 'MaxVio', data: pick(records, (r) => r.maxvio, mp), color: COLORS.maxvio }], { yMin: 0 }) },
      {
        id: 'maxshare', title: 'Max-load share', caption: 'max_i load_i / Σ load, the busiest expert\'s share of assignments', group: g,
        option: lineOption('max-load share (%)', [{ name: 'max-load share', data: pick(records, (r) => 100 * r.max_load_share, mp), color: COLORS.maxShare }], { yMin: 0, markY: { value: 100 / E, label: `even 1/E = ${(100 / E).toFixed(1)}%` } }),
      },
      {
        id: 'dropped', title: 'Dropped-token fraction', caption: 'assignments dropped by expert capacity / all assignments', group: g,
        option: lineOption('dropped (%)', [{ name: 'dropped', data: pick(records, (r) => 100 * droppedOf(r), mp), color: COLORS.dropped }], { yMin: 0 }),
      },
      {
        id: 'entropy', title: 'Router entropy', caption: `mean per-token entropy of the router distribution; uniform = ln E = ${Math.log(E).toFixed(3)} nats`, group: g,
        option: lineOption('entropy (nats)', [{ name: 'router entropy', data: pick(records, (r) => r.router_entropy, mp), color: COLORS.entropy }], { yMin: 0, markY: { value: Math.log(E), label: 'ln E' } }),
      },
      hasCap || dropless ? capChart : null,
      hasDead ? {
        id: 'dead', title: 'Dead experts', caption: 'experts with no tokens over the detection window, summed over MoE layers', group: g,
        option: lineOption('dead experts (count)', [{ name: 'dead experts', data: pick(records, (r) => r.dead_experts?.reduce((a, d) => a + d.length, 0), mp), color: COLORS.dead }], { yMin: 0 }),
      } : null,
    ),
  };

  const sections = [lossSection, optSection, balSection, loadSection(run, L, E, limits, notes, view)];
  const ep = epSection(records);
  if (ep) sections.push(ep);
  const nonfinite = records.filter((r) => r.nonfinite?.length).length;
  if (nonfinite) notes.push(`${nonfinite} logged step${nonfinite > 1 ? 's' : ''} had non-finite values (gaps in the lines).`);
  return { sections, notes };
}

/** Per-layer expert load: heatmap over step buckets and final shares, driven by one layer selector. */
function loadSection(run: RunData, L: number, E: number, limits: RunLimits, notes: string[], view: RunViewOptions): Section {
  const { records } = run;
  const buckets = stepBuckets(records.map((r) => r.step), limits.maxBuckets);
  const B = buckets.ranges.length;
  if (B < records.length) notes.push(`Heatmaps average ${records.length} logged steps into ${B} step buckets.`);
  const experts = Array.from({ length: E }, (_, i) => `e${i}`);
  const layerNames = Array.from({ length: L }, (_, l) => `MoE layer ${l}`);
  const heat = Array.from({ length: L }, (_, l) => [heatSeries(layerNames[l], loadRatioCells(records.map((r) => r.expert_load[l]), buckets))]);
  const last = records[records.length - 1];
  const fin = view.live ? { load: last.expert_load, source: `step ${last.step}` } : finalLoad(run);
  const when = view.live ? 'Current' : 'Final';
  const shares = fin.load.map(share);
  const even = { value: 100 / E, label: 'even' };
  const finalBars = shares.map((s) => barSeries([{ name: 'load share', data: s.map((v) => 100 * v), color: COLORS.after }], even));
  const overview = fin.load.map((row) => share(row).map((v) => E * v));
  const height = Math.min(620, Math.max(260, 7 * E + 90));
  const ovHeight = Math.min(420, Math.max(300, 22 * L + 90));
  return {
    title: 'Expert load per layer',
    intro: 'Load ÷ mean load: 1 = even (pale), 0 = idle (blue), ≥ 2 = twice its share or more (red).',
    selectors: L > 1 ? [{ id: 'layer', label: 'MoE layer', options: layerNames }] : [],
    charts: [
      {
        id: 'heatmap', title: 'Expert load over training', caption: `load_i ÷ mean load per step${B < records.length ? `, averaged into ${B} step buckets` : ''}; rows experts, columns steps`,
        wide: true, height, option: heatmapOption('step', buckets.steps.map(([, b]) => String(b)), 'expert', experts, '× mean', height),
        meta: { stepRanges: buckets.steps, unit: '× mean load', max: HEAT_MAX, colors: LOAD_RATIO_COLORS }, layered: { selector: 'layer', series: heat },
      },
      {
        id: 'finalshare', title: `${when} load share`, caption: `share of the layer's assignments per expert (${fin.source}); dashed: even 1/E`,
        option: barOption('expert', experts, 'load share (%)', []), layered: { selector: 'layer', series: finalBars },
      },
      {
        id: 'overview', title: `${when} load, all layers`, caption: `load_i ÷ mean load per layer (${fin.source})`, height: ovHeight,
        option: { ...heatmapOption('expert', experts, 'MoE layer', layerNames.map((_, l) => String(l)), '× mean', ovHeight), series: [heatSeries('final load', overview)] },
        meta: { unit: '× mean load', max: HEAT_MAX, colors: LOAD_RATIO_COLORS },
      },
    ],
  };
}

/** Expert-parallel timings: mean per rank of compute / communication / idle over the records that carry `ep`. */
function epSection(records: MetricRecord[]): Section | null {
  const withEp = records.filter((r) => r.ep?.length);
  if (!withEp.length) return null;
  const ranks = Math.max(...withEp.flatMap((r) => r.ep!.map((t) => t.rank))) + 1;
  const sum = Array.from({ length: ranks }, () => ({ compute: 0, comm: 0, idle: 0, n: 0 }));
  for (const r of withEp) for (const t of r.ep!) { const s = sum[t.rank]; s.compute += t.compute_ms; s.comm += t.comm_ms; s.idle += t.idle_ms; s.n++; }
  const avg = (k: 'compute' | 'comm' | 'idle') => sum.map((s) => (s.n ? s[k] / s.n : null));
  const cats = sum.map((_, i) => `rank ${i}`);
  return {
    title: 'Expert parallelism',
    charts: [{
      id: 'ep', title: 'Per-rank step time', caption: `mean over ${withEp.length} logged steps; idle = waiting for the slowest rank`, wide: ranks > 8,
      option: barOption('rank', cats, 'time per step (ms)', [
        { name: 'compute', data: avg('compute'), color: COLORS.compute, stack: 't' },
        { name: 'communication', data: avg('comm'), color: COLORS.comm, stack: 't' },
        { name: 'idle', data: avg('idle'), color: COLORS.idle, stack: 't' },
      ]),
    }],
  };
}
