/**
 * The all-to-all of one MoE call, planned on the main thread (pure): which rows each rank computes,
 * chunk by chunk, what travels where, and the bytes moved.
 *
 * Token t's home rank is h(t) = ⌊t·N/T⌋ (the batch is sharded over ranks as data-parallel replicas
 * would hold it; the main thread plays every home rank's send side). Chunk c holds tokens
 * [⌊c·T/C⌋, ⌊(c+1)·T/C⌋); a rank's rows in a chunk are ordered slot by slot.
 *   flat (per-assignment, Megatron's alltoall dispatcher): every row travels h(t) → rank; it crosses
 *     nodes when node(rank) ≠ node(h(t)).
 *   hierarchical (node dedup, the seeds' HierarchicalCommunicator / DeepEP normal mode): stage 1 — a
 *     token crosses to node m once, to its gateway, the rank of m with h(t)'s local index; tokens of
 *     the home node go straight to each rank needing them (once per rank); stage 2 — the gateway
 *     forwards to every other rank of m needing t. Each rank expands received tokens into its rows.
 * Outputs (ys) and output gradients (dy) are per row in both modes: the executor seam returns unweighted
 * rows and takes their gradients weighted, so neither can be merged on the way. Input gradients (dxs) can:
 * the gradient of token t is the sum of its rows' dxs. Hierarchical mode reduces them on the way home, the
 * mirror of the dispatch: each rank sums its rows of a token into one entry; a rank that got the token from
 * its node's gateway sends that sum back to the gateway (intra-node), which adds it to its own and sends one
 * row per (token, node) home; ranks of the home node send theirs straight home.
 */
import type { DispatchPlan } from '../moe/plan.ts';
import { nodeOf, replicaRange, type Slot } from './placement.ts';

export type CommMode = 'flat' | 'hierarchical';
export const COMM_MODES: readonly CommMode[] = ['flat', 'hierarchical'];

/** How ranks are laid out and how tokens travel. */
export interface CommConfig {
  mode: CommMode;
  /** nodes; ranks are split over them contiguously. */
  nodes: number;
  /** chunks of the batch pipelined through dispatch → compute → combine. */
  chunks: number;
}

/** What one rank receives and computes in one chunk. */
export interface RankChunk {
  /** global row ids (into xs / ys) this rank computes, slot by slot. */
  rows: Int32Array;
  /** rows per local slot. */
  slotCounts: Int32Array;
  /** xs row ids the main thread writes into the inbox (stage 1): rows (flat) or one row per token (hierarchical). */
  stage1: Int32Array;
  /** entries in this chunk's inbox region: stage 1 plus tokens forwarded by peers (stage 2). */
  inboxRows: number;
  /** inbox entry each row reads. */
  rowSrc: Int32Array;
  /** stage 2 sends of this rank as gateway: to `peer`, own inbox entry src[i] → peer's inbox entry dst[i]. */
  forwards: { peer: number; src: Int32Array; dst: Int32Array }[];
}

/** Bytes of one phase, split by link. */
export interface LinkBytes {
  intra: number;
  inter: number;
}

/** Bytes moved by one call, by phase, and per sending rank. */
export interface CallTraffic {
  /** xs to the experts (deduplicated per node in hierarchical mode). */
  dispatch: LinkBytes;
  /** ys home; also the size of dy out in the backward pass, and of dxs home in flat mode. */
  perRow: LinkBytes;
  /** dxs home in the backward pass: perRow in flat mode, reduced per (token, rank) and (token, node) in hierarchical. */
  reduce: LinkBytes;
  /** [N] bytes each rank sends in the backward's dxs phase, and its inter-node part. */
  reduceSent: Float64Array;
  reduceSentInter: Float64Array;
  /** [N] inter-node bytes each rank would send in the forward dispatch if it were flat (for the saving). */
  flatDispatchSentInter: Float64Array;
  /** [N] bytes each rank sends in the forward dispatch (as home rank or gateway). */
  dispatchSent: Float64Array;
  /** [N] bytes each rank sends home in one per-row phase (ys or dxs). */
  rowsSent: Float64Array;
  /** [N] bytes each home rank sends in one per-row phase (dy). */
  rowsHomeSent: Float64Array;
  /** [N] inter-node part of the three arrays above. */
  dispatchSentInter: Float64Array;
  rowsSentInter: Float64Array;
  rowsHomeSentInter: Float64Array;
}

