/**
 * Topology-aware routing of the inter-node all-to-all (seed 004, TopologyAwareRouter): a route table for the flows
 * that the expert locations create, over several paths between nodes, with path cost from bandwidth, latency and
 * current congestion, and adaptive re-routing off congested links.
 *
 * Paths. A flow i → j (GPU i on node n, GPU j on node m ≠ n) takes a path (a, s, b): NIC a of node n (a rail),
 * spine uplink s when n and m hang on different leaves of a fabric, NIC b of node m. Links it loads:
 *   NVLink i → proxy(n, a) if a ≠ nic(i)       (PXN-style: the data reaches NIC a through a GPU attached to it)
 *   NIC a of n (send), uplink s of leaf(n), downlink s of leaf(m), NIC b of m (receive)
 *   NVLink proxy(m, b) → j if b ≠ nic(j)       (forwarded to its GPU after landing on another NIC)
 * so a pair of nodes has R·R·S candidate paths (R = nics_per_node, S = spine_links, S = 1 inside a leaf).
 * Link busy time α·messages + bytes/B as in src/sim/cost.ts (switch hops: bytes/B only); a flow of b bytes on a
 * path costs max over its links of (busy + α + b/B) = bytes/bandwidth + latency + current congestion.
 *   static   — a = nic(i), b = nic(j) (each GPU its own NIC, as the alpha–beta model), s = ECMP hash(i, j) mod S.
 *   adaptive — start from static; visit flows largest first, move a flow to its cheapest path when that costs less
 *              than (1 − θ) × its current path; repeat until no flow moves. A move puts less than the busiest
 *              link's time on any link and only unloads others, so the busiest link never gets busier: adaptive ≤
 *              static for the traffic routed.
 * Pure functions; ties go to the static path, then the current one, then the lowest index: deterministic.
 */
import type { Topology } from './topology.ts';

/** Inter-node flows [F]: source GPU, destination GPU, bytes. */
export interface Flows { src: Int32Array; dst: Int32Array; bytes: Float64Array }

/** The route table: per flow the chosen path (source rail, spine or −1 inside a leaf, destination rail). */
export interface RouteTable { srcNic: Int32Array; spine: Int32Array; dstNic: Int32Array }

/** Per-link messages and bytes, indexed by the Links layout. */
export interface LinkLoads { msgs: Float64Array; bytes: Float64Array }

/**
 * Link layout: NVLink send [G], NVLink receive [G], NIC send [N·R], NIC receive [N·R], leaf uplinks [leaves·S],
 * leaf downlinks [leaves·S]; α (s per message) and B (bytes/s) per link.
 */
export interface Links {
  G: number; R: number; S: number; leaves: number;
  nvSend: number; nvRecv: number; nicSend: number; nicRecv: number; up: number; down: number; count: number;
  alpha: Float64Array; bw: Float64Array;
}

export interface AdaptiveOptions {
  /** Re-route when the cheapest path costs less than (1 − threshold) × the current one (default 0.05). */
  threshold?: number;
  /** Most passes over the flows (default 8). */
  maxPasses?: number;
}

/** Builds the link layout of a topology. */
export function linkLayout(t: Topology): Links {
  const G = t.gpus, R = t.nicsPerNode, S = t.fabric?.spineLinks ?? 1;
  const leaves = t.fabric ? Math.ceil(t.nodes / t.fabric.nodesPerLeaf) : 1;
  const nvSend = 0, nvRecv = G, nicSend = 2 * G, nicRecv = nicSend + t.nodes * R, up = nicRecv + t.nodes * R;
  const down = up + leaves * S, count = down + leaves * S;
  const alpha = new Float64Array(count), bw = new Float64Array(count);
  for (let l = 0; l < count; l++) {
    if (l < nicSend) { alpha[l] = t.nvlinkLat; bw[l] = t.nvlinkBw; } else if (l < up) { alpha[l] = t.nicLat; bw[l] = t.nicBw; } else bw[l] = t.fabric?.spineBw ?? Infinity;
  }
  return { G, R, S, leaves, nvSend, nvRecv, nicSend, nicRecv, up, down, count, alpha, bw };
}

