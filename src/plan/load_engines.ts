/**
 * Expert-load records as MoE engines write them, reduced to a logical load matrix [layers][experts].
 * Formats (looked up in each engine's source; docs/planning.md "Load inputs" and docs/engines.md give the exact provenance):
 *   metrics   — Switchyard metrics.jsonl: lines with "expert_load": [L][E]; summed over lines.
 *   vllm      — vLLM offline-EPLB stats JSONL (PR #41141 tools/eplb): {"record_type": "eplb_load_meta", ...} then
 *               {"record_type": "eplb_load_stats", "step", "expert_load": [L][P], "p2l_map": [L][P]}; physical loads
 *               are summed onto logical experts through p2l_map, then over records.
 *   vllm-state — EplbModelState tensors dumped with .tolist(): "expert_load_window" [W][L][P] or "expert_load_pass"
 *               [L][P], optional "physical_to_logical_map" [L][P].
 *   sglang    — SGLang expert-distribution "stat" dump / --init-expert-location input: "logical_count" [L][E] or
 *               [S][L][E] (summed over S, as SGLang's rebalance does). Its .pt dumps are torch pickles: convert to JSON.
 *   megatron  — Megatron-Core router trace (--moe-routing-trace-path, router_trace_rank{r}.jsonl): one record per
 *               (step, layer): {"step","stage","block","layer","rank","num_tokens","topk","top_indices": [T][k]};
 *               counted per layer; "mtp" blocks are skipped.
 */

import { MAX_EXPERTS, MAX_LAYERS, MAX_MATRIX_CELLS, MAX_SLOTS, MAX_TOP_K } from '../limits.ts';

/** A load matrix with where each row came from. */
export interface LoadData {
  /** [L, E] token counts per layer and logical expert. */
  weight: number[][];
  /** Source layer id of each row (Megatron layer numbers; 0..L-1 otherwise). */
  layerIds: number[];
  format: LoadFormatName;
  /** Facts a user should know about the conversion (skipped records, inferred sizes). */
  notes: string[];
  /** top-k when the source records it (Megatron traces). */
  topK?: number;
  /** Loads per step (iteration, log line, buffered pass) where the source keeps them apart: weight[s] is [L][E]. */
  series?: LoadSeries;
}

/** Per-step load matrices: steps[s] and its [L][E] counts weight[s] (rows as LoadData.layerIds). */
export interface LoadSeries {
  steps: number[];
  weight: number[][][];
}

/** Collects per-step matrices keyed by step number (records of one step are summed). */
export class SeriesBuilder {
  private readonly byStep = new Map<number, number[][]>();
  /** Adds matrix m [L][E] to step `step`. */
  add(step: number, m: number[][]): void {
    const cur = this.byStep.get(step);
    if (!cur) { this.byStep.set(step, m.map((r) => r.slice())); return; }
    for (let i = 0; i < m.length; i++) for (let j = 0; j < m[i].length; j++) cur[i][j] += m[i][j];
  }
  /** The series in step order, or undefined when empty. */
  finish(): LoadSeries | undefined {
    if (this.byStep.size === 0) return undefined;
    const steps = [...this.byStep.keys()].sort((a, b) => a - b);
    return { steps, weight: steps.map((s) => this.byStep.get(s)!) };
  }
}

export type LoadFormatName = 'matrix' | 'csv' | 'metrics' | 'vllm' | 'vllm-state' | 'sglang' | 'megatron' | 'megatron-tpe';

/** Checks one count: a finite non-negative number. */
export function checkCount(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`${where} = ${JSON.stringify(v)} is not a finite non-negative count`);
  return v;
}

/** Checks a rectangular [rows][cols] numeric matrix; returns it as number[][]. */
export function checkMatrix(m: unknown, where: string, cols?: number): number[][] {
  if (!Array.isArray(m) || m.length === 0) throw new Error(`${where} must be a non-empty [layers][experts] array`);
  if (m.length > MAX_LAYERS) throw new Error(`${where} has ${m.length} layers, above the bound ${MAX_LAYERS}`);
  const width = cols ?? (Array.isArray(m[0]) ? m[0].length : -1);
  if (width <= 0) throw new Error(`${where}[0] must be a non-empty array of counts`);
  if (width > MAX_SLOTS) throw new Error(`${where} has ${width} columns (experts or slots), above the bound ${MAX_SLOTS}`);
  checkCells(m.length, width, where);
  return m.map((row, i) => {
    if (!Array.isArray(row)) throw new Error(`${where}[${i}] is not an array`);
    if (row.length !== width) throw new Error(`${where}[${i}] has ${row.length} entries, expected ${width} (ragged rows)`);
    return row.map((v, j) => checkCount(v, `${where}[${i}][${j}]`));
  });
}

