/**
 * Fast row kernels for the tfjs wasm backend, registered from TypeScript and working on the wasm heap.
 * tfjs-backend-wasm 4.22 lacks UnsortedSegmentSum, runs GatherV2 element by element (≈150 ms for
 * 8192 rows of 512), and its Slice reads the *whole* input into a fresh JS copy before taking a
 * contiguous block — so unstack / split of a [8, 512, 2048] weight cost ≈ 8 full copies. These
 * kernels copy rows with typed-array views instead. Registered once on import (idempotent).
 */
import * as tf from '@tensorflow/tfjs';
import { makeBatchMatMulKernel } from './wasm_batch_matmul.ts';

/** The slice of BackendWasm we use: heap views and heap-allocated outputs. */
export interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

type KernelArgs = { inputs: Record<string, tf.TensorInfo>; backend: unknown; attrs?: Record<string, unknown> };

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** out[n, :] = x[index[n], :] on flat row views (rows of width `width`); an index outside 0..rows-1 throws. */
export function copyRows(x: ArrayLike<number> & { subarray(a: number, b: number): ArrayLike<number> }, index: ArrayLike<number>, width: number, rows: number, out: { set(a: ArrayLike<number>, o: number): void }): void {
  for (let n = 0; n < index.length; n++) {
    const r = index[n];
    if (!(r >= 0 && r < rows)) throw new Error(`GatherV2: the index value ${r} is not in [0, ${rows - 1}]`);
    out.set(x.subarray(r * width, (r + 1) * width), n * width);
  }
}

/** out[s, :] = Σ_{n : seg[n] = s} x[n, :]; segment ids outside 0..numSegments-1 are skipped (TF semantics). */
export function segmentSumRows(x: ArrayLike<number>, seg: ArrayLike<number>, width: number, numSegments: number, out: Float32Array | Int32Array): void {
  out.fill(0);
  for (let n = 0; n < seg.length; n++) {
    const s = seg[n];
    if (!(s >= 0 && s < numSegments)) continue;
    const o = s * width;
    const i = n * width;
    for (let d = 0; d < width; d++) out[o + d] += x[i + d];
  }
}

/** Slice by row blocks on heap views: contiguous slices are one copy, others one copy per innermost run. */
function sliceKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { x } = inputs;
  const wasm = backend as WasmBackendLike;
  const [begin, sz] = tf.slice_util.parseSliceParams(x as tf.Tensor, attrs!.begin as number[], attrs!.size as number[]);
  const out = wasm.makeOutput(sz, x.dtype); // allocate before taking views: a heap growth detaches them
  if (size(sz) === 0) return out;
  const xv = wasm.typedArrayFromHeap(x);
  const ov = wasm.typedArrayFromHeap(out);
  const strides = tf.util.computeStrides(x.shape);
  if (tf.slice_util.isSliceContinous(x.shape, begin, sz)) {
    const off = tf.slice_util.computeFlatOffset(begin, strides);
    ov.set(xv.subarray(off, off + size(sz)));
    return out;
  }
  // Copy innermost runs: iterate over all outer coordinates.
  const rank = sz.length;
  const run = sz[rank - 1];
  const outer = size(sz.slice(0, rank - 1));
  const coord = new Array(rank - 1).fill(0);
  for (let o = 0; o < outer; o++) {
    let off = begin[rank - 1];
    for (let i = 0; i < rank - 1; i++) off += (begin[i] + coord[i]) * strides[i];
    ov.set(xv.subarray(off, off + run), o * run);
    for (let i = rank - 2; i >= 0; i--) { if (++coord[i] < sz[i]) break; coord[i] = 0; }
  }
  return out;
}

/** Unpack (unstack) along an axis as fast slices. */
function unpackKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const { value } = inputs;
  const rank = value.shape.length;
  const axis = ((attrs!.axis as number) + rank) % rank;
  const outShape = value.shape.filter((_, i) => i !== axis);
  const begin = new Array(rank).fill(0);
  const sz = value.shape.slice();
  sz[axis] = 1;
  const outs: tf.TensorInfo[] = [];
  for (let i = 0; i < value.shape[axis]; i++) {
    begin[axis] = i;
    const s = sliceKernel({ inputs: { x: value }, backend, attrs: { begin: begin.slice(), size: sz } });
    outs.push({ dataId: s.dataId, dtype: s.dtype, shape: outShape });
  }
  return outs;
}

