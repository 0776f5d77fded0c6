/**
 * The WGSL kernels (GEMM, row kernels) and the padded dispatcher on the webgpu backend, against plain-array
 * references and the cpu backend. On a machine without a GPU, Mesa's lavapipe (software Vulkan) gives Dawn an
 * adapter: `test/lavapipe/run.sh npx vitest run test/webgpu_kernels.test.ts`. CI runs them so, with
 * SWITCHYARD_REQUIRE_WEBGPU=1: a missing adapter fails the file there; elsewhere these tests skip.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.ts';
import { moeExperts } from '../src/moe/dispatch/index.ts';
import { planTokenChoice } from '../src/moe/plan.ts';
import { createExperts } from '../src/moe/experts.ts';
import type { GemmEpilogue, GemmTile } from '../src/kernels/webgpu_gemm.ts';
import { batchGemm } from '../src/moe/expert_ffn.ts';
import { gatherRowsScaled, rowDot, sumRows } from '../src/moe/dispatch/permute.ts';
import { Rng } from '../src/rng.ts';
import { expectClose, randomArray, webgpuAvailable } from './helpers.ts';

const gpu = await webgpuAvailable();

/** out[z] = op(a[z])·op(b[z]) in float64 on plain arrays. */
function gemmRef(a: Float32Array, b: Float32Array, Z: number, M: number, N: number, K: number, tA: boolean, tB: boolean): Float64Array {
  const out = new Float64Array(Z * M * N);
  for (let z = 0; z < Z; z++) for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
    let s = 0;
    for (let k = 0; k < K; k++) {
      const av = tA ? a[z * K * M + k * M + m] : a[z * M * K + m * K + k];
      const bv = tB ? b[z * N * K + n * K + k] : b[z * K * N + k * N + n];
      s += av * bv;
    }
    out[z * M * N + m * N + n] = s;
  }
  return out;
}

describe.skipIf(!gpu)('WGSL kernels on webgpu (skipped without a GPU adapter)', () => {
  it('GEMM: every transpose, epilogue and tile against float64 plain arrays, partial tiles included', async () => {
    const Z = 2, M = 136, N = 72, K = 44; // none a multiple of the 64/128 tiles
    const tiles: GemmTile[] = [{ bm: 128, bn: 128, bk: 16 }, { bm: 64, bn: 64, bk: 8 }, { bm: 128, bn: 64, bk: 8 }];
    let seed = 60;
    for (const [tA, tB] of [[false, false], [false, true], [true, false], [true, true]] as [boolean, boolean][]) {
      for (const tile of tiles) {
        const av = randomArray(Z * M * K, seed++), bv = randomArray(Z * K * N, seed++), hv = randomArray(Z * M * N, seed++);
        const ref = gemmRef(av, bv, Z, M, N, K, tA, tB);
        const { gemmTuning } = await import('../src/moe/expert_ffn.ts');
        gemmTuning.tile = tile;
        for (const ep of ['none', 'relu', 'relu-grad'] as GemmEpilogue[]) {
          const a = tf.tensor3d(av, tA ? [Z, K, M] : [Z, M, K]), b = tf.tensor3d(bv, tB ? [Z, N, K] : [Z, K, N]);
          const out = batchGemm(a, b, tA, tB, ep, ep === 'relu-grad' ? tf.tensor3d(hv, [Z, M, N]) : undefined);
          const want = Array.from(ref, (v, i) => (ep === 'relu' ? Math.max(v, 0) : ep === 'relu-grad' ? (hv[i] > 0 ? v : 0) : v));
          expectClose(await out.data(), want, 1e-4, 1e-4);
          tf.dispose([a, b, out]);
        }
        gemmTuning.tile = undefined;
      }
    }
  });

  it('row kernels (vec4 and scalar widths) equal the cpu backend', async () => {
    for (const D of [8, 3]) {
      const x = randomArray(6 * D, 70 + D), ys = randomArray(7 * D, 71 + D), a = randomArray(4 * D, 72 + D);
      const rows = [5, -1, 0, 5, 2, 3, 1], slots = [[0, 6], [-1, 2], [4, -1], [3, 1]], sc = randomArray(7, 73), w = randomArray(8, 74);
      const compute = () => [
        gatherRowsScaled(tf.tensor2d(x, [6, D]), tf.tensor1d(rows, 'int32'), tf.tensor1d(sc)),
        sumRows(tf.tensor2d(ys, [7, D]), tf.tensor2d(slots, [4, 2], 'int32'), tf.tensor2d(w, [4, 2])),
        rowDot(tf.tensor2d(a, [4, D]), tf.tensor2d(ys, [7, D]), tf.tensor2d(slots, [4, 2], 'int32')),
      ];
      const onGpu = await Promise.all(compute().map((t) => t.data()));
      await initBackend('cpu', { quiet: true });
      const onCpu = compute().map((t) => t.dataSync());
      await initBackend('webgpu', { quiet: true });
      onGpu.forEach((g, i) => expectClose(g, onCpu[i], 1e-5, 1e-4));
    }
  });

  it('padded dispatcher on webgpu (WGSL GEMM + row kernels) equals gather on cpu: y and gradients', async () => {
    const D = 8, H = 12, T = 6, k = 2, E = 3;
    const indices = Int32Array.from([0, 1, 2, 0, 1, 2, 0, 2, 1, 0, 2, 1]);
    const keep = Uint8Array.from([1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1]);
    const xv = randomArray(T * D, 81), wv = randomArray(T * k, 82, 1);
    const result = async (backend: 'webgpu' | 'cpu') => {
      await initBackend(backend, { quiet: true });
      const experts = createExperts(new Rng(9), E, D, H, 'relu');
      const plan = planTokenChoice(indices, keep, T, k, E, backend === 'webgpu' ? 8 : undefined);
      const f = (x: tf.Tensor, w: tf.Tensor, w1: tf.Tensor, w2: tf.Tensor) =>
        tf.sum(tf.square(moeExperts(backend === 'webgpu' ? 'padded' : 'gather', x as tf.Tensor2D, w, plan, k, { w1: w1 as tf.Variable, w2: w2 as tf.Variable, w3: null }, 'relu'))) as tf.Scalar;
      const gs = tf.grads(f)([tf.tensor2d(xv, [T, D]), tf.tensor2d(wv, [T, k]), experts.w1, experts.w2]);
      const out = await Promise.all(gs.map((g) => g.data()));
      tf.dispose([experts.w1, experts.w2]);
      return out;
    };
    const gpuGrads = await result('webgpu');
    const cpuGrads = await result('cpu');
    expect(gpuGrads.length).toBe(4);
    gpuGrads.forEach((g, i) => expectClose(g, cpuGrads[i], 1e-4, 1e-3));
    await initBackend('webgpu', { quiet: true });
  });
});
