/**
 * `switchyard plan` as a library call: a placement by EPLB or our planner, with its report —
 * per-layer balancedness before (round-robin, no replicas), with EPLB and with the chosen method, and the expected
 * inter-node all-to-all volume before and after.
 *
 * Inter-node volume model (src/plan/topk_model.ts, src/sim/traffic.ts): a token sits on a uniformly random GPU, picks
 * top-k experts with inclusion probabilities π_e = k·f_e (f_e = the expert's load share), and uses one of an
 * expert's replicas uniformly. Expected inter-node token copies per routed token:
 *   flat (one copy per remote expert replica):   Σ_n (1/N) Σ_{m≠n} Λ_m = k·(N−1)/N  (Λ_m = Σ_{j∈m} λ_j; placement-free)
 *   hierarchical (one copy per remote node):      (N−1)/N · Σ_m h_m,  h_m = P(the token needs node m)
 */
import { fitTopK, missProbability } from './topk_model.ts';
import { planBalancedness, roundRobinBalancedness } from './balancedness.ts';
import { mean } from '../metrics/balance.ts';
import { isHierarchical, rebalanceExperts, type EplbPlan } from './eplb.ts';
import { rebalanceExpertsBest } from './refine.ts';

export type PlanMethod = 'eplb' | 'best';

export interface PlanOptions {
  numReplicas: number;
  numGroups: number;
  numNodes: number;
  numGpus: number;
  method: PlanMethod;
  /** Experts per token, for the inter-node volume model. */
  topK: number;
  /** Our planner keeps experts on EPLB's nodes under the hierarchical policy (default true). */
  keepNodes?: boolean;
}

export interface PlanReport extends EplbPlan {
  method: PlanMethod;
  policy: 'hierarchical' | 'global';
  /** [L] mean/max GPU load with the chosen plan, with EPLB's plan, and before (round-robin, no replicas). */
  balancedness: number[];
  balancednessEplb: number[];
  balancednessBefore: number[];
  /** Layers where the chosen plan beats EPLB's. */
  improvedLayers: number[];
  interNode: {
    topK: number;
    /** Copies per token, flat all-to-all (independent of placement). */
    flat: number;
    /** [L] copies per token with node-level dedup, before and after. */
    hierarchicalBefore: number[];
    hierarchicalAfter: number[];
  };
}

/** Expected hierarchical inter-node copies per token: (N−1)/N · Σ_m h_m. nodeExperts[m] = (expert, share) lists. */
function hierCopies(w: number[], topK: number, nodeExperts: Array<Map<number, number>>): number {
  const total = w.reduce((a, b) => a + b, 0);
  const model = fitTopK(total > 0 ? w : w.map(() => 1), Math.min(topK, w.length)); // an unused layer: uniform
  const N = nodeExperts.length;
  let sum = 0;
  for (const m of nodeExperts) sum += 1 - missProbability(model, [...m.keys()], [...m.values()]);
  return ((N - 1) / N) * sum;
}

/** Per node: expert → share of its replicas on that node, from a phy2log row (GPUs node-major). */
function nodeSharesOf(phy2log: number[], numNodes: number): Array<Map<number, number>> {
  const cnt = new Map<number, number>();
  for (const e of phy2log) cnt.set(e, (cnt.get(e) ?? 0) + 1);
  const per = phy2log.length / numNodes;
  return Array.from({ length: numNodes }, (_, m) => {
    const out = new Map<number, number>();
    for (let s = m * per; s < (m + 1) * per; s++) out.set(phy2log[s], (out.get(phy2log[s]) ?? 0) + 1 / cnt.get(phy2log[s])!);
    return out;
  });
}

/** Round-robin without replicas: expert e on GPU e mod G, node ⌊(e mod G)/g⌋. */
function roundRobinNodeShares(E: number, numGpus: number, numNodes: number): Array<Map<number, number>> {
  const g = numGpus / numNodes;
  const out = Array.from({ length: numNodes }, () => new Map<number, number>());
  for (let e = 0; e < E; e++) out[Math.floor((e % numGpus) / g)].set(e, 1);
  return out;
}

/** Plans a placement for loads weight [L, E] and reports balancedness and inter-node volume. */
export function planPlacement(weight: number[][], o: PlanOptions): PlanReport {
  if (!Number.isInteger(o.topK) || o.topK < 1) throw new Error(`--top-k ${o.topK} must be a positive integer`);
  const eplb = rebalanceExperts(weight, o.numReplicas, o.numGroups, o.numNodes, o.numGpus);
  const best = o.method === 'best'
    ? rebalanceExpertsBest(weight, o.numReplicas, o.numGroups, o.numNodes, o.numGpus, { keepNodes: o.keepNodes })
    : { ...eplb, improvedLayers: [] as number[] };
  // Inter-node volume needs GPUs split evenly over nodes; EPLB's global policy does not require it.
  const volume = o.numGpus % o.numNodes === 0;
  const before = roundRobinNodeShares(weight[0].length, o.numGpus, o.numNodes);
  return {
    phy2log: best.phy2log,
    log2phy: best.log2phy,
    logcnt: best.logcnt,
    method: o.method,
    policy: isHierarchical(o.numGroups, o.numNodes) ? 'hierarchical' : 'global',
    balancedness: planBalancedness(weight, best.phy2log, o.numGpus),
    balancednessEplb: planBalancedness(weight, eplb.phy2log, o.numGpus),
    balancednessBefore: roundRobinBalancedness(weight, o.numGpus),
    improvedLayers: best.improvedLayers,
    interNode: {
      topK: o.topK,
      flat: (Math.min(o.topK, weight[0].length) * (o.numNodes - 1)) / o.numNodes,
      hierarchicalBefore: volume ? weight.map((w) => hierCopies(w, o.topK, before)) : [],
      hierarchicalAfter: volume ? weight.map((w, l) => hierCopies(w, o.topK, nodeSharesOf(best.phy2log[l], o.numNodes))) : [],
    },
  };
}

/** Mean and minimum of a per-layer list. */
export function summary(xs: number[]): { mean: number; min: number } {
  return { mean: mean(xs, 0), min: xs.length ? Math.min(...xs) : NaN };
}
