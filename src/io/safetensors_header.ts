/**
 * Validation of a safetensors header (spec: github.com/huggingface/safetensors, "Format"): an 8-byte
 * little-endian length N, N bytes of UTF-8 JSON starting with '{' (trailing spaces allowed), then a data
 * buffer that the tensors' [begin, end) offsets must cover exactly: no overlap, no hole, nothing past the end.
 * Everything is checked before any buffer is sized from the file's numbers.
 */
import { DTYPES, dtypeBits, isDtype, type Dtype } from './safetensors_dtypes.ts';
import { clip, parseJsonStrict, StrictJsonError } from './strict_json.ts';

/** The header-size limit of the reference implementation (Rust `MAX_HEADER_SIZE`). */
export const DEFAULT_MAX_HEADER_BYTES = 100_000_000;

/** Any problem with a safetensors file: names the file, the tensor (when there is one) and the problem. */
export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    readonly tensor: string | undefined,
    readonly problem: string,
  ) {
    super(tensor === undefined ? `${file}: ${problem}` : `${file}: tensor ${JSON.stringify(clip(tensor))}: ${problem}`);
    this.name = 'SafetensorsError';
  }
}

/** One tensor's header entry; begin/end are byte offsets into the data buffer (after the header). */
export interface TensorEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  begin: number;
  end: number;
}

export interface ParsedHeader {
  /** Tensors sorted by offset (the order of their bytes in the data buffer). */
  entries: TensorEntry[];
  metadata: Record<string, string>;
}

