/**
 * Expected traffic of one MoE layer given a placement (phy2log row) and a fitted top-k model.
 * Model: every GPU holds the same routing distribution (tokens are not correlated with their source GPU); a token
 * picks its k experts by the TopKModel; a chosen expert with several replicas uses one of them uniformly at random.
 *   λ_j = Σ_{slots s on j} π_{e(s)} / cnt_{e(s)}      expected (token, expert) copies per token landing on GPU j
 *   q_j = 1 − E[Π_{e∈S}(1 − r_{e,j}/cnt_e)]             P(a token needs GPU j at all)   (GPU-level dedup)
 *   h_m = 1 − E[Π_{e∈S}(1 − r_{e,m}/cnt_e)]             P(a token needs node m at all)  (node-level dedup)
 * r_{e,j} (r_{e,m}) = replicas of e on GPU j (node m). Cost O(G + N·E·k + G·k·|experts per GPU|).
 */
import { missProbability, type TopKModel } from '../plan/topk_model.ts';

export interface LayerTraffic {
  /** [G] expected copies per token sent to GPU j (flat, per assignment). */
  lambda: Float64Array;
  /** [G] P(token needs GPU j). */
  q: Float64Array;
  /** [N] P(token needs node m). */
  h: Float64Array;
}

/** Replica count of each expert on each unit: returns per unit the (expert, share r/cnt) lists. */
function shares(phy2log: ArrayLike<number>, units: number, numExperts: number): { experts: number[][]; rho: number[][] } {
  const R = phy2log.length, perUnit = R / units;
  const cnt = new Int32Array(numExperts);
  for (let s = 0; s < R; s++) cnt[phy2log[s]]++;
  const experts: number[][] = [];
  const rho: number[][] = [];
  for (let u = 0; u < units; u++) {
    const local = new Map<number, number>();
    for (let s = u * perUnit; s < (u + 1) * perUnit; s++) local.set(phy2log[s], (local.get(phy2log[s]) ?? 0) + 1);
    experts.push([...local.keys()]);
    rho.push([...local.entries()].map(([e, r]) => r / cnt[e]));
  }
  return { experts, rho };
}

/** λ, q, h of one layer. phy2log [R] with R = G · slots per GPU; GPUs are node-major (GPU j on node ⌊j/g⌋). */
export function layerTraffic(phy2log: ArrayLike<number>, model: TopKModel, numGpus: number, numNodes: number): LayerTraffic {
  const E = model.pi.length;
  if (phy2log.length % numGpus !== 0) throw new Error(`placement has ${phy2log.length} slots, not a multiple of ${numGpus} GPUs`);
  const gpu = shares(phy2log, numGpus, E);
  const node = shares(phy2log, numNodes, E);
  const lambda = new Float64Array(numGpus);
  const q = new Float64Array(numGpus);
  for (let j = 0; j < numGpus; j++) {
    gpu.experts[j].forEach((e, i) => { lambda[j] += model.pi[e] * gpu.rho[j][i]; });
    q[j] = 1 - missProbability(model, gpu.experts[j], gpu.rho[j]);
  }
  const h = new Float64Array(numNodes);
  for (let m = 0; m < numNodes; m++) h[m] = 1 - missProbability(model, node.experts[m], node.rho[m]);
  return { lambda, q, h };
}

/** Default placement (SGLang's "trivial", vLLM's linear): slot i holds expert i mod E; R = G · slots per GPU. */
export function trivialPlacement(numExperts: number, numGpus: number, slotsPerGpu?: number): number[] {
  const S = slotsPerGpu ?? Math.ceil(numExperts / numGpus);
  if (S * numGpus < numExperts) throw new Error(`slots_per_gpu ${S} × ${numGpus} GPUs < ${numExperts} experts`);
  return Array.from({ length: S * numGpus }, (_, i) => i % numExperts);
}