/** Zero loads for a layout. */
export function emptyLinkLoads(L: Links): LinkLoads {
  return { msgs: new Float64Array(L.count), bytes: new Float64Array(L.count) };
}

/** Rail (node-local NIC index) of GPU i: ⌊local rank / GPUs per NIC⌋. */
export function railOf(t: Topology, i: number): number {
  return Math.floor((i % t.gpusPerNode) / (t.gpusPerNode / t.nicsPerNode));
}

/** The GPU of node `node` on rail a that relays for local rank `local`: a·(g/R) + local mod (g/R). */
function proxyOf(t: Topology, node: number, a: number, local: number): number {
  const per = t.gpusPerNode / t.nicsPerNode;
  return node * t.gpusPerNode + a * per + (local % per);
}

/** Leaf switch of a node (0 without a fabric). */
function leafOf(t: Topology, node: number): number {
  return t.fabric ? Math.floor(node / t.fabric.nodesPerLeaf) : 0;
}

/** ECMP's hash of a flow onto S spines: murmur3's 32-bit finalizer of i·G + j, mod S. */
export function ecmpHash(i: number, j: number, G: number, S: number): number {
  let h = (i * G + j) >>> 0;
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b); h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35); h ^= h >>> 16;
  return (h >>> 0) % S;
}

/** Number of candidate paths between nodes n ≠ m: R·R·S across leaves, R·R inside one. */
export function pathCount(t: Topology, n: number, m: number): number {
  if (n === m) throw new Error(`pathCount: nodes ${n} and ${m} are the same node`);
  const R = t.nicsPerNode;
  return R * R * (t.fabric && leafOf(t, n) !== leafOf(t, m) ? t.fabric.spineLinks : 1);
}

/** True when some pair of nodes has more than one path (several NICs per node, or spines between leaves). */
export function hasSeveralPaths(t: Topology): boolean {
  if (t.nodes < 2) return false;
  return t.nicsPerNode > 1 || (t.fabric !== undefined && t.fabric.spineLinks > 1 && t.fabric.nodesPerLeaf < t.nodes);
}

/** Adds (sign = 1) or removes (−1) one message of `by` bytes on link l. */
function addLink(x: LinkLoads, l: number, sign: number, by: number): void {
  x.msgs[l] += sign;
  x.bytes[l] += sign * by;
}

/** Adds (sign = 1) or removes (−1) flow f on path (a, s, b). */
function apply(t: Topology, L: Links, x: LinkLoads, fl: Flows, f: number, a: number, s: number, b: number, sign: number): void {
  const i = fl.src[f], j = fl.dst[f], g = t.gpusPerNode, n = Math.floor(i / g), m = Math.floor(j / g), by = fl.bytes[f];
  if (a !== railOf(t, i)) { addLink(x, L.nvSend + i, sign, by); addLink(x, L.nvRecv + proxyOf(t, n, a, i % g), sign, by); }
  addLink(x, L.nicSend + n * L.R + a, sign, by);
  if (s >= 0) { addLink(x, L.up + leafOf(t, n) * L.S + s, sign, by); addLink(x, L.down + leafOf(t, m) * L.S + s, sign, by); }
  addLink(x, L.nicRecv + m * L.R + b, sign, by);
  if (b !== railOf(t, j)) { addLink(x, L.nvSend + proxyOf(t, m, b, j % g), sign, by); addLink(x, L.nvRecv + j, sign, by); }
}

/** Time link l would be busy with one more flow of `by` bytes: current congestion + latency + bytes/bandwidth. */
function busyWith(L: Links, x: LinkLoads, l: number, by: number): number {
  return L.alpha[l] * (x.msgs[l] + 1) + (x.bytes[l] + by) / L.bw[l];
}

