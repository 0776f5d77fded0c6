/**
 * A faithful TypeScript port of DeepSeek's Expert Parallelism Load Balancer (EPLB),
 * `rebalance_experts` in https://github.com/deepseek-ai/EPLB/blob/main/eplb.py (MIT, commit d52c72d).
 *
 * Same steps, same argument order, same outputs (`phy2log`, `log2phy` padded with -1, `logcnt`):
 *   hierarchical policy (numGroups % numNodes == 0):
 *     1. pack expert groups to nodes (balanced packing, equal group count per node);
 *     2. replicate experts within each node (greedy: next replica to the max per-replica load);
 *     3. pack the node's physical experts to its GPUs (balanced packing, equal slot count per GPU);
 *   global policy (otherwise): the same with one group and one node.
 *
 * Arithmetic mirrors torch: loads are float32 (`weight.float()`), sums and divisions round to float32.
 * Tie-breaking mirrors torch on CPU: `sort(descending=True)` is not stable; we reproduce libstdc++'s introsort
 * (src/plan/torch_sort.ts), which for rows of ≤ 16 entries is a stable insertion sort (EPLB's README example
 * depends on that order); `max(dim)` returns the first maximal index; Python's `min` the first minimal pack.
 * Checked against the original eplb.py on torch 1.13 CPU (test/fixtures/eplb_torch_reference.json).
 */

/** EPLB's three maps: [L, R] physical→logical, [L, E, maxcnt] logical→physical (-1 pad), [L, E] replica counts. */
export interface EplbPlan {
  phy2log: number[][];
  log2phy: number[][][];
  logcnt: number[][];
}

import { argsortDescTorchCpu } from './torch_sort.ts';

/** Rounds to float32, as torch's float tensors do. */
const f32 = Math.fround;

/**
 * balanced_packing: put n weighted items into m packs of exactly n/m items each, heaviest first into the
 * lightest non-full pack (first such pack on ties). Returns pack index and rank in pack per item.
 */
export function balancedPacking(weight: Float32Array, numPacks: number): { pack: Int32Array; rank: Int32Array } {
  const n = weight.length;
  if (n % numPacks !== 0) throw new Error(`balancedPacking: ${n} items do not split into ${numPacks} packs`);
  const perPack = n / numPacks;
  const pack = new Int32Array(n);
  const rank = new Int32Array(n);
  if (perPack === 1) {
    for (let i = 0; i < n; i++) pack[i] = i; // identity, as EPLB short-cuts it
    return { pack, rank };
  }
  // EPLB scans all packs for the first lightest non-full one; a binary heap ordered by (weight, index) picks the
  // same pack in O(log m) (full packs leave the heap).
  const packWeight = new Float64Array(numPacks); // holds float32 values
  const packItems = new Int32Array(numPacks);
  const heap = Array.from({ length: numPacks }, (_, p) => p);
  const less = (a: number, b: number): boolean => packWeight[a] < packWeight[b] || (packWeight[a] === packWeight[b] && a < b);
  const siftDown = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < heap.length && less(heap[l], heap[m])) m = l;
      if (r < heap.length && less(heap[r], heap[m])) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m], heap[i]];
      i = m;
    }
  };
  for (const item of argsortDescTorchCpu(weight)) {
    const best = heap[0];
    pack[item] = best;
    rank[item] = packItems[best];
    packWeight[best] = f32(packWeight[best] + weight[item]);
    packItems[best]++;
    if (packItems[best] === perPack) {
      const last = heap.pop()!;
      if (heap.length > 0) heap[0] = last;
    }
    siftDown(0);
  }
  return { pack, rank };
}

/**
 * replicate_experts: extend `numLog` experts to `numPhy` replicas; each extra replica goes to the expert with the
 * largest per-replica load weight/cnt (first on ties). Returns phy2log [numPhy], rank [numPhy], logcnt [numLog].
 */
