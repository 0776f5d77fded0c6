/**
 * safetensors dtypes: their bit widths, the writer's ordering, the JS typed array each one decodes into,
 * and float16/bfloat16 ↔ float32 conversion (JS has no 16-bit float array on Node 20).
 */

/** Every dtype of the safetensors spec, in the Rust crate's enum order (increasing alignment). */
export const DTYPES = [
  'BOOL', 'F4', 'F6_E2M3', 'F6_E3M2', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'F8_E4M3FNUZ',
  'F8_E5M2FNUZ', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'C64', 'F64', 'I64', 'U64',
] as const;

export type Dtype = (typeof DTYPES)[number];

/** The typed array a dtype's data lives in; 16-bit floats and fp8/fp6/fp4 keep their raw bits. */
export type TensorData =
  | Float64Array | Float32Array | Int32Array | Uint32Array | Int16Array | Uint16Array
  | Int8Array | Uint8Array | BigInt64Array | BigUint64Array;

/** Bits per element (F4 is 4, F6_* are 6; the rest are whole bytes). */
export function dtypeBits(d: Dtype): number {
  switch (d) {
    case 'F4': return 4;
    case 'F6_E2M3': case 'F6_E3M2': return 6;
    case 'BOOL': case 'U8': case 'I8': case 'F8_E5M2': case 'F8_E4M3': case 'F8_E8M0':
    case 'F8_E4M3FNUZ': case 'F8_E5M2FNUZ': return 8;
    case 'I16': case 'U16': case 'F16': case 'BF16': return 16;
    case 'I32': case 'U32': case 'F32': return 32;
    case 'C64': case 'F64': case 'I64': case 'U64': return 64;
  }
}

/** Position in the spec's enum; the writer lays tensors out by descending rank, then by name. */
export function dtypeRank(d: Dtype): number {
  return DTYPES.indexOf(d);
}

/** True for a dtype name of the spec (case-sensitive, as the reference reader). */
export function isDtype(x: unknown): x is Dtype {
  return typeof x === 'string' && (DTYPES as readonly string[]).includes(x);
}

/** Name of the typed array that holds a dtype's data (C64 is interleaved re, im float32 pairs). */
export function arrayKindFor(d: Dtype): string {
  switch (d) {
    case 'F64': return 'Float64Array';
    case 'F32': case 'C64': return 'Float32Array';
    case 'I64': return 'BigInt64Array';
    case 'U64': return 'BigUint64Array';
    case 'I32': return 'Int32Array';
    case 'U32': return 'Uint32Array';
    case 'I16': return 'Int16Array';
    case 'U16': case 'F16': case 'BF16': return 'Uint16Array';
    case 'I8': return 'Int8Array';
    default: return 'Uint8Array'; // BOOL, U8, fp8, fp6, fp4: bytes as stored
  }
}

/** Wraps an exclusively owned, 8-byte-aligned buffer as the typed array for the dtype. */
export function viewAs(d: Dtype, buf: ArrayBuffer): TensorData {
  switch (arrayKindFor(d)) {
    case 'Float64Array': return new Float64Array(buf);
    case 'Float32Array': return new Float32Array(buf);
    case 'BigInt64Array': return new BigInt64Array(buf);
    case 'BigUint64Array': return new BigUint64Array(buf);
    case 'Int32Array': return new Int32Array(buf);
    case 'Uint32Array': return new Uint32Array(buf);
    case 'Int16Array': return new Int16Array(buf);
    case 'Uint16Array': return new Uint16Array(buf);
    case 'Int8Array': return new Int8Array(buf);
    default: return new Uint8Array(buf);
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** bf16 bits → float32: the bf16 bits are the float32's high 16 bits (exact). */
export function bf16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) outBits[i] = bits[i] << 16;
  return out;
}

/** float32 → bf16 bits, round to nearest even; NaN stays a quiet NaN. */
export function float32ToBf16(x: Float32Array): Uint16Array {
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) {
    f32[0] = x[i];
    const b = u32[0];
    if (Number.isNaN(x[i])) out[i] = ((b >>> 16) & 0x8000) | 0x7fc0;
    else out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** IEEE binary16 bits → float32 (exact): (-1)^s · 2^(e-15) · (1 + m/1024), subnormals 2^-14 · m/1024. */
export function f16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i];
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) out[i] = s * m * 2 ** -24;
    else if (e === 31) out[i] = m === 0 ? s * Infinity : NaN;
    else out[i] = s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return out;
}

/** float32 → IEEE binary16 bits, round to nearest even; overflow → ±Inf, underflow → subnormal/±0. */
export function float32ToF16(x: Float32Array): Uint16Array {
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
    const a = Math.abs(v);
    if (Number.isNaN(v)) out[i] = 0x7e00;
    else if (a >= 65520) out[i] = sign | 0x7c00; // 65520 rounds up past the largest half, 65504
    else if (a < 2 ** -14) out[i] = sign | roundEven(a * 2 ** 24); // subnormal: units of 2^-24 (may round to 2^-14)
    else {
      const e = Math.floor(Math.log2(a));
      const exp = a >= 2 ** (e + 1) ? e + 1 : a < 2 ** e ? e - 1 : e; // guard log2 rounding
      const mant = roundEven((a / 2 ** exp - 1) * 1024); // may carry into the exponent: bits add up right
      out[i] = sign | (((exp + 15) << 10) + mant);
    }
  }
  return out;
}

function roundEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
