/**
 * Seeded fuzz of the safetensors reader (a fixed number of cases; the test timeout catches a hang): mutated valid files (truncation, byte flips in header
 * and data, header-length edits, JSON edits of offsets/shapes/dtypes/keys, text edits) must either throw a
 * SafetensorsError or decode into tensors whose bytes are exactly shape × dtype size and cover the data buffer.
 * Any other exception (RangeError from a huge allocation, TypeError, …) fails the test.
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../src/rng.ts';
import { DTYPES, SafetensorsError, decodeSafetensors, encodeSafetensors, type Dtype, type SafeTensor } from '../src/io/safetensors.ts';

const BITS: Record<string, number> = { F4: 4, F6_E2M3: 6, F6_E3M2: 6, BOOL: 8, U8: 8, I8: 8, I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32, C64: 64, F64: 64, I64: 64, U64: 64 };
const bitsOf = (d: string): number => BITS[d] ?? 8; // every fp8 is 8 bits
const CASES = 10000;

/** Valid files to start from: several dtypes, empty tensors, scalars, metadata. */
function seeds(rng: Rng): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let f = 0; f < 6; f++) {
    const tensors: Record<string, SafeTensor> = {};
    const count = 1 + rng.int(5);
    for (let i = 0; i < count; i++) {
      const dtype = DTYPES[rng.int(DTYPES.length)] as Dtype;
      const rank = rng.int(3);
      const shape = Array.from({ length: rank }, () => rng.int(4) * 2); // even dims keep F4/F6 byte-aligned
      if (['F4', 'F6_E2M3', 'F6_E3M2'].includes(dtype) && shape.length === 0) shape.push(4);
      const numel = shape.reduce((a, b) => a * b, 1);
      const bytes = new Uint8Array((numel * bitsOf(dtype)) / 8);
      for (let j = 0; j < bytes.length; j++) bytes[j] = dtype === 'BOOL' ? rng.int(2) : rng.int(256);
      tensors[`layer.${i}.${dtype.toLowerCase()}`] = { dtype, shape, data: viewFor(dtype, bytes) };
    }
    out.push(encodeSafetensors(tensors, f % 2 ? { format: 'pt', step: String(f) } : undefined));
  }
  return out;
}

function viewFor(dtype: Dtype, bytes: Uint8Array): SafeTensor['data'] {
  const b = bytes.buffer;
  switch (dtype) {
    case 'F64': return new Float64Array(b);
    case 'F32': case 'C64': return new Float32Array(b);
    case 'I64': return new BigInt64Array(b);
    case 'U64': return new BigUint64Array(b);
    case 'I32': return new Int32Array(b);
    case 'U32': return new Uint32Array(b);
    case 'I16': return new Int16Array(b);
    case 'U16': case 'F16': case 'BF16': return new Uint16Array(b);
    case 'I8': return new Int8Array(b);
    default: return bytes;
  }
}

function headerOf(file: Uint8Array): { n: number; json: Record<string, unknown> } {
  const n = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  return { n, json: JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + n))) };
}

function withHeader(file: Uint8Array, headerText: string, pad: boolean): Uint8Array {
  const { n } = headerOf(file);
  const h = new TextEncoder().encode(headerText);
  const len = pad ? Math.ceil(h.length / 8) * 8 : h.length;
  const out = new Uint8Array(8 + len + file.length - 8 - n).fill(0x20, 8, 8 + len);
  new DataView(out.buffer).setBigUint64(0, BigInt(len), true);
  out.set(h, 8);
  out.set(file.subarray(8 + n), 8 + len);
  return out;
}

const WEIRD_NUMBERS: unknown[] = [-1, 0, 1, 7, 2 ** 31, 2 ** 32 + 4, 2 ** 53, 2 ** 63, 1.5, -0, 1e308, '8', null, [], {}, true];
const WEIRD_DTYPES: unknown[] = ['F32', 'BF16', 'F4', 'BOOL', 'f32', 'F128', '', 7, null, ['F32'], 'U64'];

