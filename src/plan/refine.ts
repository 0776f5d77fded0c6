/**
 * Our planner ("best"): EPLB's plan, then local search on each layer, keeping whichever is better.
 *
 *   1. EPLB plan (src/plan/eplb.ts).
 *   2. Local search from it: while some move lowers the most loaded GPU without raising any GPU to that level,
 *      apply the move that leaves the lowest peak. Moves:
 *        swap      exchange two replicas between the peak GPU and another GPU;
 *        re-split  turn one replica of a donor expert (≥ 2 replicas) into an extra replica of an expert on the
 *                  peak GPU (changes replica counts, i.e. EPLB's step 2 outcome).
 *   3. Hierarchical policy only: a second start whose expert-group→node packing is improved by group swaps
 *      (EPLB's step 1 is greedy), then EPLB's steps 2–3 per node, then the same local search.
 *   4. Per layer keep the candidate with the lowest peak GPU load; EPLB's plan unless strictly lower.
 *
 * Objective: max_g load_g, so balancedness = mean/max never drops below EPLB's (the mean is Σw/G for any plan).
 * Under the hierarchical policy moves stay inside a node by default (keepNodes), so each expert group stays on
 * one node as EPLB arranged it for group-limited routing. Pure and deterministic.
 */
import { balancedPacking, buildLog2phy, checkEplbArgs, isHierarchical, rebalanceExperts, replicateExperts, type EplbPlan } from './eplb.ts';
import { gpuLoads } from './balancedness.ts';

export interface RefineOptions {
  /** Keep every expert on the node EPLB's hierarchical policy put it (default true; no effect for the global policy). */
  keepNodes?: boolean;
  /** Cap on local-search moves per layer and start (default 20000). */
  maxMoves?: number;
}

export interface RefinedPlan extends EplbPlan {
  /** Layers where our plan beats EPLB's (others keep EPLB's plan exactly). */
  improvedLayers: number[];
}

/** Peak GPU load of a slot assignment. */
function peak(w: Float64Array, slots: Int32Array, numGpus: number): number {
  return Math.max(...gpuLoads(w, slots, numGpus));
}

