/**
 * Calibration of the cost model against published all-to-all measurements (configs/calibration/published.yaml).
 * Each row is re-enacted on the simulator: the benchmark's routing (src/sim/sampled_traffic.ts), its kernel's data
 * path, and the benchmark's own way of turning time into a figure:
 *   deepep_normal       hierarchical, pipelined stages; GB/s = DeepEP's counted bytes / time, counted as its test does:
 *                       one node: tokens received · u = T·Σ_j q_j·u;  several: tokens × nodes reached (own included) · u = T·Σ_m h_m·u
 *   deepep_low_latency  flat, one copy per (token, expert); µs = time
 *   nccl_alltoall       flat, S bytes per GPU spread evenly; one node: busBw = S·(G−1)/G / time; several: per-NIC rate = S·(G−g)/G / time
 * Three constants are fitted on the `fit` rows (coordinate descent on a grid, minimising Σ log²(ours/theirs)) and
 * serve every row: NVLink efficiency, NIC efficiency, and a fixed overhead per all-to-all phase.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { CALIBRATED } from './calibrated.ts';
import { flatTime, hierarchicalTime } from './cost.ts';
import { sampledGroupLimitedTraffic } from './sampled_traffic.ts';
import { parseYaml, TopologySchema, toTopology, type Topology, type TopologyConfig } from './topology.ts';
import type { LayerTraffic } from './traffic.ts';

/** The fitted constants, in the topology file's units. */
export type LinkConstants = { -readonly [K in keyof typeof CALIBRATED]: number };

const Row = z.strictObject({
  id: z.string(),
  source: z.string(),
  kernel: z.enum(['deepep_normal', 'deepep_low_latency', 'nccl_alltoall']),
  phase: z.enum(['dispatch', 'combine']),
  topology: z.string(),
  gpus: z.int().min(1).max(4096),
  metric: z.enum(['GB_per_s', 'us']),
  published: z.number().positive(),
  fit: z.boolean().default(false),
});
export type CalibrationRow = z.infer<typeof Row>;

const PublishedSchema = z.strictObject({
  sources: z.record(z.string(), z.record(z.string(), z.string())),
  topologies: z.record(z.string(), z.string()),
  rows: z.array(Row).min(1),
});

export interface CalibrationSet {
  rows: CalibrationRow[];
  sources: Record<string, Record<string, string>>;
  /** line-rate topology per name (efficiencies, latencies and overhead are replaced by the constants). */
  topologies: Record<string, TopologyConfig>;
}

/** DeepEP's benchmark shapes (docs/legacy.md and tests/legacy/*.py of deepseek-ai/DeepEP). */
const HIDDEN = 7168, TOP_K = 8, EXPERTS = 256, GROUPS = 4;
const NORMAL_TOKENS = 4096, LL_TOKENS = 128;
/** Bytes per hidden element: DeepEP counts FP8 as BF16 · (1 + 4/128)/2 (the per-128 scales included). */
const NORMAL_BPE = { dispatch: 2 * (1 + 4 / 128) / 2, combine: 2 };
/** Bytes per (token, expert) copy in the low-latency kernels: FP8 data + scales + 16 B header; BF16 back. */
const LL_BYTES = { dispatch: HIDDEN + (HIDDEN / 128) * 4 + 16, combine: HIDDEN * 2 };
/** nccl-tests message size per GPU for the peak figures. */
const NCCL_BYTES = 4 * 2 ** 30;
/** Tokens sampled per routing (seeded). */
const SAMPLED_TOKENS = 16384;

/** Reads the published rows and the topologies they name (paths relative to the file). */
export async function readCalibrationSet(file: string): Promise<CalibrationSet> {
  const doc = parseYaml(await readFile(file, 'utf8'), PublishedSchema, file);
  const topologies: Record<string, TopologyConfig> = {};
  for (const [name, rel] of Object.entries(doc.topologies)) {
    topologies[name] = parseYaml(await readFile(resolve(dirname(file), rel), 'utf8'), TopologySchema, rel);
  }
  for (const r of doc.rows) {
    if (!topologies[r.topology]) throw new Error(`${file}: row '${r.id}' names topology '${r.topology}', not one of ${Object.keys(topologies).join(', ')}`);
    if (!doc.sources[r.source]) throw new Error(`${file}: row '${r.id}' names source '${r.source}', not one of ${Object.keys(doc.sources).join(', ')}`);
  }
  return { rows: doc.rows, sources: doc.sources, topologies };
}

/** The row's cluster: its line rates with the constants applied, gpus/gpus_per_node nodes. */
export function rowTopology(line: TopologyConfig, gpus: number, c: LinkConstants): Topology {
  const g = Math.min(line.gpus_per_node, gpus);
  if (gpus % g !== 0) throw new Error(`${gpus} GPUs do not fill nodes of ${g}`);
  return toTopology({
    ...line, nodes: gpus / g, gpus_per_node: g,
    intra_node: { ...line.intra_node, efficiency: c.nvlinkEfficiency, latency_us: c.nvlinkLatencyUs },
    inter_node: { ...line.inter_node, efficiency: c.nicEfficiency, latency_us: c.nicLatencyUs, nics_per_node: Math.min(line.inter_node.nics_per_node ?? g, g) },
    phase_overhead_us: c.phaseOverheadUs,
    fabric: undefined,
  });
}

const sum = (a: ArrayLike<number>): number => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]; return s; };

