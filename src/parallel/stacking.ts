/**
 * Between the main thread's stacked layout (w1 [E, D, H], w2 [E, H, D], w3 [E, D, H]; Megatron's
 * GroupedMLP) and the ranks' per-expert slots. Reassembly reads each expert from its primary replica.
 */
import type { AdamWState } from '../optim/adamw.ts';
import type { Placement, Slot } from './placement.ts';
import type { ExpertArrays } from './protocol.ts';

/** AdamW state of the experts: step count and moments per layer, stacked like the weights. */
export interface ExpertOptimizerState {
  step: number;
  layers: { m: ExpertArrays; v: ExpertArrays }[];
}

type Which = 'w1' | 'w2' | 'w3';
const WHICH: Which[] = ['w1', 'w2', 'w3'];

/** The variable name a rank gives expert e's matrix k in layer l. */
export function slotName(l: number, e: number, k: Which): string {
  return `l${l}.e${e}.${k}`;
}

/** Stacked arrays [E, D, H]… → one ExpertArrays per listed expert (copies). */
export function splitStacked(w: ExpertArrays, shape: [number, number, number], experts: number[]): ExpertArrays[] {
  const [E, D, H] = shape;
  const per = D * H;
  for (const k of WHICH) {
    const a = w[k];
    if (k === 'w3' && a === null) continue;
    if (!(a instanceof Float32Array) || a.length !== E * per) throw new Error(`ExpertParallel: ${k} must be a Float32Array of ${E}×${D}×${H} = ${E * per} values, got ${a instanceof Float32Array ? a.length : String(a)}`);
  }
  const part = (a: Float32Array | null, e: number) => (a ? a.slice(e * per, (e + 1) * per) : null);
  return experts.map((e) => ({ w1: part(w.w1, e)!, w2: part(w.w2, e)!, w3: part(w.w3, e) }));
}

/** got[rank][slot] → stacked arrays, each expert taken from its primary replica. */
export function gatherStacked(got: ExpertArrays[][], slots: Slot[][], shape: [number, number, number]): ExpertArrays {
  const [E, D, H] = shape;
  const per = D * H;
  const hasW3 = got.some((r) => r.some((s) => s.w3 !== null));
  const out: ExpertArrays = { w1: new Float32Array(E * per), w2: new Float32Array(E * per), w3: hasW3 ? new Float32Array(E * per) : null };
  slots.forEach((list, r) => list.forEach((s, i) => {
    if (s.replica !== 0) return;
    for (const k of WHICH) {
      const src = got[r][i][k];
      if (src) out[k]!.set(src, s.expert * per);
    }
  }));
  return out;
}

/** The ranks' AdamW states (named by slotName) → stacked moments per layer; step from rank 0. */
export function stackedOptState(states: AdamWState[], slots: Slot[][], shapes: [number, number, number][]): ExpertOptimizerState {
  const layers = shapes.map((shape, l) => {
    const pick = (key: 'm' | 'v') => gatherStacked(
      states.map((st, r) => slots[r].map((s) => ({ w1: st[key][slotName(l, s.expert, 'w1')], w2: st[key][slotName(l, s.expert, 'w2')], w3: st[key][slotName(l, s.expert, 'w3')] ?? null }))),
      slots, shape);
    return { m: pick('m'), v: pick('v') };
  });
  return { step: states[0].step, layers };
}

/** A rank's AdamW state (its slots' names) from stacked moments. */
export function splitOptState(s: ExpertOptimizerState, rankSlots: Slot[], shapes: [number, number, number][]): AdamWState {
  if (!Number.isInteger(s?.step) || s.step < 0) throw new Error(`ExpertParallel: optimizer state step must be an integer ≥ 0, got ${s?.step}`);
  if (!Array.isArray(s.layers) || s.layers.length !== shapes.length) throw new Error(`ExpertParallel: optimizer state has ${s.layers?.length} layers, expected ${shapes.length}`);
  const m: Record<string, Float32Array> = {}, v: Record<string, Float32Array> = {};
  shapes.forEach((shape, l) => {
    const experts = rankSlots.map((x) => x.expert);
    const ms = splitStacked(s.layers[l].m, shape, experts), vs = splitStacked(s.layers[l].v, shape, experts);
    experts.forEach((e, i) => {
      for (const k of WHICH) {
        if (ms[i][k]) m[slotName(l, e, k)] = ms[i][k]!;
        if (vs[i][k]) v[slotName(l, e, k)] = vs[i][k]!;
      }
    });
  });
  return { step: s.step, m, v };
}

/** Σ over replicas of each replicated expert's gradient (got[rank][slot]), in replica order so every replica gets the same bits. */
export function sumReplicas(got: ExpertArrays[][], placement: Placement, slots: Slot[][]): Map<number, ExpertArrays> {
  const sum = new Map<number, ExpertArrays>();
  placement.expertToRanks.forEach((ranks, e) => {
    if (ranks.length === 1) return;
    const parts = ranks.map((r, j) => got[r][slots[r].findIndex((s) => s.expert === e && s.replica === j)]);
    const acc: ExpertArrays = { w1: parts[0].w1.slice(), w2: parts[0].w2.slice(), w3: parts[0].w3 ? parts[0].w3.slice() : null };
    for (const p of parts.slice(1)) for (const k of WHICH) {
      const a = acc[k], b = p[k];
      if (a && b) for (let i = 0; i < a.length; i++) a[i] += b[i];
    }
    sum.set(e, acc);
  });
  return sum;
}