/** Throws unless a [rows][cols] matrix stays within MAX_MATRIX_CELLS. */
export function checkCells(rows: number, cols: number, where: string): void {
  if (rows * cols > MAX_MATRIX_CELLS) throw new Error(`${where}: ${rows} × ${cols} = ${rows * cols} cells, above the bound ${MAX_MATRIX_CELLS}`);
}

/** Adds matrix b into a (same shape) in place. */
function addInto(a: number[][], b: number[][], where: string): void {
  if (a.length !== b.length || a[0].length !== b[0].length) {
    throw new Error(`${where}: shape [${b.length}, ${b[0].length}] differs from earlier [${a.length}, ${a[0].length}]`);
  }
  for (let i = 0; i < a.length; i++) for (let j = 0; j < a[i].length; j++) a[i][j] += b[i][j];
}

/** Sums physical loads [L][P] onto logical experts through p2l [L][P]; E = numExperts or max(p2l)+1. */
export function physicalToLogical(load: number[][], p2l: unknown, where: string, numExperts?: number): number[][] {
  const map = checkMatrix(p2l, `${where}.p2l_map`, load[0].length);
  if (map.length !== load.length) throw new Error(`${where}: p2l_map has ${map.length} layers, loads have ${load.length}`);
  let E = numExperts ?? 0;
  let maxId = -1;
  map.forEach((row, l) => row.forEach((e, p) => {
    if (!Number.isInteger(e)) throw new Error(`${where}: p2l_map[${l}][${p}] = ${e} is not an expert id (an integer)`);
    maxId = Math.max(maxId, e);
  }));
  if (maxId >= MAX_EXPERTS) throw new Error(`${where}: p2l_map holds expert id ${maxId}; allowed expert ids 0..${MAX_EXPERTS - 1} (the bound on experts)`);
  if (!numExperts) E = maxId + 1;
  checkCells(load.length, E, where);
  return load.map((row, l) => {
    const out = new Array<number>(E).fill(0);
    row.forEach((x, p) => {
      const e = map[l][p];
      if (!Number.isInteger(e) || e >= E) throw new Error(`${where}: p2l_map[${l}][${p}] = ${e} is not an expert id below ${E}`);
      out[e] += x;
    });
    return out;
  });
}

/** One JSONL dialect's running sum. `add` takes a parsed line; `finish` returns the matrix. */
export interface RecordAccumulator {
  format: LoadFormatName;
  add(rec: Record<string, unknown>, where: string): void;
  finish(source: string): LoadData;
}

/** Which JSONL dialect a record belongs to, or null for lines to skip. */
export function dialectOf(rec: Record<string, unknown>): 'metrics' | 'vllm' | 'megatron' | null {
  if ('record_type' in rec) return 'vllm';
  if ('top_indices' in rec) return 'megatron';
  if ('expert_load' in rec) return 'metrics';
  return null;
}

/** Switchyard metrics.jsonl: Σ over lines of "expert_load" [L][E]. */
export function metricsAccumulator(): RecordAccumulator {
  let sum: number[][] | null = null;
  let lines = 0;
  const series = new SeriesBuilder();
  return {
    format: 'metrics',
    add(rec, where) {
      const m = checkMatrix(rec.expert_load, `${where} expert_load`, sum?.[0].length);
      series.add(Number.isFinite(rec.step) ? (rec.step as number) : lines, m);
      if (sum) addInto(sum, m, where); else sum = m;
      lines++;
    },
    finish(source) {
      if (!sum) throw new Error(`${source}: no line has "expert_load"`);
      return { weight: sum, layerIds: sum.map((_, i) => i), format: 'metrics', notes: [`summed ${lines} metrics lines`], series: series.finish() };
    },
  };
}

