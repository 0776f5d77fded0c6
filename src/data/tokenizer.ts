/**
 * Tokenizers for the LM: byte-level (ids = UTF-8 bytes, vocab 256) or byte-level BPE learned on the training text.
 * Both are lossless on well-formed strings: decode(encode(s)) === s. (A lone UTF-16 surrogate has no UTF-8 form
 * and comes back as U+FFFD, as with any UTF-8 encoder.)
 */
import { bpeTables, encodeChunk, pretokenize, trainBpe, type BpeTables, type Merge } from './bpe.ts';

export type Tokenizer =
  | { type: 'byte' }
  | { type: 'bpe'; merges: readonly Merge[]; tables: BpeTables };

export type TokenizerKind = Tokenizer['type'];

/** What a run folder stores (tokenizer.json). */
export type TokenizerJson = { type: 'byte' } | { type: 'bpe'; merges: [number, number][] };

/** Default BPE vocabulary when none is given. */
export const DEFAULT_BPE_VOCAB = 512;

const utf8 = new TextEncoder();
// ignoreBOM: a leading U+FEFF is text, not a marker to strip. Not fatal: sampled ids may end mid-character.
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });

/** Makes a tokenizer: 'byte' (vocab 256, no training) or 'bpe' trained on trainText up to vocabSize ids (default 512). */
export function createTokenizer(kind: TokenizerKind, trainText: string, vocabSize?: number): Tokenizer {
  switch (kind) {
    case 'byte':
      if (vocabSize !== undefined && vocabSize !== 256) throw new Error(`createTokenizer: the byte tokenizer has vocab 256, got vocabSize ${vocabSize}`);
      return { type: 'byte' };
    case 'bpe': {
      if (typeof trainText !== 'string' || trainText.length === 0) throw new Error(`createTokenizer: BPE needs non-empty training text, got ${typeof trainText === 'string' ? 'an empty string' : typeof trainText}`);
      const merges = trainBpe(trainText, vocabSize ?? DEFAULT_BPE_VOCAB);
      return { type: 'bpe', merges, tables: bpeTables(merges) };
    }
    default:
      throw new Error(`createTokenizer: kind must be 'byte' or 'bpe', got ${JSON.stringify(kind)}`);
  }
}

/** JSON form for a run folder: { type: 'byte' } or { type: 'bpe', merges: [[a, b], ...] } (merge r makes id 256 + r). */
export function tokenizerToJson(tok: Tokenizer): TokenizerJson {
  switch (tok.type) {
    case 'byte':
      return { type: 'byte' };
    case 'bpe':
      return { type: 'bpe', merges: tok.merges.map(([a, b]) => [a, b]) };
  }
}

/** Rebuilds a tokenizer from its JSON form (an object or a JSON string), checking every merge. */
export function tokenizerFromJson(json: unknown): Tokenizer {
  const obj = typeof json === 'string' ? (JSON.parse(json) as unknown) : json;
  if (obj === null || typeof obj !== 'object') throw new Error(`tokenizerFromJson: expected an object, got ${JSON.stringify(obj)}`);
  const o = obj as Record<string, unknown>;
  const extra = Object.keys(o).filter((k) => k !== 'type' && k !== 'merges');
  if (extra.length > 0) throw new Error(`tokenizerFromJson: unknown field(s) ${extra.join(', ')}`);
  switch (o.type) {
    case 'byte':
      if ('merges' in o) throw new Error(`tokenizerFromJson: a byte tokenizer has no merges`);
      return { type: 'byte' };
    case 'bpe': {
      if (!Array.isArray(o.merges)) throw new Error(`tokenizerFromJson: bpe merges must be an array, got ${JSON.stringify(o.merges)}`);
      const tables = bpeTables(o.merges as Merge[]); // validates every entry (a pair of ids < 256 + rank)
      const merges = (o.merges as Merge[]).map(([a, b]) => [a, b] as const);
      return { type: 'bpe', merges, tables };
    }
    default:
      throw new Error(`tokenizerFromJson: type must be 'byte' or 'bpe', got ${JSON.stringify(o.type)}`);
  }
}

/** Number of ids: 256 for bytes, 256 + merges for BPE. */
export function vocabSize(tok: Tokenizer): number {
  switch (tok.type) {
    case 'byte':
      return 256;
    case 'bpe':
      return 256 + tok.merges.length;
  }
}

/** Token ids of text (UTF-8 bytes, then BPE merges within each pre-tokenised chunk). */
export function encode(tok: Tokenizer, text: string): Int32Array {
  if (typeof text !== 'string') throw new Error(`encode: text must be a string, got ${typeof text}`);
  switch (tok.type) {
    case 'byte':
      return Int32Array.from(utf8.encode(text));
    case 'bpe': {
      const parts = pretokenize(text).map((c) => encodeChunk(tok.tables, c));
      const out = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
      let o = 0;
      for (const p of parts) {
        out.set(p, o);
        o += p.length;
      }
      return out;
    }
  }
}

/** Text of ids: their bytes concatenated, UTF-8 decoded (an incomplete character becomes U+FFFD). */
export function decode(tok: Tokenizer, ids: ArrayLike<number>): string {
  const V = vocabSize(tok);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`decode: id ${id} at position ${i} is outside [0, ${V})`);
  }
  switch (tok.type) {
    case 'byte':
      return utf8Decoder.decode(Uint8Array.from(ids));
    case 'bpe': {
      const tb = tok.tables.tokenBytes;
      let n = 0;
      for (let i = 0; i < ids.length; i++) n += tb[ids[i]].length;
      const bytes = new Uint8Array(n);
      let o = 0;
      for (let i = 0; i < ids.length; i++) {
        bytes.set(tb[ids[i]], o);
        o += tb[ids[i]].length;
      }
      return utf8Decoder.decode(bytes);
    }
  }
}
