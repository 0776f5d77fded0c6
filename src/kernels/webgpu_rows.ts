/**
 * WGSL versions of the row kernels (src/kernels/row_kernels.ts) for the tfjs WebGPU backend. Each is a
 * WebGPUProgram (the object `backend.runWebGPUProgram` compiles: variable names, output shape,
 * dispatch, user code) and is registered as that backend's kernel of the same name. Rows move as
 * vec4 when the width allows; every output element is written by exactly one thread (no atomics).
 */
import * as tf from '@tensorflow/tfjs';
import { GATHER_ROWS, ROW_DOT, SUM_ROWS, checkRowArgs } from './row_kernels.ts';

/** The part of tfjs-backend-webgpu's WebGPUProgram we fill in (the backend adds bindings and uniforms). */
export interface WebGpuProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[]; y?: number[]; z?: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  size?: boolean;
  uniforms?: string;
  outputComponent?: number;
  variableComponents?: number[];
  getUserCode(): string;
}

/** The part of WebGPUBackend we call. */
export interface WebGpuBackendLike {
  runWebGPUProgram(p: WebGpuProgram, inputs: tf.TensorInfo[], dtype: tf.DataType, uniforms?: { type: 'int32' | 'float32'; data: number[] }[]): tf.TensorInfo;
}

type KernelArgs = { inputs: Record<string, tf.TensorInfo>; backend: unknown; attrs?: Record<string, unknown> };

/** vec4 when the row width allows it. */
const comp = (D: number) => (D % 4 === 0 ? 4 : 1);
const vt = (c: number) => (c === 4 ? 'vec4<f32>' : 'f32');
const flat = (n: number, wg = 64): [number, number, number] => [Math.ceil(n / wg), 1, 1];

/** out[n] = scale[n] · x[rows[n]] (zero where rows[n] < 0); one thread per output vec4. */
export function gatherRowsProgram(N: number, D: number): WebGpuProgram {
  const c = comp(D);
  return {
    variableNames: ['x', 'rows', 'scale'], outputShape: [N, D], shaderKey: `${GATHER_ROWS}_${c}`,
    dispatchLayout: { x: [0, 1] }, dispatch: flat((N * D) / c), workgroupSize: [64, 1, 1], size: true,
    uniforms: 'dc : i32,', outputComponent: c, variableComponents: [c, 1, 1],
    getUserCode: () => `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let n = index / uniforms.dc;
          let r = rows[n];
          var v = ${vt(c)}(0.0);
          if (r >= 0) { v = scale[n] * x[r * uniforms.dc + index - n * uniforms.dc]; }
          result[index] = v;
        }
      }`,
  };
}

/** out[t] = Σ_s w[t, s] · ys[slots[t, s]]; one thread per output vec4, S terms each. */
export function sumRowsProgram(T: number, S: number, D: number): WebGpuProgram {
  const c = comp(D);
  return {
    variableNames: ['ys', 'slots', 'w'], outputShape: [T, D], shaderKey: `${SUM_ROWS}_${c}`,
    dispatchLayout: { x: [0, 1] }, dispatch: flat((T * D) / c), workgroupSize: [64, 1, 1], size: true,
    uniforms: 'dc : i32, S : i32,', outputComponent: c, variableComponents: [c, 1, 1],
    getUserCode: () => `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let t = index / uniforms.dc;
          let col = index - t * uniforms.dc;
          var acc = ${vt(c)}(0.0);
          for (var s = 0; s < uniforms.S; s++) {
            let r = slots[t * uniforms.S + s];
            if (r >= 0) { acc = acc + w[t * uniforms.S + s] * ys[r * uniforms.dc + col]; }
          }
          result[index] = acc;
        }
      }`,
  };
}

/** out[t, s] = ⟨a[t], b[slots[t, s]]⟩; one 64-thread workgroup per output, tree reduction in shared memory. */
export function rowDotProgram(T: number, S: number, D: number): WebGpuProgram {
  const c = comp(D);
  const prod = c === 4 ? 'dot(a[t * uniforms.dc + col], b[r * uniforms.dc + col])' : 'a[t * uniforms.dc + col] * b[r * uniforms.dc + col]';
  return {
    variableNames: ['a', 'b', 'slots'], outputShape: [T, S], shaderKey: `${ROW_DOT}_${c}`,
    dispatchLayout: { x: [0, 1] }, dispatch: [T * S, 1, 1], workgroupSize: [64, 1, 1], size: true,
    uniforms: 'dc : i32, S : i32,', outputComponent: 1, variableComponents: [c, c, 1],
    getUserCode: () => `
      var<workgroup> partial : array<f32, 64>;
      fn main(index : i32) {
        let e = index / 64;
        let lane = index - e * 64;
        let valid = e < uniforms.size;
        var acc = 0.0;
        if (valid) {
          let t = e / uniforms.S;
          let r = slots[e];
          if (r >= 0) {
            for (var col = lane; col < uniforms.dc; col = col + 64) { acc = acc + ${prod}; }
          }
        }
        partial[lane] = acc;
        workgroupBarrier();
        for (var off = 32; off > 0; off = off / 2) {
          if (lane < off) { partial[lane] = partial[lane] + partial[lane + off]; }
          workgroupBarrier();
        }
        if (valid && lane == 0) { result[e] = partial[0]; }
      }`,
  };
}

let registered = false;

/** Registers the three row kernels for the 'webgpu' backend (idempotent; harmless without a GPU). */
export function registerWebGpuRowKernels(): void {
  if (registered) return;
  registered = true;
  const reg = (kernelName: string, fn: (a: KernelArgs) => tf.TensorInfo) => {
    if (!tf.getKernel(kernelName, 'webgpu')) tf.registerKernel({ kernelName, backendName: 'webgpu', kernelFunc: fn as unknown as tf.KernelFunc });
  };
  reg(GATHER_ROWS, ({ inputs: { x, rows, scale }, backend }) => {
    const [, D] = checkRowArgs(GATHER_ROWS, x, rows, scale);
    const N = rows.shape[0];
    return (backend as WebGpuBackendLike).runWebGPUProgram(gatherRowsProgram(N, D), [x, rows, scale], 'float32', [{ type: 'int32', data: [D / comp(D)] }]);
  });
  reg(SUM_ROWS, ({ inputs: { ys, slots, w }, backend }) => {
    const [, D] = checkRowArgs(SUM_ROWS, ys, slots, w);
    const [T, S] = slots.shape;
    return (backend as WebGpuBackendLike).runWebGPUProgram(sumRowsProgram(T, S, D), [ys, slots, w], 'float32', [{ type: 'int32', data: [D / comp(D)] }, { type: 'int32', data: [S] }]);
  });
  reg(ROW_DOT, ({ inputs: { a, b, slots }, backend }) => {
    const [, D] = checkRowArgs(ROW_DOT, b, slots);
    const [T, S] = slots.shape;
    return (backend as WebGpuBackendLike).runWebGPUProgram(rowDotProgram(T, S, D), [a, b, slots], 'float32', [{ type: 'int32', data: [D / comp(D)] }, { type: 'int32', data: [S] }]);
  });
}

registerWebGpuRowKernels();
