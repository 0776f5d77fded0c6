/**
 * Alpha–beta cost of one MoE layer (dispatch, expert compute, combine) from expected traffic.
 *
 * Links: each GPU has an NVLink port (B_nv bytes/s per direction, α_nv per message) and uses one of the node's NICs
 * (B_nic per direction, α_nic per message); GPUs on the same NIC share it (contention: their bytes and messages
 * add up). A link direction that sends m messages of total b bytes is busy α·m + b/B; a GPU's time in a phase is
 * the max over its links and directions, and the phase ends with the slowest GPU (straggler).
 * Traffic per token copy: u = hidden · bytes per element (dispatch and combine may differ, e.g. FP8 vs BF16).
 *   flat (per-assignment all-to-all, e.g. Megatron's alltoall dispatcher): GPU i sends T·u·λ_j to every GPU j ≠ i,
 *     NVLink inside the node and NIC across nodes at the same time.
 *   hierarchical (node-level dedup, e.g. DeepEP normal kernels): stage 1 — over the NIC, a token crosses to node m
 *     once (T·u·h_m to the GPU of the same local rank on m), while node-local tokens go straight to their GPUs over
 *     NVLink (T·u·q_j); stage 2 — that GPU forwards over NVLink to each GPU j of its node the tokens needing j
 *     ((N−1)·T·u·q_j). Stages run one after the other, or pipelined (DeepEP forwards chunks while later ones are
 *     still on the wire: every link is busy at once, so the phase takes as long as its busiest link).
 *     Combine mirrors dispatch in reverse with combine bytes.
 *   Every phase also pays a fixed overhead o (kernel launch and completion signalling), measured by calibration.
 *   compute: GPU j runs G·T·λ_j token-expert pairs of flopsPerAssignment each at the achieved FLOP/s.
 *   chunked overlap (C chunks): d, c, b are the phase times at T/C tokens;
 *     time = d + c + b + (C − 1)·max(d + b, c)   (dispatch and combine share the links, compute runs beside them).
 */
import type { LayerTraffic } from './traffic.ts';
import type { Topology } from './topology.ts';

/** One strategy's times (seconds) and bytes for one layer. */
export interface StrategyResult {
  dispatch: number;
  compute: number;
  combine: number;
  /** dispatch + compute + combine, no overlap. */
  total: number;
  /** Chunked pipeline, with the chunk count C ∈ {1, 2, 4, …} ≤ shape.chunks that is fastest. */
  overlapped: number;
  chunks: number;
  /** (total − compute)/compute, and communication efficiency compute/(compute + communication). */
  overhead: number;
  efficiency: number;
  overlappedOverhead: number;
  overlappedEfficiency: number;
  /** Max over GPUs of dispatch bytes sent across nodes / inside the node. */
  interBytes: number;
  intraBytes: number;
}

/** Busy time of one link direction: α·messages + bytes/B. */
export function linkTime(alpha: number, messages: number, bytes: number, bandwidth: number): number {
  return alpha * messages + bytes / bandwidth;
}

/** Straggler time of an all-to-all phase given per-GPU NVLink and per-NIC loads (send and receive). */
interface PhaseLoads {
  nvSendBytes: Float64Array; nvSendMsgs: Float64Array; nvRecvBytes: Float64Array; nvRecvMsgs: Float64Array;
  nicSendBytes: Float64Array; nicSendMsgs: Float64Array; nicRecvBytes: Float64Array; nicRecvMsgs: Float64Array;
}

function emptyLoads(G: number, nics: number): PhaseLoads {
  const f = (n: number): Float64Array => new Float64Array(n);
  return { nvSendBytes: f(G), nvSendMsgs: f(G), nvRecvBytes: f(G), nvRecvMsgs: f(G), nicSendBytes: f(nics), nicSendMsgs: f(nics), nicRecvBytes: f(nics), nicRecvMsgs: f(nics) };
}

/** o + max over GPUs of max(NVLink send, NVLink recv, its NIC send, its NIC recv). */
function phaseTime(t: Topology, L: PhaseLoads): number {
  const perNic = t.gpusPerNode / t.nicsPerNode;
  let worst = 0;
  for (let i = 0; i < t.gpus; i++) {
    const c = Math.floor(i / t.gpusPerNode) * t.nicsPerNode + Math.floor((i % t.gpusPerNode) / perNic);
    worst = Math.max(worst,
      linkTime(t.nvlinkLat, L.nvSendMsgs[i], L.nvSendBytes[i], t.nvlinkBw),
      linkTime(t.nvlinkLat, L.nvRecvMsgs[i], L.nvRecvBytes[i], t.nvlinkBw),
      linkTime(t.nicLat, L.nicSendMsgs[c], L.nicSendBytes[c], t.nicBw),
      linkTime(t.nicLat, L.nicRecvMsgs[c], L.nicRecvBytes[c], t.nicBw));
  }
  return (t.phaseOverhead ?? 0) + worst;
}

/** Both stages' loads on every link at once (pipelined stages). */
function addLoads(a: PhaseLoads, b: PhaseLoads): PhaseLoads {
  const out = {} as PhaseLoads;
  for (const key of Object.keys(a) as (keyof PhaseLoads)[]) out[key] = a[key].map((x, i) => x + b[key][i]);
  return out;
}

/** NIC index of GPU i. */
function nicOf(t: Topology, i: number): number {
  return Math.floor(i / t.gpusPerNode) * t.nicsPerNode + Math.floor((i % t.gpusPerNode) / (t.gpusPerNode / t.nicsPerNode));
}

