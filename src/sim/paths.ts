/**
 * A layer's all-to-all priced on static vs adaptive paths (src/sim/topology_routing.ts), with the link model of
 * src/sim/cost.ts:
 *   flat — NVLink inside the node as in flatTime, plus one inter-node flow i → j of T·u·λ_j bytes per GPU pair on
 *     different nodes (λ_j > 0), routed;
 *   hierarchical — stage 1: node-local NVLink as in hierarchicalTime, plus flows i → (node m, local rank of i) of
 *     T·u·h_m bytes, routed; stage 2: the NVLink forward, unchanged.
 * One route table per layer, built from the dispatch bytes at full T (the flows come from the expert locations
 * through λ and h). Combine uses it reversed: the same loads with send and receive swapped, scaled by
 * combine/dispatch bytes, and every link is priced in both directions alike, so its time is the dispatch loads at
 * that scale; chunk c of the overlap is the same loads with bytes scaled by 1/c (messages are not).
 */
import { overlapTime, type StrategyResult } from './cost.ts';
import type { ModelShape } from './model_shape.ts';
import type { Topology } from './topology.ts';
import { adaptiveRoute, emptyLinkLoads, linkLayout, loadsTime, reroutedShare, routeLoads, staticRoute,
  type AdaptiveOptions, type Flows, type LinkLoads, type Links } from './topology_routing.ts';
import type { LayerTraffic } from './traffic.ts';

export type PathMode = 'static' | 'adaptive';

/** Flat and hierarchical on one kind of route table; rerouted = share of inter-node bytes off their static path. */
export interface RoutedStrategies {
  flat: StrategyResult;
  hierarchical: StrategyResult;
  rerouted: { flat: number; hierarchical: number };
}

export interface PathsResult {
  static?: RoutedStrategies;
  adaptive?: RoutedStrategies;
}

/** Most inter-node flows one phase may route (G·(G − g) for flat); keeps memory near 100 MB. */
export const MAX_FLOWS = 1 << 22;

/** Upper bound on flat flows of a topology: G·(G − g). */
export function maxFlowCount(t: Topology): number {
  return t.gpus * (t.gpus - t.gpusPerNode);
}

/** One phase to route: NVLink base loads, inter-node flows, and (hierarchical) the stage-2 loads after it. */
export interface RoutedPhase { base: LinkLoads; flows: Flows; stage2?: LinkLoads; interBytes: number }

/** Destinations with x > 0, largest x first (ties by index), so flows come out largest first. */
function byLoad(x: Float64Array): number[] {
  return Array.from(x.keys()).filter((k) => x[k] > 0).sort((p, q) => x[q] - x[p] || p - q);
}

function allocFlows(F: number): Flows {
  if (F > MAX_FLOWS) throw new Error(`${F} inter-node flows per layer exceed ${MAX_FLOWS}: route a smaller cluster`);
  return { src: new Int32Array(F), dst: new Int32Array(F), bytes: new Float64Array(F) };
}

/** Flat phase: NVLink T·u·(Σ_{node} λ − λ_i) out of GPU i, (g − 1)·T·u·λ_i in; flows i → j of T·u·λ_j. */
export function flatPhase(t: Topology, L: Links, tr: LayerTraffic, T: number, u: number): RoutedPhase {
  const G = t.gpus, g = t.gpusPerNode, base = emptyLinkLoads(L);
  const sum = new Float64Array(t.nodes), nz = new Float64Array(t.nodes);
  for (let j = 0; j < G; j++) { sum[Math.floor(j / g)] += tr.lambda[j]; if (tr.lambda[j] > 0) nz[Math.floor(j / g)]++; }
  let total = 0, interBytes = 0;
  for (const x of sum) total += x;
  for (let i = 0; i < G; i++) {
    const n = Math.floor(i / g);
    base.bytes[L.nvSend + i] = T * u * (sum[n] - tr.lambda[i]);
    base.msgs[L.nvSend + i] = nz[n] - (tr.lambda[i] > 0 ? 1 : 0);
    if (tr.lambda[i] > 0) { base.bytes[L.nvRecv + i] = (g - 1) * T * u * tr.lambda[i]; base.msgs[L.nvRecv + i] = g - 1; }
    interBytes = Math.max(interBytes, T * u * (total - sum[n]));
  }
  const dests = byLoad(tr.lambda), flows = allocFlows(dests.length * (G - g));
  let f = 0;
  for (const j of dests) {
    for (let i = 0; i < G; i++) {
      if (Math.floor(i / g) === Math.floor(j / g)) continue;
      flows.src[f] = i; flows.dst[f] = j; flows.bytes[f] = T * u * tr.lambda[j]; f++;
    }
  }
  return { base, flows, interBytes };
}

