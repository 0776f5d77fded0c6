/**
 * The counts half of the all-to-all: before any row moves, the main thread writes each rank's
 * receive layout into that rank's shared Int32 meta buffer, chunk by chunk:
 *   [C, then per chunk: inboxStart, inboxRows, stage1Rows, outStart, nRows, S, slotCounts[S],
 *    rowSrc[nRows], P, then P × (peer, peerInboxStart, peerOutStart, count, src[count], dst[count])]
 * Starts are row offsets into the rank's inbox / outbox; src/dst are relative to the chunk's start.
 */
import type { RankChunk } from './exchange.ts';

/** One chunk of a rank's receive layout, as the worker reads it. */
export interface ChunkLayout {
  inboxStart: number;
  inboxRows: number;
  stage1Rows: number;
  outStart: number;
  nRows: number;
  slotCounts: Int32Array;
  rowSrc: Int32Array;
  /** peerOutStart: where the peer's entries sit in its outbox in the backward's reduction. */
  forwards: { peer: number; peerInboxStart: number; peerOutStart: number; src: Int32Array; dst: Int32Array }[];
}

/** Row offsets of each chunk in every rank's inbox and outbox: [C][N]. */
export interface Offsets {
  inbox: number[][];
  out: number[][];
  /** [N] inbox rows (≥ the forward's and the backward's needs) and outbox rows per rank. */
  inboxRows: number[];
  outRows: number[];
}

/** Prefix sums of inbox entries and rows over chunks, per rank. */
export function chunkOffsets(chunks: RankChunk[][], epSize: number): Offsets {
  const inbox: number[][] = [], out: number[][] = [];
  const inboxRows = new Array<number>(epSize).fill(0), outRows = new Array<number>(epSize).fill(0);
  for (const per of chunks) {
    inbox.push(per.map((_, r) => inboxRows[r]));
    out.push(per.map((_, r) => outRows[r]));
    // an outbox chunk holds its rows (ys) or, in the hierarchical backward, its token entries (a gateway may hold more)
    per.forEach((ch, r) => { inboxRows[r] += ch.inboxRows; outRows[r] += Math.max(ch.rows.length, ch.inboxRows); });
  }
  // The backward pass writes dy rows into the inbox, laid out like the outbox.
  for (let r = 0; r < epSize; r++) inboxRows[r] = Math.max(inboxRows[r], outRows[r]);
  return { inbox, out, inboxRows, outRows };
}

/** Int32 words rank r's meta takes; `peers` are the ranks of its node it must signal (hierarchical). */
export function metaWords(chunks: RankChunk[][], r: number, peers: number[]): number {
  let n = 1;
  for (const per of chunks) {
    const ch = per[r];
    n += 6 + ch.slotCounts.length + ch.rows.length + 1 + 4 * peers.length;
    for (const f of ch.forwards) n += 2 * f.src.length;
  }
  return n;
}

/** Writes rank r's layout into meta (which must hold metaWords words). */
export function encodeMeta(meta: Int32Array, chunks: RankChunk[][], r: number, off: Offsets, peers: number[]): void {
  let i = 0;
  meta[i++] = chunks.length;
  chunks.forEach((per, c) => {
    const ch = per[r];
    meta[i++] = off.inbox[c][r]; meta[i++] = ch.inboxRows; meta[i++] = ch.stage1.length;
    meta[i++] = off.out[c][r]; meta[i++] = ch.rows.length; meta[i++] = ch.slotCounts.length;
    meta.set(ch.slotCounts, i); i += ch.slotCounts.length;
    meta.set(ch.rowSrc, i); i += ch.rowSrc.length;
    meta[i++] = peers.length;
    for (const p of peers) {
      // Every node peer gets a record, empty or not: the peer waits for one signal from each gateway.
      const f = ch.forwards.find((x) => x.peer === p);
      const n = f ? f.src.length : 0;
      meta[i++] = p; meta[i++] = off.inbox[c][p]; meta[i++] = off.out[c][p]; meta[i++] = n;
      if (f) { meta.set(f.src, i); meta.set(f.dst, i + n); }
      i += 2 * n;
    }
  });
}

/** Reads a layout written by encodeMeta (views into meta, valid until the next call). */
export function decodeMeta(meta: Int32Array): ChunkLayout[] {
  let i = 0;
  const C = meta[i++];
  const out: ChunkLayout[] = [];
  for (let c = 0; c < C; c++) {
    const inboxStart = meta[i++], inboxRows = meta[i++], stage1Rows = meta[i++], outStart = meta[i++], nRows = meta[i++], S = meta[i++];
    const slotCounts = meta.subarray(i, i + S); i += S;
    const rowSrc = meta.subarray(i, i + nRows); i += nRows;
    const P = meta[i++];
    const forwards: ChunkLayout['forwards'] = [];
    for (let p = 0; p < P; p++) {
      const peer = meta[i++], peerInboxStart = meta[i++], peerOutStart = meta[i++], n = meta[i++];
      forwards.push({ peer, peerInboxStart, peerOutStart, src: meta.subarray(i, i + n), dst: meta.subarray(i + n, i + 2 * n) });
      i += 2 * n;
    }
    out.push({ inboxStart, inboxRows, stage1Rows, outStart, nRows, slotCounts, rowSrc, forwards });
  }
  return out;
}
