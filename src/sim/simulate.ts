/**
 * Simulates the MoE layers of a model on a topology: per layer, dispatch / expert compute (straggler) / combine
 * for flat and hierarchical all-to-all, without and with chunked overlap. Expected-value traffic (src/sim/traffic.ts)
 * priced by the alpha–beta model (src/sim/cost.ts); no per-token simulation, so 4096 GPUs take well under a second
 * per distinct layer.
 */
import { Rng } from '../rng.ts';
import { computeTime, flatTime, hierarchicalTime, overlapTime, type StrategyResult } from './cost.ts';
import type { ModelShape } from './model_shape.ts';
import { pricePaths, type PathMode, type PathsResult } from './paths.ts';
import { fitTopK, permuteModel, type TopKModel } from '../plan/topk_model.ts';
import type { Topology } from './topology.ts';
import type { AdaptiveOptions } from './topology_routing.ts';
import { layerTraffic, trivialPlacement, type LayerTraffic } from './traffic.ts';

export type { StrategyResult } from './cost.ts';

/** Optional static vs adaptive paths over a multi-path topology (src/sim/paths.ts); off by default. */
export interface SimOptions extends AdaptiveOptions {
  paths?: PathMode[];
}

/** Routing load distribution over experts. */
export type LoadSpec =
  | { kind: 'uniform' }
  | { kind: 'zipf'; s: number; seed: number }
  | { kind: 'trace'; weight: number[][] };

export interface LayerResult {
  layer: number;
  /** Compute balancedness of the placement: mean_j λ_j / max_j λ_j. */
  balancedness: number;
  /** Mean (ideal) expert compute time over GPUs. */
  computeMean: number;
  flat: StrategyResult;
  hierarchical: StrategyResult;
  /** The same all-to-alls on static and/or adaptive route tables, when SimOptions.paths asks. */
  paths?: PathsResult;
}

/** Parses "uniform", "zipf:1.2" or "zipf:1.2:seed"; traces come in through {kind:'trace'}. */
export function parseLoadSpec(text: string): LoadSpec {
  if (text === 'uniform') return { kind: 'uniform' };
  const m = /^zipf:([0-9.]+)(?::(\d+))?$/.exec(text);
  if (m && Number.isFinite(Number(m[1]))) return { kind: 'zipf', s: Number(m[1]), seed: m[2] ? Number(m[2]) : 1 };
  throw new Error(`--load ${JSON.stringify(text)}: expected uniform, zipf:S[:SEED] or trace FILE`);
}

/** A seeded random permutation: rank of expert e (Fisher–Yates). */
export function randomRanks(E: number, rng: Rng): number[] {
  const perm = Array.from({ length: E }, (_, i) => i);
  for (let i = E - 1; i > 0; i--) { const j = rng.int(i + 1); [perm[i], perm[j]] = [perm[j], perm[i]]; }
  return perm;
}

/** Zipf shares by rank: f_r ∝ (1 + r)^−s. */
export function zipfBase(E: number, s: number): number[] {
  return Array.from({ length: E }, (_, r) => Math.pow(r + 1, -s));
}

/** Per-layer load shares [L][E] and fitted top-k models (Zipf: one fit, relabelled per layer by seeded ranks). */
export function layerModels(spec: LoadSpec, E: number, k: number, layers: number): { shares: number[][]; models: TopKModel[] } {
  switch (spec.kind) {
    case 'uniform': {
      const f = new Array<number>(E).fill(1);
      const m = fitTopK(f, k);
      return { shares: Array.from({ length: layers }, () => f), models: Array.from({ length: layers }, () => m) };
    }
    case 'zipf': {
      const base = zipfBase(E, spec.s);
      const m = fitTopK(base, k);
      const rng = new Rng(spec.seed);
      const ranks = Array.from({ length: layers }, () => randomRanks(E, rng));
      return { shares: ranks.map((r) => r.map((x) => base[x])), models: ranks.map((r) => permuteModel(m, r)) };
    }
    case 'trace':
      if (spec.weight[0].length !== E) throw new Error(`trace has ${spec.weight[0].length} experts, model has ${E}`);
      return { shares: spec.weight, models: spec.weight.map((w) => fitTopK(w, k)) };
  }
}

