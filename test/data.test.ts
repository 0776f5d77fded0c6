/**
 * Data pipeline: corpus loading and split, byte and BPE tokenizers (against a naive reference trainer and
 * encoder written here), batches, synthetic data, unigram entropy. Plain JS (no tfjs numerics).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it, expect, beforeAll } from 'vitest';
import { loadCorpus, splitTrainVal, nlpCorpusDir } from '../src/data/corpus.ts';
import { createTokenizer, encode, decode, vocabSize, tokenizerToJson, tokenizerFromJson, type Tokenizer } from '../src/data/tokenizer.ts';
import { pretokenize, trainBpe, MAX_CHUNK } from '../src/data/bpe.ts';
import { sampleBatch, evalBatches, syntheticBatch, syntheticDataset } from '../src/data/batches.ts';
import { unigramEntropy } from '../src/data/unigram.ts';
import { Rng } from '../src/rng.ts';

let corpus = '';
beforeAll(() => {
  corpus = loadCorpus({ source: 'nlp-corpus' });
});

/** Random well-formed string: ASCII, Latin-1, CJK, emoji (astral), combining marks, BOM, whitespace runs. */
function randomUnicode(rng: Rng, n: number): string {
  const ranges: [number, number][] = [[0x20, 0x7e], [0x0a, 0x0d], [0xa0, 0xff], [0x300, 0x36f], [0x4e00, 0x4e80], [0x1f600, 0x1f64f], [0xfeff, 0xfeff], [0x10000, 0x10ffff], [0x0, 0x1f]];
  let s = '';
  for (let i = 0; i < n; i++) {
    const [lo, hi] = ranges[rng.int(ranges.length)];
    s += String.fromCodePoint(lo + rng.int(hi - lo + 1));
  }
  return s;
}

/** Reference BPE trainer: recount every pair over the unique chunks each round, merge the max (ties: smallest pair). */
function naiveTrain(text: string, V: number): [number, number][] {
  const freq = new Map<string, number>();
  for (const c of pretokenize(text)) freq.set(c, (freq.get(c) ?? 0) + 1);
  const words = [...freq].map(([c, f]) => ({ seq: [...Buffer.from(c, 'utf8')], f }));
  const merges: [number, number][] = [];
  for (let id = 256; id < V; id++) {
    const counts = new Map<string, number>();
    for (const w of words) for (let i = 0; i + 1 < w.seq.length; i++) {
      const k = `${w.seq[i]},${w.seq[i + 1]}`;
      counts.set(k, (counts.get(k) ?? 0) + w.f);
    }
    let best: [number, number] | null = null, bestC = 0;
    for (const [k, c] of counts) {
      const [a, b] = k.split(',').map(Number);
      if (c > bestC || (c === bestC && best !== null && (a < best[0] || (a === best[0] && b < best[1])))) { best = [a, b]; bestC = c; }
    }
    if (best === null) break;
    merges.push(best);
    for (const w of words) w.seq = naiveMerge(w.seq, best[0], best[1], id);
  }
  return merges;
}

function naiveMerge(seq: number[], a: number, b: number, id: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < seq.length; i++) {
    if (i + 1 < seq.length && seq[i] === a && seq[i + 1] === b) { out.push(id); i++; } else out.push(seq[i]);
  }
  return out;
}

/** Reference encoder: apply merge 0, 1, 2, ... in order to every chunk's bytes. */
function naiveEncode(merges: readonly (readonly [number, number])[], text: string): number[] {
  const out: number[] = [];
  for (const c of pretokenize(text)) {
    let seq = [...Buffer.from(c, 'utf8')];
    merges.forEach(([a, b], r) => { seq = naiveMerge(seq, a, b, 256 + r); });
    out.push(...seq);
  }
  return out;
}

