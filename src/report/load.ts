/**
 * What `switchyard report PATH` was given, read and checked: a training run folder (metrics.jsonl, config.yaml,
 * summary.json), a compare folder (compare.json, optional runs/<method>-seed<N>/), a plan JSON (switchyard-plan)
 * or a simulate JSON (per-layer results, or an expert sweep). Errors name the path and what is missing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readMetrics, type MetricRecord } from '../metrics/jsonl.ts';
import { parseYamlSafe } from '../io/yaml_safe.ts';
import { readLoadFile, type LoadData, type ReadLoadOptions } from '../plan/load_formats.ts';
import type { LayerResult } from '../sim/simulate.ts';
import type { Recommendation, SweepRow } from '../sim/sweep.ts';

/** One training run folder. */
export interface RunData {
  dir: string;
  /** folder name, e.g. "switch-seed0". */
  name: string;
  /** parsed config.yaml (null when absent) and its text. */
  config: Record<string, unknown> | null;
  configText: string | null;
  /** parsed summary.json (null when absent). */
  summary: Record<string, unknown> | null;
  records: MetricRecord[];
}

/** One row of compare.json; numbers are means over seeds. */
export interface CompareRow {
  method: string;
  final_loss: number | null;
  final_loss_std: number | null;
  load_cv: number | null;
  max_load_share: number | null;
  maxvio: number | null;
  dropped_fraction: number | null;
  dead_experts: number | null;
  step_time_ratio: number | null;
}

/** The numeric fields of a compare.json row. */
export const COMPARE_FIELDS = ['final_loss', 'final_loss_std', 'load_cv', 'max_load_share', 'maxvio', 'dropped_fraction', 'dead_experts', 'step_time_ratio'] as const;

/** The switchyard-plan JSON written by `switchyard plan --format json`. */
export interface PlanFile {
  format: 'switchyard-plan';
  method: string;
  policy: string;
  source: { file: string; format: string; notes: string[] };
  numLogicalExperts: number;
  numReplicas: number;
  numGroups: number;
  numNodes: number;
  numGpus: number;
  layers: number[];
  phy2log: number[][];
  logcnt: number[][];
  balancedness: number[];
  balancednessEplb: number[];
  balancednessBefore: number[];
  improvedLayers: number[];
  interNode: { topK: number; flat: number; hierarchicalBefore: number[]; hierarchicalAfter: number[] };
}

/** `switchyard simulate --out` JSON: topology and model as the simulator used them, plus results. */
export interface SimFile {
  topology: { name: string; nodes: number; gpusPerNode: number; gpus: number; [k: string]: unknown };
  model: { experts: number; topK: number; tokensPerGpu: number; hidden: number; [k: string]: unknown };
  load: string;
}

/** What a report is made from, by kind. */
export type ReportInput =
  | { kind: 'run'; run: RunData }
  | { kind: 'compare'; dir: string; methods: CompareRow[]; runs: RunData[] }
  | { kind: 'plan'; file: string; plan: PlanFile; weight: number[][] | null; weightNote: string | null }
  | { kind: 'simulate'; file: string; sim: SimFile & { layers: LayerResult[] } }
  | { kind: 'sweep'; file: string; sim: SimFile & { sweep: SweepRow[]; recommendation: Recommendation[] } }
  | { kind: 'loads'; file: string; data: LoadData };

