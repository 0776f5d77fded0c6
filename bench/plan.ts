/**
 * Planner benchmark: our planner ("best") vs the EPLB port on seeded Zipf traces (s = 0.5 … 1.5, many layers),
 * per suite mean/min balancedness for both and the share of layers where ours ≥ EPLB (must be 100%) and > EPLB;
 * plus simulator wall time on 4096 GPUs. Run alone: `npm run bench -- --only plan`.
 */
import { readFileSync } from 'node:fs';
import { rebalanceExperts } from '../src/plan/eplb.ts';
import { rebalanceExpertsBest } from '../src/plan/refine.ts';
import { planBalancedness } from '../src/plan/balancedness.ts';
import { Rng } from '../src/rng.ts';
import { ModelShapeSchema, toModelShape } from '../src/sim/model_shape.ts';
import { simulate } from '../src/sim/simulate.ts';
import { parseYaml, TopologySchema, toTopology } from '../src/sim/topology.ts';

interface Suite { name: string; experts: number; replicas: number; groups: number; nodes: number; gpus: number; layers: number }

/** DeepSeek-V3-shaped prefill (hierarchical) and decode (global) deployments, and two smaller MoEs. */
const SUITES: Suite[] = [
  { name: 'E256 R288 8 groups, 4 nodes x 8 GPUs (hierarchical)', experts: 256, replicas: 288, groups: 8, nodes: 4, gpus: 32, layers: 58 },
  { name: 'E256 R576 8 groups, 18 nodes x 8 GPUs (global)', experts: 256, replicas: 576, groups: 8, nodes: 18, gpus: 144, layers: 16 },
  { name: 'E128 R160 1 group, 4 nodes x 8 GPUs (global)', experts: 128, replicas: 160, groups: 1, nodes: 4, gpus: 32, layers: 24 },
  { name: 'E64 R96 4 groups, 2 nodes x 8 GPUs (hierarchical)', experts: 64, replicas: 96, groups: 4, nodes: 2, gpus: 16, layers: 24 },
];
const SKEWS = [0.5, 0.75, 1.0, 1.25, 1.5];

/** Token counts of one layer: 65536 tokens × top-8 spread by Zipf(s) over a random expert ranking, ×lognormal(0.2). */
export function zipfTrace(E: number, layers: number, s: number, rng: Rng): number[][] {
  return Array.from({ length: layers }, () => {
    const rank = Array.from({ length: E }, (_, i) => i);
    for (let i = E - 1; i > 0; i--) { const j = rng.int(i + 1); [rank[i], rank[j]] = [rank[j], rank[i]]; }
    const w = rank.map((r) => Math.pow(r + 1, -s) * Math.exp(0.2 * rng.normal()));
    const z = w.reduce((a, b) => a + b, 0);
    return w.map((x) => Math.round((65536 * 8 * x) / z));
  });
}

const stats = (xs: number[]) => ({ mean: +(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(4), min: +Math.min(...xs).toFixed(4) });

/** Runs every suite at every skew; returns per-suite numbers and the 4096-GPU simulate timing. */
export async function benchPlan(): Promise<Record<string, unknown>> {
  const suites: Record<string, unknown> = {};
  let allLayers = 0, allGe = 0;
  for (const [i, su] of SUITES.entries()) {
    const rng = new Rng(1000 + i);
    const eplbB: number[] = [], bestB: number[] = [], crossB: number[] = [];
    const hier = su.groups % su.nodes === 0;
    let ge = 0, gt = 0, eplbMs = 0, bestMs = 0;
    const perSkew: Record<string, unknown> = {};
    for (const s of SKEWS) {
      const w = zipfTrace(su.experts, su.layers, s, rng);
      let t0 = performance.now();
      const a = rebalanceExperts(w, su.replicas, su.groups, su.nodes, su.gpus);
      eplbMs += performance.now() - t0;
      t0 = performance.now();
      const b = rebalanceExpertsBest(w, su.replicas, su.groups, su.nodes, su.gpus);
      bestMs += performance.now() - t0;
      const ba = planBalancedness(w, a.phy2log, su.gpus), bb = planBalancedness(w, b.phy2log, su.gpus);
      ba.forEach((x, l) => { if (bb[l] >= x - 1e-12) ge++; if (bb[l] > x + 1e-9) gt++; });
      eplbB.push(...ba); bestB.push(...bb);
      // Hierarchical suites: what lifting the keep-experts-on-their-node rule would buy.
      if (hier) crossB.push(...planBalancedness(w, rebalanceExpertsBest(w, su.replicas, su.groups, su.nodes, su.gpus, { keepNodes: false }).phy2log, su.gpus));
      perSkew[`zipf_${s}`] = { eplb: stats(ba), best: stats(bb) };
    }
    const n = eplbB.length;
    allLayers += n; allGe += ge;
    suites[su.name] = {
      layers: n, eplb: stats(eplbB), best: stats(bestB), ...(hier ? { best_cross_node: stats(crossB) } : {}),
      share_best_ge_eplb: +(ge / n).toFixed(4), share_best_gt_eplb: +(gt / n).toFixed(4),
      eplb_ms: +eplbMs.toFixed(0), best_ms: +bestMs.toFixed(0), per_skew: perSkew,
    };
  }
  const topo = toTopology(parseYaml(readFileSync(new URL('../configs/topology-h100-4096.yaml', import.meta.url), 'utf8'), TopologySchema, 'topology-h100-4096.yaml'));
  const shape = toModelShape(parseYaml(readFileSync(new URL('../configs/sim-model.yaml', import.meta.url), 'utf8'), ModelShapeSchema, 'sim-model.yaml'));
  const simMs: Record<string, number> = {};
  for (const [name, load] of [['uniform', { kind: 'uniform' }], ['zipf_1.0', { kind: 'zipf', s: 1.0, seed: 1 }]] as const) {
    const t0 = performance.now();
    simulate(topo, shape, load);
    simMs[name] = +(performance.now() - t0).toFixed(0);
  }
  return {
    skews: SKEWS, suites, share_best_ge_eplb_all: +(allGe / allLayers).toFixed(4),
    simulate_4096_gpus_58_layers_ms: simMs,
  };
}
