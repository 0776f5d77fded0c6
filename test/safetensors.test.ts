/** safetensors reader/writer: spec bytes, the reference writer's bytes, round trips, every rejection, atomic writes. */
import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  DTYPES, SafetensorsError, bf16ToFloat32, checkTensorsAgainst, decodeSafetensors, encodeSafetensors, f16ToFloat32,
  float32ToBf16, float32ToF16, readSafetensorsFile, writeSafetensorsAtomic, type Dtype, type SafeTensor,
} from '../src/io/safetensors.ts';
import { writeFileAtomic, writeJsonAtomic } from '../src/io/atomic.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'st-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const ascii = (s: string): number[] => Array.from(s, (c) => c.charCodeAt(0));

/** A file from a header given as text (padded with spaces to 8) and raw data bytes. */
function craft(header: string | object, data: number[] | Uint8Array = [], pad = true): Uint8Array {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const h = new TextEncoder().encode(text);
  const n = pad ? Math.ceil(h.length / 8) * 8 : h.length;
  const out = new Uint8Array(8 + n + data.length).fill(0x20, 8, 8 + n);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  out.set(h, 8);
  out.set(data, 8 + n);
  return out;
}

function errorOf(f: () => unknown): SafetensorsError {
  try {
    f();
  } catch (e) {
    if (e instanceof SafetensorsError) return e;
    throw new Error(`expected a SafetensorsError, got ${String(e)}`);
  }
  throw new Error('expected a SafetensorsError, but nothing was thrown');
}

