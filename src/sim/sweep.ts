/**
 * Sweeps over expert count (the seeds' table: throughput gain and communication overhead vs experts) and over
 * cluster size (deployment recommendation: flat vs hierarchical all-to-all, redundant expert slots).
 *
 * Expert sweep: E experts on an expert-parallel group of E / experts_per_gpu GPUs (one node when it fits, else
 * whole nodes of the topology), T tokens per GPU, uniform routing unless --load says otherwise.
 *   gain       = t_dense / t_moe, t_dense = T·E·flopsPerAssignment / FLOP/s: a dense FFN holding the same
 *                parameters (E · expert_ffn) run on the same tokens with no communication;
 *   overhead   = (t_moe − t_compute) / t_compute; efficiency = t_compute / t_moe (seed 004's 通信效率).
 */
import { mean } from '../metrics/balance.ts';
import { MAX_EXPERTS, MAX_TOP_K } from '../limits.ts';
import { rebalanceExperts } from '../plan/eplb.ts';
import type { ModelShape } from './model_shape.ts';
import { layerModels, simulate, type LayerResult, type LoadSpec } from './simulate.ts';
import { withNodes, type Topology } from './topology.ts';

export interface SweepPoint { experts: number; topK: number }

/** Parses ["experts=8,32,64,128", "top_k=2,2,4,4"] (a single list broadcasts). */
export function parseSweep(args: string[]): SweepPoint[] {
  const lists: Record<string, number[]> = {};
  for (const arg of args.flatMap((a) => a.split(/\s+/)).filter(Boolean)) {
    const m = /^(experts|top_k)=([0-9,]+)$/.exec(arg);
    if (!m) throw new Error(`--sweep ${JSON.stringify(arg)}: expected experts=N,N,… or top_k=K,K,…`);
    lists[m[1]] = m[2].split(',').filter(Boolean).map(Number);
    if (lists[m[1]].length > 64) throw new Error(`--sweep ${m[1]}: ${lists[m[1]].length} values, above the bound 64`);
  }
  const ex = lists.experts, tk = lists.top_k;
  if (!ex) throw new Error('--sweep needs experts=N,N,…');
  const n = Math.max(ex.length, tk?.length ?? 1);
  const at = (l: number[] | undefined, i: number, name: string): number => {
    if (!l) throw new Error(`--sweep needs ${name}=…`);
    if (l.length !== 1 && l.length !== n) throw new Error(`--sweep: ${name} has ${l.length} values, expected ${n} or 1`);
    const v = l.length === 1 ? l[0] : l[i];
    const max = name === 'experts' ? MAX_EXPERTS : MAX_TOP_K;
    if (!Number.isInteger(v) || v < 1 || v > max) throw new Error(`--sweep: ${name} = ${v}: allowed an integer in 1..${max}`);
    return v;
  };
  return Array.from({ length: n }, (_, i) => ({ experts: at(ex, i, 'experts'), topK: at(tk, i, 'top_k') }));
}

export interface SweepRow {
  experts: number;
  topK: number;
  gpus: number;
  nodes: number;
  compute: number;
  dense: number;
  flat: { comm: number; total: number; overhead: number; efficiency: number; gain: number };
  hierarchical: { comm: number; total: number; overhead: number; efficiency: number; gain: number };
}

/** The expert-parallel group for E experts: E / slotsPerGpu GPUs, one node if it fits, else whole nodes. */
export function expertGroup(topo: Topology, experts: number, slotsPerGpu: number): Topology {
  if (experts % slotsPerGpu !== 0) throw new Error(`experts ${experts} not divisible by ${slotsPerGpu} slots per GPU`);
  const P = experts / slotsPerGpu;
  if (P <= topo.gpusPerNode) return withNodes(topo, 1, P);
  if (P % topo.gpusPerNode !== 0) throw new Error(`experts=${experts} needs ${P} GPUs, not whole nodes of ${topo.gpusPerNode}`);
  if (P / topo.gpusPerNode > topo.nodes) throw new Error(`experts=${experts} needs ${P / topo.gpusPerNode} nodes, topology has ${topo.nodes}`);
  return withNodes(topo, P / topo.gpusPerNode);
}

/** One row per sweep point, priced on one representative layer (layer 0 of the load). */
export function runSweep(topo: Topology, shape: ModelShape, points: SweepPoint[], load: LoadSpec): SweepRow[] {
  return points.map(({ experts, topK }) => {
    if (topK > experts) throw new Error(`--sweep: top_k ${topK} exceeds experts ${experts}`);
    const slots = shape.slotsPerGpu ?? 1;
    const group = expertGroup(topo, experts, slots);
    const s: ModelShape = { ...shape, experts, topK, layers: 1, slotsPerGpu: slots };
    const r = simulate(group, s, load.kind === 'trace' ? { kind: 'trace', weight: [load.weight[0]] } : load)[0];
    const dense = (shape.tokensPerGpu * experts * shape.flopsPerAssignment) / group.flops;
    const pick = (x: LayerResult['flat']) => ({
      comm: x.dispatch + x.combine, total: x.total, overhead: x.overhead, efficiency: x.efficiency, gain: dense / x.total,
    });
    return { experts, topK, gpus: group.gpus, nodes: group.nodes, compute: r.flat.compute, dense, flat: pick(r.flat), hierarchical: pick(r.hierarchical) };
  });
}

export interface Recommendation {
  gpus: number;
  nodes: number;
  /** Layer time with the best chunked overlap, mean over the layers priced. */
  flat: number;
  hierarchical: number;
  strategy: 'flat' | 'hierarchical';
  /** Redundant expert slots per GPU beyond ⌈E/G⌉ (replicas placed by EPLB). */
  redundantPerGpu: number;
  balancedness: number;
}

/**
 * For cluster sizes of 1, 2, 4, … up to the topology's nodes: the faster all-to-all and the fewest redundant
 * slots per GPU (0, 1, 2; placed by EPLB's global policy) within 2% of the best layer time. Prices up to 4 layers.
 */
export function recommend(topo: Topology, shape: ModelShape, load: LoadSpec): Recommendation[] {
  const sizes: number[] = [];
  for (let n = 1; n < topo.nodes; n *= 2) sizes.push(n);
  sizes.push(topo.nodes);
  const layers = Math.min(4, load.kind === 'trace' ? load.weight.length : shape.layers);
  const { shares } = layerModels(load, shape.experts, shape.topK, layers);
  const spec: LoadSpec = { kind: 'trace', weight: shares };
  return sizes.map((n) => {
    const t = withNodes(topo, n);
    const base = Math.ceil(shape.experts / t.gpus);
    const options = [0, 1, 2].map((r) => {
      const R = t.gpus * (base + r);
      const placement = rebalanceExperts(shares, R, 1, n, t.gpus).phy2log;
      const res = simulate(t, { ...shape, layers }, spec, placement);
      const meanOf = (f: (x: LayerResult) => number): number => mean(res.map(f), NaN);
      return { r, flat: meanOf((x) => x.flat.overlapped), hier: meanOf((x) => x.hierarchical.overlapped), bal: meanOf((x) => x.balancedness) };
    });
    const best = Math.min(...options.map((o) => Math.min(o.flat, o.hier)));
    const o = options.find((x) => Math.min(x.flat, x.hier) <= best * 1.02)!;
    return {
      gpus: t.gpus, nodes: n, flat: o.flat, hierarchical: o.hier,
      strategy: o.hier < o.flat ? 'hierarchical' : 'flat', redundantPerGpu: o.r, balancedness: o.bal,
    };
  });
}
