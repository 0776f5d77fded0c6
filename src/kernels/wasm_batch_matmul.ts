/**
 * BatchMatMul for the tfjs wasm backend with a batch: C[i] = op(A[i])·op(B[i]) as one 2D call per batch entry.
 * tfjs-backend-wasm 4.22 sends only batch-1 products to XNNPACK; a batch goes to a plain loop that is ≈17× slower
 * per FLOP (measured on attention's [8,4,128,128]·[8,4,128,32]: 0.45 vs 7.7 GFLOPS for a 2D product on the same
 * machine). Transposed operands are transposed while copied, so every 2D call is a plain one (wasm's transposed
 * products are slow too). Broadcast batches and batch 1 go to the backend's own kernel.
 */
import * as tf from '@tensorflow/tfjs';

type KernelArgs = { inputs: Record<string, tf.TensorInfo>; backend: unknown; attrs?: Record<string, unknown> };
/** The slice of BackendWasm used here: heap views, heap-allocated outputs, and freeing them. */
interface WasmBackendFull {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: object): boolean;
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** dst[0..rows·cols) = src block at `offset` ([rows, cols] row-major), or its transpose when the block is [cols, rows]. */
function copyBlock(src: Float32Array, offset: number, rows: number, cols: number, transposed: boolean, dst: Float32Array): void {
  if (!transposed) { dst.set(src.subarray(offset, offset + rows * cols)); return; }
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) dst[r * cols + c] = src[offset + c * rows + r];
}

/** The kernel: per-batch 2D products through `plain` (the backend's own kernel), else `plain` itself. */
export function makeBatchMatMulKernel(plain: tf.KernelFunc) {
  return (args: KernelArgs): tf.TensorInfo => {
    const { inputs, attrs } = args;
    const { a, b } = inputs;
    const transposeA = !!attrs?.transposeA, transposeB = !!attrs?.transposeB;
    const ra = a.shape.length, rb = b.shape.length;
    const batchShape = a.shape.slice(0, -2);
    const batch = size(batchShape);
    const sameBatch = ra === rb && batchShape.every((d, i) => d === b.shape[i]);
    if (batch <= 1 || !sameBatch || a.dtype !== 'float32' || b.dtype !== 'float32') return plain(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
    const M = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
    const K = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
    const N = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
    if ((transposeB ? b.shape[rb - 1] : b.shape[rb - 2]) !== K) {
      throw new Error(`BatchMatMul: inner sizes differ, a ${JSON.stringify(a.shape)}${transposeA ? 'ᵀ' : ''} · b ${JSON.stringify(b.shape)}${transposeB ? 'ᵀ' : ''}`);
    }
    const wasm = args.backend as WasmBackendFull;
    const out = wasm.makeOutput([...batchShape, M, N], 'float32');
    if (M * N === 0) return out;
    for (let i = 0; i < batch; i++) {
      // allocate before taking heap views: an allocation may grow the heap and detach earlier views
      const ai = wasm.makeOutput([M, K], 'float32');
      const bi = wasm.makeOutput([K, N], 'float32');
      copyBlock(wasm.typedArrayFromHeap(a) as Float32Array, i * M * K, M, K, transposeA, wasm.typedArrayFromHeap(ai) as Float32Array);
      copyBlock(wasm.typedArrayFromHeap(b) as Float32Array, i * K * N, K, N, transposeB, wasm.typedArrayFromHeap(bi) as Float32Array);
      const ci = plain({ inputs: { a: ai, b: bi }, backend: args.backend, attrs: { transposeA: false, transposeB: false } } as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
      (wasm.typedArrayFromHeap(out) as Float32Array).set(wasm.typedArrayFromHeap(ci) as Float32Array, i * M * N);
      wasm.disposeData(ai.dataId);
      wasm.disposeData(bi.dataId);
      wasm.disposeData(ci.dataId);
    }
    return out;
  };
}
