/**
 * Bounds on every size that comes from a config, a flag or a file and drives an allocation or a loop.
 * A value is checked against its bound before anything is allocated; the error names the field, the value
 * and the bound. The bounds are far above what a CPU/WebGPU run or a cluster plan needs, and far below
 * what aborts Node (a wasm heap is at most 4 GiB; a JS array of 2^31 entries cannot exist).
 */

/** Logical experts in a model, a load trace or a plan (DeepSeek-V3 routes 256, Kimi K2 384). */
export const MAX_EXPERTS = 16_384;
/** Layers of a model or rows of a load matrix. */
export const MAX_LAYERS = 4_096;
/** GPUs (expert-parallel ranks) of a plan or a simulated cluster. */
export const MAX_GPUS = 65_536;
/** Cells of a [layers][experts or slots] matrix read or built by plan, simulate and report. */
export const MAX_MATRIX_CELLS = 1 << 24;
/** Physical expert slots per layer (experts plus replicas). */
export const MAX_SLOTS = 65_536;
/** Bytes of a load or placement file read whole as one JSON document. */
export const MAX_JSON_BYTES = 256 * 1024 ** 2;
/** Nodes of a cluster. */
export const MAX_NODES = 16_384;
/** top-k of a router. */
export const MAX_TOP_K = 1_024;
/** Ranks in a metrics record's expert-parallel timings (each rank is a worker thread). */
export const MAX_EP_RANKS = 1_024;
/** Bytes of training memory a config may need (weights, gradients, AdamW moments, activations): the wasm heap. */
export const MAX_TRAIN_BYTES = 4 * 1024 ** 3;

/** Throws `${field} = ${value}: …` unless value is an integer in [min, max]. */
export function checkSize(field: string, value: unknown, max: number, min = 1): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const shown = typeof value === 'number' ? String(value) : JSON.stringify(value) ?? String(value);
    const why = typeof value === 'number' && Number.isInteger(value) && value > max ? `above the bound ${max}` : 'not allowed';
    throw new Error(`${field} = ${shown.slice(0, 40)}: ${why}; allowed: an integer in ${min}..${max}`);
  }
  return value;
}

/** Bytes as a short human figure, e.g. "6.5 GiB". */
export function showBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toPrecision(3)} ${units[i]}`;
}