/** vLLM offline-EPLB stats JSONL: Σ over eplb_load_stats records of expert_load mapped through p2l_map. */
export function vllmAccumulator(numExperts?: number): RecordAccumulator {
  let sum: number[][] | null = null;
  let meta: Record<string, unknown> | null = null;
  let stats = 0, other = 0;
  const series = new SeriesBuilder();
  return {
    format: 'vllm',
    add(rec, where) {
      if (rec.record_type === 'eplb_load_meta') { meta = rec; return; }
      if (rec.record_type !== 'eplb_load_stats') { other++; return; }
      const load = checkMatrix(rec.expert_load, `${where} expert_load`);
      const logical = physicalToLogical(load, rec.p2l_map, where, numExperts ?? sum?.[0].length);
      series.add(Number.isFinite(rec.step) ? (rec.step as number) : stats, logical);
      if (sum) addInto(sum, logical, where); else sum = logical;
      stats++;
    },
    finish(source) {
      if (!sum) throw new Error(`${source}: no eplb_load_stats record`);
      const notes = [`summed ${stats} eplb_load_stats records onto logical experts via p2l_map`];
      if (other) notes.push(`ignored ${other} records of other record_type`);
      const m = meta as Record<string, unknown> | null;
      if (m && typeof m.num_layers === 'number' && m.num_layers !== sum.length) {
        throw new Error(`${source}: eplb_load_meta says num_layers ${m.num_layers}, stats have ${sum.length}`);
      }
      if (m) notes.push(`meta: ${['model', 'num_ranks', 'num_groups', 'num_nodes', 'num_redundant_experts'].filter((k) => k in m).map((k) => `${k}=${String(m[k])}`).join(' ')}`);
      return { weight: sum, layerIds: sum.map((_, i) => i), format: 'vllm', notes, series: series.finish() };
    },
  };
}

/** Megatron-Core router trace: per decoder layer, count expert ids in top_indices [num_tokens][topk]. */
export function megatronAccumulator(numExperts?: number): RecordAccumulator {
  const counts = new Map<number, number[]>();
  const stepCounts = new Map<number, Map<number, number[]>>(); // step → layer → counts
  let topK: number | undefined;
  let records = 0, mtp = 0, maxId = -1;
  return {
    format: 'megatron',
    add(rec, where) {
      if (rec.block !== undefined && rec.block !== 'decoder') { mtp++; return; }
      const layer = rec.layer;
      if (!Number.isInteger(layer) || (layer as number) < 0 || (layer as number) >= MAX_LAYERS) {
        throw new Error(`${where}: "layer" = ${JSON.stringify(layer)} is not a layer number; allowed 0..${MAX_LAYERS - 1}`);
      }
      const idx = rec.top_indices;
      if (!Array.isArray(idx)) throw new Error(`${where}: "top_indices" is not an array`);
      if (typeof rec.num_tokens === 'number' && rec.num_tokens !== idx.length) {
        throw new Error(`${where}: num_tokens ${rec.num_tokens} but top_indices has ${idx.length} rows (truncated record?)`);
      }
      const k = typeof rec.topk === 'number' ? rec.topk : idx.length && Array.isArray(idx[0]) ? (idx[0] as unknown[]).length : topK;
      if (k !== undefined && (!Number.isInteger(k) || k < 1 || k > MAX_TOP_K)) throw new Error(`${where}: topk = ${JSON.stringify(k)}; allowed an integer in 1..${MAX_TOP_K}`);
      if (topK !== undefined && k !== undefined && k !== topK) throw new Error(`${where}: topk ${k} differs from earlier ${topK}`);
      topK = k;
      const row = counts.get(layer as number) ?? [];
      const step = Number.isInteger(rec.step) ? (rec.step as number) : 0;
      const perStep = stepCounts.get(step) ?? new Map<number, number[]>();
      stepCounts.set(step, perStep);
      const srow = perStep.get(layer as number) ?? [];
      perStep.set(layer as number, srow);
      idx.forEach((tok, t) => {
        if (!Array.isArray(tok) || (k !== undefined && tok.length !== k)) throw new Error(`${where}: top_indices[${t}] is not a list of ${k} expert ids`);
        for (const e of tok) {
          if (!Number.isInteger(e) || e < 0 || e >= (numExperts ?? MAX_EXPERTS)) {
            throw new Error(`${where}: top_indices[${t}] holds ${JSON.stringify(e)}, not an expert id below ${numExperts ?? `${MAX_EXPERTS} (the bound on experts)`}`);
          }
          row[e] = (row[e] ?? 0) + 1;
          srow[e] = (srow[e] ?? 0) + 1;
          maxId = Math.max(maxId, e);
        }
      });
      counts.set(layer as number, row);
      records++;
    },
    finish(source) {
      if (counts.size === 0) throw new Error(`${source}: no decoder router-trace records`);
      const E = numExperts ?? maxId + 1;
      checkCells(counts.size, E, source);
      const layerIds = [...counts.keys()].sort((a, b) => a - b);
      const weight = layerIds.map((l) => Array.from({ length: E }, (_, e) => counts.get(l)![e] ?? 0));
      const notes = [`counted ${records} router-trace records over ${layerIds.length} MoE layers (layer ids ${layerIds[0]}..${layerIds[layerIds.length - 1]})`];
      if (!numExperts) notes.push(`expert count inferred as max id + 1 = ${E}; pass --experts if the highest experts were never picked`);
      if (mtp) notes.push(`skipped ${mtp} MTP records`);
      const steps = [...stepCounts.keys()].sort((a, b) => a - b);
      const series = { steps, weight: steps.map((s) => layerIds.map((l) => Array.from({ length: E }, (_, e) => stepCounts.get(s)!.get(l)?.[e] ?? 0))) };
      return { weight, layerIds, format: 'megatron', notes, topK, series };
    },
  };
}