/** Header length N from the first 8 bytes; requires N ≤ maxHeaderBytes and 8 + N ≤ fileBytes. */
export function readHeaderLength(prefix: Uint8Array, fileBytes: number, file: string, maxHeaderBytes = DEFAULT_MAX_HEADER_BYTES): number {
  if (!Number.isSafeInteger(maxHeaderBytes) || maxHeaderBytes < 2) throw new Error(`maxHeaderBytes must be an integer ≥ 2, got ${maxHeaderBytes}`);
  if (fileBytes < 8 || prefix.byteLength < 8) {
    throw new SafetensorsError(file, undefined, `file is ${fileBytes} bytes, too short for the 8-byte header length`);
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(maxHeaderBytes)) {
    throw new SafetensorsError(file, undefined, `header length ${n} bytes is above the limit of ${maxHeaderBytes} bytes`);
  }
  if (n + 8n > BigInt(fileBytes)) {
    throw new SafetensorsError(file, undefined, `header length ${n} bytes runs past the end of the file (${fileBytes} bytes; truncated?)`);
  }
  return Number(n);
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Parses and validates the header bytes for a data buffer of dataBytes bytes. */
export function parseHeader(headerBytes: Uint8Array, dataBytes: number, file: string): ParsedHeader {
  const fail = (problem: string, tensor?: string): never => {
    throw new SafetensorsError(file, tensor, problem);
  };
  if (headerBytes.byteLength === 0 || headerBytes[0] !== 0x7b) fail(`header must start with '{' (spec), got ${headerBytes.byteLength === 0 ? 'an empty header' : `byte 0x${headerBytes[0].toString(16)}`}`);
  let text = '';
  try {
    text = utf8.decode(headerBytes);
  } catch {
    fail('header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = parseJsonStrict(text, 8);
  } catch (e) {
    if (!(e instanceof StrictJsonError)) throw e;
    fail(`header is not valid JSON: ${e.message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('header JSON is not an object');
  const top = json as Record<string, unknown>;

  let metadata = Object.create(null) as Record<string, string>;
  const entries: TensorEntry[] = [];
  for (const name of Object.keys(top)) {
    if (name === '__metadata__') metadata = checkMetadata(top[name], fail);
    else entries.push(checkEntry(name, top[name], fail));
  }

  // Byte order of the data buffer; ties (empty tensors) by name so errors are deterministic.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (e.end > dataBytes) fail(`data_offsets [${e.begin}, ${e.end}] run past the end of the data buffer (${dataBytes} bytes; truncated?)`, e.name);
  }
  let covered = 0;
  let prev: TensorEntry | undefined;
  for (const e of entries) {
    if (e.begin < covered) fail(`data_offsets [${e.begin}, ${e.end}] overlap tensor ${JSON.stringify(clip(prev!.name))} [${prev!.begin}, ${prev!.end}]`, e.name);
    if (e.begin > covered) fail(`hole of ${e.begin - covered} bytes before data_offsets [${e.begin}, ${e.end}] (the spec forbids holes)`, e.name);
    covered = e.end;
    prev = e;
  }
  if (covered !== dataBytes) fail(`data buffer has ${dataBytes} bytes but the tensors cover only ${covered} (${dataBytes - covered} trailing bytes; the spec forbids holes)`);
  return { entries, metadata };
}

/** Byte size of a tensor = Π shape · bits(dtype) / 8; throws if it is not a whole, safe number of bytes. */
export function tensorByteSize(dtype: Dtype, shape: readonly number[], fail: (problem: string) => never): number {
  if (shape.includes(0)) return 0; // empty tensors are allowed and store no bytes
  let numel = 1;
  for (const d of shape) numel *= d;
  // Each factor is a safe integer, so the float product is exact until it passes 2^53.
  if (!(numel <= Number.MAX_SAFE_INTEGER / 8)) fail(`shape [${shape}] has ${numel} elements, more than any file can hold`);
  const bits = numel * dtypeBits(dtype);
  if (bits % 8 !== 0) fail(`shape [${shape}] of ${dtype} is ${bits} bits, not a whole number of bytes`);
  return bits / 8;
}

function checkEntry(name: string, v: unknown, fail: (problem: string, tensor?: string) => never): TensorEntry {
  const bad = (problem: string): never => fail(problem, name);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(`entry is not an object ({"dtype", "shape", "data_offsets"})`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (k !== 'dtype' && k !== 'shape' && k !== 'data_offsets') bad(`unknown field ${JSON.stringify(clip(k))} (allowed: dtype, shape, data_offsets)`);
  }
  if (!('dtype' in o) || !('shape' in o) || !('data_offsets' in o)) bad('entry needs dtype, shape and data_offsets');
  if (!isDtype(o.dtype)) bad(`unknown dtype ${clip(JSON.stringify(o.dtype) ?? String(o.dtype))} (known: ${DTYPES.join(', ')})`);
  const dtype = o.dtype as Dtype;
  const shape = checkIntArray(o.shape, 'shape', bad);
  const offs = checkIntArray(o.data_offsets, 'data_offsets', bad);
  if (offs.length !== 2) bad(`data_offsets must be [begin, end], got ${offs.length} numbers`);
  const [begin, end] = offs;
  if (end < begin) bad(`data_offsets [${begin}, ${end}] end before they begin`);
  const bytes = tensorByteSize(dtype, shape, bad);
  if (end - begin !== bytes) bad(`shape [${shape}] of ${dtype} needs ${bytes} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`);
  return { name, dtype, shape, begin, end };
}

function checkIntArray(v: unknown, field: string, bad: (problem: string) => never): number[] {
  if (!Array.isArray(v)) return bad(`${field} must be an array of non-negative integers, got ${clip(JSON.stringify(v) ?? String(v))}`);
  for (const x of v) {
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) {
      bad(`${field} must hold non-negative integers below 2^53, got ${clip(JSON.stringify(x) ?? String(x))}`);
    }
  }
  return v as number[];
}

function checkMetadata(v: unknown, fail: (problem: string) => never): Record<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('__metadata__ must be an object of string → string');
  const out = Object.create(null) as Record<string, string>;
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (typeof x !== 'string') fail(`__metadata__[${JSON.stringify(clip(k))}] must be a string, got ${clip(JSON.stringify(x) ?? String(x))}`);
    out[k] = x as string;
  }
  return out;
}
