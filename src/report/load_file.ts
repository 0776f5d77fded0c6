/**
 * `switchyard report LOADFILE`: any expert-load file `plan` reads (Megatron tokens_per_expert folder or router trace,
 * SGLang logical_count, vLLM EPLB stats, a matrix, metrics.jsonl) rendered like a run: balance over steps and a load
 * heatmap per layer over steps. Steps are the source's own (Megatron iteration, SGLang buffered pass, log line).
 */
import * as path from 'node:path';
import type { LoadData } from '../plan/load_engines.ts';
import { loadCv, maxLoadShare, maxVio, mean } from '../metrics/balance.ts';
import type { MetricRecord } from '../metrics/jsonl.ts';
import type { Section, TableSpec } from './charts.ts';
import type { RunData } from './load.ts';
import { DEFAULT_LIMITS, runSections, type RunLimits } from './run_charts.ts';

/** The load file as a run of metric records: one per step of its series (or one for the whole file). */
export function loadAsRun(data: LoadData, file: string): RunData {
  const series = data.series ?? { steps: [0], weight: [data.weight] };
  const records: MetricRecord[] = series.steps.map((step, s) => {
    const w = series.weight[s];
    const busy = w.filter((row) => row.some((v) => v > 0)); // a layer with no tokens this step has no balance to measure
    const m = (f: (row: number[]) => number): number => (busy.length ? mean(busy.map(f)) : 0);
    return {
      step, loss: null, aux: {}, lr: 0, grad_norm: null, tokens_per_s: null, expert_load: w, dropped: w.map(() => 0),
      load_cv: m(loadCv), max_load_share: m(maxLoadShare), maxvio: m(maxVio), router_entropy: 0,
    };
  });
  return { dir: path.dirname(file), name: path.basename(file), config: null, configText: null, summary: null, records };
}

/** Balance over steps (CV, MaxVio, max-load share) and the per-layer load heatmaps; losses and optimiser charts left out. */
export function loadFileSections(run: RunData, limits: RunLimits = DEFAULT_LIMITS): { sections: Section[]; notes: string[] } {
  const { sections, notes } = runSections(run, limits);
  const keep = new Set(['cv', 'maxvio', 'maxshare', 'heatmap', 'finalshare', 'overview']);
  const out = sections
    .map((s) => ({ ...s, charts: s.charts.filter((c) => keep.has(c.id)) }))
    .filter((s) => s.charts.length > 0);
  return { sections: out, notes };
}

/** The header table: what was read and how. */
export function loadFileTable(data: LoadData, file: string): TableSpec {
  const steps = data.series?.steps;
  const total = data.weight.reduce((a, row) => a + row.reduce((x, y) => x + y, 0), 0);
  const rows: string[][] = [
    ['file', file], ['format', data.format], ['MoE layers', `${data.weight.length} (ids ${data.layerIds[0]}..${data.layerIds[data.layerIds.length - 1]}; rows in this order)`],
    ['experts', String(data.weight[0].length)], ['steps', steps ? `${steps.length} (${steps[0]} to ${steps[steps.length - 1]})` : '1 (the file keeps no steps apart)'],
    ['assignments counted', String(total)],
    ...data.notes.map((n) => ['note', n]),
  ];
  return { title: 'Load file', header: ['field', 'value'], rows };
}