/** Reads JSON, naming the file on a parse error. */
function readJson(file: string): unknown {
  const text = fs.readFileSync(file, 'utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`report: ${file} is not valid JSON (${(e as Error).message})`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Reads a training run folder; metrics.jsonl must exist and hold at least one record. */
export function readRun(dir: string): RunData {
  const metrics = path.join(dir, 'metrics.jsonl');
  if (!fs.existsSync(metrics)) throw new Error(`report: ${dir} is not a run folder: no metrics.jsonl in it`);
  const records = readMetrics(metrics);
  if (records.length === 0) throw new Error(`report: ${metrics} has no records (did the run log a step?)`);
  const configFile = path.join(dir, 'config.yaml');
  const configText = fs.existsSync(configFile) ? fs.readFileSync(configFile, 'utf8') : null;
  const parsed = configText === null ? null : parseYamlSafe(configText, configFile);
  const summaryFile = path.join(dir, 'summary.json');
  const summary = fs.existsSync(summaryFile) ? readJson(summaryFile) : null;
  if (summary !== null && !isObject(summary)) throw new Error(`report: ${summaryFile} must hold a JSON object`);
  return { dir, name: path.basename(path.resolve(dir)), config: isObject(parsed) ? parsed : null, configText, summary, records };
}

/** Checks compare.json's shape: { methods: [{ method, final_loss, … }] }. */
function compareRows(v: unknown, file: string): CompareRow[] {
  if (!isObject(v) || !Array.isArray(v.methods)) throw new Error(`report: ${file} must be { "methods": [ … ] }`);
  if (v.methods.length === 0) throw new Error(`report: ${file} lists no methods`);
  return v.methods.map((m: unknown, i: number) => {
    if (!isObject(m) || typeof m.method !== 'string') throw new Error(`report: ${file}: methods[${i}].method must be a string, got ${JSON.stringify(isObject(m) ? m.method : m)}`);
    const row: Record<string, unknown> = { method: m.method };
    for (const k of COMPARE_FIELDS) {
      const x = m[k];
      if (x !== undefined && x !== null && typeof x !== 'number') throw new Error(`report: ${file}: methods[${i}].${k} must be a number or null, got ${JSON.stringify(x)}`);
      row[k] = typeof x === 'number' ? x : null;
    }
    return row as unknown as CompareRow;
  });
}

/** Run subfolders of a compare folder: runs/<method>-seed<N>/ with a metrics.jsonl, sorted by name. */
function compareRuns(dir: string): RunData[] {
  const runs = path.join(dir, 'runs');
  if (!fs.existsSync(runs)) return [];
  return fs.readdirSync(runs, { withFileTypes: true })
    .filter((d) => d.isDirectory() && fs.existsSync(path.join(runs, d.name, 'metrics.jsonl')))
    .map((d) => d.name).sort()
    .map((n) => readRun(path.join(runs, n)));
}

/** The load file a plan was made from, if it can still be read (relative to the cwd, then to the plan). */
async function planWeight(plan: PlanFile, file: string): Promise<{ weight: number[][] | null; note: string | null }> {
  const src = plan.source?.file;
  if (typeof src !== 'string') return { weight: null, note: 'the plan names no load file' };
  const candidates = path.isAbsolute(src) ? [src] : [src, path.join(path.dirname(file), src)];
  const found = candidates.find((c) => fs.existsSync(c));
  if (!found) return { weight: null, note: `load file ${src} not found: per-GPU loads are not shown` };
  const data = await readLoadFile(found, { numExperts: plan.numLogicalExperts });
  if (data.weight.length !== plan.phy2log.length || data.weight[0].length !== plan.numLogicalExperts) {
    return { weight: null, note: `load file ${found} is ${data.weight.length}×${data.weight[0].length}, the plan ${plan.phy2log.length}×${plan.numLogicalExperts}: per-GPU loads are not shown` };
  }
  return { weight: data.weight, note: null };
}

/** Checks a plan JSON's fields the report uses. */
function checkPlan(v: Record<string, unknown>, file: string): PlanFile {
  for (const k of ['phy2log', 'balancedness', 'balancednessEplb', 'balancednessBefore', 'layers']) {
    if (!Array.isArray(v[k])) throw new Error(`report: ${file}: plan field ${k} must be an array, got ${JSON.stringify(v[k])?.slice(0, 40)}`);
  }
  for (const k of ['numLogicalExperts', 'numReplicas', 'numGpus', 'numNodes']) {
    if (!Number.isInteger(v[k]) || (v[k] as number) < 1) throw new Error(`report: ${file}: plan field ${k} must be a positive integer, got ${JSON.stringify(v[k])}`);
  }
  return v as unknown as PlanFile;
}

/** Checks a simulate JSON: topology, model, and layers[] or sweep[]. */
function checkSim(v: Record<string, unknown>, file: string): SimFile {
  if (!isObject(v.topology) || typeof v.topology.gpus !== 'number') throw new Error(`report: ${file}: simulate output needs topology.gpus`);
  if (!isObject(v.model) || typeof v.model.experts !== 'number') throw new Error(`report: ${file}: simulate output needs model.experts`);
  return v as unknown as SimFile;
}

/** Reads a JSON file and tells plan, simulate and compare output apart by their fields (plan weight not read). */
function readJsonInput(file: string): ReportInput {
  const v = readJson(file);
  if (!isObject(v)) throw new Error(`report: ${file} holds no JSON object (expected plan, simulate or compare output)`);
  if (v.format === 'switchyard-plan') return { kind: 'plan', file, plan: checkPlan(v, file), weight: null, weightNote: null };
  if (Array.isArray(v.layers) && 'topology' in v) return { kind: 'simulate', file, sim: { ...checkSim(v, file), layers: v.layers as LayerResult[] } };
  if (Array.isArray(v.sweep) && 'topology' in v) {
    return { kind: 'sweep', file, sim: { ...checkSim(v, file), sweep: v.sweep as SweepRow[], recommendation: (v.recommendation ?? []) as Recommendation[] } };
  }
  if (Array.isArray(v.methods)) return { kind: 'compare', dir: path.dirname(file), methods: compareRows(v, file), runs: compareRuns(path.dirname(file)) };
  throw new Error(`report: ${file} is not plan output (format "switchyard-plan"), simulate output (topology + layers or sweep) or compare.json (methods); keys: ${Object.keys(v).slice(0, 8).join(', ')}`);
}

/**
 * Detects what `p` is and reads it: run folder, compare folder, metrics.jsonl, compare.json, plan or simulate JSON.
 * Synchronous; a plan's load file is not read (weight null): readReportInput does that.
 */
export function readReportInputSync(p: string): ReportInput {
  if (typeof p !== 'string' || p.length === 0) throw new Error(`report: PATH must be a non-empty path, got ${JSON.stringify(p)}`);
  if (!fs.existsSync(p)) throw new Error(`report: ${p} does not exist`);
  if (fs.statSync(p).isDirectory()) {
    const compare = path.join(p, 'compare.json');
    if (fs.existsSync(compare)) return { kind: 'compare', dir: p, methods: compareRows(readJson(compare), compare), runs: compareRuns(p) };
    if (fs.existsSync(path.join(p, 'metrics.jsonl'))) return { kind: 'run', run: readRun(p) };
    const n = fs.readdirSync(p).length;
    throw new Error(`report: ${p} is ${n === 0 ? 'an empty folder' : 'a folder without metrics.jsonl or compare.json'}: expected a training run folder or a compare folder`);
  }
  if (path.basename(p) === 'metrics.jsonl') return { kind: 'run', run: readRun(path.dirname(p)) };
  return readJsonInput(p);
}

/** readReportInputSync, plus a plan's load file (for per-GPU loads) when it can be found. */
export async function readReportInput(p: string, loadOpts: ReadLoadOptions = {}): Promise<ReportInput> {
  let input: ReportInput;
  try {
    input = readReportInputSync(p);
  } catch (e) {
    // not a run, compare, plan or simulate output: an engine's load file renders like a run (heatmaps over steps)
    if (!fs.existsSync(p)) throw e;
    let data: LoadData;
    try {
      data = await readLoadFile(p, loadOpts);
    } catch (e2) {
      throw new Error(`${(e as Error).message}; nor is it a load file: ${(e2 as Error).message}`);
    }
    return { kind: 'loads', file: p, data };
  }
  if (input.kind !== 'plan') return input;
  const { weight, note } = await planWeight(input.plan, input.file);
  return { ...input, weight, weightNote: note };
}

/** Where the report goes by default: report.html inside a folder, <name>.report.html beside a JSON file. */
export function defaultReportPath(input: ReportInput): string {
  switch (input.kind) {
    case 'run': return path.join(input.run.dir, 'report.html');
    case 'compare': return path.join(input.dir, 'report.html');
    case 'loads':
      if (fs.statSync(input.file).isDirectory()) return path.join(input.file, 'loads.report.html');
    // falls through: a load file gets <name>.report.html beside it
    case 'plan':
    case 'simulate':
    case 'sweep': {
      const base = path.basename(input.file).replace(/\.jsonl?$/i, '');
      return path.join(path.dirname(input.file), `${base}.report.html`);
    }
  }
}
