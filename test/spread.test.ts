/** Moving duplicate replicas off a GPU (for vllm-ascend's one-slot-per-expert-per-device map), by hand and as invariants. */
import { describe, expect, it } from 'vitest';
import { balancedness, gpuLoads, replicaCounts } from '../src/plan/balancedness.ts';
import { planPlacement } from '../src/plan/planner.ts';
import { spreadDuplicates } from '../src/plan/spread.ts';
import { vllmAscendViolations, toVllmAscend } from '../src/plan/placement_engines.ts';

const dupOnSomeGpu = (row: number[], G: number): boolean => {
  const S = row.length / G;
  return Array.from({ length: G }, (_, g) => row.slice(g * S, (g + 1) * S)).some((d) => new Set(d).size < d.length);
};

describe('spreadDuplicates', () => {
  it('moves the second copy of a hot expert by the cheapest swap (hand case)', () => {
    // GPU 0 holds expert 0 (w 10, 2 replicas → 5 each) twice: loads 5+5+1+1 = 12 vs 4. Any swap with GPU 1 gives 8 | 8.
    const { row, swaps } = spreadDuplicates([0, 0, 1, 2, 3, 4, 5, 6], 2, [10, 1, 1, 1, 1, 1, 1]);
    expect(row).toEqual([0, 3, 1, 2, 0, 4, 5, 6]);
    expect(swaps).toBe(1);
    expect(balancedness(gpuLoads([10, 1, 1, 1, 1, 1, 1], row, 2))).toBe(1);
  });

  it('keeps replica counts and slots per GPU, and leaves no GPU holding an expert twice', () => {
    let seen = 0, tried = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const E = 16, G = 4;
      const w = Array.from({ length: E }, (_, e) => 100 + ((e * seed * 37) % 101) + (e === seed % E ? 250 : 0));
      const plan = planPlacement([w], { numReplicas: 24, numGroups: 1, numNodes: 1, numGpus: G, method: 'best', topK: 2 });
      const before = plan.phy2log[0];
      if (Math.max(...replicaCounts(before, E)) > G) continue; // more copies than GPUs: refused (next test)
      tried++;
      if (dupOnSomeGpu(before, G)) seen++;
      const { row } = spreadDuplicates(before, G, w);
      expect(dupOnSomeGpu(row, G)).toBe(false);
      expect([...replicaCounts(row, E)]).toEqual([...replicaCounts(before, E)]);
      expect(vllmAscendViolations(toVllmAscend([row], G), { numExperts: E, epSize: G })).toEqual([]);
    }
    expect(tried).toBeGreaterThan(20);
    expect(seen).toBeGreaterThan(0); // the planners do produce duplicates, so the cases above exercised a swap
  });

  it('says when no placement can avoid a duplicate', () => {
    expect(() => spreadDuplicates([0, 0, 0, 1], 2, [9, 1])).toThrow(/expert 0 has 3 replicas on 2 GPUs/);
    // two GPUs, expert 0 twice on GPU 0 and once on GPU 1: its copy cannot go to GPU 1
    expect(() => spreadDuplicates([0, 0, 1, 0, 2, 3], 2, [9, 1, 1, 1])).toThrow(/expert 0 has 3 replicas/);
    // three GPUs and three copies of expert 0: possible, one per GPU
    const { row } = spreadDuplicates([0, 0, 1, 2, 0, 1], 3, [9, 1, 1]);
    expect(dupOnSomeGpu(row, 3)).toBe(false);
    expect(() => spreadDuplicates([0, 1, 0, 1, 0, 1], 1, [1, 1])).toThrow(/6 slots per GPU > 2 experts/);
  });
});