/** Routing traffic of a row (cached by its shape: sampling is the slow part). */
function rowTraffic(r: CalibrationRow, topo: Topology, cache: Map<string, LayerTraffic>): LayerTraffic {
  const key = `${r.kernel}:${topo.gpus}:${topo.nodes}`;
  let tr = cache.get(key);
  if (!tr) {
    if (r.kernel === 'nccl_alltoall') {
      const even = new Float64Array(topo.gpus).fill(1 / topo.gpus);
      tr = { lambda: even, q: even, h: new Float64Array(topo.nodes).fill(1 / topo.nodes) };
    } else {
      const groups = r.kernel === 'deepep_normal' ? GROUPS : topo.nodes; // low-latency benchmarks route without group limits
      tr = sampledGroupLimitedTraffic({ experts: Math.max(EXPERTS, topo.gpus), gpus: topo.gpus, nodes: topo.nodes, topK: TOP_K, groups, tokens: SAMPLED_TOKENS, seed: 1 });
    }
    cache.set(key, tr);
  }
  return tr;
}

/** Our figure for a row, in the row's metric (module header). */
export function predictRow(r: CalibrationRow, set: CalibrationSet, c: LinkConstants, cache = new Map<string, LayerTraffic>()): number {
  const topo = rowTopology(set.topologies[r.topology], r.gpus, c);
  const tr = rowTraffic(r, topo, cache);
  switch (r.kernel) {
    case 'deepep_normal': {
      const u = HIDDEN * NORMAL_BPE[r.phase];
      const time = hierarchicalTime(topo, tr, NORMAL_TOKENS, u, true).time;
      const counted = NORMAL_TOKENS * u * (topo.nodes === 1 ? sum(tr.q) : sum(tr.h));
      return counted / time / 1e9;
    }
    case 'deepep_low_latency':
      return flatTime(topo, tr, LL_TOKENS, LL_BYTES[r.phase]).time * 1e6;
    case 'nccl_alltoall': {
      const time = flatTime(topo, tr, 1, NCCL_BYTES).time;
      const G = topo.gpus, g = topo.gpusPerNode;
      return (NCCL_BYTES * (topo.nodes === 1 ? (G - 1) / G : (G - g) / G)) / time / 1e9;
    }
  }
}

/** Σ log²(ours/theirs) over rows. */
export function calibrationLoss(rows: CalibrationRow[], set: CalibrationSet, c: LinkConstants, cache: Map<string, LayerTraffic>): number {
  let s = 0;
  for (const r of rows) s += Math.log(predictRow(r, set, c, cache) / r.published) ** 2;
  return s;
}

/**
 * The fitted constants and their search grids [lowest, highest, step]. Per-message latencies are not fitted: the
 * published rows cannot see them (DeepEP's low-latency kernels send ~1000 small messages to up to 248 peers and stay
 * flat past 64 GPUs, so messages are issued in parallel, not serialized on a link); they stay 0 unless a topology
 * file sets a measured value.
 */
const GRID: Partial<Record<keyof LinkConstants, [number, number, number]>> = {
  nvlinkEfficiency: [0.5, 1, 0.005],
  nicEfficiency: [0.5, 1, 0.005],
  phaseOverheadUs: [0, 60, 0.25],
};

/** Fits the constants on the rows marked `fit` by coordinate descent over GRID, from the midpoints (deterministic). */
export function fitConstants(set: CalibrationSet, cache = new Map<string, LayerTraffic>()): LinkConstants {
  const rows = set.rows.filter((r) => r.fit);
  if (rows.length === 0) throw new Error('calibration: no row is marked fit: true');
  const keys = Object.keys(GRID) as (keyof LinkConstants)[];
  const c: LinkConstants = { nvlinkEfficiency: 1, nicEfficiency: 1, nvlinkLatencyUs: 0, nicLatencyUs: 0, phaseOverheadUs: 0 };
  for (const k of keys) c[k] = snap(k, (GRID[k]![0] + GRID[k]![1]) / 2);
  let best = calibrationLoss(rows, set, c, cache);
  for (let sweep = 0; sweep < 20; sweep++) {
    let moved = false;
    for (const k of keys) {
      const [lo, hi, step] = GRID[k]!;
      for (let i = 0; lo + i * step <= hi + 1e-9; i++) {
        const trial = { ...c, [k]: snap(k, lo + i * step) };
        const loss = calibrationLoss(rows, set, trial, cache);
        if (loss < best - 1e-12) { best = loss; c[k] = trial[k]; moved = true; }
      }
    }
    if (!moved) break;
  }
  return c;
}

/** A value rounded to its grid step (so fits print and compare exactly). */
function snap(k: keyof LinkConstants, v: number): number {
  const step = GRID[k]![2];
  return Number((Math.round(v / step) * step).toFixed(6));
}

export interface CalibrationResult {
  constants: LinkConstants;
  rows: (CalibrationRow & { ours: number; ratio: number })[];
  /** max |ours/theirs − 1| and the median of |ours/theirs − 1|, over all rows and over held-out rows. */
  maxError: number;
  medianError: number;
  heldOutMaxError: number;
}

/** Every row priced with the given constants (default: fitted on the fit rows). */
export function calibrate(set: CalibrationSet, constants?: LinkConstants): CalibrationResult {
  const cache = new Map<string, LayerTraffic>();
  const c = constants ?? fitConstants(set, cache);
  const rows = set.rows.map((r) => { const ours = predictRow(r, set, c, cache); return { ...r, ours, ratio: ours / r.published }; });
  const err = (rs: typeof rows) => rs.map((r) => Math.abs(r.ratio - 1));
  const all = err(rows).sort((a, b) => a - b);
  const held = err(rows.filter((r) => !r.fit));
  const mid = all.length >> 1;
  return {
    constants: c, rows,
    maxError: all[all.length - 1],
    medianError: all.length % 2 ? all[mid] : (all[mid - 1] + all[mid]) / 2,
    heldOutMaxError: held.length ? Math.max(...held) : 0,
  };
}