describe('corpus', () => {
  it('joins the nlp-corpus docs in numeric order, one sentence per line', () => {
    const dir = path.join(nlpCorpusDir(), 'builds');
    const docs = Array.from({ length: 100 }, (_, i) => JSON.parse(fs.readFileSync(path.join(dir, `doc-${i}.json`), 'utf8')) as string[]);
    const lines = corpus.split('\n');
    expect(lines.length).toBe(docs.reduce((n, d) => n + d.length, 0));
    expect(lines[0]).toBe(docs[0][0]);
    const at10 = docs.slice(0, 10).reduce((n, d) => n + d.length, 0); // doc-10 follows doc-9, not doc-1
    expect(lines[at10]).toBe(docs[10][0].replace(/\s*[\r\n]+\s*/g, ' '));
    expect(lines[lines.length - 1]).toBe(docs[99][docs[99].length - 1].replace(/\s*[\r\n]+\s*/g, ' '));
    expect(corpus.length).toBeGreaterThan(8_000_000);
    expect(loadCorpus({ source: 'nlp-corpus', maxChars: 50_000 })).toBe(loadCorpus({ source: 'nlp-corpus', maxChars: 50_000 }));
  });

  it('maxChars keeps whole lines, a prefix of the full text', () => {
    const cut = loadCorpus({ source: 'nlp-corpus', maxChars: 10_000 });
    expect(cut.length).toBeLessThanOrEqual(10_000);
    expect(cut.length).toBeGreaterThan(9_000);
    expect(corpus.startsWith(cut)).toBe(true);
    expect(corpus[cut.length]).toBe('\n');
    expect(() => loadCorpus({ source: 'nlp-corpus', maxChars: 0 })).toThrow(/maxChars.*got 0/);
  });

  it('reads a UTF-8 file (CRLF → LF) and rejects missing, empty, non-UTF-8 files', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-corpus-'));
    const f = path.join(dir, 'a.txt');
    fs.writeFileSync(f, 'héllo wörld\r\nsecond line 😀\r\nthird');
    expect(loadCorpus({ source: 'file', path: f })).toBe('héllo wörld\nsecond line 😀\nthird');
    expect(loadCorpus({ source: 'file', path: f, maxChars: 20 })).toBe('héllo wörld');
    expect(() => loadCorpus({ source: 'file', path: path.join(dir, 'nope.txt') })).toThrow(/nope\.txt does not exist/);
    fs.writeFileSync(path.join(dir, 'e.txt'), ' \n ');
    expect(() => loadCorpus({ source: 'file', path: path.join(dir, 'e.txt') })).toThrow(/empty/);
    fs.writeFileSync(path.join(dir, 'b.bin'), Uint8Array.of(0x61, 0xff, 0xfe, 0x62));
    expect(() => loadCorpus({ source: 'file', path: path.join(dir, 'b.bin') })).toThrow(/not valid UTF-8/);
    expect(() => loadCorpus({ source: 'file' })).toThrow(/needs a path/);
    expect(() => loadCorpus({ source: 'web' as 'file' })).toThrow(/"web"/);
    fs.rmSync(dir, { recursive: true });
  });

  it('splits on a line boundary near the requested fraction, deterministically', () => {
    const { train, val } = splitTrainVal(corpus, 0.1);
    expect(train + '\n' + val).toBe(corpus);
    expect(Math.abs(val.length / corpus.length - 0.1)).toBeLessThan(0.001);
    expect(splitTrainVal(corpus, 0.1).val).toBe(val);
    const s = splitTrainVal('aa\nbb\ncc\ndd', 0.25); // target index round(11·0.75) = 8 is the break before "dd"
    expect(s).toEqual({ train: 'aa\nbb\ncc', val: 'dd' });
    expect(splitTrainVal('abcdefghij', 0.3)).toEqual({ train: 'abcdefg', val: 'hij' });
    for (const bad of [0, 1, -0.1, NaN]) expect(() => splitTrainVal(corpus, bad)).toThrow(/valFraction/);
  });
});

describe('byte tokenizer', () => {
  it('is UTF-8 and round-trips random unicode', () => {
    const tok = createTokenizer('byte', '');
    expect(vocabSize(tok)).toBe(256);
    const rng = new Rng(5);
    for (let i = 0; i < 50; i++) {
      const s = randomUnicode(rng, 1 + rng.int(60));
      const ids = encode(tok, s);
      expect(Array.from(ids)).toEqual([...Buffer.from(s, 'utf8')]);
      expect(decode(tok, ids)).toBe(s);
    }
    expect(() => decode(tok, [256])).toThrow(/id 256 at position 0/);
    expect(() => createTokenizer('byte', '', 512)).toThrow(/vocab 256/);
  });
});

