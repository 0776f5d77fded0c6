/**
 * `switchyard report`: one self-contained HTML page (or a text report) for a training run folder, a compare folder,
 * or plan / simulate output. writeReport and textReport are the library entry points (the trainer's --report flag
 * and tests call them).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import type { PageSpec, Section } from './charts.ts';
import { compareSections } from './compare_charts.ts';
import { defaultReportPath, readReportInput, readReportInputSync, type ReportInput } from './load.ts';
import { renderPage } from './page.ts';
import { planSections, planTables, simSections, simTables, sweepSections } from './plan_charts.ts';
import { configTable, DEFAULT_LIMITS, runSections, summaryTable, type RunLimits } from './run_charts.ts';
import { textOf } from './text.ts';
import type { ReadLoadOptions } from '../plan/load_formats.ts';
import { loadAsRun, loadFileSections, loadFileTable } from './load_file.ts';

/** Options of writeReport. */
export interface ReportOptions {
  /** output file (default: report.html in the folder, <name>.report.html beside a JSON file). */
  out?: string;
  /** plan JSON only: the load file the plan was made from (per-GPU loads); never taken from the plan itself. */
  load?: string;
  /** downsampling limits (default 2000 points per line, 500 step buckets per heatmap). */
  limits?: Partial<RunLimits>;
  /** how to read an engine's load file (Megatron tokens_per_expert: the expert-parallel split). */
  loadOptions?: ReadLoadOptions;
}

/** The page model of an input. */
export function buildPage(input: ReportInput, limits: RunLimits = DEFAULT_LIMITS): PageSpec {
  if (!Number.isInteger(limits.maxPoints) || limits.maxPoints < 2) throw new Error(`report: limits.maxPoints must be an integer ≥ 2, got ${limits.maxPoints}`);
  if (!Number.isInteger(limits.maxBuckets) || limits.maxBuckets < 1) throw new Error(`report: limits.maxBuckets must be a positive integer, got ${limits.maxBuckets}`);
  switch (input.kind) {
    case 'run': {
      const { run } = input;
      const { sections, notes } = runSections(run, limits);
      const cfg = configTable(run.config);
      const last = run.records[run.records.length - 1];
      return {
        title: `Training run: ${run.name}`, subtitle: `${path.resolve(run.dir)} · ${run.records.length} logged steps, last step ${last.step}`,
        header: [...(cfg ? [cfg] : []), summaryTable(run)], sections, notes,
        ...(run.configText ? { raw: { title: 'config.yaml (resolved)', text: run.configText } } : {}),
      };
    }
    case 'compare': {
      const first = input.runs[0];
      const cfg = first ? configTable(first.config) : null;
      return {
        title: `Balancing methods compared: ${path.basename(path.resolve(input.dir))}`,
        subtitle: `${path.resolve(input.dir)} · ${input.methods.length} methods${input.runs.length ? `, ${input.runs.length} runs` : ''}`,
        header: cfg ? [{ ...cfg, title: `Key config (${first.name})` }] : [], sections: compareSections(input.methods, input.runs, limits.maxPoints),
        notes: input.runs.length ? [] : ['No runs/ folder: training curves are not shown.'],
      };
    }
    case 'plan':
      return {
        title: `Expert placement plan: ${path.basename(input.file)}`, subtitle: path.resolve(input.file),
        header: planTables(input.plan), sections: planSections(input.plan, input.weight), notes: input.weightNote ? [input.weightNote] : [],
      };
    case 'loads': {
      const { sections, notes } = loadFileSections(loadAsRun(input.data, input.file), limits);
      return {
        title: `Expert load: ${path.basename(input.file)} (${input.data.format})`, subtitle: path.resolve(input.file),
        header: [loadFileTable(input.data, input.file)], sections, notes,
      };
    }
    case 'simulate':
    case 'sweep': {
      const sections: Section[] = input.kind === 'simulate' ? simSections(input.sim.layers) : sweepSections(input.sim.sweep, input.sim.recommendation);
      return {
        title: `${input.kind === 'simulate' ? 'Simulated MoE layers' : 'Expert sweep'}: ${path.basename(input.file)}`, subtitle: path.resolve(input.file),
        header: simTables(input.sim, input.kind === 'sweep'), sections, notes: [],
      };
    }
  }
}

/** Writes the HTML report of `p` (run folder, compare folder, plan or simulate JSON) atomically; returns its path. */
export async function writeReport(p: string, opts: ReportOptions = {}): Promise<string> {
  const input = await readReportInput(p, { load: opts.load, loadOptions: opts.loadOptions });
  const page = buildPage(input, { ...DEFAULT_LIMITS, ...opts.limits });
  const out = opts.out ?? defaultReportPath(input);
  fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
  writeFileAtomic(out, renderPage(page));
  return out;
}

/** The text report of `p`: summary tables and, for a run, a Unicode heatmap per MoE layer. */
export function textReport(p: string): string {
  return textOf(readReportInputSync(p));
}

/** textReport that also reads engines' load files (async readers). */
export async function textReportAsync(p: string, loadOptions: ReadLoadOptions = {}): Promise<string> {
  return textOf(await readReportInput(p, { loadOptions }));
}
