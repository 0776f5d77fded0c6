/**
 * Expert capacity and the policies for assignments that overflow it.
 * Pure functions on the routing decisions (integer arrays): decisions carry no gradient, and doing
 * this on small host arrays keeps every policy exact and testable.
 */

export type CapacityPolicy = 'drop-position' | 'drop-probability' | 'reroute' | 'pad' | 'dropless';
export const CAPACITY_POLICIES: readonly CapacityPolicy[] = ['drop-position', 'drop-probability', 'reroute', 'pad', 'dropless'];

/**
 * capacity = ceil(capacity_factor · T · k / E)  (Switch/GShard; Megatron-Core's get_capacity also rounds up).
 * Rounding up means capacity_factor = 1 on perfectly balanced routing drops nothing.
 */
export function expertCapacity(tokens: number, numExperts: number, topK: number, capacityFactor: number): number {
  if (!Number.isInteger(tokens) || tokens < 1) throw new Error(`expertCapacity: tokens must be a positive integer, got ${tokens}`);
  if (!Number.isInteger(numExperts) || numExperts < 1) throw new Error(`expertCapacity: numExperts must be a positive integer, got ${numExperts}`);
  if (!Number.isInteger(topK) || topK < 1 || topK > numExperts) throw new Error(`expertCapacity: topK must be an integer in 1..${numExperts}, got ${topK}`);
  if (!(capacityFactor > 0) || !Number.isFinite(capacityFactor)) throw new Error(`expertCapacity: capacityFactor must be a positive number, got ${capacityFactor}`);
  // 1e-9 guards against float error turning an exact integer (e.g. 1.25·8·2/4 = 5) into the next one.
  return Math.max(1, Math.ceil((capacityFactor * tokens * topK) / numExperts - 1e-9));
}

export interface CapacityInput {
  /** [T·k] chosen experts, row-major [T, k], best first. */
  indices: Int32Array;
  /** [T·E] routing probabilities, row-major; ranks assignments (drop-probability) and alternatives (reroute). */
  probs: Float32Array;
  numTokens: number;
  topK: number;
  numExperts: number;
}

export interface CapacityResult {
  /** [T·k] experts after the policy (reroute may change them). */
  indices: Int32Array;
  /** [T·k] 1 = the assignment is kept, 0 = dropped (the residual path carries the token). */
  keep: Uint8Array;
  /** tokens per expert, null when dropless. */
  capacity: number | null;
  /** [E] kept assignments per expert. */
  received: Int32Array;
  /** [E] assignments the router chose per expert (before capacity). */
  routed: Int32Array;
  /** [E] assignments that chose the expert first but were dropped or rerouted away. */
  dropped: Int32Array;
  /** assignments moved to another expert by the reroute policy. */
  rerouted: number;
}

/** Validates a CapacityInput against its declared sizes. */
function checkInput(inp: CapacityInput): void {
  const { indices, probs, numTokens: T, topK: k, numExperts: E } = inp;
  if (indices.length !== T * k) throw new Error(`applyCapacity: indices has ${indices.length} entries, expected T·k = ${T * k}`);
  if (probs.length !== T * E) throw new Error(`applyCapacity: probs has ${probs.length} entries, expected T·E = ${T * E}`);
  for (let a = 0; a < indices.length; a++) {
    const e = indices[a];
    if (!(e >= 0 && e < E)) throw new Error(`applyCapacity: expert index ${e} at assignment ${a} is outside 0..${E - 1}`);
  }
}

/**
 * Applies a capacity policy to token-choice assignments.
 * - drop-position: first come first served, GShard's order: every token's 1st choice (in token order), then 2nd, ...
 * - drop-probability: each expert keeps its `capacity` highest-probability assignments (Megatron "probs").
 * - reroute: as drop-position, then each overflowing assignment moves to the token's best remaining
 *   expert (by probability) that still has room and is not already chosen by the token; else dropped.
 * - pad: as drop-position; the dispatcher then pads every expert to exactly `capacity` rows (fixed shapes).
 * - dropless: keep everything (capacity = null).
 */
export function applyCapacity(inp: CapacityInput, policy: CapacityPolicy, capacityFactor: number): CapacityResult {
  checkInput(inp);
  const { probs, numTokens: T, topK: k, numExperts: E } = inp;
  const indices = Int32Array.from(inp.indices);
  const keep = new Uint8Array(T * k);
  const received = new Int32Array(E);
  const dropped = new Int32Array(E);
  const routed = new Int32Array(E);
  for (const e of indices) routed[e]++;
  if (policy === 'dropless') {
    keep.fill(1);
    for (const e of indices) received[e]++;
    return { indices, keep, capacity: null, received, routed, dropped, rerouted: 0 };
  }
  if (!CAPACITY_POLICIES.includes(policy)) throw new Error(`applyCapacity: unknown policy '${policy}', expected one of ${CAPACITY_POLICIES.join(', ')}`);
  const C = expertCapacity(T, E, k, capacityFactor);
  if (policy === 'drop-probability') {
    const order = Array.from({ length: T * k }, (_, a) => a);
    const p = (a: number) => probs[Math.floor(a / k) * E + indices[a]];
    order.sort((a, b) => p(b) - p(a) || a - b); // ties: earlier token first, so the result is deterministic
    for (const a of order) {
      const e = indices[a];
      if (received[e] < C) { keep[a] = 1; received[e]++; } else dropped[e]++;
    }
    return { indices, keep, capacity: C, received, routed, dropped, rerouted: 0 };
  }
  // Position order: j-major (all first choices before any second choice), then token order.
  const overflow: number[] = [];
  for (let j = 0; j < k; j++) {
    for (let t = 0; t < T; t++) {
      const a = t * k + j;
      const e = indices[a];
      if (received[e] < C) { keep[a] = 1; received[e]++; } else { dropped[e]++; overflow.push(a); }
    }
  }
  let rerouted = 0;
  if (policy === 'reroute') {
    for (const a of overflow) {
      const t = Math.floor(a / k);
      let best = -1;
      for (let e = 0; e < E; e++) {
        if (received[e] >= C) continue;
        let taken = false;
        for (let j = 0; j < k; j++) if (indices[t * k + j] === e && keep[t * k + j]) taken = true;
        if (taken) continue;
        if (best < 0 || probs[t * E + e] > probs[t * E + best]) best = e;
      }
      if (best >= 0) {
        indices[a] = best;
        keep[a] = 1;
        received[best]++;
        rerouted++;
      }
    }
  }
  return { indices, keep, capacity: C, received, routed, dropped, rerouted };
}