describe('BPE tokenizer', () => {
  let tok: Tokenizer;
  let train = '';
  let val = '';
  beforeAll(() => {
    ({ train, val } = splitTrainVal(corpus, 0.1));
    tok = createTokenizer('bpe', train.slice(0, 500_000), 512);
  });

  it('learns the same merges as a naive recount-every-round trainer', () => {
    const text = corpus.slice(0, 20_000) + ' aaaa aaaaa ééé 😀😀 ' + randomUnicode(new Rng(3), 300);
    expect(trainBpe(text, 400)).toEqual(naiveTrain(text, 400));
  });

  it('respects the vocab size, and stops early when nothing is left to merge', () => {
    expect(vocabSize(tok)).toBe(512);
    expect(tok.type === 'bpe' && tok.merges.length).toBe(256);
    const small = createTokenizer('bpe', 'ab ab', 1000); // chunks "ab", " ab": merges (a,b) then (' ', ab)
    expect(vocabSize(small)).toBe(258);
    expect(() => createTokenizer('bpe', 'x', 100)).toThrow(/vocabSize.*got 100/);
  });

  it('encodes like the naive apply-merges-in-order encoder', () => {
    const merges = tok.type === 'bpe' ? tok.merges : [];
    const text = val.slice(0, 3000) + randomUnicode(new Rng(9), 200);
    expect(Array.from(encode(tok, text))).toEqual(naiveEncode(merges, text));
  });

  it('round-trips random unicode, long runs, and the validation text', () => {
    const rng = new Rng(11);
    for (let i = 0; i < 100; i++) {
      const s = randomUnicode(rng, 1 + rng.int(80));
      expect(decode(tok, encode(tok, s))).toBe(s);
    }
    const long = ' '.repeat(3 * MAX_CHUNK + 1) + 'x'.repeat(MAX_CHUNK - 1) + '😀'.repeat(MAX_CHUNK) + '\n\n';
    expect(decode(tok, encode(tok, long))).toBe(long);
    expect(decode(tok, encode(tok, '\ufeffBOM first'))).toBe('\ufeffBOM first');
    expect(decode(tok, encode(tok, val))).toBe(val);
  });

  it('compresses held-out text: < 0.55 tokens per UTF-8 byte at vocab 512', () => {
    const ids = encode(tok, val);
    const ratio = ids.length / Buffer.byteLength(val, 'utf8');
    expect(ratio).toBeLessThan(0.55); // measured 0.497 (trained on 500k chars of train)
  });

  it('survives a JSON round trip and rejects bad JSON', () => {
    const back = tokenizerFromJson(JSON.stringify(tokenizerToJson(tok)));
    const s = val.slice(0, 5000);
    expect(Array.from(encode(back, s))).toEqual(Array.from(encode(tok, s)));
    expect(tokenizerToJson(tokenizerFromJson({ type: 'byte' }))).toEqual({ type: 'byte' });
    expect(() => tokenizerFromJson({ type: 'bpe', merges: [[97, 256]] })).toThrow(/merge 0.*\[0, 256\)/);
    expect(() => tokenizerFromJson({ type: 'bpe', merges: [[97, 98], [97, 98]] })).toThrow(/repeats merge 0/);
    expect(() => tokenizerFromJson({ type: 'bpe', merges: [[97]] })).toThrow(/merge 0/);
    expect(() => tokenizerFromJson({ type: 'wordpiece' })).toThrow(/"wordpiece"/);
    expect(() => tokenizerFromJson({ type: 'bpe', merges: [], vocab: 3 })).toThrow(/unknown field.*vocab/);
    expect(() => decode(tok, [512])).toThrow(/outside \[0, 512\)/);
  });
});

