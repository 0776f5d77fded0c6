/**
 * safetensors reader/writer (no maintained JS package exists). The writer follows the reference Rust
 * crate byte for byte: tensors ordered by descending dtype alignment then name, header
 * `{"__metadata__":{..},"name":{"dtype":..,"shape":[..],"data_offsets":[b,e]},..}` padded with spaces to
 * a multiple of 8 bytes. The reader checks everything (see safetensors_header.ts) and copies each tensor
 * into its own aligned typed array. Host must be little-endian, like the format.
 */
import * as fs from 'node:fs';
import { writeFileAtomic } from './atomic.ts';
import { arrayKindFor, dtypeRank, isDtype, viewAs, type Dtype, type TensorData } from './safetensors_dtypes.ts';
import {
  DEFAULT_MAX_HEADER_BYTES, SafetensorsError, parseHeader, readHeaderLength, tensorByteSize, type TensorEntry,
} from './safetensors_header.ts';
import { clip } from './strict_json.ts';

export { SafetensorsError, DEFAULT_MAX_HEADER_BYTES } from './safetensors_header.ts';
export { DTYPES, bf16ToFloat32, f16ToFloat32, float32ToBf16, float32ToF16, type Dtype, type TensorData } from './safetensors_dtypes.ts';

/** A tensor as stored: dtype, row-major shape, and its elements in the dtype's typed array (see arrayKindFor). */
export interface SafeTensor {
  dtype: Dtype;
  shape: number[];
  data: TensorData;
}

export interface DecodeOptions {
  /** Name used in error messages (default '<bytes>' or the path). */
  file?: string;
  /** Largest accepted header, bytes (default 100 MB, as the reference reader). */
  maxHeaderBytes?: number;
}

export interface Decoded {
  /** Tensors by name (null-prototype object, in data-buffer order). */
  tensors: Record<string, SafeTensor>;
  metadata: Record<string, string>;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function requireLittleEndian(file: string): void {
  if (!LITTLE_ENDIAN) throw new SafetensorsError(file, undefined, 'big-endian hosts are not supported (safetensors is little-endian)');
}

/** Serialises tensors to safetensors bytes: 8-byte LE N ‖ header (N bytes, N % 8 = 0) ‖ data. */
export function encodeSafetensors(tensors: Record<string, SafeTensor>, metadata?: Record<string, string>): Uint8Array {
  const chunks = encodeChunks(tensors, metadata, '<encode>');
  const total = chunks.reduce((s, c) => s + c.byteLength, 0);
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

/** Parses and validates safetensors bytes; each tensor's data is copied into a fresh aligned typed array. */
export function decodeSafetensors(bytes: Uint8Array, opts: DecodeOptions = {}): Decoded {
  const file = opts.file ?? '<bytes>';
  requireLittleEndian(file);
  if (!(bytes instanceof Uint8Array)) throw new Error(`decodeSafetensors: bytes must be a Uint8Array, got ${Object.prototype.toString.call(bytes)}`);
  const n = readHeaderLength(bytes, bytes.byteLength, file, opts.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES);
  const dataStart = 8 + n;
  const { entries, metadata } = parseHeader(bytes.subarray(8, dataStart), bytes.byteLength - dataStart, file);
  const tensors = Object.create(null) as Record<string, SafeTensor>;
  for (const e of entries) {
    const buf = allocate(e, file); // size checked against the file by parseHeader
    new Uint8Array(buf).set(bytes.subarray(dataStart + e.begin, dataStart + e.end));
    tensors[e.name] = materialize(e, buf, file);
  }
  return { tensors, metadata };
}

/** Reads a safetensors file: size and header are checked before any tensor bytes are read. */
export function readSafetensorsFile(path: string, opts: Omit<DecodeOptions, 'file'> = {}): Decoded {
  requireLittleEndian(path);
  let fd: number | undefined;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0)); // a FIFO must not block the open
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new SafetensorsError(path, undefined, 'not a regular file');
    const size = st.size;
    const prefix = new Uint8Array(8);
    readExactly(fd, prefix, 0, path);
    const n = readHeaderLength(prefix, size, path, opts.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES);
    const header = new Uint8Array(n); // n ≤ maxHeaderBytes and ≤ file size
    readExactly(fd, header, 8, path);
    const { entries, metadata } = parseHeader(header, size - 8 - n, path);
    const tensors = Object.create(null) as Record<string, SafeTensor>;
    for (const e of entries) {
      const buf = allocate(e, path); // offsets cover exactly the file's data bytes
      readExactly(fd, new Uint8Array(buf), 8 + n + e.begin, path);
      tensors[e.name] = materialize(e, buf, path);
    }
    return { tensors, metadata };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code !== 'string') throw err; // ours (SafetensorsError) or a bug: pass through
    throw new SafetensorsError(path, undefined, `cannot read: ${code} (${(err as Error).message})`);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Encodes and writes atomically (temp file in the same directory + fsync + rename). */
