/**
 * Load-balance metrics of a placement, as EPLB, vLLM and SGLang log them.
 * A replica of logical expert e carries w_e / cnt_e: tokens of e are split evenly over its replicas (EPLB's own
 * assumption; engines pick a replica uniformly or round-robin). A GPU's load is the sum over its slots.
 */

/** GPU loads [G] of one layer: load_g = Σ_{slots s on g} w[phy2log[s]] / cnt[phy2log[s]], slots split evenly over GPUs. */
export function gpuLoads(w: ArrayLike<number>, phy2log: ArrayLike<number>, numGpus: number): Float64Array {
  const R = phy2log.length;
  if (R % numGpus !== 0) throw new Error(`${R} physical slots do not split over ${numGpus} GPUs`);
  const perGpu = R / numGpus;
  const cnt = replicaCounts(phy2log, w.length);
  const loads = new Float64Array(numGpus);
  for (let s = 0; s < R; s++) {
    const e = phy2log[s];
    loads[Math.floor(s / perGpu)] += w[e] / cnt[e];
  }
  return loads;
}

/** Replica count per logical expert [E] from a phy2log row; throws if an expert has no replica. */
export function replicaCounts(phy2log: ArrayLike<number>, numExperts: number): Int32Array {
  const cnt = new Int32Array(numExperts);
  for (let s = 0; s < phy2log.length; s++) {
    const e = phy2log[s];
    if (!Number.isInteger(e) || e < 0 || e >= numExperts) throw new Error(`slot ${s} holds expert ${e}, outside [0, ${numExperts})`);
    cnt[e]++;
  }
  const missing = cnt.findIndex((c) => c === 0);
  if (missing >= 0) throw new Error(`logical expert ${missing} has no physical replica`);
  return cnt;
}

/** balancedness = mean_g load_g / max_g load_g ∈ (0, 1]; 1 when every load is 0. */
export function balancedness(loads: ArrayLike<number>): number {
  let sum = 0;
  let max = 0;
  for (let i = 0; i < loads.length; i++) { sum += loads[i]; max = Math.max(max, loads[i]); }
  return max === 0 ? 1 : sum / loads.length / max;
}

/** GPU loads [G] before planning: no replicas, expert e on GPU e mod G (round-robin). */
export function roundRobinLoads(w: ArrayLike<number>, numGpus: number): Float64Array {
  const loads = new Float64Array(numGpus);
  for (let e = 0; e < w.length; e++) loads[e % numGpus] += w[e];
  return loads;
}

/** Per-layer balancedness [L] of a plan's phy2log [L, R] for loads weight [L, E]. */
export function planBalancedness(weight: number[][], phy2log: number[][], numGpus: number): number[] {
  return weight.map((w, l) => balancedness(gpuLoads(w, phy2log[l], numGpus)));
}

/** Per-layer balancedness [L] before planning (round-robin, no replicas). */
export function roundRobinBalancedness(weight: number[][], numGpus: number): number[] {
  return weight.map((w) => balancedness(roundRobinLoads(w, numGpus)));
}