describe('batches', () => {
  const N = 200;
  const tokens = Int32Array.from({ length: N }, (_, i) => i); // token = its position, so windows are readable

  it('sampleBatch: targets are inputs shifted by one, windows in range, fixed by the rng state', () => {
    const rng = new Rng(7);
    const st = rng.getState();
    const a = sampleBatch(tokens, 4, 16, rng);
    rng.setState(st);
    const b = sampleBatch(tokens, 4, 16, rng);
    expect(b).toEqual(a);
    expect(sampleBatch(tokens, 4, 16, rng)).not.toEqual(a);
    const seen = new Set<number>();
    for (let k = 0; k < 400; k++) {
      const { inputs, targets } = sampleBatch(tokens, 3, 16, rng);
      for (let r = 0; r < 3; r++) {
        const s = inputs[r * 16];
        seen.add(s);
        for (let t = 0; t < 16; t++) {
          expect(inputs[r * 16 + t]).toBe(s + t);
          expect(targets[r * 16 + t]).toBe(s + t + 1);
        }
      }
    }
    expect(Math.min(...seen)).toBe(0);
    expect(Math.max(...seen)).toBe(N - 16 - 1); // the last window ends on the last token
    expect(() => sampleBatch(tokens.subarray(0, 16), 1, 16, rng)).toThrow(/16 tokens are too few.*need ≥ 17/);
  });

  it('evalBatches: evenly spaced fixed windows covering first to last token', () => {
    const bs = evalBatches(tokens, 2, 10, 3);
    expect(bs.length).toBe(3);
    expect(evalBatches(tokens, 2, 10, 3)).toEqual(bs);
    const starts = bs.flatMap((b) => [b.inputs[0], b.inputs[10]]);
    expect(starts).toEqual([0, 38, 76, 113, 151, 189]); // round(i·189/5)
    for (const b of bs) for (let i = 0; i < 20; i++) expect(b.targets[i]).toBe(b.inputs[i] + 1);
  });

  it('synthetic data: standard normal, fixed per seed', () => {
    const d = syntheticDataset(0, 40, 128);
    expect(d.inputs.length).toBe(40 * 128);
    expect(syntheticDataset(0, 40, 128)).toEqual(d);
    expect(syntheticDataset(1, 40, 128).inputs).not.toEqual(d.inputs);
    const big = syntheticBatch(new Rng(2), 1000, 50);
    for (const x of [big.inputs, big.targets]) {
      const m = x.reduce((s, v) => s + v, 0) / x.length;
      const v = x.reduce((s, y) => s + (y - m) ** 2, 0) / x.length;
      expect(Math.abs(m)).toBeLessThan(0.03); // 5σ for 50k draws is 0.022
      expect(Math.abs(v - 1)).toBeLessThan(0.04);
    }
  });
});

describe('unigram entropy', () => {
  it('matches hand-computed values', () => {
    const h = unigramEntropy(Int32Array.from(Buffer.from('aab')), 256);
    const want = -((2 / 3) * Math.log(2 / 3) + (1 / 3) * Math.log(1 / 3));
    expect(h.nats).toBeCloseTo(want, 12);
    expect(h.bits).toBeCloseTo(want / Math.LN2, 12);
    expect(unigramEntropy(Int32Array.of(0, 1, 2, 3, 3, 2, 1, 0), 4).bits).toBeCloseTo(2, 12);
    expect(unigramEntropy(Int32Array.of(5, 5, 5), 8).nats).toBe(0);
    expect(() => unigramEntropy(Int32Array.of(8), 8)).toThrow(/token 8 at position 0/);
  });

  it('on the corpus val split: below log2 of the symbols used, and below the cross-entropy of train frequencies', () => {
    const { train, val } = splitTrainVal(corpus, 0.1);
    const tv = Buffer.from(val, 'utf8');
    const h = unigramEntropy(Int32Array.from(tv), 256);
    const used = new Set(tv).size;
    expect(h.bits).toBeGreaterThan(3);
    expect(h.bits).toBeLessThan(Math.log2(used));
    // Gibbs: any other context-free model (train byte frequencies, add-one smoothed) does worse on val.
    const c = new Float64Array(256).fill(1);
    for (const b of Buffer.from(train, 'utf8')) c[b]++;
    const tot = c.reduce((s, x) => s + x, 0);
    let ce = 0;
    for (const b of tv) ce -= Math.log(c[b] / tot);
    expect(ce / tv.length).toBeGreaterThan(h.nats);
  });
});