export interface Exchange {
  /** [C][N] */
  chunks: RankChunk[][];
  traffic: CallTraffic;
}

/** Home rank of token t: ⌊t·N/T⌋. */
export function homeRank(t: number, numTokens: number, epSize: number): number {
  return Math.floor((t * epSize) / numTokens);
}

/** Plans the exchange of one call. bytesPerRow = D · 4. */
export function planExchange(plan: DispatchPlan, slots: Slot[][], comm: CommConfig, bytesPerRow: number): Exchange {
  const N = slots.length, T = plan.numTokens, C = comm.chunks;
  const per = N / comm.nodes;
  const node = (r: number) => nodeOf(r, N, comm.nodes);
  const home = (t: number) => homeRank(t, T, N);
  const start = new Int32Array(plan.numExperts + 1);
  for (let e = 0; e < plan.numExperts; e++) start[e + 1] = start[e] + plan.tokensPerExpert[e];
  const firstRow = new Int32Array(T).fill(-1);
  for (let n = plan.tokenOfRow.length - 1; n >= 0; n--) firstRow[plan.tokenOfRow[n]] = n;
  const chunkOf = (t: number) => Math.floor((t * C) / T);

  // 1. rows per (chunk, rank), slot by slot.
  const rows: number[][][] = Array.from({ length: C }, () => Array.from({ length: N }, () => []));
  const counts: Int32Array[][] = Array.from({ length: C }, () => slots.map((s) => new Int32Array(s.length)));
  for (let r = 0; r < N; r++) {
    slots[r].forEach((s, i) => {
      const n = plan.tokensPerExpert[s.expert];
      const [lo, hi] = replicaRange(n, s.replica, s.replicas);
      for (let row = start[s.expert] + lo; row < start[s.expert] + hi; row++) {
        const c = chunkOf(plan.tokenOfRow[row]);
        rows[c][r].push(row);
        counts[c][r][i]++;
      }
    });
  }

  const tr = emptyTraffic(N);
  const add = (ph: LinkBytes, sent: Float64Array, sentInter: Float64Array, from: number, to: number) => {
    if (from === to) return; // a rank's own tokens do not travel
    const inter = node(from) !== node(to);
    if (inter) { ph.inter += bytesPerRow; sentInter[from] += bytesPerRow; } else ph.intra += bytesPerRow;
    sent[from] += bytesPerRow;
  };
  const chunks: RankChunk[][] = [];
  for (let c = 0; c < C; c++) {
    const out: RankChunk[] = [];
    for (let r = 0; r < N; r++) {
      for (const row of rows[c][r]) {
        const h = home(plan.tokenOfRow[row]);
        add(tr.perRow, tr.rowsSent, tr.rowsSentInter, r, h);
        add({ intra: 0, inter: 0 }, tr.rowsHomeSent, tr.rowsHomeSentInter, h, r);
      }
    }
    const none = { intra: 0, inter: 0 };
    for (let r = 0; r < N; r++) for (const row of rows[c][r]) add(none, new Float64Array(N), tr.flatDispatchSentInter, home(plan.tokenOfRow[row]), r);
    if (comm.mode === 'flat') {
      for (let r = 0; r < N; r++) {
        const rr = Int32Array.from(rows[c][r]);
        for (const row of rr) {
          add(tr.dispatch, tr.dispatchSent, tr.dispatchSentInter, home(plan.tokenOfRow[row]), r);
          add(tr.reduce, tr.reduceSent, tr.reduceSentInter, r, home(plan.tokenOfRow[row]));
        }
        out.push({ rows: rr, slotCounts: counts[c][r], stage1: rr, inboxRows: rr.length, rowSrc: Int32Array.from(rr, (_, i) => i), forwards: [] });
      }
      chunks.push(out);
      continue;
    }
    // 2. hierarchical stage 1: inbox index of each token per rank (insertion order = inbox order).
    const stage1 = Array.from({ length: N }, () => new Map<number, number>());
    const put = (r: number, t: number) => { if (!stage1[r].has(t)) stage1[r].set(t, stage1[r].size); };
    const gatewayOf = (t: number, m: number) => m * per + (home(t) % per);
    for (let r = 0; r < N; r++) {
      for (const row of rows[c][r]) {
        const t = plan.tokenOfRow[row];
        put(node(home(t)) === node(r) ? r : gatewayOf(t, node(r)), t);
      }
    }
    // 3. stage 2: a token a rank needs that its gateway holds is forwarded; entries follow stage 1, gateway by gateway.
    const fwd = Array.from({ length: N }, () => new Map<number, { src: Int32Array; dst: Int32Array }>());
    const index = stage1.map((m) => new Map(m));
    for (let r = 0; r < N; r++) {
      const byPeer = new Map<number, number[]>();
      for (const row of rows[c][r]) {
        const t = plan.tokenOfRow[row];
        if (index[r].has(t)) continue;
        const g = gatewayOf(t, node(r));
        if (!byPeer.has(g)) byPeer.set(g, []);
        byPeer.get(g)!.push(t);
        index[r].set(t, -1); // seen; its entry is set below
      }
      let next = stage1[r].size;
      for (const g of [...byPeer.keys()].sort((a, b) => a - b)) {
        const ts = byPeer.get(g)!;
        const src = Int32Array.from(ts, (t) => stage1[g].get(t)!);
        const dst = Int32Array.from(ts, (t) => { index[r].set(t, next); return next++; });
        fwd[g].set(r, { src, dst });
      }
    }
    for (let r = 0; r < N; r++) {
      const s1 = [...stage1[r].keys()];
      for (const t of s1) {
        add(tr.dispatch, tr.dispatchSent, tr.dispatchSentInter, home(t), r);
        add(tr.reduce, tr.reduceSent, tr.reduceSentInter, r, home(t)); // the entry's sum goes home (from a gateway: its node's)
      }
      const forwards = [...fwd[r].entries()].sort((a, b) => a[0] - b[0]).map(([peer, l]) => {
        for (let i = 0; i < l.src.length; i++) {
          add(tr.dispatch, tr.dispatchSent, tr.dispatchSentInter, r, peer);
          add(tr.reduce, tr.reduceSent, tr.reduceSentInter, peer, r); // the peer's partial sum back to this gateway
        }
        return { peer, ...l };
      });
      const rr = Int32Array.from(rows[c][r]);
      out.push({
        rows: rr, slotCounts: counts[c][r], stage1: Int32Array.from(s1, (t) => firstRow[t]),
        inboxRows: index[r].size, rowSrc: Int32Array.from(rr, (row) => index[r].get(plan.tokenOfRow[row])!), forwards,
      });
    }
    chunks.push(out);
  }
  return { chunks, traffic: tr };
}