/** Checks flows are inter-node GPU pairs with finite non-negative bytes. */
function checkFlows(t: Topology, fl: Flows): void {
  const F = fl.src.length;
  if (fl.dst.length !== F || fl.bytes.length !== F) throw new Error(`flows: src ${F}, dst ${fl.dst.length}, bytes ${fl.bytes.length} entries differ`);
  for (let f = 0; f < F; f++) {
    const i = fl.src[f], j = fl.dst[f];
    if (!(i >= 0 && i < t.gpus && j >= 0 && j < t.gpus)) throw new Error(`flow ${f}: GPU ${i} → ${j} outside 0..${t.gpus - 1}`);
    if (Math.floor(i / t.gpusPerNode) === Math.floor(j / t.gpusPerNode)) throw new Error(`flow ${f}: GPUs ${i} and ${j} share a node (not inter-node)`);
    if (!(fl.bytes[f] >= 0 && Number.isFinite(fl.bytes[f]))) throw new Error(`flow ${f}: bytes ${fl.bytes[f]} not finite and ≥ 0`);
  }
}

/** Static (ECMP) routes: a = nic(i), b = nic(j), s = ecmpHash(i, j) mod S across leaves, −1 inside a leaf. */
export function staticRoute(t: Topology, fl: Flows): RouteTable {
  checkFlows(t, fl);
  const F = fl.src.length, g = t.gpusPerNode, S = t.fabric?.spineLinks ?? 1;
  const r: RouteTable = { srcNic: new Int32Array(F), spine: new Int32Array(F), dstNic: new Int32Array(F) };
  for (let f = 0; f < F; f++) {
    const i = fl.src[f], j = fl.dst[f];
    r.srcNic[f] = railOf(t, i);
    r.dstNic[f] = railOf(t, j);
    r.spine[f] = leafOf(t, Math.floor(i / g)) !== leafOf(t, Math.floor(j / g)) ? ecmpHash(i, j, t.gpus, S) : -1;
  }
  return r;
}

/** Link loads of routed flows on top of base loads (copied): bytes and messages per link. */
export function routeLoads(t: Topology, fl: Flows, r: RouteTable, base?: LinkLoads): LinkLoads {
  const L = linkLayout(t);
  const x: LinkLoads = base ? { msgs: Float64Array.from(base.msgs), bytes: Float64Array.from(base.bytes) } : emptyLinkLoads(L);
  for (let f = 0; f < fl.src.length; f++) apply(t, L, x, fl, f, r.srcNic[f], r.spine[f], r.dstNic[f], 1);
  return x;
}

/** Phase time of loads with every byte scaled by σ: max over links of α·messages + σ·bytes/B. */
export function loadsTime(L: Links, x: LinkLoads, sigma = 1): number {
  let worst = 0;
  for (let l = 0; l < L.count; l++) {
    if (x.msgs[l] === 0 && x.bytes[l] === 0) continue;
    worst = Math.max(worst, L.alpha[l] * x.msgs[l] + (sigma * x.bytes[l]) / L.bw[l]);
  }
  return worst;
}

/** Flow indices by bytes descending (ties by index); skips the sort when already in that order. */
function largestFirst(bytes: Float64Array): Uint32Array {
  const order = Uint32Array.from({ length: bytes.length }, (_, f) => f);
  let sorted = true;
  for (let f = 1; f < bytes.length && sorted; f++) if (bytes[f] > bytes[f - 1]) sorted = false;
  return sorted ? order : order.sort((p, q) => bytes[q] - bytes[p] || p - q);
}

/** Smallest entry of c. */
function minOf(c: Float64Array): number {
  let m = Infinity;
  for (let k = 0; k < c.length; k++) if (c[k] < m) m = c[k];
  return m;
}