/** Prices one layer given its traffic. */
function price(topo: Topology, shape: ModelShape, tr: LayerTraffic): { flat: StrategyResult; hierarchical: StrategyResult; computeMean: number } {
  const T = shape.tokensPerGpu, C = shape.chunks, H = shape.hidden;
  const comp = computeTime(topo, tr, T, shape.flopsPerAssignment);
  const one = (fn: typeof flatTime): StrategyResult => {
    const d = fn(topo, tr, T, H * shape.dispatchBytes);
    const b = fn(topo, tr, T, H * shape.combineBytes);
    const total = d.time + comp.max + b.time;
    // More chunks hide more communication but pay the per-message latency once per chunk: take the best C.
    let overlapped = total, chunks = 1;
    for (let c = 2; c <= C; c *= 2) {
      const dc = fn(topo, tr, T / c, H * shape.dispatchBytes).time;
      const bc = fn(topo, tr, T / c, H * shape.combineBytes).time;
      const time = overlapTime(dc, comp.max / c, bc, c);
      if (time < overlapped) { overlapped = time; chunks = c; }
    }
    return {
      dispatch: d.time, compute: comp.max, combine: b.time, total, overlapped, chunks,
      overhead: (total - comp.max) / comp.max, efficiency: comp.max / total,
      overlappedOverhead: (overlapped - comp.max) / comp.max, overlappedEfficiency: comp.max / overlapped,
      interBytes: d.interBytes, intraBytes: d.intraBytes,
    };
  };
  return { flat: one(flatTime), hierarchical: one(hierarchicalTime), computeMean: comp.mean };
}

/** Simulates one layer: shares [E], placement phy2log [R]. */
export function simulateLayer(topo: Topology, shape: ModelShape, shares: ArrayLike<number>, phy2log: ArrayLike<number>, model?: TopKModel, opts: SimOptions = {}): LayerResult {
  const m = model ?? fitTopK(shares, shape.topK);
  const tr = layerTraffic(phy2log, m, topo.gpus, topo.nodes);
  let max = 0, sum = 0;
  for (const x of tr.lambda) { max = Math.max(max, x); sum += x; }
  const res: LayerResult = { layer: 0, balancedness: sum / tr.lambda.length / max, ...price(topo, shape, tr) };
  if (opts.paths?.length) res.paths = pricePaths(topo, shape, tr, res.flat.compute, opts.paths, opts);
  return res;
}

/** Simulates every MoE layer; placement [L][R] or [1][R] (broadcast), default trivial (slot i → expert i mod E). */
export function simulate(topo: Topology, shape: ModelShape, load: LoadSpec, placement?: number[][], opts: SimOptions = {}): LayerResult[] {
  const layers = load.kind === 'trace' ? load.weight.length : shape.layers;
  const { shares, models } = layerModels(load, shape.experts, shape.topK, layers);
  const place = placement ?? [trivialPlacement(shape.experts, topo.gpus, shape.slotsPerGpu)];
  if (place.length !== 1 && place.length !== layers) throw new Error(`placement has ${place.length} layers, load has ${layers}`);
  place.forEach((row, l) => {
    if (row.length % topo.gpus !== 0) throw new Error(`placement layer ${l} has ${row.length} slots, not a multiple of ${topo.gpus} GPUs`);
    row.forEach((e, s) => { if (!Number.isInteger(e) || e < 0 || e >= shape.experts) throw new Error(`placement layer ${l} slot ${s} holds expert ${e}, model has ${shape.experts}`); });
  });
  const cache = new Map<string, LayerResult>();
  return shares.map((f, l) => {
    const row = place.length === 1 ? place[0] : place[l];
    // Identical layers (uniform loads, one placement) are priced once.
    const key = load.kind === 'uniform' && place.length === 1 ? 'all' : `${l}`;
    const hit = cache.get(key) ?? simulateLayer(topo, shape, f, row, models[l], opts);
    cache.set(key, hit);
    return { ...hit, layer: l };
  });
}

/** Sums a field over layers (a forward pass through all MoE layers). */
export function sumLayers(rs: LayerResult[], pick: (r: LayerResult) => number): number {
  return rs.reduce((a, r) => a + pick(r), 0);
}
