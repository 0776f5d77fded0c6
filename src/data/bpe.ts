/**
 * Byte-level BPE (Sennrich et al. 2016 on UTF-8 bytes, as in GPT-2): ids 0–255 are bytes, merge r makes id 256 + r.
 * Text is first cut into chunks with GPT-2's pre-tokeniser pattern (merges never cross a chunk), so training
 * counts pairs over *unique* chunks weighted by frequency, with incremental pair counts and a lazy max-heap.
 */

/** GPT-2's pre-tokeniser pattern: contractions, optional-space + letters / digits / other, whitespace. */
const PRETOKEN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Chunks longer than this are split (at code-point boundaries) so per-chunk merging stays cheap on odd input. */
export const MAX_CHUNK = 128;

/** Largest vocabulary: pair keys a·2²¹ + b stay exact in a double. */
export const MAX_BPE_VOCAB = 1 << 21;
const KEY = MAX_BPE_VOCAB;

export type Merge = readonly [number, number];

/** Pre-tokenises text into chunks whose concatenation is the text (the pattern matches every character). */
export function pretokenize(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(PRETOKEN)) {
    const s = m[0];
    if (s.length <= MAX_CHUNK) out.push(s);
    else for (let i = 0; i < s.length;) {
      let j = Math.min(s.length, i + MAX_CHUNK);
      const c = s.charCodeAt(j - 1);
      if (j < s.length && c >= 0xd800 && c <= 0xdbff) j--; // never split a surrogate pair
      out.push(s.slice(i, j));
      i = j;
    }
  }
  return out;
}

const utf8 = new TextEncoder();

/** Max-heap of (count, key): highest count first, smallest key (pair a then b) on ties, so training is deterministic. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];
  get size(): number { return this.counts.length; }
  private above(i: number, j: number): boolean {
    const ci = this.counts[i], cj = this.counts[j];
    return ci > cj || (ci === cj && this.keys[i] < this.keys[j]);
  }
  private swap(i: number, j: number): void {
    [this.counts[i], this.counts[j]] = [this.counts[j], this.counts[i]];
    [this.keys[i], this.keys[j]] = [this.keys[j], this.keys[i]];
  }
  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    for (let i = this.counts.length - 1; i > 0;) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  top(): { count: number; key: number } { return { count: this.counts[0], key: this.keys[0] }; }
  pop(): void {
    const last = this.counts.length - 1;
    this.swap(0, last);
    this.counts.pop();
    this.keys.pop();
    for (let i = 0; ;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < last && this.above(l, m)) m = l;
      if (r < last && this.above(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
  }
}

/** seq with every non-overlapping (a, b), left to right, replaced by id. */
function mergeSeq(seq: readonly number[], a: number, b: number, id: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < seq.length; i++) {
    if (i + 1 < seq.length && seq[i] === a && seq[i + 1] === b) {
      out.push(id);
      i++;
    } else out.push(seq[i]);
  }
  return out;
}

/**
 * Learns vocabSize − 256 merges on text: repeatedly merge the most frequent adjacent pair (ties: smallest ids).
 * Stops early when no pair is left (every chunk one token), so the vocabulary may come out smaller.
 */
