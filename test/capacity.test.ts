import { describe, it, expect } from 'vitest';
import { applyCapacity, expertCapacity, CAPACITY_POLICIES, type CapacityPolicy } from '../src/moe/capacity.ts';
import { planTokenChoice } from '../src/moe/plan.ts';
import { randomArray } from './helpers.ts';

/** Random routing: probs rows softmax of random logits, indices = top-k of probs (skewed toward expert 0). */
function randomRouting(T: number, E: number, k: number, seed: number) {
  const logits = randomArray(T * E, seed, 2);
  for (let t = 0; t < T; t++) logits[t * E] += 1.5; // skew: expert 0 is popular
  const probs = new Float32Array(T * E);
  const indices = new Int32Array(T * k);
  for (let t = 0; t < T; t++) {
    let m = -Infinity, s = 0;
    for (let e = 0; e < E; e++) m = Math.max(m, logits[t * E + e]);
    for (let e = 0; e < E; e++) s += Math.exp(logits[t * E + e] - m);
    for (let e = 0; e < E; e++) probs[t * E + e] = Math.exp(logits[t * E + e] - m) / s;
    const order = Array.from({ length: E }, (_, e) => e).sort((a, b) => probs[t * E + b] - probs[t * E + a]);
    for (let j = 0; j < k; j++) indices[t * k + j] = order[j];
  }
  return { probs, indices };
}

describe('expertCapacity', () => {
  it('is ceil(cf · T · k / E)', () => {
    expect(expertCapacity(10, 4, 2, 1)).toBe(5);
    expect(expertCapacity(10, 4, 2, 1.25)).toBe(7); // 6.25 → 7
    expect(expertCapacity(8, 4, 2, 1.25)).toBe(5); // exactly 5, no float spill to 6
    expect(expertCapacity(3, 8, 1, 1)).toBe(1); // never below 1
  });
  it('rejects bad values, naming them', () => {
    expect(() => expertCapacity(10, 4, 5, 1)).toThrow(/topK.*5/);
    expect(() => expertCapacity(10, 4, 2, 0)).toThrow(/capacityFactor.*0/);
    expect(() => expertCapacity(0, 4, 2, 1)).toThrow(/tokens.*0/);
  });
});

describe('applyCapacity', () => {
  it('drop-position keeps first choices before second choices (GShard order)', () => {
    // T=3, k=2, E=2, capacity = ceil(1·3·2/2) = 3. Everyone picks expert 0 first, 1 second.
    const indices = Int32Array.from([0, 1, 0, 1, 0, 1]);
    const probs = Float32Array.from([0.6, 0.4, 0.7, 0.3, 0.9, 0.1]);
    const r = applyCapacity({ indices, probs, numTokens: 3, topK: 2, numExperts: 2 }, 'drop-position', 1);
    expect(Array.from(r.keep)).toEqual([1, 1, 1, 1, 1, 1]);
    const r2 = applyCapacity({ indices, probs, numTokens: 3, topK: 2, numExperts: 2 }, 'drop-position', 0.5); // C = 2
    expect(r2.capacity).toBe(2);
    expect(Array.from(r2.keep)).toEqual([1, 1, 1, 1, 0, 0]);
    expect(Array.from(r2.dropped)).toEqual([1, 1]);
  });

  it('drop-probability keeps the highest-probability assignments per expert', () => {
    const indices = Int32Array.from([0, 0, 0]); // k=1, T=3, all to expert 0; E=3 → C = ceil(3/3) = 1
    const probs = Float32Array.from([0.5, 0.25, 0.25, 0.9, 0.05, 0.05, 0.7, 0.2, 0.1]);
    const r = applyCapacity({ indices, probs, numTokens: 3, topK: 1, numExperts: 3 }, 'drop-probability', 1);
    expect(Array.from(r.keep)).toEqual([0, 1, 0]);
  });

  it('reroute moves overflow to the best expert with room', () => {
    const indices = Int32Array.from([0, 0, 0]); // C = 1 each
    const probs = Float32Array.from([0.5, 0.3, 0.2, 0.6, 0.1, 0.3, 0.7, 0.2, 0.1]);
    const r = applyCapacity({ indices, probs, numTokens: 3, topK: 1, numExperts: 3 }, 'reroute', 1);
    // token 0 keeps 0; token 1: best with room is 2 (0.3); token 2: only 1 left.
    expect(Array.from(r.indices)).toEqual([0, 2, 1]);
    expect(Array.from(r.keep)).toEqual([1, 1, 1]);
    expect(r.rerouted).toBe(2);
  });

  for (const policy of CAPACITY_POLICIES) {
    it(`${policy}: invariants on random skewed routing`, () => {
      for (let seed = 1; seed <= 20; seed++) {
        const T = 37, E = 6, k = 2, cf = 1.1;
        const { probs, indices } = randomRouting(T, E, k, seed);
        const r = applyCapacity({ indices, probs, numTokens: T, topK: k, numExperts: E }, policy as CapacityPolicy, cf);
        const C = expertCapacity(T, E, k, cf);
        const load = new Array(E).fill(0);
        let kept = 0;
        for (let a = 0; a < T * k; a++) if (r.keep[a]) { load[r.indices[a]]++; kept++; }
        // router choices are counted before any policy acts
        const chosen = new Array(E).fill(0);
        for (const e of indices) chosen[e]++;
        expect(Array.from(r.routed)).toEqual(chosen);
        // loads sum to kept assignments and match `received`
        expect(load).toEqual(Array.from(r.received));
        expect(load.reduce((x, y) => x + y, 0)).toBe(kept);
        // no expert above capacity (unless dropless)
        if (policy === 'dropless') expect(kept).toBe(T * k);
        else for (const l of load) expect(l).toBeLessThanOrEqual(C);
        // each token at most k distinct experts
        for (let t = 0; t < T; t++) {
          const chosen = [];
          for (let j = 0; j < k; j++) if (r.keep[t * k + j]) chosen.push(r.indices[t * k + j]);
          expect(new Set(chosen).size).toBe(chosen.length);
        }
        // dropping keeps assignments accounted for: kept + dropped (net of reroutes) = T·k
        const dropped = Array.from(r.dropped).reduce((x, y) => x + y, 0);
        expect(kept + dropped - r.rerouted).toBe(T * k);
        // the pad plan has exactly C rows per expert
        if (policy === 'pad') expect(planTokenChoice(r.indices, r.keep, T, k, E, C).tokensPerExpert).toEqual(new Array(E).fill(C));
      }
    });
  }

  it('rejects out-of-range experts and bad sizes', () => {
    const probs = new Float32Array(4);
    expect(() => applyCapacity({ indices: Int32Array.from([0, 5]), probs, numTokens: 2, topK: 1, numExperts: 2 }, 'dropless', 1)).toThrow(/expert index 5/);
    expect(() => applyCapacity({ indices: Int32Array.from([0]), probs, numTokens: 2, topK: 1, numExperts: 2 }, 'dropless', 1)).toThrow(/T·k = 2/);
    expect(() => applyCapacity({ indices: Int32Array.from([0, 1]), probs, numTokens: 2, topK: 1, numExperts: 2 }, 'bogus' as CapacityPolicy, 1)).toThrow(/unknown policy 'bogus'/);
  });
});