/** Adaptive routes: static, then re-route each flow (largest first) to its cheapest path if < (1 − θ) × current. */
export function adaptiveRoute(t: Topology, fl: Flows, base?: LinkLoads, opts: AdaptiveOptions = {}): RouteTable {
  const theta = opts.threshold ?? 0.05, passes = opts.maxPasses ?? 8;
  if (!(theta >= 0 && theta < 1)) throw new Error(`reroute threshold ${theta} must be in [0, 1)`);
  if (!Number.isInteger(passes) || passes < 1) throw new Error(`maxPasses ${passes} must be a positive integer`);
  const st = staticRoute(t, fl);
  const r: RouteTable = { srcNic: Int32Array.from(st.srcNic), spine: Int32Array.from(st.spine), dstNic: Int32Array.from(st.dstNic) };
  const L = linkLayout(t), x = routeLoads(t, fl, r, base), g = t.gpusPerNode, R = L.R;
  const srcCost = new Float64Array(R), dstCost = new Float64Array(R), spCost = new Float64Array(L.S);
  const order = largestFirst(fl.bytes);
  for (let pass = 0; pass < passes; pass++) {
    let moved = 0;
    for (let k = 0; k < order.length; k++) {
      const f = order[k], i = fl.src[f], j = fl.dst[f], by = fl.bytes[f], n = Math.floor(i / g), m = Math.floor(j / g);
      const ri = railOf(t, i), rj = railOf(t, j), crosses = r.spine[f] >= 0;
      apply(t, L, x, fl, f, r.srcNic[f], r.spine[f], r.dstNic[f], -1);
      const srcNv = busyWith(L, x, L.nvSend + i, by), dstNv = busyWith(L, x, L.nvRecv + j, by);
      for (let a = 0; a < R; a++) {
        const nic = busyWith(L, x, L.nicSend + n * R + a, by);
        srcCost[a] = a === ri ? nic : Math.max(nic, srcNv, busyWith(L, x, L.nvRecv + proxyOf(t, n, a, i % g), by));
      }
      for (let b = 0; b < R; b++) {
        const nic = busyWith(L, x, L.nicRecv + m * R + b, by);
        dstCost[b] = b === rj ? nic : Math.max(nic, dstNv, busyWith(L, x, L.nvSend + proxyOf(t, m, b, j % g), by));
      }
      if (crosses) {
        const lu = L.up + leafOf(t, n) * L.S, ld = L.down + leafOf(t, m) * L.S;
        for (let s = 0; s < L.S; s++) spCost[s] = Math.max(busyWith(L, x, lu + s, by), busyWith(L, x, ld + s, by));
      }
      const cur = Math.max(srcCost[r.srcNic[f]], dstCost[r.dstNic[f]], crosses ? spCost[r.spine[f]] : 0);
      // Source, spine and destination choices load disjoint links, so the cheapest path takes each side's minimum.
      const M = Math.max(minOf(srcCost), minOf(dstCost), crosses ? minOf(spCost) : 0);
      if (M < cur * (1 - theta)) {
        const pick = (c: Float64Array, stat: number, now: number): number => (c[stat] <= M ? stat : c[now] <= M ? now : c.indexOf(minOf(c)));
        r.srcNic[f] = pick(srcCost, ri, r.srcNic[f]);
        r.dstNic[f] = pick(dstCost, rj, r.dstNic[f]);
        if (crosses) r.spine[f] = pick(spCost, st.spine[f], r.spine[f]);
        moved++;
      }
      apply(t, L, x, fl, f, r.srcNic[f], r.spine[f], r.dstNic[f], 1);
    }
    if (moved === 0) break;
  }
  return r;
}

/** Share of flow bytes whose route differs from the static one. */
export function reroutedShare(fl: Flows, st: RouteTable, r: RouteTable): number {
  let moved = 0, total = 0;
  for (let f = 0; f < fl.src.length; f++) {
    total += fl.bytes[f];
    if (st.srcNic[f] !== r.srcNic[f] || st.spine[f] !== r.spine[f] || st.dstNic[f] !== r.dstNic[f]) moved += fl.bytes[f];
  }
  return total > 0 ? moved / total : 0;
}
