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
import { MAX_EXPERTS, MAX_GPUS, MAX_JSON_BYTES, MAX_LAYERS, MAX_NODES, MAX_SLOTS } from '../limits.ts';
import { readRegularText } from '../io/regular_file.ts';
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
  const text = readRegularText(file, MAX_JSON_BYTES, 'report input');
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
  const configText = fs.existsSync(configFile) ? readRegularText(configFile, 1 << 20, 'run config') : null;
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

/**
 * The plan's per-GPU loads come from a load file the user names (`report --load FILE`). The plan's own
 * source.file is shown, never opened: a report renders what it is given and opens no path named by its data.
 */
async function planWeight(plan: PlanFile, loadFile: string | undefined): Promise<{ weight: number[][] | null; note: string | null }> {
  if (loadFile === undefined) {
    return { weight: null, note: 'per-GPU loads are not shown: pass the load file the plan was made from with --load FILE' };
  }
  const data = await readLoadFile(loadFile, { numExperts: plan.numLogicalExperts });
  if (data.weight.length !== plan.phy2log.length || data.weight[0].length !== plan.numLogicalExperts) {
    return { weight: null, note: `load file ${loadFile} is ${data.weight.length}×${data.weight[0].length}, the plan ${plan.phy2log.length}×${plan.numLogicalExperts}: per-GPU loads are not shown` };
  }
  return { weight: data.weight, note: null };
}

/** Checks a plan JSON's fields the report uses. */
function checkPlan(v: Record<string, unknown>, file: string): PlanFile {
  for (const k of ['phy2log', 'balancedness', 'balancednessEplb', 'balancednessBefore', 'layers']) {
    if (!Array.isArray(v[k])) throw new Error(`report: ${file}: plan field ${k} must be an array, got ${JSON.stringify(v[k])?.slice(0, 40)}`);
  }
  const bounds = { numLogicalExperts: MAX_EXPERTS, numReplicas: MAX_SLOTS, numGpus: MAX_GPUS, numNodes: MAX_NODES } as const;
  for (const [k, max] of Object.entries(bounds)) {
    if (!Number.isInteger(v[k]) || (v[k] as number) < 1 || (v[k] as number) > max) throw new Error(`report: ${file}: plan field ${k} = ${JSON.stringify(v[k])?.slice(0, 40)}; allowed an integer in 1..${max}`);
  }
  const phy2log = v.phy2log as unknown[];
  if (phy2log.length > MAX_LAYERS) throw new Error(`report: ${file}: plan has ${phy2log.length} layers, above the bound ${MAX_LAYERS}`);
  phy2log.forEach((row, l) => {
    if (!Array.isArray(row) || row.length !== v.numReplicas) throw new Error(`report: ${file}: phy2log[${l}] must list numReplicas = ${String(v.numReplicas)} expert ids`);
    row.forEach((e, s) => {
      if (!Number.isInteger(e) || e < 0 || e >= (v.numLogicalExperts as number)) throw new Error(`report: ${file}: phy2log[${l}][${s}] = ${JSON.stringify(e)?.slice(0, 40)} is not an expert id below numLogicalExperts = ${String(v.numLogicalExperts)}`);
    });
  });
  if ((v.numReplicas as number) % (v.numGpus as number) !== 0) throw new Error(`report: ${file}: numReplicas ${String(v.numReplicas)} is not a multiple of numGpus ${String(v.numGpus)}`);
  return v as unknown as PlanFile;
}

/** Checks a simulate JSON: topology, model, and layers[] or sweep[]. */
function checkSim(v: Record<string, unknown>, file: string): SimFile {
  if (!isObject(v.topology) || !Number.isInteger(v.topology.gpus) || (v.topology.gpus as number) < 1 || (v.topology.gpus as number) > MAX_GPUS) {
    throw new Error(`report: ${file}: simulate output needs topology.gpus, an integer in 1..${MAX_GPUS}`);
  }
  if (!isObject(v.model) || !Number.isInteger(v.model.experts) || (v.model.experts as number) < 1 || (v.model.experts as number) > MAX_EXPERTS) {
    throw new Error(`report: ${file}: simulate output needs model.experts, an integer in 1..${MAX_EXPERTS}`);
  }
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

/**
 * readReportInputSync, plus, for a plan, the load file the user named (per-GPU loads; never a path taken from the
 * plan); a file that is no Switchyard output but an engine's load file renders like a run (heatmaps over steps).
 */
export async function readReportInput(p: string, opts: { load?: string; loadOptions?: ReadLoadOptions } = {}): Promise<ReportInput> {
  let input: ReportInput;
  try {
    input = readReportInputSync(p);
  } catch (e) {
    if (!fs.existsSync(p)) throw e;
    let data: LoadData;
    try {
      data = await readLoadFile(p, opts.loadOptions ?? {});
    } catch (e2) {
      throw new Error(`${(e as Error).message}; nor is it a load file: ${(e2 as Error).message}`);
    }
    if (opts.load !== undefined) throw new Error(`report: --load is for plan JSON; ${p} is a load file`);
    return { kind: 'loads', file: p, data };
  }
  if (input.kind !== 'plan') {
    if (opts.load !== undefined) throw new Error(`report: --load is for plan JSON; ${p} is ${input.kind} output`);
    return input;
  }
  const { weight, note } = await planWeight(input.plan, opts.load);
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