describe('encodeSafetensors follows the spec byte for byte', () => {
  it('two tensors + metadata: hand-built expected buffer', () => {
    // Spec: u64 LE N, N bytes of JSON (spaces pad N to a multiple of 8), data. Reference writer order:
    // descending dtype alignment (F32 before I32), then name; __metadata__ first; fields dtype, shape, data_offsets.
    const header = '{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"idx":{"dtype":"I32","shape":[3],"data_offsets":[8,20]}}';
    expect(header.length).toBe(141); // → N = 144, three spaces of padding
    const expected = [
      0x90, 0, 0, 0, 0, 0, 0, 0,
      ...ascii(header), 0x20, 0x20, 0x20,
      0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0, // F32 1.5 = 0x3FC00000, -2 = 0xC0000000
      0x01, 0, 0, 0, 0x02, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, // I32 1, 2, -1
    ];
    const got = encodeSafetensors(
      { idx: { dtype: 'I32', shape: [3], data: new Int32Array([1, 2, -1]) }, w: { dtype: 'F32', shape: [2], data: new Float32Array([1.5, -2]) } },
      { format: 'pt' },
    );
    expect(Array.from(got)).toEqual(expected);
  });

  it('no tensors, no metadata: "{}" padded to 8 bytes', () => {
    expect(Array.from(encodeSafetensors({}))).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d, 32, 32, 32, 32, 32, 32]);
  });

  it('a 64-byte header needs no padding', () => {
    const header = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
    expect(header.length).toBe(64);
    const got = encodeSafetensors({ 'attn.0': { dtype: 'F32', shape: [1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) } });
    expect(Array.from(got.subarray(0, 8 + 64))).toEqual([64, 0, 0, 0, 0, 0, 0, 0, ...ascii(header)]);
    expect(got.length).toBe(8 + 64 + 24);
  });

  // Written by the reference implementation (Python safetensors 0.8.0, safetensors.numpy.save) for the tensors below.
  const REFERENCE_FILE =
    '8AEAAAAAAAB7Il9fbWV0YWRhdGFfXyI6eyJmb3JtYXQiOiJwdCJ9LCJzdGVwIjp7ImR0eXBlIjoiSTY0Iiwic2hhcGUiOltdLCJkYXRhX29mZnNldHMiOlswLDhdfSwiYmlhcyI6eyJkdHlwZSI6IkY2NCIsInNoYXBlIjpbM10sImRhdGFfb2Zmc2V0cyI6WzgsMzJdfSwiZW1iIjp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOlsyLDJdLCJkYXRhX29mZnNldHMiOlszMiw0OF19LCJlbXB0eSI6eyJkdHlwZSI6IkYzMiIsInNoYXBlIjpbMCwzXSwiZGF0YV9vZmZzZXRzIjpbNDgsNDhdfSwiaWRzIjp7ImR0eXBlIjoiSTMyIiwic2hhcGUiOlszXSwiZGF0YV9vZmZzZXRzIjpbNDgsNjBdfSwiaGFsZiI6eyJkdHlwZSI6IkYxNiIsInNoYXBlIjpbM10sImRhdGFfb2Zmc2V0cyI6WzYwLDY2XX0sImJ5dGVzIjp7ImR0eXBlIjoiVTgiLCJzaGFwZSI6WzJdLCJkYXRhX29mZnNldHMiOls2Niw2OF19LCJtYXNrIjp7ImR0eXBlIjoiQk9PTCIsInNoYXBlIjpbMl0sImRhdGFfb2Zmc2V0cyI6WzY4LDcwXX19BwAAAAAAAAAAAAAAAADwPwAAAAAAAATAfcOUJa1JslQAAAA/AACgvwAAQEBvEoM6AQAAAP7///////9/ADwAwP97AP8BAA==';
  const referenceTensors = (): Record<string, SafeTensor> => ({
    emb: { dtype: 'F32', shape: [2, 2], data: new Float32Array([0.5, -1.25, 3.0, 1e-3]) },
    bias: { dtype: 'F64', shape: [3], data: new Float64Array([1.0, -2.5, 1e100]) },
    step: { dtype: 'I64', shape: [], data: new BigInt64Array([7n]) },
    ids: { dtype: 'I32', shape: [3], data: new Int32Array([1, -2, 2 ** 31 - 1]) },
    mask: { dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) },
    half: { dtype: 'F16', shape: [3], data: new Uint16Array([0x3c00, 0xc000, 0x7bff]) }, // 1, -2, 65504
    bytes: { dtype: 'U8', shape: [2], data: new Uint8Array([0, 255]) },
    empty: { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
  });

  it('matches the reference writer byte for byte', () => {
    const ref = Buffer.from(REFERENCE_FILE, 'base64');
    expect(Buffer.from(encodeSafetensors(referenceTensors(), { format: 'pt' })).equals(ref)).toBe(true);
  });

  it('reads the reference writer\'s file', () => {
    const { tensors, metadata } = decodeSafetensors(new Uint8Array(Buffer.from(REFERENCE_FILE, 'base64')));
    expect({ ...metadata }).toEqual({ format: 'pt' });
    const want = referenceTensors();
    expect(Object.keys(tensors).sort()).toEqual(Object.keys(want).sort());
    for (const [name, t] of Object.entries(want)) {
      expect(tensors[name].dtype).toBe(t.dtype);
      expect(tensors[name].shape).toEqual(t.shape);
      expect(tensors[name].data).toEqual(t.data);
    }
    expect(Array.from(f16ToFloat32(tensors.half.data as Uint16Array))).toEqual([1, -2, 65504]);
  });
});