/** Step 2: hill-climb on the peak GPU with swap and re-split moves; returns a new slot array [R]. */
export function localSearch(
  w: Float64Array, start: Int32Array, numGpus: number, numNodes: number, keepNodes: boolean, maxMoves = 20000,
): Int32Array {
  const slots = Int32Array.from(start);
  const R = slots.length, S = R / numGpus, gpn = numGpus / numNodes, E = w.length;
  const cnt = new Int32Array(E);
  for (const e of slots) cnt[e]++;
  const total = w.reduce((a, b) => a + b, 0);
  const eps = 1e-12 * Math.max(total, 1e-300);
  const gpu = (s: number): number => Math.floor(s / S);
  const node = (g: number): number => Math.floor(g / gpn);
  // Load changes per GPU of a candidate re-split: from the receiving expert v, and from the donor u.
  const delta = new Float64Array(numGpus), marked = new Uint8Array(numGpus), touched: number[] = [];
  const du = new Float64Array(numGpus), uMarked = new Uint8Array(numGpus), uTouched: number[] = [];
  const bump = (g: number, d: number, acc: Float64Array, mark: Uint8Array, list: number[]): void => {
    if (!mark[g]) { mark[g] = 1; list.push(g); }
    acc[g] += d;
  };
  const clear = (): void => { for (const g of touched) { delta[g] = 0; marked[g] = 0; } touched.length = 0; };
  const clearU = (): void => { for (const g of uTouched) { du[g] = 0; uMarked[g] = 0; } uTouched.length = 0; };

  for (let move = 0; move < maxMoves; move++) {
    const loads = gpuLoads(w, slots, numGpus);
    let A = 0;
    for (let g = 1; g < numGpus; g++) if (loads[g] > loads[A]) A = g;
    const M = loads[A];
    let bestVal = M - eps;
    let apply: (() => void) | null = null;
    const slotsOf: number[][] = Array.from({ length: E }, () => []);
    for (let s = 0; s < R; s++) slotsOf[slots[s]].push(s);

    // swap: a on A <-> b on B
    for (let a = A * S; a < (A + 1) * S; a++) {
      const la = w[slots[a]] / cnt[slots[a]];
      for (let B = 0; B < numGpus; B++) {
        if (B === A || (keepNodes && node(B) !== node(A))) continue;
        for (let b = B * S; b < (B + 1) * S; b++) {
          if (slots[b] === slots[a]) continue;
          const d = la - w[slots[b]] / cnt[slots[b]];
          if (d <= eps) continue;
          const val = Math.max(M - d, loads[B] + d);
          if (val < bestVal) { bestVal = val; const [x, y] = [a, b]; apply = () => { const t = slots[x]; slots[x] = slots[y]; slots[y] = t; }; }
        }
      }
    }
    // re-split: one replica of donor u becomes a replica of v (an expert on A). v's part of the change is the
    // same for every donor: price it once (dv on v's GPUs, sorted), then each candidate only walks u's GPUs.
    const onA = new Set(Array.from(slots.subarray(A * S, (A + 1) * S)));
    for (const v of onA) {
      const lvOld = w[v] / cnt[v], lvNew = w[v] / (cnt[v] + 1);
      clear();
      for (const t of slotsOf[v]) bump(gpu(t), lvNew - lvOld, delta, marked, touched);
      const vGpus = touched.slice().sort((x, y) => loads[y] + delta[y] - (loads[x] + delta[x]));
      for (let u = 0; u < E; u++) {
        if (u === v || cnt[u] < 2) continue;
        if (keepNodes && node(gpu(slotsOf[u][0])) !== node(gpu(slotsOf[v][0]))) continue;
        const luOld = w[u] / cnt[u], luNew = w[u] / (cnt[u] - 1);
        if (luNew >= bestVal) continue; // a remaining replica of u alone would reach the peak
        // u loses one replica's worth on every GPU holding it (du); the converted slot's GPU then trades
        // u's new load for v's: base + (lvNew − luNew). Top-2 of base prices every choice of slot in O(1).
        const us = slotsOf[u];
        clearU();
        for (let j = 0; j < us.length; j++) bump(gpu(us[j]), luNew - luOld, du, uMarked, uTouched);
        let g1 = -1, b1 = -Infinity, b2 = -Infinity;
        for (let j = 0; j < uTouched.length; j++) {
          const g = uTouched[j], b = loads[g] + delta[g] + du[g];
          if (b > b1) { b2 = b1; b1 = b; g1 = g; } else if (b > b2) b2 = b;
        }
        let vRest = -Infinity;
        for (let j = 0; j < vGpus.length; j++) {
          const g = vGpus[j];
          if (!uMarked[g]) { vRest = loads[g] + delta[g]; break; } // the highest v-GPU that u leaves alone
        }
        for (let j = 0; j < uTouched.length; j++) {
          const g = uTouched[j];
          const val = Math.max(loads[g] + delta[g] + du[g] + lvNew - luNew, g === g1 ? b2 : b1, vRest);
          if (val < bestVal) {
            bestVal = val;
            const x = us.find((t) => gpu(t) === g)!, vv = v, uu = u;
            apply = () => { slots[x] = vv; cnt[vv]++; cnt[uu]--; };
          }
        }
      }
    }
    clearU();
    clear();
    if (!apply) break;
    (apply as () => void)();
  }
  return slots;
}

/** Step 3a: improve EPLB's group→node packing by swapping groups off the heaviest node. nodeOfGroup [numGroups]. */
export function improveGroupPacking(groupLoad: Float64Array, nodeOfGroup: Int32Array, numNodes: number): Int32Array {
  const nodeOf = Int32Array.from(nodeOfGroup);
  const eps = 1e-12 * Math.max(groupLoad.reduce((a, b) => a + b, 0), 1e-300);
  for (let it = 0; it < 10000; it++) {
    const nl = new Float64Array(numNodes);
    groupLoad.forEach((x, g) => { nl[nodeOf[g]] += x; });
    let A = 0;
    for (let n = 1; n < numNodes; n++) if (nl[n] > nl[A]) A = n;
    let best = nl[A] - eps, pick: [number, number] | null = null;
    for (let a = 0; a < nodeOf.length; a++) {
      if (nodeOf[a] !== A) continue;
      for (let b = 0; b < nodeOf.length; b++) {
        const B = nodeOf[b];
        const d = groupLoad[a] - groupLoad[b];
        if (B === A || d <= eps) continue;
        const val = Math.max(nl[A] - d, nl[B] + d);
        if (val < best) { best = val; pick = [a, b]; }
      }
    }
    if (!pick) break;
    const [a, b] = pick;
    [nodeOf[a], nodeOf[b]] = [nodeOf[b], nodeOf[a]];
  }
  return nodeOf;
}