export function trainBpe(text: string, vocabSize: number): Merge[] {
  if (typeof text !== 'string') throw new Error(`trainBpe: text must be a string, got ${typeof text}`);
  if (!Number.isInteger(vocabSize) || vocabSize < 256 || vocabSize > MAX_BPE_VOCAB) {
    throw new Error(`trainBpe: vocabSize must be an integer in [256, ${MAX_BPE_VOCAB}], got ${vocabSize}`);
  }
  const chunkFreq = new Map<string, number>();
  for (const c of pretokenize(text)) chunkFreq.set(c, (chunkFreq.get(c) ?? 0) + 1);
  const words: number[][] = [];
  const freqs: number[] = [];
  for (const [c, f] of chunkFreq) {
    words.push(Array.from(utf8.encode(c)));
    freqs.push(f);
  }
  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, number[]>(); // word indices that may hold the pair (may be stale or repeated)
  const add = (key: number, f: number, w: number): void => {
    pairCount.set(key, (pairCount.get(key) ?? 0) + f);
    const ws = pairWords.get(key);
    if (ws === undefined) pairWords.set(key, [w]);
    else if (ws[ws.length - 1] !== w) ws.push(w);
  };
  words.forEach((seq, w) => {
    for (let i = 0; i + 1 < seq.length; i++) add(seq[i] * KEY + seq[i + 1], freqs[w], w);
  });
  const heap = new PairHeap();
  for (const [key, c] of pairCount) heap.push(c, key);
  const seen = new Int32Array(words.length).fill(-1);
  const merges: Merge[] = [];
  for (let id = 256; id < vocabSize; id++) {
    // Heap entries are upper bounds (old pairs only lose counts); a stale top is re-pushed with its count.
    let best = -1;
    while (heap.size > 0) {
      const { count, key } = heap.top();
      heap.pop();
      const cur = pairCount.get(key) ?? 0;
      if (cur === count && cur > 0) { best = key; break; }
      if (cur > 0) heap.push(cur, key);
    }
    if (best < 0) break;
    const a = Math.floor(best / KEY), b = best % KEY;
    merges.push([a, b]);
    const touched = new Set<number>();
    for (const w of pairWords.get(best) ?? []) {
      if (seen[w] === id) continue;
      seen[w] = id;
      const seq = words[w];
      const next = mergeSeq(seq, a, b, id);
      if (next.length === seq.length) continue; // stale entry: the pair is no longer in this word
      const f = freqs[w];
      for (let i = 0; i + 1 < seq.length; i++) {
        const k = seq[i] * KEY + seq[i + 1];
        const c = (pairCount.get(k) ?? 0) - f;
        if (c > 0) pairCount.set(k, c); else pairCount.delete(k);
      }
      for (let i = 0; i + 1 < next.length; i++) {
        const k = next[i] * KEY + next[i + 1];
        add(k, f, w);
        if (next[i] === id || next[i + 1] === id) touched.add(k);
      }
      words[w] = next;
    }
    pairWords.delete(best);
    // Only pairs with the new id can have gained count: they get fresh heap entries.
    for (const k of touched) {
      const c = pairCount.get(k);
      if (c !== undefined) heap.push(c, k);
    }
  }
  return merges;
}

/** Lookup tables derived from the merges: pair → rank, token → bytes, and a chunk → ids cache. */
export interface BpeTables {
  ranks: Map<number, number>;
  tokenBytes: Uint8Array[];
  cache: Map<string, Int32Array>;
}

/** Checks merges (merge r may only use ids < 256 + r; no pair twice) and builds the tables. */
export function bpeTables(merges: readonly Merge[]): BpeTables {
  if (!Array.isArray(merges)) throw new Error(`bpe: merges must be an array of [a, b] pairs, got ${typeof merges}`);
  if (merges.length > MAX_BPE_VOCAB - 256) throw new Error(`bpe: ${merges.length} merges exceed the ${MAX_BPE_VOCAB - 256} limit`);
  const ranks = new Map<number, number>();
  const tokenBytes: Uint8Array[] = [];
  for (let i = 0; i < 256; i++) tokenBytes.push(Uint8Array.of(i));
  merges.forEach((m, r) => {
    const id = 256 + r;
    if (!Array.isArray(m) || m.length !== 2 || !m.every((x) => Number.isInteger(x) && x >= 0 && x < id)) {
      throw new Error(`bpe: merge ${r} must be a pair of integer ids in [0, ${id}), got ${JSON.stringify(m)}`);
    }
    const key = m[0] * KEY + m[1];
    if (ranks.has(key)) throw new Error(`bpe: merge ${r} ${JSON.stringify(m)} repeats merge ${ranks.get(key)}`);
    ranks.set(key, r);
    const x = tokenBytes[m[0]], y = tokenBytes[m[1]];
    const both = new Uint8Array(x.length + y.length);
    both.set(x, 0);
    both.set(y, x.length);
    tokenBytes.push(both);
  });
  return { ranks, tokenBytes, cache: new Map() };
}

/** Ids of one chunk: apply the lowest-rank mergeable pair until none is left (same result as training's order). */
export function encodeChunk(t: BpeTables, chunk: string): Int32Array {
  const hit = t.cache.get(chunk);
  if (hit !== undefined) return hit;
  let seq: number[] = Array.from(utf8.encode(chunk));
  while (seq.length > 1) {
    let bestRank = Infinity, bestKey = -1;
    for (let i = 0; i + 1 < seq.length; i++) {
      const key = seq[i] * KEY + seq[i + 1];
      const r = t.ranks.get(key);
      if (r !== undefined && r < bestRank) { bestRank = r; bestKey = key; }
    }
    if (bestKey < 0) break;
    seq = mergeSeq(seq, Math.floor(bestKey / KEY), bestKey % KEY, 256 + bestRank);
  }
  const ids = Int32Array.from(seq);
  t.cache.set(chunk, ids);
  return ids;
}