function emptyTraffic(N: number): CallTraffic {
  const f = () => new Float64Array(N);
  return {
    dispatch: { intra: 0, inter: 0 }, perRow: { intra: 0, inter: 0 }, reduce: { intra: 0, inter: 0 },
    dispatchSent: f(), rowsSent: f(), rowsHomeSent: f(), dispatchSentInter: f(), rowsSentInter: f(), rowsHomeSentInter: f(),
    reduceSent: f(), reduceSentInter: f(), flatDispatchSentInter: f(),
  };
}

/**
 * Hierarchical mode sends one copy per token, so it needs xs[n] = x[tokenOfRow[n]] (dispatch's
 * contract): throws naming the first row that differs from its token's first row.
 */
export function checkTokenRows(xs: Float32Array, tokenOfRow: Int32Array, D: number): void {
  const first = new Map<number, number>();
  for (let n = 0; n < tokenOfRow.length; n++) {
    const t = tokenOfRow[n];
    const f = first.get(t);
    if (f === undefined) { first.set(t, n); continue; }
    for (let d = 0; d < D; d++) {
      if (xs[n * D + d] !== xs[f * D + d] && !(Number.isNaN(xs[n * D + d]) && Number.isNaN(xs[f * D + d]))) {
        throw new Error(`ExpertParallel: hierarchical mode needs rows of one token to be equal, but row ${n} differs from row ${f} (token ${t}) at column ${d}`);
      }
    }
  }
}
