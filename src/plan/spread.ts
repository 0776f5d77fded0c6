/**
 * Placements for engines that hold each expert at most once per GPU (vllm-ascend's expert_map has one slot per expert
 * per device). EPLB and our planner may put two replicas of a hot expert on one GPU; this moves the extra replica to
 * another GPU by a slot swap, keeping every expert's replica count and every GPU's slot count.
 */
import { gpuLoads, replicaCounts } from './balancedness.ts';

/**
 * Swaps slots of phy2log row until no GPU holds an expert twice. For a duplicate e on GPU g, the swap partner is a slot
 * t on a GPU h that holds neither e nor is its expert on g, chosen to minimise max(load_g, load_h) after the swap
 * (a replica carries w_e / cnt_e). Returns the new row and the number of swaps; throws when no swap exists.
 */
export function spreadDuplicates(row: number[], numGpus: number, w: ArrayLike<number>): { row: number[]; swaps: number } {
  const R = row.length;
  if (R % numGpus !== 0) throw new Error(`${R} slots do not split over ${numGpus} GPUs`);
  const S = R / numGpus;
  if (S > w.length) throw new Error(`${S} slots per GPU > ${w.length} experts: some GPU must hold an expert twice`);
  const out = row.slice();
  const cnt = replicaCounts(out, w.length);
  const over = cnt.findIndex((c) => c > numGpus);
  if (over >= 0) throw new Error(`expert ${over} has ${cnt[over]} replicas on ${numGpus} GPUs: at most one per GPU is possible; plan with fewer redundant slots`);
  const share = (e: number): number => w[e] / cnt[e];
  const gpuOf = (s: number): number => Math.floor(s / S);
  const holds = (g: number, e: number): boolean => { for (let s = g * S; s < (g + 1) * S; s++) if (out[s] === e) return true; return false; };
  let swaps = 0;
  for (let guard = 0; guard <= R * R; guard++) {
    // first duplicate slot, scanning GPUs in order
    let dup = -1;
    for (let g = 0; g < numGpus && dup < 0; g++) {
      const seen = new Set<number>();
      for (let s = g * S; s < (g + 1) * S; s++) { if (seen.has(out[s])) { dup = s; break; } seen.add(out[s]); }
    }
    if (dup < 0) return { row: out, swaps };
    const g = gpuOf(dup), e = out[dup];
    const loads = gpuLoads(w, out, numGpus);
    let best = -1, bestCost = Infinity;
    for (let t = 0; t < R; t++) {
      const h = gpuOf(t), f = out[t];
      if (h === g || f === e || holds(h, e) || holds(g, f)) continue;
      const cost = Math.max(loads[g] - share(e) + share(f), loads[h] - share(f) + share(e));
      if (cost < bestCost - 1e-12) { bestCost = cost; best = t; }
    }
    if (best < 0) throw new Error(`expert ${e} is held twice on GPU ${g} and no swap can move it (every other GPU already holds it)`);
    [out[dup], out[best]] = [out[best], out[dup]];
    swaps++;
  }
  throw new Error('spreadDuplicates: did not converge');
}