export function replicateExperts(weight: Float32Array, numPhy: number): { phy2log: Int32Array; rank: Int32Array; logcnt: Int32Array } {
  const numLog = weight.length;
  if (numPhy < numLog) throw new Error(`replicateExperts: ${numPhy} physical slots < ${numLog} logical experts`);
  const phy2log = new Int32Array(numPhy);
  const rank = new Int32Array(numPhy);
  const logcnt = new Int32Array(numLog).fill(1);
  for (let i = 0; i < numLog; i++) phy2log[i] = i;
  for (let i = numLog; i < numPhy; i++) {
    let best = 0;
    let bestLoad = f32(weight[0] / logcnt[0]);
    for (let e = 1; e < numLog; e++) {
      const load = f32(weight[e] / logcnt[e]);
      if (load > bestLoad) { best = e; bestLoad = load; }
    }
    phy2log[i] = best;
    rank[i] = logcnt[best];
    logcnt[best]++;
  }
  return { phy2log, rank, logcnt };
}

/** inverse of a permutation: inv[perm[i]] = i. */
function inverse(perm: Int32Array): Int32Array {
  const inv = new Int32Array(perm.length);
  for (let i = 0; i < perm.length; i++) inv[perm[i]] = i;
  return inv;
}

/** One layer of rebalance_experts_hierarchical: returns phy2log [R], phyrank [R], logcnt [E]. */
export function rebalanceLayerHierarchical(
  w: Float32Array, numPhysical: number, numGroups: number, numNodes: number, numGpus: number,
): { phy2log: Int32Array; phyrank: Int32Array; logcnt: Int32Array } {
  const E = w.length;
  const groupSize = E / numGroups;
  const groupsPerNode = numGroups / numNodes;
  const perGpu = numPhysical / numGpus;
  const logPerNode = E / numNodes;
  const phyPerNode = numPhysical / numNodes;
  const gpusPerNode = numGpus / numNodes;

  // Step 1: pack groups to nodes. tokensPerGroup [numGroups]
  const tokensPerGroup = new Float32Array(numGroups);
  for (let g = 0; g < numGroups; g++) {
    let s = 0;
    for (let t = 0; t < groupSize; t++) s = f32(s + w[g * groupSize + t]);
    tokensPerGroup[g] = s;
  }
  const groupPack = balancedPacking(tokensPerGroup, numNodes);
  // log2mlog [E]: logical expert -> "middle" index, node-major (node n owns mlog [n·E/N, (n+1)·E/N))
  const log2mlog = new Int32Array(E);
  for (let g = 0; g < numGroups; g++) {
    const base = (groupPack.pack[g] * groupsPerNode + groupPack.rank[g]) * groupSize;
    for (let t = 0; t < groupSize; t++) log2mlog[g * groupSize + t] = base + t;
  }
  const mlog2log = inverse(log2mlog);

  const phy2log = new Int32Array(numPhysical);
  const phyrank = new Int32Array(numPhysical);
  const mlogcnt = new Int32Array(E);
  for (let n = 0; n < numNodes; n++) {
    // Step 2: replicate within the node. tokensPerMlog [E/N]
    const tokensPerMlog = new Float32Array(logPerNode);
    for (let i = 0; i < logPerNode; i++) tokensPerMlog[i] = w[mlog2log[n * logPerNode + i]];
    const rep = replicateExperts(tokensPerMlog, phyPerNode);
    mlogcnt.set(rep.logcnt, n * logPerNode);

    // Step 3: pack the node's physical experts to its GPUs. tokensPerPhy [R/N]
    const tokensPerPhy = new Float32Array(phyPerNode);
    for (let p = 0; p < phyPerNode; p++) {
      const m = rep.phy2log[p];
      tokensPerPhy[p] = f32(tokensPerMlog[m] / rep.logcnt[m]);
    }
    const gpuPack = balancedPacking(tokensPerPhy, gpusPerNode);
    const phy2pphy = new Int32Array(phyPerNode);
    for (let p = 0; p < phyPerNode; p++) phy2pphy[p] = gpuPack.pack[p] * perGpu + gpuPack.rank[p];
    const pphy2phy = inverse(phy2pphy);
    for (let q = 0; q < phyPerNode; q++) {
      const p = pphy2phy[q];
      phy2log[n * phyPerNode + q] = mlog2log[n * logPerNode + rep.phy2log[p]];
      phyrank[n * phyPerNode + q] = rep.rank[p];
    }
  }
  const logcnt = new Int32Array(E);
  for (let e = 0; e < E; e++) logcnt[e] = mlogcnt[log2mlog[e]];
  return { phy2log, phyrank, logcnt };
}