/** SplitV as fast slices. */
function splitVKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const { x } = inputs;
  const axis = tf.util.parseAxisParam(attrs!.axis as number, x.shape)[0];
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, attrs!.numOrSizeSplits as number[] | number, axis);
  const begin = new Array(x.shape.length).fill(0);
  return sizes.map((s) => {
    const sz = x.shape.slice();
    sz[axis] = s;
    const out = sliceKernel({ inputs: { x }, backend, attrs: { begin: begin.slice(), size: sz } });
    begin[axis] += s;
    return out;
  });
}

/** GatherV2 along axis 0 (batchDims 0) as row copies; other axes go to the backend's own kernel. */
function makeGatherKernel(fallback: tf.KernelFunc | undefined) {
  return (args: KernelArgs): tf.TensorInfo => {
    const { inputs, backend, attrs } = args;
    const { x, indices } = inputs;
    const axis = tf.util.parseAxisParam(attrs!.axis as number, x.shape)[0];
    if ((axis !== 0 || (attrs!.batchDims as number) !== 0 || x.dtype === 'string') && fallback) {
      return fallback(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
    }
    const wasm = backend as WasmBackendLike;
    const width = size(x.shape.slice(1));
    const outShape = [...indices.shape, ...x.shape.slice(1)];
    const out = wasm.makeOutput(outShape, x.dtype);
    if (size(outShape) === 0) return out;
    copyRows(wasm.typedArrayFromHeap(x) as Float32Array, wasm.typedArrayFromHeap(indices), width, x.shape[0], wasm.typedArrayFromHeap(out));
    return out;
  };
}

/** UnsortedSegmentSum: out[s] = Σ_{n: segmentIds[n] = s} x[n] (segment ids index x's leading axes). */
function segmentSumKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { x, segmentIds } = inputs;
  const numSegments = attrs!.numSegments as number;
  if (!Number.isInteger(numSegments) || numSegments < 0) throw new Error(`UnsortedSegmentSum: numSegments must be an integer ≥ 0, got ${numSegments}`);
  const wasm = backend as WasmBackendLike;
  const lead = segmentIds.shape.length;
  const width = size(x.shape.slice(lead));
  const out = wasm.makeOutput([numSegments, ...x.shape.slice(lead)], x.dtype);
  if (numSegments * width === 0) return out;
  segmentSumRows(wasm.typedArrayFromHeap(x), wasm.typedArrayFromHeap(segmentIds), width, numSegments, wasm.typedArrayFromHeap(out) as Float32Array);
  return out;
}

let registered = false;

/** Replaces / adds the wasm kernels above (idempotent). */
export function registerWasmFastKernels(): void {
  if (registered) return;
  registered = true;
  const replace = (kernelName: string, kernelFunc: (a: KernelArgs) => tf.TensorInfo | tf.TensorInfo[], setupFunc?: tf.KernelConfig['setupFunc']) => {
    if (tf.getKernel(kernelName, 'wasm')) tf.unregisterKernel(kernelName, 'wasm');
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc, setupFunc });
  };
  const gather = tf.getKernel('GatherV2', 'wasm');
  const matmul = tf.getKernel('BatchMatMul', 'wasm');
  if (matmul) replace('BatchMatMul', makeBatchMatMulKernel(matmul.kernelFunc), matmul.setupFunc); // the 2D calls need its wasm setup
  replace('Slice', sliceKernel);
  replace('Unpack', unpackKernel);
  replace('SplitV', splitVKernel);
  replace('GatherV2', makeGatherKernel(gather?.kernelFunc), gather?.setupFunc); // the fallback needs its wasm setup
  replace('UnsortedSegmentSum', segmentSumKernel);
}

registerWasmFastKernels();