/** Hierarchical phase: stage 1 NVLink and flows i → (m, local rank of i) of T·u·h_m; stage 2 NVLink forward. */
export function hierarchicalPhase(t: Topology, L: Links, tr: LayerTraffic, T: number, u: number): RoutedPhase {
  const G = t.gpus, g = t.gpusPerNode, N = t.nodes, base = emptyLinkLoads(L), stage2 = emptyLinkLoads(L);
  const qSum = new Float64Array(N), qNz = new Float64Array(N);
  for (let j = 0; j < G; j++) { qSum[Math.floor(j / g)] += tr.q[j]; if (tr.q[j] > 0) qNz[Math.floor(j / g)]++; }
  let hTotal = 0, interBytes = 0;
  for (const x of tr.h) hTotal += x;
  for (let i = 0; i < G; i++) {
    const n = Math.floor(i / g), selfQ = tr.q[i] > 0 ? 1 : 0, own = T * u * (qSum[n] - tr.q[i]);
    base.bytes[L.nvSend + i] = own; base.msgs[L.nvSend + i] = qNz[n] - selfQ;
    stage2.bytes[L.nvSend + i] = (N - 1) * own; stage2.msgs[L.nvSend + i] = N > 1 ? qNz[n] - selfQ : 0;
    if (tr.q[i] > 0) {
      base.bytes[L.nvRecv + i] = (g - 1) * T * u * tr.q[i]; base.msgs[L.nvRecv + i] = g - 1;
      stage2.bytes[L.nvRecv + i] = (N - 1) * (g - 1) * T * u * tr.q[i]; stage2.msgs[L.nvRecv + i] = N > 1 ? g - 1 : 0;
    }
    interBytes = Math.max(interBytes, T * u * (hTotal - tr.h[n]));
  }
  const dests = byLoad(tr.h), flows = allocFlows(dests.length * (G - g));
  let f = 0;
  for (const m of dests) {
    for (let i = 0; i < G; i++) {
      if (Math.floor(i / g) === m) continue;
      flows.src[f] = i; flows.dst[f] = m * g + (i % g); flows.bytes[f] = T * u * tr.h[m]; f++;
    }
  }
  return { base, flows, stage2, interBytes };
}

/** Dispatch, compute, combine and the best chunked overlap from a phase time at byte scale σ. */
function strategyFrom(phase: (sigma: number) => number, compute: number, ratio: number, C: number, interBytes: number, intraBytes: number): StrategyResult {
  const d = phase(1), b = phase(ratio), total = d + compute + b;
  let overlapped = total, chunks = 1;
  for (let c = 2; c <= C; c *= 2) {
    const time = overlapTime(phase(1 / c), compute / c, phase(ratio / c), c);
    if (time < overlapped) { overlapped = time; chunks = c; }
  }
  return {
    dispatch: d, compute, combine: b, total, overlapped, chunks,
    overhead: (total - compute) / compute, efficiency: compute / total,
    overlappedOverhead: (overlapped - compute) / compute, overlappedEfficiency: compute / overlapped,
    interBytes, intraBytes,
  };
}

/** Largest NVLink send bytes of any GPU over the given loads (forwarding hops included). */
function maxNvSend(L: Links, xs: LinkLoads[]): number {
  let m = 0;
  for (let i = 0; i < L.G; i++) m = Math.max(m, xs.reduce((a, x) => a + x.bytes[L.nvSend + i], 0));
  return m;
}

/** Prices flat and hierarchical all-to-all on static and/or adaptive route tables; compute = straggler compute time. */
export function pricePaths(t: Topology, shape: ModelShape, tr: LayerTraffic, compute: number, modes: PathMode[], opts: AdaptiveOptions = {}): PathsResult {
  const L = linkLayout(t), T = shape.tokensPerGpu, u = shape.hidden * shape.dispatchBytes, ratio = shape.combineBytes / shape.dispatchBytes;
  const flat = flatPhase(t, L, tr, T, u), hier = hierarchicalPhase(t, L, tr, T, u);
  const out: PathsResult = {};
  const statics = { flat: staticRoute(t, flat.flows), hier: staticRoute(t, hier.flows) };
  for (const mode of modes) {
    const rf = mode === 'static' ? statics.flat : adaptiveRoute(t, flat.flows, flat.base, opts);
    const rh = mode === 'static' ? statics.hier : adaptiveRoute(t, hier.flows, hier.base, opts);
    const xf = routeLoads(t, flat.flows, rf, flat.base), xh = routeLoads(t, hier.flows, rh, hier.base);
    out[mode] = {
      flat: strategyFrom((s) => loadsTime(L, xf, s), compute, ratio, shape.chunks, flat.interBytes, maxNvSend(L, [xf])),
      hierarchical: strategyFrom((s) => loadsTime(L, xh, s) + loadsTime(L, hier.stage2!, s), compute, ratio, shape.chunks, hier.interBytes, maxNvSend(L, [xh, hier.stage2!])),
      rerouted: { flat: reroutedShare(flat.flows, statics.flat, rf), hierarchical: reroutedShare(hier.flows, statics.hier, rh) },
    };
  }
  return out;
}