/** Per-node sums of x over the node's GPUs, and count of GPUs with x > 0. */
function nodeSums(t: Topology, x: Float64Array): { sum: Float64Array; nz: Float64Array } {
  const sum = new Float64Array(t.nodes), nz = new Float64Array(t.nodes);
  for (let j = 0; j < t.gpus; j++) { const n = Math.floor(j / t.gpusPerNode); sum[n] += x[j]; if (x[j] > 0) nz[n]++; }
  return { sum, nz };
}

/** Flat all-to-all time for T tokens per GPU and u bytes per token copy. Also returns max inter-node bytes sent per GPU. */
export function flatTime(t: Topology, tr: LayerTraffic, T: number, u: number): { time: number; interBytes: number; intraBytes: number } {
  const G = t.gpus, g = t.gpusPerNode;
  const L = emptyLoads(G, t.nodes * t.nicsPerNode);
  const { sum, nz } = nodeSums(t, tr.lambda);
  let totalLambda = 0, totalNz = 0;
  for (let n = 0; n < t.nodes; n++) { totalLambda += sum[n]; totalNz += nz[n]; }
  let interMax = 0, intraMax = 0;
  for (let i = 0; i < G; i++) {
    const n = Math.floor(i / g), self = tr.lambda[i] > 0 ? 1 : 0;
    const intra = T * u * (sum[n] - tr.lambda[i]);
    const inter = T * u * (totalLambda - sum[n]);
    L.nvSendBytes[i] = intra; L.nvSendMsgs[i] = nz[n] - self;
    if (tr.lambda[i] > 0) { L.nvRecvBytes[i] = (g - 1) * T * u * tr.lambda[i]; L.nvRecvMsgs[i] = g - 1; }
    const c = nicOf(t, i);
    L.nicSendBytes[c] += inter; L.nicSendMsgs[c] += totalNz - nz[n];
    if (tr.lambda[i] > 0) { L.nicRecvBytes[c] += (G - g) * T * u * tr.lambda[i]; L.nicRecvMsgs[c] += G - g; }
    interMax = Math.max(interMax, inter); intraMax = Math.max(intraMax, intra);
  }
  return { time: phaseTime(t, L), interBytes: interMax, intraBytes: intraMax };
}

/**
 * Hierarchical (node-dedup) all-to-all time: stage 1 (NIC ‖ node-local NVLink) + stage 2 (NVLink forward), or with
 * `pipelined` one phase carrying both stages' loads. One node has no stage 2: a GPU-dedup all-to-all over NVLink.
 */
export function hierarchicalTime(t: Topology, tr: LayerTraffic, T: number, u: number, pipelined = false): { time: number; interBytes: number; intraBytes: number } {
  const G = t.gpus, g = t.gpusPerNode, N = t.nodes;
  const s1 = emptyLoads(G, N * t.nicsPerNode);
  const s2 = emptyLoads(G, N * t.nicsPerNode);
  const { sum: qSum, nz: qNz } = nodeSums(t, tr.q);
  let hTotal = 0, hNz = 0;
  for (let m = 0; m < N; m++) { hTotal += tr.h[m]; if (tr.h[m] > 0) hNz++; }
  let interMax = 0, intraMax = 0;
  for (let i = 0; i < G; i++) {
    const n = Math.floor(i / g), c = nicOf(t, i), selfQ = tr.q[i] > 0 ? 1 : 0;
    const inter = T * u * (hTotal - tr.h[n]);
    s1.nicSendBytes[c] += inter; s1.nicSendMsgs[c] += hNz - (tr.h[n] > 0 ? 1 : 0);
    if (tr.h[n] > 0) { s1.nicRecvBytes[c] += (N - 1) * T * u * tr.h[n]; s1.nicRecvMsgs[c] += N - 1; }
    const own = T * u * (qSum[n] - tr.q[i]);
    s1.nvSendBytes[i] = own; s1.nvSendMsgs[i] = qNz[n] - selfQ;
    const fwd = (N - 1) * own;
    s2.nvSendBytes[i] = fwd; s2.nvSendMsgs[i] = N > 1 ? qNz[n] - selfQ : 0;
    if (tr.q[i] > 0) {
      s1.nvRecvBytes[i] = (g - 1) * T * u * tr.q[i]; s1.nvRecvMsgs[i] = g - 1;
      s2.nvRecvBytes[i] = (N - 1) * (g - 1) * T * u * tr.q[i]; s2.nvRecvMsgs[i] = N > 1 ? g - 1 : 0;
    }
    interMax = Math.max(interMax, inter); intraMax = Math.max(intraMax, own + fwd);
  }
  const time = N === 1 ? phaseTime(t, s1) : pipelined ? phaseTime(t, addLoads(s1, s2)) : phaseTime(t, s1) + phaseTime(t, s2);
  return { time, interBytes: interMax, intraBytes: intraMax };
}

/** Straggler expert-compute time: max_j G·T·λ_j·flopsPerAssignment / FLOP/s; also the mean over GPUs. */
export function computeTime(t: Topology, tr: LayerTraffic, T: number, flopsPerAssignment: number): { max: number; mean: number } {
  let max = 0, sum = 0;
  for (let j = 0; j < t.gpus; j++) {
    const time = (t.gpus * T * tr.lambda[j] * flopsPerAssignment) / t.flops;
    max = Math.max(max, time);
    sum += time;
  }
  return { max, mean: sum / t.gpus };
}

/** Chunked pipeline time: d + c + b + (C − 1)·max(d + b, c) with per-chunk phase times. */
export function overlapTime(d: number, c: number, b: number, chunks: number): number {
  return d + c + b + (chunks - 1) * Math.max(d + b, c);
}
