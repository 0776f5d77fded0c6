/**
 * Three row kernels that carry the whole token-choice data path without atomics or segment sums:
 *
 *   SwitchyardGatherRows  out[n, :]  = scale[n] · x[rows[n], :]          (rows[n] < 0 → zero row)
 *   SwitchyardSumRows     out[t, :]  = Σ_s w[t, s] · ys[slots[t, s], :]  (slots[t, s] < 0 → skipped)
 *   SwitchyardRowDot      out[t, s]  = ⟨a[t, :], b[slots[t, s], :]⟩      (slots[t, s] < 0 → 0)
 *
 * Permute is a gather, unpermute (combine) a k-term sum per token through the inverse map `slots`,
 * so every output row is written by one thread group (no scatter-add). This file holds the host
 * implementations (cpu and wasm, on typed arrays / the wasm heap); src/kernels/webgpu_rows.ts
 * holds the WGSL ones. Kernels are forward-only; src/moe/dispatch/permute.ts composes them with gradients.
 */
import * as tf from '@tensorflow/tfjs';
import type { WasmBackendLike } from './wasm_fast.ts';

export const GATHER_ROWS = 'SwitchyardGatherRows';
export const SUM_ROWS = 'SwitchyardSumRows';
export const ROW_DOT = 'SwitchyardRowDot';

type Arr = Float32Array | Int32Array | Uint8Array;
type KernelArgs = { inputs: Record<string, tf.TensorInfo>; backend: unknown; attrs?: Record<string, unknown> };

/** Reads inputs and allocates outputs on a host backend; on wasm, outputs first (heap growth detaches views). */
interface HostIO {
  alloc(shape: number[]): { info: tf.TensorInfo; view: () => Float32Array };
  read(t: tf.TensorInfo): Arr;
}

function hostIO(backend: unknown, name: 'cpu' | 'wasm'): HostIO {
  if (name === 'wasm') {
    const w = backend as WasmBackendLike;
    return {
      alloc: (shape) => { const info = w.makeOutput(shape, 'float32'); return { info, view: () => w.typedArrayFromHeap(info) as Float32Array }; },
      read: (t) => w.typedArrayFromHeap(t),
    };
  }
  const c = backend as { data: { get(id: unknown): { values: Arr } }; makeTensorInfo(s: number[], d: tf.DataType, v: Arr): tf.TensorInfo };
  return {
    alloc: (shape) => {
      const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
      return { info: c.makeTensorInfo(shape, 'float32', values), view: () => values };
    },
    read: (t) => c.data.get(t.dataId).values,
  };
}

/** out[n] = scale[n] · x[rows[n]] (zero row where rows[n] < 0). */
export function gatherRowsHost(x: Arr, rows: Arr, scale: Arr, R: number, D: number, out: Float32Array): void {
  for (let n = 0; n < rows.length; n++) {
    const r = rows[n];
    const o = n * D;
    if (r < 0) { out.fill(0, o, o + D); continue; }
    if (r >= R) throw new Error(`${GATHER_ROWS}: row ${r} at position ${n} is outside 0..${R - 1}`);
    const s = scale[n];
    const i = r * D;
    if (s === 1) out.set(x.subarray(i, i + D), o);
    else for (let d = 0; d < D; d++) out[o + d] = s * x[i + d];
  }
}

/** out[t] = Σ_s w[t, s] · ys[slots[t, s]]. */
export function sumRowsHost(ys: Arr, slots: Arr, w: Arr, N: number, T: number, S: number, D: number, out: Float32Array): void {
  out.fill(0);
  for (let t = 0; t < T; t++) {
    const o = t * D;
    for (let s = 0; s < S; s++) {
      const r = slots[t * S + s];
      if (r < 0) continue;
      if (r >= N) throw new Error(`${SUM_ROWS}: slot row ${r} of token ${t} is outside 0..${N - 1}`);
      const ws = w[t * S + s];
      const i = r * D;
      for (let d = 0; d < D; d++) out[o + d] += ws * ys[i + d];
    }
  }
}

/** out[t, s] = ⟨a[t], b[slots[t, s]]⟩. */
export function rowDotHost(a: Arr, b: Arr, slots: Arr, N: number, T: number, S: number, D: number, out: Float32Array): void {
  for (let t = 0; t < T; t++) {
    for (let s = 0; s < S; s++) {
      const r = slots[t * S + s];
      if (r < 0) { out[t * S + s] = 0; continue; }
      if (r >= N) throw new Error(`${ROW_DOT}: slot row ${r} of token ${t} is outside 0..${N - 1}`);
      let acc = 0;
      for (let d = 0; d < D; d++) acc += a[t * D + d] * b[r * D + d];
      out[t * S + s] = acc;
    }
  }
}

/** Checks the shapes every backend's implementation relies on; returns [rows, width]. */
export function checkRowArgs(kernel: string, x: tf.TensorInfo, index: tf.TensorInfo, other?: tf.TensorInfo): [number, number] {
  if (x.shape.length !== 2) throw new Error(`${kernel}: data must be rank 2, got shape [${x.shape}]`);
  if (index.dtype !== 'int32') throw new Error(`${kernel}: index must be int32, got ${index.dtype}`);
  if (other && other.shape.reduce((a, b) => a * b, 1) !== index.shape.reduce((a, b) => a * b, 1)) {
    throw new Error(`${kernel}: weights of shape [${other.shape}] do not match index of shape [${index.shape}]`);
  }
  return [x.shape[0], x.shape[1]];
}

function registerHost(name: 'cpu' | 'wasm'): void {
  const reg = (kernelName: string, fn: (a: KernelArgs, io: HostIO) => tf.TensorInfo) => {
    if (tf.getKernel(kernelName, name)) return;
    tf.registerKernel({ kernelName, backendName: name, kernelFunc: ((a: KernelArgs) => fn(a, hostIO(a.backend, name))) as unknown as tf.KernelFunc });
  };
  reg(GATHER_ROWS, ({ inputs: { x, rows, scale } }, io) => {
    const [R, D] = checkRowArgs(GATHER_ROWS, x, rows, scale);
    const N = rows.shape[0];
    const out = io.alloc([N, D]);
    gatherRowsHost(io.read(x), io.read(rows), io.read(scale), R, D, out.view());
    return out.info;
  });
  reg(SUM_ROWS, ({ inputs: { ys, slots, w } }, io) => {
    const [N, D] = checkRowArgs(SUM_ROWS, ys, slots, w);
    const [T, S] = slots.shape;
    const out = io.alloc([T, D]);
    sumRowsHost(io.read(ys), io.read(slots), io.read(w), N, T, S, D, out.view());
    return out.info;
  });
  reg(ROW_DOT, ({ inputs: { a, b, slots } }, io) => {
    const [N, D] = checkRowArgs(ROW_DOT, b, slots);
    const [T, S] = slots.shape;
    if (a.shape[0] !== T || a.shape[1] !== D) throw new Error(`${ROW_DOT}: a must be [${T}, ${D}], got [${a.shape}]`);
    const out = io.alloc([T, S]);
    rowDotHost(io.read(a), io.read(b), io.read(slots), N, T, S, D, out.view());
    return out.info;
  });
}

registerHost('cpu');
registerHost('wasm');