export function writeSafetensorsAtomic(path: string, tensors: Record<string, SafeTensor>, metadata?: Record<string, string>): void {
  writeFileAtomic(path, encodeChunks(tensors, metadata, path));
}

/** Throws a SafetensorsError listing tensors the model needs but the file lacks, extra ones, and shape mismatches. */
export function checkTensorsAgainst(
  expected: Record<string, readonly number[]>,
  got: Record<string, { shape: readonly number[] }>,
  file: string,
): void {
  const has = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);
  const missing = Object.keys(expected).filter((n) => !has(got, n));
  const mismatched = Object.keys(expected).filter((n) => has(got, n) && !sameShape(got[n].shape, expected[n]));
  const extra = Object.keys(got).filter((n) => !has(expected, n));
  const count = missing.length + mismatched.length + extra.length;
  if (count === 0) return;
  const parts: string[] = [];
  if (missing.length) parts.push(`missing ${missing.length} tensor(s) the model needs: ${listSome(missing.map((n) => `${q(n)} [${expected[n]}]`))}`);
  if (extra.length) parts.push(`${extra.length} tensor(s) the model does not have: ${listSome(extra.map((n) => `${q(n)} [${got[n].shape}]`))}`);
  if (mismatched.length) {
    parts.push(`${mismatched.length} shape mismatch(es): ${listSome(mismatched.map((n) => `${q(n)} is [${got[n].shape}], the model needs [${expected[n]}]`))}`);
  }
  const tensor = count === 1 ? [...missing, ...mismatched, ...extra][0] : undefined;
  throw new SafetensorsError(file, tensor, `checkpoint does not match the model: ${parts.join('; ')}`);
}

function q(name: string): string {
  return JSON.stringify(clip(name));
}

