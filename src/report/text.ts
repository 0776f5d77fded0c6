/**
 * `switchyard report --text`: the report for a terminal (SSH): the same tables as the page, and for a run a Unicode
 * heatmap per MoE layer (experts × step buckets of load ÷ mean load) and the final load bar of each layer.
 */
import { heatmap, loadBar, summaryTable } from './terminal.ts';
import type { TableSpec } from './charts.ts';
import { loadRatioCells, stepBuckets } from './downsample.ts';
import { loadAsRun, loadFileTable } from './load_file.ts';
import type { ReportInput, RunData } from './load.ts';
import { compareTable } from './compare_charts.ts';
import { planTables, simSections, simTables, sweepSections } from './plan_charts.ts';
import { configTable, finalLoad, summaryTable as runSummaryTable } from './run_charts.ts';

/** A TableSpec as aligned text (numeric columns right-aligned), under its title. */
export function tableText(t: TableSpec): string {
  const num = new Set(t.numeric ?? []);
  const cols = t.header.map((h, i) => ({ key: `c${i}`, label: h, align: (num.has(i) ? 'right' : 'left') as 'left' | 'right' }));
  const rows = t.rows.map((r) => Object.fromEntries(r.map((v, i) => [`c${i}`, v])));
  return `${t.title ? `${t.title}\n` : ''}${summaryTable(rows, cols)}`;
}

/** Heatmaps (one per MoE layer, experts × at most `cols` step buckets) and final load bars of a run. */
export function runHeatmaps(run: RunData, cols = 72): string {
  const recs = run.records;
  const L = recs[0].expert_load.length, E = recs[0].expert_load[0].length;
  const buckets = stepBuckets(recs.map((r) => r.step), cols);
  const first = `step ${recs[0].step}`, last = `step ${recs[recs.length - 1].step}`;
  const out: string[] = [];
  const labels = Array.from({ length: E }, (_, i) => `e${i}`);
  const avgNote = buckets.ranges.length < recs.length ? `, ${recs.length} logged steps averaged into ${buckets.ranges.length} columns` : '';
  out.push(`Expert load over training: load ÷ mean load per step, shaded against the layer's max${avgNote}; rows experts, columns steps.`);
  for (let l = 0; l < L; l++) {
    const cells = loadRatioCells(recs.map((r) => r.expert_load[l]), buckets);
    out.push('', heatmap(cells, { title: `MoE layer ${l}`, rowLabels: labels, colLabels: [first, last], maxCols: cols }));
  }
  const fin = finalLoad(run);
  out.push('', `Final load per layer (${fin.source}):`);
  const w = String(L - 1).length;
  fin.load.forEach((row, l) => out.push(`  layer ${String(l).padStart(w)} ${loadBar(row)}`));
  return out.join('\n');
}

/** The text report of an already-read input. */
export function textOf(input: ReportInput): string {
  const parts: string[] = [];
  switch (input.kind) {
    case 'run': {
      const { run } = input;
      parts.push(`Switchyard run ${run.name} (${run.dir})`);
      const cfg = configTable(run.config);
      if (cfg) parts.push(tableText(cfg));
      parts.push(tableText(runSummaryTable(run)), runHeatmaps(run));
      break;
    }
    case 'loads': {
      const run = loadAsRun(input.data, input.file);
      parts.push(`Expert load file ${input.file} (${input.data.format})`, tableText(loadFileTable(input.data, input.file)), runHeatmaps(run));
      break;
    }
    case 'compare':
      parts.push(`Switchyard compare (${input.dir})`, tableText(compareTable(input.methods)));
      break;
    case 'plan':
      parts.push(`Switchyard plan (${input.file})`, ...planTables(input.plan).map(tableText));
      break;
    case 'simulate':
    case 'sweep':
      parts.push(`Switchyard simulate (${input.file})`, ...simTables(input.sim, input.kind === 'sweep').map(tableText));
      const sections = input.kind === 'simulate' ? simSections(input.sim.layers) : sweepSections(input.sim.sweep, input.sim.recommendation);
      for (const s of sections) for (const t of s.tables ?? []) parts.push(tableText(t));
      break;
  }
  return `${parts.join('\n\n')}\n`;
}