/** One mutation of a valid file. */
function mutate(rng: Rng, file: Uint8Array): Uint8Array {
  const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)];
  const { n, json } = headerOf(file);
  const names = Object.keys(json).filter((k) => k !== '__metadata__');
  const kind = rng.int(9);
  switch (kind) {
    case 0: // truncate anywhere
      return file.slice(0, rng.int(file.length));
    case 1: { // flip bytes in the header
      const out = file.slice();
      for (let k = 1 + rng.int(3); k > 0; k--) out[8 + rng.int(n)] ^= 1 << rng.int(8);
      return out;
    }
    case 2: { // flip bytes anywhere (incl. the length prefix and data)
      const out = file.slice();
      for (let k = 1 + rng.int(4); k > 0; k--) out[rng.int(out.length)] = rng.int(256);
      return out;
    }
    case 3: { // edit the header length
      const out = file.slice();
      const v = pick([0n, 1n, BigInt(n - 1), BigInt(n + 1), BigInt(n + 8), BigInt(file.length), 2n ** 40n, 2n ** 63n, 2n ** 64n - 1n, BigInt(rng.int(1 << 20))]);
      new DataView(out.buffer).setBigUint64(0, v, true);
      return out;
    }
    case 4: { // edit a tensor's offsets / shape / dtype in the JSON
      if (names.length === 0) return file;
      const e = json[pick(names)] as Record<string, unknown>;
      const field = pick(['data_offsets', 'shape', 'dtype']);
      if (field === 'dtype') e.dtype = pick(WEIRD_DTYPES);
      else {
        const arr = Array.isArray(e[field]) ? [...(e[field] as unknown[])] : [];
        const op = rng.int(4);
        if (op === 0 && arr.length) arr[rng.int(arr.length)] = pick(WEIRD_NUMBERS);
        else if (op === 1 && arr.length) arr[rng.int(arr.length)] = (arr[rng.int(arr.length)] as number) + pick([-8, -1, 1, 4, 8]);
        else if (op === 2) arr.push(pick(WEIRD_NUMBERS));
        else arr.pop();
        e[field] = rng.int(10) === 0 ? pick(WEIRD_NUMBERS) : arr;
      }
      return withHeader(file, JSON.stringify(json), rng.int(2) === 0);
    }
    case 5: { // add, remove, rename or duplicate entries; break metadata
      const text = JSON.stringify(json);
      const op = rng.int(5);
      if (op === 0 && names.length) delete json[pick(names)];
      else if (op === 1 && names.length) json[`${pick(names)}_copy`] = { ...(json[pick(names)] as object) };
      else if (op === 2) json.__metadata__ = pick([{ a: 1 }, 'x', [], { a: 'b' }, null]);
      else if (op === 3 && names.length) return withHeader(file, `${text.slice(0, -1)},${JSON.stringify(pick(names))}:${JSON.stringify(json[pick(names)])}}`, true);
      else json[pick(names) ?? 'x'] = pick([1, 'x', [], { dtype: 'F32' }, { dtype: 'U8', shape: [0], data_offsets: [0, 0], more: 1 }]);
      return withHeader(file, JSON.stringify(json), true);
    }
    case 6: { // text edits of the header: change a digit, delete or insert a character
      let text = JSON.stringify(json);
      const at = rng.int(text.length);
      const op = rng.int(3);
      if (op === 0) text = text.replace(/\d/g, (d, i: number) => (i >= at && i < at + 3 ? String((Number(d) + 1 + rng.int(9)) % 10) : d));
      else if (op === 1) text = text.slice(0, at) + text.slice(at + 1);
      else text = text.slice(0, at) + pick(['{', '}', '[', ']', '"', ',', ':', '9', '-', '\\', '\u0000', 'é', ' ']) + text.slice(at);
      return withHeader(file, text, rng.int(2) === 0);
    }
    case 7: { // append or remove data bytes
      const extra = rng.int(3) === 0 ? -1 - rng.int(8) : 1 + rng.int(16);
      if (extra < 0) return file.slice(0, Math.max(0, file.length + extra));
      const out = new Uint8Array(file.length + extra);
      out.set(file);
      return out;
    }
    default: { // deep nesting / huge numbers in the header
      const deep = `{"x":${'['.repeat(1 + rng.int(5000))}}`;
      return withHeader(file, pick([deep, '{"x":{"dtype":"U8","shape":[1e400],"data_offsets":[0,1]}}', '{"x":1e999999}']), true);
    }
  }
}

