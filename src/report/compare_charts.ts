/**
 * The report of `switchyard compare`: the methods side by side — a table of compare.json, a bar chart per metric,
 * final loss against load CV, and (when the per-seed run folders are there) loss and CV curves of every run,
 * coloured by method.
 */
import { minMaxDownsample, roundSig } from './downsample.ts';
import { barOption, cell, fmt, lineOption, PALETTE, pctCell, type ChartSpec, type LineSeries, type Section, type TableSpec } from './charts.ts';
import type { CompareRow, RunData } from './load.ts';

/** Method of a run folder named "<method>-seed<N>" (the whole name otherwise). */
export function methodOfRun(name: string): { method: string; seed: number | null } {
  const m = /^(.+)-seed(\d+)$/.exec(name);
  return m ? { method: m[1], seed: Number(m[2]) } : { method: name, seed: null };
}

/** compare.json as a table: mean ± std over seeds where given. */
export function compareTable(rows: CompareRow[]): TableSpec {
  return {
    title: 'Methods (means over seeds)',
    header: ['method', 'final loss', 'load CV', 'max-load share', 'MaxVio', 'dropped', 'dead experts', 'step time (× none)'],
    numeric: [1, 2, 3, 4, 5, 6, 7],
    rows: rows.map((r) => [
      r.method,
      r.final_loss === null ? '–' : `${cell(r.final_loss)}${r.final_loss_std !== null ? ` ± ${cell(r.final_loss_std, 2)}` : ''}`,
      cell(r.load_cv), pctCell(r.max_load_share), cell(r.maxvio), pctCell(r.dropped_fraction, 2), cell(r.dead_experts, 3), r.step_time_ratio === null ? '–' : `${r.step_time_ratio.toFixed(2)}×`,
    ]),
  };
}

/** Experts of the compared model, from a run's config (expert_num) or its metrics; null when unknown. */
function expertsOf(runs: RunData[]): number | null {
  const r = runs[0];
  if (!r) return null;
  const e = r.config?.expert_num;
  return typeof e === 'number' ? e : r.records[0].expert_load[0]?.length ?? null;
}