describe('round trips', () => {
  /** Data for any dtype from a seed, of the right typed array and byte size. */
  function sample(dtype: Dtype, shape: number[]): SafeTensor {
    const bits = { F4: 4, F6_E2M3: 6, F6_E3M2: 6 }[dtype as string] ?? 0;
    const numel = shape.reduce((a, b) => a * b, 1);
    const bytes = bits ? (numel * bits) / 8 : 0;
    const fill = (i: number): number => ((i * 37 + 11) % 251) - 120;
    const data = (() => {
      switch (dtype) {
        case 'F64': return Float64Array.from({ length: numel }, (_, i) => fill(i) / 7);
        case 'F32': return Float32Array.from({ length: numel }, (_, i) => fill(i) / 3);
        case 'C64': return Float32Array.from({ length: 2 * numel }, (_, i) => fill(i));
        case 'I64': return BigInt64Array.from({ length: numel }, (_, i) => BigInt(fill(i)) * 10n ** 15n);
        case 'U64': return BigUint64Array.from({ length: numel }, (_, i) => 2n ** 64n - 1n - BigInt(i));
        case 'I32': return Int32Array.from({ length: numel }, (_, i) => fill(i) * 1e6);
        case 'U32': return Uint32Array.from({ length: numel }, (_, i) => 4e9 + i);
        case 'I16': return Int16Array.from({ length: numel }, (_, i) => fill(i) * 200);
        case 'U16': case 'F16': case 'BF16': return Uint16Array.from({ length: numel }, (_, i) => (i * 4099) & 0x7bff);
        case 'I8': return Int8Array.from({ length: numel }, (_, i) => fill(i));
        case 'BOOL': return Uint8Array.from({ length: numel }, (_, i) => i % 2);
        default: return Uint8Array.from({ length: bits ? bytes : numel }, (_, i) => (i * 29) & 0xff);
      }
    })();
    return { dtype, shape, data };
  }

  it('every dtype survives encode → decode exactly, each in its own aligned array', () => {
    const tensors: Record<string, SafeTensor> = {};
    for (const d of DTYPES) tensors[`t.${d}`] = sample(d, [2, 4]); // 8 elements: whole bytes even for F4/F6
    tensors.scalar = sample('F32', []);
    tensors.empty = sample('I16', [3, 0]);
    const bytes = encodeSafetensors(tensors, { a: 'b', 'ü': '✓' });
    expect(new DataView(bytes.buffer).getBigUint64(0, true) % 8n).toBe(0n);
    const { tensors: back, metadata } = decodeSafetensors(bytes);
    expect({ ...metadata }).toEqual({ a: 'b', 'ü': '✓' });
    expect(Object.keys(back).length).toBe(Object.keys(tensors).length);
    for (const [name, t] of Object.entries(tensors)) {
      const got = back[name];
      expect(got.dtype).toBe(t.dtype);
      expect(got.shape).toEqual(t.shape);
      expect(got.data.constructor).toBe(t.data.constructor);
      expect(got.data).toEqual(t.data);
      expect(got.data.byteOffset).toBe(0); // own buffer: aligned for any element size
      expect(got.data.buffer.byteLength).toBe(got.data.byteLength);
    }
  });

  it('decodes from a Uint8Array view at an odd offset (data copied, not aliased)', () => {
    const bytes = encodeSafetensors({ x: { dtype: 'F64', shape: [2], data: new Float64Array([Math.PI, -0]) } });
    const host = new Uint8Array(bytes.length + 3);
    host.set(bytes, 3);
    const { tensors } = decodeSafetensors(host.subarray(3));
    expect(Array.from(tensors.x.data as Float64Array)).toEqual([Math.PI, -0]);
    host.fill(0);
    expect((tensors.x.data as Float64Array)[0]).toBe(Math.PI);
  });

  it('reads a header with extra trailing spaces and one without padding', () => {
    const data = [0, 0, 0x80, 0x3f];
    const entry = { x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } };
    for (const b of [craft(JSON.stringify(entry) + ' '.repeat(13), data, false), craft(entry, data, false)]) {
      expect(Array.from(decodeSafetensors(b).tensors.x.data as Float32Array)).toEqual([1]);
    }
  });

  it('a tensor named __proto__ is just a name', () => {
    const b = craft('{"__proto__":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', [9]);
    const { tensors } = decodeSafetensors(b);
    expect(Object.keys(tensors)).toEqual(['__proto__']);
    expect(Array.from(tensors['__proto__'].data as Uint8Array)).toEqual([9]);
    expect(({} as Record<string, unknown>).dtype).toBeUndefined(); // no prototype was touched
  });
});