/** Sums a [S][L][E] stack over its first axis. */
function sumStack(stack: unknown, where: string): number[][] {
  if (!Array.isArray(stack) || stack.length === 0) throw new Error(`${where} must be a non-empty array`);
  let sum: number[][] | null = null;
  stack.forEach((m, s) => {
    const mat = checkMatrix(m, `${where}[${s}]`, sum?.[0].length);
    if (sum) addInto(sum, mat, `${where}[${s}]`); else sum = mat;
  });
  return sum!;
}

/** A [S][L][E] stack as a series with steps 0..S−1 (checked by sumStack first). */
function stackSeries(stack: unknown, where: string): LoadSeries {
  const mats = (stack as unknown[]).map((m, s) => checkMatrix(m, `${where}[${s}]`));
  return { steps: mats.map((_, s) => s), weight: mats };
}

/** Depth of nesting of the first elements (2 for a matrix, 3 for a stack). */
function depth(x: unknown): number {
  let d = 0;
  while (Array.isArray(x)) { d++; x = x[0]; }
  return d;
}

/** A whole-file JSON document (not JSONL) → load matrix: a bare matrix or stack, SGLang or vLLM objects. */
export function loadFromJsonDocument(doc: unknown, source: string, numExperts?: number): LoadData {
  const ids = (w: number[][]): number[] => w.map((_, i) => i);
  if (Array.isArray(doc)) {
    const d = depth(doc);
    if (d === 3) {
      const w = sumStack(doc, source);
      return { weight: w, layerIds: ids(w), format: 'matrix', notes: [`summed ${doc.length} [layers][experts] matrices`], series: stackSeries(doc, source) };
    }
    const w = checkMatrix(doc, source);
    return { weight: w, layerIds: ids(w), format: 'matrix', notes: [] };
  }
  if (doc === null || typeof doc !== 'object') throw new Error(`${source}: expected a JSON matrix or object, got ${JSON.stringify(doc)?.slice(0, 40)}`);
  const o = doc as Record<string, unknown>;
  if ('logical_count' in o) {
    const d = depth(o.logical_count);
    const w = d === 3 ? sumStack(o.logical_count, `${source} logical_count`) : checkMatrix(o.logical_count, `${source} logical_count`);
    const notes = d === 3 ? [`summed logical_count over ${(o.logical_count as unknown[]).length} buffered steps`] : [];
    return { weight: w, layerIds: ids(w), format: 'sglang', notes, ...(d === 3 ? { series: stackSeries(o.logical_count, `${source} logical_count`) } : {}) };
  }
  if ('expert_load_window' in o || 'expert_load_pass' in o) {
    const phys = 'expert_load_window' in o ? sumStack(o.expert_load_window, `${source} expert_load_window`) : checkMatrix(o.expert_load_pass, `${source} expert_load_pass`);
    const map = o.physical_to_logical_map;
    const w = map === undefined ? phys : physicalToLogical(phys, map, source, numExperts);
    const notes = map === undefined ? ['no physical_to_logical_map: physical experts taken as logical'] : ['mapped physical loads to logical experts'];
    return { weight: w, layerIds: ids(w), format: 'vllm-state', notes };
  }
  if ('expert_load' in o || 'record_type' in o) {
    const acc = 'record_type' in o ? vllmAccumulator(numExperts) : metricsAccumulator();
    acc.add(o, source);
    return acc.finish(source);
  }
  throw new Error(`${source}: unknown load object (keys ${Object.keys(o).slice(0, 6).join(', ')}); expected logical_count, expert_load_window, expert_load_pass or expert_load`);
}