/** The compare sections. */
export function compareSections(rows: CompareRow[], runs: RunData[], maxPoints = 2000): Section[] {
  const methods = rows.map((r) => r.method);
  const colorOf = (m: string): string => {
    const i = methods.indexOf(m);
    return PALETTE[(i >= 0 ? i : methods.length + runs.findIndex((r) => methodOfRun(r.name).method === m)) % PALETTE.length];
  };
  const E = expertsOf(runs);
  const bars = (id: string, title: string, caption: string, yName: string, f: (r: CompareRow) => number | null, markY?: { value: number; label: string }): ChartSpec | null => {
    if (rows.every((r) => f(r) === null)) return null;
    const option = barOption('method', methods, yName, [{ name: title, data: rows.map(f) }], { markY, rotate: methods.length > 6 ? 30 : 0 });
    const series = option.series as Array<Record<string, unknown>>;
    series[0].data = rows.map((r) => ({ value: roundSig(f(r)), itemStyle: { color: colorOf(r.method) } }));
    return { id, title, caption, option };
  };
  const lossStd = rows.some((r) => r.final_loss_std !== null);
  const charts = [
    bars('cmp-loss', 'Final task loss', `nats/token, mean over seeds${lossStd ? ' (± std in the table)' : ''}`, 'loss (nats/token)', (r) => r.final_loss),
    bars('cmp-cv', 'Load CV', 'σ(load) / μ(load); 0 = even', 'CV (σ/μ)', (r) => r.load_cv),
    bars('cmp-maxshare', 'Max-load share', 'busiest expert\'s share of assignments', 'max-load share (%)', (r) => (r.max_load_share === null ? null : 100 * r.max_load_share),
      E ? { value: 100 / E, label: `even 1/E = ${(100 / E).toFixed(1)}%` } : undefined),
    bars('cmp-maxvio', 'MaxVio', '(max load − mean load) / mean load', 'MaxVio (× mean)', (r) => r.maxvio),
    bars('cmp-time', 'Step time', 'time per step relative to plain top-k (none = 1)', 'step time (× none)', (r) => r.step_time_ratio, { value: 1, label: 'none' }),
    bars('cmp-dropped', 'Dropped-token fraction', 'assignments dropped by capacity', 'dropped (%)', (r) => (r.dropped_fraction === null ? null : 100 * r.dropped_fraction)),
    bars('cmp-dead', 'Dead experts', 'experts without tokens over the detection window, at the end', 'dead experts (count)', (r) => r.dead_experts),
  ].filter((c): c is ChartSpec => c !== null);
  const both = rows.filter((r) => r.final_loss !== null && r.load_cv !== null);
  if (both.length) {
    charts.push({
      id: 'cmp-tradeoff', title: 'Loss against balance', caption: 'lower-left is better: final task loss vs load CV, one point per method',
      option: {
        animation: false, grid: { left: 70, right: 30, top: 30, bottom: 52 }, tooltip: { trigger: 'item', formatter: fmt('tradeoff') }, // a function: ECharts templates would read '{b}' in a method name
        xAxis: { type: 'value', name: 'load CV (σ/μ)', nameLocation: 'middle', nameGap: 28, scale: true, splitLine: { lineStyle: { color: '#eee' } } },
        yAxis: { type: 'value', name: 'final loss (nats/token)', nameLocation: 'middle', nameGap: 50, scale: true, splitLine: { lineStyle: { color: '#eee' } } },
        series: both.map((r) => ({
          name: r.method, type: 'scatter', symbolSize: 12, color: colorOf(r.method), data: [[roundSig(r.load_cv), roundSig(r.final_loss)]],
          label: { show: true, formatter: fmt('seriesName'), position: 'right', color: '#333' },
        })),
      },
    });
  }
  const sections: Section[] = [{ title: 'Methods side by side', tables: [compareTable(rows)], charts }];
  if (runs.length) sections.push(runCurves(runs, colorOf, maxPoints));
  return sections;
}

/** Loss and CV over steps of every run folder (one line per seed, one colour per method). */
function runCurves(runs: RunData[], colorOf: (m: string) => string, maxPoints: number): Section {
  const per = Math.max(100, Math.floor((4 * maxPoints) / runs.length)); // keeps the page size bounded with many runs
  const lines = (f: (r: RunData['records'][number]) => number | null): LineSeries[] => runs.map((run) => {
    const { method } = methodOfRun(run.name);
    return { name: method, color: colorOf(method), thin: true, data: minMaxDownsample(run.records.map((r) => r.step), run.records.map(f), per) };
  });
  return {
    title: 'Training curves',
    intro: `${runs.length} run${runs.length > 1 ? 's' : ''} from runs/; one line per seed, coloured by method (click a legend entry to hide a method).`,
    charts: [
      { id: 'cmp-runs-loss', title: 'Task loss', caption: 'nats/token over steps', group: 'steps', option: lineOption('loss (nats/token)', lines((r) => r.loss)) },
      { id: 'cmp-runs-cv', title: 'Load CV', caption: 'σ(load)/μ(load), mean over MoE layers', group: 'steps', option: lineOption('CV (σ/μ)', lines((r) => r.load_cv), { yMin: 0 }) },
      { id: 'cmp-runs-maxvio', title: 'MaxVio', caption: '(max − mean)/mean load, mean over MoE layers', group: 'steps', option: lineOption('MaxVio (× mean)', lines((r) => r.maxvio), { yMin: 0 }) },
      { id: 'cmp-runs-maxshare', title: 'Max-load share', caption: 'busiest expert\'s share of assignments', group: 'steps', option: lineOption('max-load share (%)', lines((r) => 100 * r.max_load_share), { yMin: 0 }) },
    ],
  };
}