describe('16-bit float conversions', () => {
  it('bf16 and f16 bits decode to hand-computed values', () => {
    expect(Array.from(bf16ToFloat32(new Uint16Array([0x3f80, 0xc000, 0x4049, 0x0000, 0x8000, 0x7f80])))).toEqual([1, -2, 3.140625, 0, -0, Infinity]);
    expect(Array.from(f16ToFloat32(new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x3555, 0xfc00])))).toEqual([
      1, -2, 65504, 2 ** -24, 2 ** -14, 0.333251953125, -Infinity,
    ]);
    expect(Number.isNaN(f16ToFloat32(new Uint16Array([0x7e00]))[0])).toBe(true);
  });

  it('float32 → 16-bit rounds to nearest even, overflows to Inf', () => {
    // bf16 step at 1 is 2^-7: 1 + 2^-8 is a tie → even (1.0); 1 + 3·2^-8 is a tie → even (1 + 2^-6).
    expect(Array.from(float32ToBf16(new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, -2, 0])))).toEqual([0x3f80, 0x3f82, 0xc000, 0]);
    // f16 step at 1 is 2^-10: ties at 1 + 2^-11 → 0x3C00, 1 + 3·2^-11 → 0x3C02.
    expect(Array.from(float32ToF16(new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504, 65519, 65520, 2 ** -25, 3 * 2 ** -25, -0])))).toEqual([
      0x3c00, 0x3c02, 0x7bff, 0x7bff, 0x7c00, 0x0000, 0x0002, 0x8000,
    ]);
  });

  it('every non-NaN 16-bit pattern survives bits → float32 → bits', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const f16 = float32ToF16(f16ToFloat32(all));
    const bf = float32ToBf16(bf16ToFloat32(all));
    for (let i = 0; i < 65536; i++) {
      const f16NaN = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
      const bfNaN = (i & 0x7f80) === 0x7f80 && (i & 0x7f) !== 0;
      if (!f16NaN && f16[i] !== i) throw new Error(`f16 0x${i.toString(16)} came back 0x${f16[i].toString(16)}`);
      if (!bfNaN && bf[i] !== i) throw new Error(`bf16 0x${i.toString(16)} came back 0x${bf[i].toString(16)}`);
    }
  });
});