function listSome(items: string[], max = 10): string {
  return items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')}, … and ${items.length - max} more`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Wraps a tensor's exclusively owned bytes as its typed array; BOOL bytes must be 0 or 1. */
function materialize(e: TensorEntry, buf: ArrayBuffer, file: string): SafeTensor {
  const data = viewAs(e.dtype, buf);
  if (e.dtype === 'BOOL') {
    const bad = (data as Uint8Array).findIndex((b) => b > 1);
    if (bad >= 0) throw new SafetensorsError(file, e.name, `BOOL element ${bad} is ${(data as Uint8Array)[bad]}, not 0 or 1`);
  }
  return { dtype: e.dtype, shape: e.shape.slice(), data };
}

/** A tensor's buffer; a size the engine cannot allocate (checked, but too big for this process) is a clean error. */
function allocate(e: TensorEntry, file: string): ArrayBuffer {
  try {
    return new ArrayBuffer(e.end - e.begin);
  } catch {
    throw new SafetensorsError(file, e.name, `cannot allocate ${e.end - e.begin} bytes for it in this process`);
  }
}

function readExactly(fd: number, into: Uint8Array, position: number, file: string): void {
  let off = 0;
  while (off < into.byteLength) {
    const got = fs.readSync(fd, into, off, into.byteLength - off, position + off);
    if (got === 0) throw new SafetensorsError(file, undefined, `file ended at byte ${position + off} while reading (changed while being read?)`);
    off += got;
  }
}

/** The reference writer's layout as chunks: [length ‖ header, tensor bytes...], no data copies. */
function encodeChunks(tensors: Record<string, SafeTensor>, metadata: Record<string, string> | undefined, file: string): Uint8Array[] {
  requireLittleEndian(file);
  if (typeof tensors !== 'object' || tensors === null) throw new SafetensorsError(file, undefined, `tensors must be an object of name → tensor, got ${String(tensors)}`);
  const names = Object.keys(tensors);
  const bytes = new Map<string, Uint8Array>();
  for (const name of names) bytes.set(name, checkTensorForWrite(name, tensors[name], file));
  const utf8 = new TextEncoder();
  const byUtf8 = (a: string, b: string): number => Buffer.compare(utf8.encode(a), utf8.encode(b)); // Rust orders Strings by bytes
  names.sort((a, b) => dtypeRank(tensors[b].dtype) - dtypeRank(tensors[a].dtype) || byUtf8(a, b));

  const parts: string[] = [];
  if (metadata !== undefined) {
    if (typeof metadata !== 'object' || metadata === null) throw new SafetensorsError(file, undefined, `metadata must be an object of string → string, got ${String(metadata)}`);
    const keys = Object.keys(metadata).sort(byUtf8);
    for (const k of keys) {
      if (typeof metadata[k] !== 'string') throw new SafetensorsError(file, undefined, `metadata[${q(k)}] must be a string, got ${typeof metadata[k]}`);
    }
    parts.push(`"__metadata__":{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}}`);
  }
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    const end = offset + bytes.get(name)!.byteLength;
    parts.push(`${JSON.stringify(name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  const json = utf8.encode(`{${parts.join(',')}}`);
  const n = Math.ceil(json.byteLength / 8) * 8; // spaces pad the header so the data starts 8-byte aligned
  if (n > DEFAULT_MAX_HEADER_BYTES) throw new SafetensorsError(file, undefined, `header would be ${n} bytes, above the ${DEFAULT_MAX_HEADER_BYTES}-byte limit readers accept`);
  const head = new Uint8Array(8 + n).fill(0x20, 8 + json.byteLength);
  new DataView(head.buffer).setBigUint64(0, BigInt(n), true);
  head.set(json, 8);
  return [head, ...names.map((name) => bytes.get(name)!)];
}

/** Entry checks for the writer: known dtype, valid shape, typed array of the dtype's kind with matching length. */
function checkTensorForWrite(name: string, t: SafeTensor, file: string): Uint8Array {
  const bad = (problem: string): never => {
    throw new SafetensorsError(file, name, problem);
  };
  if (name === '__metadata__') bad('"__metadata__" is reserved by the format');
  if (typeof t !== 'object' || t === null) bad(`must be {dtype, shape, data}, got ${String(t)}`);
  if (!isDtype(t.dtype)) bad(`unknown dtype ${String(t.dtype)}`);
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) bad(`shape must be non-negative integers, got ${JSON.stringify(t.shape)}`);
  const size = tensorByteSize(t.dtype, t.shape, bad);
  const kind = arrayKindFor(t.dtype);
  const actual = Object.prototype.toString.call(t.data).slice(8, -1);
  if (actual !== kind) bad(`${t.dtype} data must be a ${kind}, got ${actual}`);
  if (t.data.byteLength !== size) bad(`shape [${t.shape}] of ${t.dtype} needs ${size} bytes, data has ${t.data.byteLength}`);
  const view = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (t.dtype === 'BOOL' && view.some((b) => b > 1)) bad('BOOL data must hold only 0 and 1');
  return view;
}