/** Step 3b: EPLB's steps 2–3 for a given group→node assignment; returns slots [R] (node-major, GPU-major). */
export function placeWithNodes(
  w: Float64Array, nodeOfGroup: Int32Array, numReplicas: number, numNodes: number, numGpus: number,
): Int32Array {
  const E = w.length, groupSize = E / nodeOfGroup.length;
  const phyPerNode = numReplicas / numNodes, gpusPerNode = numGpus / numNodes, perGpu = numReplicas / numGpus;
  const slots = new Int32Array(numReplicas);
  for (let n = 0; n < numNodes; n++) {
    const experts: number[] = [];
    nodeOfGroup.forEach((m, g) => { if (m === n) for (let t = 0; t < groupSize; t++) experts.push(g * groupSize + t); });
    const rep = replicateExperts(Float32Array.from(experts, (e) => w[e]), phyPerNode);
    const perPhy = Float32Array.from(rep.phy2log, (m) => Math.fround(Math.fround(w[experts[m]]) / rep.logcnt[m]));
    const pack = balancedPacking(perPhy, gpusPerNode);
    rep.phy2log.forEach((m, p) => { slots[n * phyPerNode + pack.pack[p] * perGpu + pack.rank[p]] = experts[m]; });
  }
  return slots;
}

/** Replica ranks [R] in slot order (the k-th slot holding expert e is its replica k). */
function ranksInSlotOrder(slots: ArrayLike<number>, numExperts: number): number[] {
  const seen = new Int32Array(numExperts);
  return Array.from(slots, (e) => seen[e]++);
}

/**
 * Our planner: rebalanceExperts' plan improved per layer by local search (see the module doc), never worse.
 * Same arguments and outputs as rebalanceExperts; weight [L, E] → phy2log [L, R], log2phy, logcnt [L, E].
 */
export function rebalanceExpertsBest(
  weight: number[][], numReplicas: number, numGroups: number, numNodes: number, numGpus: number, opts: RefineOptions = {},
): RefinedPlan {
  checkEplbArgs(weight, numReplicas, numGroups, numNodes, numGpus);
  const base = rebalanceExperts(weight, numReplicas, numGroups, numNodes, numGpus);
  const hier = isHierarchical(numGroups, numNodes);
  const keep = hier && (opts.keepNodes ?? true);
  const nodes = hier ? numNodes : 1;
  const phy2log: number[][] = [];
  const phyrank: number[][] = [];
  const improvedLayers: number[] = [];
  weight.forEach((row, l) => {
    const w = Float64Array.from(row);
    const eplbSlots = Int32Array.from(base.phy2log[l]);
    const baseRanks = base.phy2log[l].map(() => 0);
    base.log2phy[l].forEach((phys) => phys.forEach((p, r) => { if (p >= 0) baseRanks[p] = r; }));
    let best: Int32Array = eplbSlots;
    let bestPeak = peak(w, eplbSlots, numGpus);
    const consider = (slots: Int32Array): void => {
      const p = peak(w, slots, numGpus);
      if (p < bestPeak * (1 - 1e-12)) { best = slots; bestPeak = p; }
    };
    consider(localSearch(w, eplbSlots, numGpus, nodes, keep, opts.maxMoves));
    if (hier && numNodes > 1) {
      const groupSize = row.length / numGroups;
      const groupLoad = new Float64Array(numGroups);
      row.forEach((x, e) => { groupLoad[Math.floor(e / groupSize)] += x; });
      const eplbNodeOf = new Int32Array(numGroups);
      const perNode = numReplicas / numNodes;
      eplbSlots.forEach((e, s) => { eplbNodeOf[Math.floor(e / groupSize)] = Math.floor(s / perNode); });
      const nodeOf = improveGroupPacking(groupLoad, eplbNodeOf, numNodes);
      if (nodeOf.some((n, g) => n !== eplbNodeOf[g])) {
        consider(localSearch(w, placeWithNodes(w, nodeOf, numReplicas, numNodes, numGpus), numGpus, nodes, keep, opts.maxMoves));
      }
    }
    if (best === eplbSlots) {
      phy2log.push(base.phy2log[l]);
      phyrank.push(baseRanks);
    } else {
      improvedLayers.push(l);
      phy2log.push(Array.from(best));
      phyrank.push(ranksInSlotOrder(best, row.length));
    }
  });
  const logcnt = phy2log.map((row) => {
    const c = new Array<number>(weight[0].length).fill(0);
    for (const e of row) c[e]++;
    return c;
  });
  return { phy2log, log2phy: buildLog2phy(phy2log, phyrank, logcnt), logcnt, improvedLayers };
}