describe('decodeSafetensors rejects bad files, naming the file, the tensor and the problem', () => {
  const F = 'bad.safetensors';
  const ok = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
  const eight = [0, 0, 0, 0, 0, 0, 0, 0];
  const cases: [string, () => Uint8Array, RegExp, string | undefined][] = [
    ['file under 8 bytes', () => new Uint8Array(5), /5 bytes, too short for the 8-byte header length/, undefined],
    ['header length beyond the file', () => craft({ w: ok }, eight).slice(0, 30), /header length 56 bytes runs past the end of the file \(30 bytes/, undefined],
    ['header length 2^40', () => { const b = craft({ w: ok }, eight); new DataView(b.buffer).setBigUint64(0, 2n ** 40n, true); return b; }, /header length 1099511627776 bytes is above the limit of 100000000 bytes/, undefined],
    ['header length 2^64 - 1', () => { const b = craft({ w: ok }, eight); new DataView(b.buffer).setBigUint64(0, 2n ** 64n - 1n, true); return b; }, /18446744073709551615 bytes is above the limit/, undefined],
    ['header not starting with {', () => craft(' {}'), /must start with '\{'.*0x20/, undefined],
    ['empty header', () => craft('', [], false), /must start with '\{'.*empty header/, undefined],
    ['header not UTF-8', () => { const b = craft('{"\u00e9":1}'); b[11] = 0xff; return b; }, /not valid UTF-8/, undefined],
    ['header not JSON', () => craft('{"w": {'), /not valid JSON: expected a key string but found end of text/, undefined],
    ['trailing garbage after JSON', () => craft('{} x'), /not valid JSON: unexpected "x" after the end/, undefined],
    ['duplicate tensor key', () => craft(`{"w":${JSON.stringify(ok)},"w":${JSON.stringify(ok)}}`, eight), /duplicate key "w"/, undefined],
    ['nesting too deep', () => craft(`{"w":${'['.repeat(20)}${']'.repeat(20)}}`), /nesting deeper than 8/, undefined],
    ['entry not an object', () => craft({ w: [1] }), /entry is not an object/, 'w'],
    ['unknown field', () => craft({ w: { ...ok, extra: 1 } }, eight), /unknown field "extra"/, 'w'],
    ['missing field', () => craft({ w: { dtype: 'F32', shape: [2] } }, eight), /needs dtype, shape and data_offsets/, 'w'],
    ['unknown dtype', () => craft({ w: { ...ok, dtype: 'F128' } }, eight), /unknown dtype "F128" \(known: BOOL, F4/, 'w'],
    ['lowercase dtype', () => craft({ w: { ...ok, dtype: 'f32' } }, eight), /unknown dtype "f32"/, 'w'],
    ['shape not an array', () => craft({ w: { ...ok, shape: 2 } }, eight), /shape must be an array of non-negative integers, got 2/, 'w'],
    ['negative dim', () => craft({ w: { ...ok, shape: [-2] } }, eight), /shape must hold non-negative integers below 2\^53, got -2/, 'w'],
    ['fractional dim', () => craft({ w: { ...ok, shape: [2.5] } }, eight), /got 2.5/, 'w'],
    ['string dim', () => craft({ w: { ...ok, shape: ['2'] } }, eight), /got "2"/, 'w'],
    ['dim above 2^53', () => craft('{"w":{"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,8]}}', eight), /below 2\^53, got 9007199254740992/, 'w'],
    ['element count overflow', () => craft({ w: { ...ok, shape: [2 ** 30, 2 ** 30, 2 ** 30] } }, eight), /more than any file can hold/, 'w'],
    ['byte size ≠ offsets', () => craft({ w: { ...ok, shape: [3] } }, eight), /shape \[3\] of F32 needs 12 bytes but data_offsets \[0, 8\] hold 8/, 'w'],
    ['sub-byte dtype not byte aligned', () => craft({ w: { dtype: 'F4', shape: [3], data_offsets: [0, 2] } }, [0, 0]), /shape \[3\] of F4 is 12 bits, not a whole number of bytes/, 'w'],
    ['offsets not a pair', () => craft({ w: { ...ok, data_offsets: [0, 4, 8] } }, eight), /data_offsets must be \[begin, end\], got 3 numbers/, 'w'],
    ['offsets reversed', () => craft({ w: { ...ok, data_offsets: [8, 0] } }, eight), /data_offsets \[8, 0\] end before they begin/, 'w'],
    ['offsets past the data', () => craft({ w: ok }, [0, 0, 0, 0]), /data_offsets \[0, 8\] run past the end of the data buffer \(4 bytes/, 'w'],
    ['overlap', () => craft({ a: ok, b: { ...ok, data_offsets: [4, 12] } }, new Uint8Array(12)), /data_offsets \[4, 12\] overlap tensor "a" \[0, 8\]/, 'b'],
    ['identical ranges', () => craft({ a: ok, b: ok }, eight), /overlap tensor "a"/, 'b'],
    ['hole between tensors', () => craft({ a: ok, b: { ...ok, data_offsets: [12, 20] } }, new Uint8Array(20)), /hole of 4 bytes before data_offsets \[12, 20\]/, 'b'],
    ['hole at the start', () => craft({ a: { ...ok, data_offsets: [4, 12] } }, new Uint8Array(12)), /hole of 4 bytes/, 'a'],
    ['trailing bytes', () => craft({ w: ok }, new Uint8Array(11)), /data buffer has 11 bytes but the tensors cover only 8 \(3 trailing bytes/, undefined],
    ['metadata not an object', () => craft({ __metadata__: 'x', w: ok }, eight), /__metadata__ must be an object of string → string/, undefined],
    ['metadata value not a string', () => craft({ __metadata__: { step: 3 }, w: ok }, eight), /__metadata__\["step"\] must be a string, got 3/, undefined],
    ['BOOL byte not 0/1', () => craft({ m: { dtype: 'BOOL', shape: [2], data_offsets: [0, 2] } }, [1, 7]), /BOOL element 1 is 7, not 0 or 1/, 'm'],
  ];
  for (const [what, make, message, tensor] of cases) {
    it(what, () => {
      const e = errorOf(() => decodeSafetensors(make(), { file: F }));
      expect(e.message).toMatch(message);
      expect(e.message.startsWith(`${F}: `)).toBe(true);
      expect(e.file).toBe(F);
      expect(e.tensor).toBe(tensor);
      if (tensor !== undefined) expect(e.message).toContain(`tensor "${tensor}"`);
    });
  }

  it('maxHeaderBytes lowers the limit', () => {
    const e = errorOf(() => decodeSafetensors(craft({ w: ok }, eight), { file: F, maxHeaderBytes: 16 }));
    expect(e.message).toMatch(/header length 56 bytes is above the limit of 16 bytes/);
  });

  it('a hostile 5 MB tensor name is clipped in messages', () => {
    const name = 'n'.repeat(5_000_000);
    const e = errorOf(() => decodeSafetensors(craft({ [name]: { ...ok, dtype: 'X' } }, eight), { file: F }));
    expect(e.message.length).toBeLessThan(1000);
    expect(e.tensor).toBe(name);
  });
});

describe('encodeSafetensors rejects bad input', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['wrong typed array', { x: { dtype: 'F32', shape: [2], data: new Float64Array(2) } }, /F32 data must be a Float32Array, got Float64Array/],
    ['wrong length', { x: { dtype: 'I32', shape: [2, 2], data: new Int32Array(3) } }, /shape \[2,2\] of I32 needs 16 bytes, data has 12/],
    ['unknown dtype', { x: { dtype: 'F8', shape: [1], data: new Uint8Array(1) } }, /unknown dtype F8/],
    ['bad shape', { x: { dtype: 'U8', shape: [-1], data: new Uint8Array(1) } }, /shape must be non-negative integers, got \[-1\]/],
    ['reserved name', { __metadata__: { dtype: 'U8', shape: [1], data: new Uint8Array(1) } }, /reserved/],
    ['BOOL not 0/1', { x: { dtype: 'BOOL', shape: [1], data: new Uint8Array([2]) } }, /only 0 and 1/],
  ];
  for (const [what, tensors, message] of cases) {
    it(what, () => {
      const e = errorOf(() => encodeSafetensors(tensors as Record<string, SafeTensor>));
      expect(e.message).toMatch(message);
    });
  }
  it('metadata values must be strings', () => {
    expect(errorOf(() => encodeSafetensors({}, { step: 3 } as unknown as Record<string, string>)).message).toMatch(/metadata\["step"\] must be a string, got number/);
  });
});

describe('files: atomic write, checked read', () => {
  const t = { w: { dtype: 'F32' as const, shape: [2], data: new Float32Array([1, 2]) } };

  it('writes atomically, reads back, leaves no temp file', () => {
    const f = path.join(tmp, 'a.safetensors');
    writeSafetensorsAtomic(f, t, { step: '3' });
    const { tensors, metadata } = readSafetensorsFile(f);
    expect(Array.from(tensors.w.data as Float32Array)).toEqual([1, 2]);
    expect(metadata.step).toBe('3');
    expect(fs.readdirSync(tmp).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('a failed write keeps the old file and leaves no temp file', () => {
    const f = path.join(tmp, 'keep.safetensors');
    writeSafetensorsAtomic(f, t);
    const before = fs.readFileSync(f);
    expect(() => writeSafetensorsAtomic(f, { w: { dtype: 'F32', shape: [3], data: new Float32Array(2) } })).toThrow(SafetensorsError);
    // A failure mid-write (second chunk not bytes) and a failure at rename (target is a directory):
    expect(() => writeFileAtomic(f, [new Uint8Array([1, 2]), 'oops' as unknown as Uint8Array])).toThrow(/chunk must be a Uint8Array/);
    const dir = path.join(tmp, 'is-a-dir');
    fs.mkdirSync(dir);
    expect(() => writeFileAtomic(dir, 'x')).toThrow();
    expect(fs.readFileSync(f).equals(before)).toBe(true);
    expect(fs.statSync(dir).isDirectory()).toBe(true);
    expect(fs.readdirSync(tmp).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('writeJsonAtomic writes JSON with a newline; a non-JSON value throws', () => {
    const f = path.join(tmp, 'x.json');
    writeJsonAtomic(f, { a: [1, 2] });
    expect(fs.readFileSync(f, 'utf8')).toBe('{\n  "a": [\n    1,\n    2\n  ]\n}\n');
    expect(() => writeJsonAtomic(f, undefined)).toThrow(/not JSON-serializable/);
  });

  it('readSafetensorsFile checks the header before reading data, and names the path', () => {
    const f = path.join(tmp, 'huge-header.safetensors');
    const b = craft({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8));
    new DataView(b.buffer).setBigUint64(0, 2n ** 40n, true);
    fs.writeFileSync(f, b);
    expect(errorOf(() => readSafetensorsFile(f)).message).toBe(`${f}: header length 1099511627776 bytes is above the limit of 100000000 bytes`);
    // Claims 2^40 bytes of data in a tiny file: rejected before any buffer of that size exists.
    fs.writeFileSync(f, craft({ w: { dtype: 'U8', shape: [2 ** 40], data_offsets: [0, 2 ** 40] } }, new Uint8Array(8)));
    expect(errorOf(() => readSafetensorsFile(f)).message).toMatch(/tensor "w": data_offsets \[0, 1099511627776\] run past the end of the data buffer \(8 bytes/);
    fs.writeFileSync(f, craft({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)).subarray(0, 50));
    expect(errorOf(() => readSafetensorsFile(f)).message).toMatch(/runs past the end of the file \(50 bytes; truncated\?\)/);
    expect(errorOf(() => readSafetensorsFile(path.join(tmp, 'nope.safetensors'))).message).toMatch(/nope.safetensors: cannot read: ENOENT/);
    expect(errorOf(() => readSafetensorsFile(tmp)).message).toMatch(/not a regular file/);
  });
});

describe('checkTensorsAgainst', () => {
  const got = { a: { shape: [2, 3] }, b: { shape: [4] }, extra: { shape: [1] } };
  it('passes when names and shapes match', () => {
    expect(() => checkTensorsAgainst({ a: [2, 3], b: [4], extra: [1] }, got, 'ck.safetensors')).not.toThrow();
  });
  it('names missing, extra and mismatched tensors', () => {
    const e = errorOf(() => checkTensorsAgainst({ a: [3, 2], b: [4], c: [5] }, got, 'ck.safetensors'));
    expect(e.message).toBe(
      'ck.safetensors: checkpoint does not match the model: missing 1 tensor(s) the model needs: "c" [5]; ' +
        '1 tensor(s) the model does not have: "extra" [1]; 1 shape mismatch(es): "a" is [2,3], the model needs [3,2]',
    );
    expect(e.tensor).toBeUndefined();
  });
  it('a single problem names its tensor; rank differences count', () => {
    const e = errorOf(() => checkTensorsAgainst({ a: [2, 3], b: [4, 1], extra: [1] }, got, 'ck'));
    expect(e.tensor).toBe('b');
    expect(e.message).toMatch(/^ck: tensor "b": .*"b" is \[4\], the model needs \[4,1\]/);
  });
  it('lists at most 10 names', () => {
    const expected = Object.fromEntries(Array.from({ length: 25 }, (_, i) => [`m${i}`, [1]]));
    expect(errorOf(() => checkTensorsAgainst(expected, {}, 'ck')).message).toMatch(/missing 25 tensor\(s\).*"m9" \[1\], … and 15 more$/);
  });
});