describe('safetensors fuzz', () => {
  it(`${CASES} mutated files: a SafetensorsError or a consistent decode, never a crash`, () => {
    const rng = new Rng(20240611);
    const bases = seeds(rng);
    for (const b of bases) expect(() => decodeSafetensors(b)).not.toThrow();
    let cases = 0;
    let decoded = 0;
    const problems = new Map<string, number>();
    for (; cases < CASES; cases++) {
      const input = mutate(rng, bases[rng.int(bases.length)]);
      let result;
      try {
        result = decodeSafetensors(input, { file: 'fuzz.safetensors' });
      } catch (e) {
        if (!(e instanceof SafetensorsError)) {
          throw new Error(`case ${cases}: ${String(e)} is not a SafetensorsError; input (base64): ${Buffer.from(input).toString('base64').slice(0, 2000)}`);
        }
        expect(e.message.startsWith('fuzz.safetensors: ')).toBe(true);
        const key = e.problem.replace(/[\d"[\]].*$/, '').slice(0, 30);
        problems.set(key, (problems.get(key) ?? 0) + 1);
        continue;
      }
      decoded++;
      // A successful decode must be self-consistent: sizes from shapes, exact coverage of the data buffer.
      const n = Number(new DataView(input.buffer, input.byteOffset).getBigUint64(0, true));
      let total = 0;
      for (const [name, t] of Object.entries(result.tensors)) {
        const numel = t.shape.reduce((a, b) => a * b, 1);
        const want = (numel * bitsOf(t.dtype)) / 8;
        if (t.data.byteLength !== want) throw new Error(`case ${cases}: tensor ${name} has ${t.data.byteLength} bytes, shape says ${want}`);
        total += want;
      }
      expect(total).toBe(input.length - 8 - n);
    }
    // Both outcomes happened (the mutations are neither all fatal nor all harmless).
    expect(decoded).toBeGreaterThan(cases * 0.05);
    expect(cases - decoded).toBeGreaterThan(cases * 0.3);
    expect(problems.size).toBeGreaterThan(10);
    console.log(`safetensors fuzz: ${cases} cases, ${decoded} decoded, ${cases - decoded} rejected in ${problems.size} kinds`);
  });

  it('hostile lengths are rejected without allocating them', () => {
    const base = encodeSafetensors({ w: { dtype: 'F32', shape: [1], data: new Float32Array([1]) } });
    for (const v of [2n ** 40n, 2n ** 63n, 2n ** 64n - 1n]) {
      const b = base.slice();
      new DataView(b.buffer).setBigUint64(0, v, true);
      // the work bound: refused from the 8-byte prefix, before any buffer of that length exists
      const buffers = process.memoryUsage().arrayBuffers;
      expect(() => decodeSafetensors(b)).toThrow(/above the limit/);
      expect(process.memoryUsage().arrayBuffers - buffers).toBeLessThan(1 << 20);
    }
    const before = process.memoryUsage().arrayBuffers;
    const huge = new TextEncoder().encode(`{"w":{"dtype":"F64","shape":[${2 ** 47}],"data_offsets":[0,${2 ** 50}]}}`);
    const file = new Uint8Array(8 + huge.length + 8);
    new DataView(file.buffer).setBigUint64(0, BigInt(huge.length), true);
    file.set(huge, 8);
    expect(() => decodeSafetensors(file)).toThrow(/run past the end of the data buffer \(8 bytes/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(1 << 20);
  });
});