/** Checks EPLB's preconditions and the weight matrix, with errors naming the bad value. Returns [L, E]. */
export function checkEplbArgs(
  weight: number[][], numReplicas: number, numGroups: number, numNodes: number, numGpus: number,
): [number, number] {
  if (!Array.isArray(weight) || weight.length === 0) throw new Error('weight must be a non-empty [layers][experts] matrix');
  const E = Array.isArray(weight[0]) ? weight[0].length : 0;
  if (E === 0) throw new Error('weight must have at least one expert per layer');
  weight.forEach((row, l) => {
    if (!Array.isArray(row) || row.length !== E) throw new Error(`weight row ${l} has ${Array.isArray(row) ? row.length : 'no'} entries, expected ${E}`);
    row.forEach((v, e) => {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`weight[${l}][${e}] = ${v} is not a finite non-negative load`);
    });
  });
  for (const [name, v] of [['numReplicas', numReplicas], ['numGroups', numGroups], ['numNodes', numNodes], ['numGpus', numGpus]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
  }
  if (numReplicas < E) throw new Error(`numReplicas ${numReplicas} < ${E} logical experts: every expert needs a slot`);
  if (numReplicas % numGpus !== 0) throw new Error(`numReplicas ${numReplicas} is not a multiple of numGpus ${numGpus}`);
  // EPLB checks GPUs per node only under the hierarchical policy (the global policy uses one node).
  if (isHierarchical(numGroups, numNodes) && numGpus % numNodes !== 0) {
    throw new Error(`numGpus ${numGpus} is not a multiple of numNodes ${numNodes}`);
  }
  if (E % numGroups !== 0) throw new Error(`${E} experts do not split into numGroups ${numGroups}`);
  return [weight.length, E];
}

/** Whether EPLB uses its hierarchical policy: groups split evenly over nodes. */
export function isHierarchical(numGroups: number, numNodes: number): boolean {
  return numGroups % numNodes === 0;
}

/** Builds log2phy [L, E, maxcnt] (-1 padded, replica rank order) from phy2log and phyrank. */
export function buildLog2phy(phy2log: number[][], phyrank: number[][], logcnt: number[][]): number[][][] {
  let maxcnt = 0;
  for (const row of logcnt) for (const c of row) maxcnt = Math.max(maxcnt, c);
  return phy2log.map((row, l) => {
    const out = logcnt[l].map(() => new Array<number>(maxcnt).fill(-1));
    row.forEach((e, p) => { out[e][phyrank[l][p]] = p; });
    return out;
  });
}

/**
 * rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus) of DeepSeek's EPLB.
 * weight [L, E] loads; returns phy2log [L, R], log2phy [L, E, max logcnt] (-1 padded), logcnt [L, E].
 */
export function rebalanceExperts(
  weight: number[][], numReplicas: number, numGroups: number, numNodes: number, numGpus: number,
): EplbPlan {
  checkEplbArgs(weight, numReplicas, numGroups, numNodes, numGpus);
  const hier = isHierarchical(numGroups, numNodes);
  const [groups, nodes] = hier ? [numGroups, numNodes] : [1, 1];
  const phy2log: number[][] = [];
  const phyrank: number[][] = [];
  const logcnt: number[][] = [];
  for (const row of weight) {
    const r = rebalanceLayerHierarchical(Float32Array.from(row), numReplicas, groups, nodes, numGpus);
    phy2log.push(Array.from(r.phy2log));
    phyrank.push(Array.from(r.phyrank));
    logcnt.push(Array.from(r.logcnt));
  }
  return { phy2log, log2phy: buildLog2phy(phy2log, phyrank, logcnt), logcnt };
}
