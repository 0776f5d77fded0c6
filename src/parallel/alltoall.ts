/**
 * The main thread's half of one call's all-to-all, streamed by chunk:
 *   forward:  write every rank's meta (counts first), ring the doorbells, then per chunk copy the
 *             stage-1 rows into each rank's inbox and raise READY; collect ys rows as ranks raise DONE.
 *   backward: per chunk copy dy rows (laid out like ys) and raise READY; collect dxs rows on DONE.
 * Ranks compute chunk c while the main thread writes chunk c+1: that is the overlap.
 */
import type { Exchange } from './exchange.ts';
import type { WorkerGroup } from './group.ts';
import { chunkOffsets, encodeMeta, metaWords, type Offsets } from './meta.ts';
import { DONE, FWD, READY, type Buffers } from './protocol.ts';

/** Per-rank shared inbox / outbox / meta buffers, grown (never shrunk) as calls need. */
export class SharedBuffers {
  inbox: SharedArrayBuffer[];
  outbox: SharedArrayBuffer[];
  meta: SharedArrayBuffer[];
  /** set when a buffer was replaced since the workers last received the set. */
  changed = true;

  constructor(n: number) {
    const mk = () => new SharedArrayBuffer(1024);
    this.inbox = Array.from({ length: n }, mk);
    this.outbox = Array.from({ length: n }, mk);
    this.meta = Array.from({ length: n }, mk);
  }

  /** Makes rank r's buffers hold at least the given bytes. */
  ensure(r: number, inboxBytes: number, outboxBytes: number, metaBytes: number): void {
    const grow = (list: SharedArrayBuffer[], bytes: number) => {
      if (list[r].byteLength >= bytes) return;
      list[r] = new SharedArrayBuffer(Math.ceil((bytes * 1.25) / 8) * 8); // headroom: batches vary in routing
      this.changed = true;
    };
    grow(this.inbox, inboxBytes);
    grow(this.outbox, outboxBytes);
    grow(this.meta, metaBytes);
  }

  /** The buffer set to send with the next command, or undefined when the workers have it. */
  take(): Buffers | undefined {
    if (!this.changed) return undefined;
    this.changed = false;
    return { inbox: this.inbox, outbox: this.outbox, meta: this.meta };
  }
}

/** Milliseconds the main thread spent copying each rank's rows (its share of communication). */
export type CopyMs = Float64Array;

/** Sizes buffers and writes every rank's meta for a forward call; returns the chunk offsets. */
export function prepareForward(bufs: SharedBuffers, ex: Exchange, D: number, peers: number[][]): Offsets {
  const N = peers.length;
  const off = chunkOffsets(ex.chunks, N);
  for (let r = 0; r < N; r++) {
    const words = metaWords(ex.chunks, r, peers[r]);
    bufs.ensure(r, 4 * off.inboxRows[r] * D, 4 * off.outRows[r] * D, 4 * words);
    encodeMeta(new Int32Array(bufs.meta[r]), ex.chunks, r, off, peers[r]);
  }
  return off;
}

/** Zeroes READY, DONE and FWD of every rank before a streamed call. */
export function resetCounters(g: WorkerGroup): void {
  for (let r = 0; r < g.size; r++) {
    g.signal(r, READY, 0);
    g.signal(r, DONE, 0);
    for (let p = 0; p < g.size; p++) g.signal(r, FWD + p, 0);
  }
}

/** Runs the forward exchange: xs [rows, D] → ys [rows, D]; ranks must already have the 'fwd' command. */
export function streamForward(g: WorkerGroup, bufs: SharedBuffers, ex: Exchange, off: Offsets, xs: Float32Array, D: number, copyMs: CopyMs, what: string): Float32Array {
  return streamRows(g, bufs, ex, off, xs, D, copyMs, what, (c, r) => [ex.chunks[c][r].stage1, off.inbox[c][r]]);
}

/**
 * Runs the backward exchange: dy [rows, D] → dxs [rows, D]; ranks must already have the 'bwd' command.
 * reduce (hierarchical): ranks send one sum per token entry (exchange.ts); each token's gradient comes back
 * summed into its first row, zeros in its other rows — the same gradient for x = the rows' token.
 */
export function streamBackward(g: WorkerGroup, bufs: SharedBuffers, ex: Exchange, off: Offsets, dy: Float32Array, D: number, copyMs: CopyMs, what: string, reduce = false): Float32Array {
  return streamRows(g, bufs, ex, off, dy, D, copyMs, what, (c, r) => [ex.chunks[c][r].rows, off.out[c][r]], reduce);
}

/** Writes each rank's rows of `src` (per chunk: which rows, at which inbox offset) and collects the results. */
function streamRows(
  g: WorkerGroup, bufs: SharedBuffers, ex: Exchange, off: Offsets, src: Float32Array, D: number, copyMs: CopyMs, what: string,
  rowsOf: (chunk: number, rank: number) => [ArrayLike<number>, number], reduce = false,
): Float32Array {
  const N = g.size, C = ex.chunks.length;
  for (let c = 0; c < C; c++) {
    for (let r = 0; r < N; r++) {
      const t0 = performance.now();
      const inbox = new Float32Array(bufs.inbox[r]);
      const [rows, at] = rowsOf(c, r);
      for (let i = 0; i < rows.length; i++) inbox.set(src.subarray(rows[i] * D, rows[i] * D + D), (at + i) * D);
      copyMs[r] += performance.now() - t0;
      g.signal(r, READY, c + 1);
    }
  }
  const out = new Float32Array(src.length);
  collectRows(g, bufs, ex, off, out, D, copyMs, what, reduce);
  return out;
}

/**
 * Copies each rank's finished chunks from its outbox into `into` at their global rows, as they finish;
 * reduce: adds each rank's stage-1 entries (token sums) into the token's first row instead.
 */
function collectRows(g: WorkerGroup, bufs: SharedBuffers, ex: Exchange, off: Offsets, into: Float32Array, D: number, copyMs: CopyMs, what: string, reduce = false): void {
  const N = g.size, C = ex.chunks.length;
  const next = new Array<number>(N).fill(0);
  const ready = (r: number) => next[r] < C && g.read(r, DONE) > next[r];
  while (next.some((c) => c < C)) {
    g.wait(() => next.some((_, r) => ready(r)), () => next.flatMap((c, r) => (c < C ? [r] : [])), `${what}, chunk ${Math.min(...next)}`);
    for (let r = 0; r < N; r++) {
      while (ready(r)) {
        const t0 = performance.now();
        const c = next[r]++;
        const out = new Float32Array(bufs.outbox[r]);
        const at = off.out[c][r];
        if (reduce) {
          const { stage1 } = ex.chunks[c][r]; // one entry per token received from home (its first row)
          for (let e = 0; e < stage1.length; e++) {
            const s = (at + e) * D, o = stage1[e] * D;
            for (let d = 0; d < D; d++) into[o + d] += out[s + d];
          }
        } else {
          const { rows } = ex.chunks[c][r];
          for (let i = 0; i < rows.length; i++) into.set(out.subarray((at + i) * D, (at + i) * D + D), rows[i] * D);
        }
        copyMs[r] += performance.now() - t0;
      }
    }
  }
}
