/**
 * A batched fp32 GEMM for the tfjs WebGPU backend, for expert FFNs over padded experts [E, C, D]:
 *   out[z] = epilogue(op(A[z]) · op(B[z]))    op = identity or transpose; epilogue none | relu | relu-grad
 * (relu-grad multiplies by 1[h > 0] of a saved activation: dH = (dY·W2ᵀ) ⊙ 1[h > 0] in one pass).
 * Classic 2-D register blocking (Nugteren's kernel 6 / CUTLASS's SIMT tiles): a BM×BN tile per
 * workgroup, BK-deep slabs of A (stored k-major) and B in shared memory, 8×8 outputs per thread as
 * 2×2 blocks of 4×4 (so shared reads are conflict-free vec4s), next slab prefetched into registers.
 * tfjs's own MatMulPackedProgram uses 32×32 tiles and 4×4 per thread.
 */
import * as tf from '@tensorflow/tfjs';
import type { WebGpuBackendLike, WebGpuProgram } from './webgpu_rows.ts';

export const BATCH_GEMM = 'SwitchyardBatchGemm';
export type GemmEpilogue = 'none' | 'relu' | 'relu-grad';

export interface GemmTile { bm: 64 | 128; bn: 64 | 128; bk: 8 | 16 }
export const DEFAULT_TILE: GemmTile = { bm: 128, bn: 128, bk: 16 };

/** Shapes of out[z] = op(A[z])·op(B[z]); throws naming the operands when they do not fit. */
export function gemmDims(a: number[], b: number[], transposeA: boolean, transposeB: boolean): { Z: number; M: number; N: number; K: number } {
  if (a.length !== 3 || b.length !== 3) throw new Error(`${BATCH_GEMM}: operands must be rank 3, got [${a}] and [${b}]`);
  if (a[0] !== b[0]) throw new Error(`${BATCH_GEMM}: batch sizes differ: ${a[0]} vs ${b[0]}`);
  const [M, K] = transposeA ? [a[2], a[1]] : [a[1], a[2]];
  const [K2, N] = transposeB ? [b[2], b[1]] : [b[1], b[2]];
  if (K !== K2) throw new Error(`${BATCH_GEMM}: inner sizes differ: op(A) is [${M}, ${K}], op(B) is [${K2}, ${N}]`);
  if (M % 4 || N % 4 || K % 4) throw new Error(`${BATCH_GEMM}: M, N, K must be multiples of 4 (vec4 loads), got ${M}, ${N}, ${K}`);
  return { Z: a[0], M, N, K };
}

/** WGSL for one tile configuration and operand layout. */
export function gemmProgram(Z: number, M: number, N: number, transposeA: boolean, transposeB: boolean, epilogue: GemmEpilogue, tile: GemmTile = DEFAULT_TILE): WebGpuProgram {
  const { bm, bn, bk } = tile;
  const tx = bn / 8, ty = bm / 8, threads = tx * ty;
  const sa = bm / 4 + 1; // As row stride in vec4 (one vec4 of padding spreads the transposed stores over banks)
  const sb = bn / 4;
  const la = (bm * bk) / 4 / threads, lb = (bk * bn) / 4 / threads; // vec4 loads per thread per slab
  const lines: string[] = [];
  // Global → registers for slab starting at k0 (zero outside the matrix).
  const loadA: string[] = [], storeA: string[] = [], loadB: string[] = [], storeB: string[] = [];
  for (let p = 0; p < la; p++) {
    const idx = `(li + ${p * threads})`;
    if (!transposeA) { // A [M, K]: vec4 along K; 4 threads per row read its bk/4 vec4s
      loadA.push(`{ let r = ${idx} / ${bk / 4}; let q = ${idx} % ${bk / 4}; let gm = m0 + r; let gk = k0 + q * 4;
        if (gm < uniforms.M && gk < uniforms.K) { ra${p} = A[(aBase + gm * uniforms.K + gk) / 4]; } else { ra${p} = vec4<f32>(0.0); } }`);
      storeA.push(`{ let r = ${idx} / ${bk / 4}; let q = ${idx} % ${bk / 4};
        ${[0, 1, 2, 3].map((i) => `As[(q * 4 + ${i}) * ${sa} + r / 4][r % 4] = ra${p}.${'xyzw'[i]};`).join(' ')} }`);
    } else { // A [K, M]: vec4 along M, stored as is
      loadA.push(`{ let kk = ${idx} / ${bm / 4}; let q = ${idx} % ${bm / 4}; let gk = k0 + kk; let gm = m0 + q * 4;
        if (gm < uniforms.M && gk < uniforms.K) { ra${p} = A[(aBase + gk * uniforms.M + gm) / 4]; } else { ra${p} = vec4<f32>(0.0); } }`);
      storeA.push(`{ let kk = ${idx} / ${bm / 4}; let q = ${idx} % ${bm / 4}; As[kk * ${sa} + q] = ra${p}; }`);
    }
  }
  for (let p = 0; p < lb; p++) {
    const idx = `(li + ${p * threads})`;
    if (!transposeB) { // B [K, N]: vec4 along N
      loadB.push(`{ let kk = ${idx} / ${bn / 4}; let q = ${idx} % ${bn / 4}; let gk = k0 + kk; let gn = n0 + q * 4;
        if (gn < uniforms.N && gk < uniforms.K) { rb${p} = B[(bBase + gk * uniforms.N + gn) / 4]; } else { rb${p} = vec4<f32>(0.0); } }`);
      storeB.push(`{ let kk = ${idx} / ${bn / 4}; let q = ${idx} % ${bn / 4}; Bs[kk * ${sb} + q] = rb${p}; }`);
    } else { // B [N, K]: vec4 along K, transposed into Bs
      loadB.push(`{ let r = ${idx} / ${bk / 4}; let q = ${idx} % ${bk / 4}; let gn = n0 + r; let gk = k0 + q * 4;
        if (gn < uniforms.N && gk < uniforms.K) { rb${p} = B[(bBase + gn * uniforms.K + gk) / 4]; } else { rb${p} = vec4<f32>(0.0); } }`);
      storeB.push(`{ let r = ${idx} / ${bk / 4}; let q = ${idx} % ${bk / 4};
        ${[0, 1, 2, 3].map((i) => `Bs[(q * 4 + ${i}) * ${sb} + r / 4][r % 4] = rb${p}.${'xyzw'[i]};`).join(' ')} }`);
    }
  }
  const acc: string[] = [];
  for (let r = 0; r < 8; r++) for (let c = 0; c < 2; c++) acc.push(`var c${r}${c} = vec4<f32>(0.0);`);
  const fma: string[] = [];
  const comps = ['x', 'y', 'z', 'w'];
  for (let r = 0; r < 8; r++) {
    const a = `${r < 4 ? 'a0' : 'a1'}.${comps[r % 4]}`;
    fma.push(`c${r}0 = fma(vec4<f32>(${a}), b0, c${r}0); c${r}1 = fma(vec4<f32>(${a}), b1, c${r}1);`);
  }
  const write: string[] = [];
  for (let r = 0; r < 8; r++) {
    const row = `m0 + ${r < 4 ? `lr * 4 + ${r}` : `${bm / 2} + lr * 4 + ${r - 4}`}`;
    for (let c = 0; c < 2; c++) {
      const col = `n0 + ${c === 0 ? 'lc * 4' : `${bn / 2} + lc * 4`}`;
      const v = epilogue === 'relu' ? `max(c${r}${c}, vec4<f32>(0.0))`
        : epilogue === 'relu-grad' ? `select(vec4<f32>(0.0), c${r}${c}, Hm[o] > vec4<f32>(0.0))` : `c${r}${c}`;
      write.push(`{ let gm = ${row}; let gn = ${col}; if (gm < uniforms.M && gn < uniforms.N) { let o = (oBase + gm * uniforms.N + gn) / 4; result[o] = ${v}; } }`);
    }
  }
  lines.push(`
  var<workgroup> As : array<vec4<f32>, ${bk * sa}>;
  var<workgroup> Bs : array<vec4<f32>, ${bk * sb}>;
  fn main() {
    let li = i32(localIndex);
    let lc = li % ${tx};
    let lr = li / ${tx};
    let z = i32(workgroupId.z);
    let m0 = i32(workgroupId.y) * ${bm};
    let n0 = i32(workgroupId.x) * ${bn};
    let aBase = z * uniforms.M * uniforms.K;
    let bBase = z * uniforms.K * uniforms.N;
    let oBase = z * uniforms.M * uniforms.N;
    ${acc.join('\n    ')}
    ${Array.from({ length: la }, (_, p) => `var ra${p} : vec4<f32>;`).join(' ')}
    ${Array.from({ length: lb }, (_, p) => `var rb${p} : vec4<f32>;`).join(' ')}
    var k0 = 0;
    ${loadA.join('\n    ')}
    ${loadB.join('\n    ')}
    ${storeA.join('\n    ')}
    ${storeB.join('\n    ')}
    workgroupBarrier();
    let numTiles = (uniforms.K + ${bk - 1}) / ${bk};
    for (var t = 0; t < numTiles; t++) {
      k0 = (t + 1) * ${bk};
      if (t + 1 < numTiles) {
        ${loadA.join('\n        ')}
        ${loadB.join('\n        ')}
      }
      for (var k = 0; k < ${bk}; k++) {
        let a0 = As[k * ${sa} + lr];
        let a1 = As[k * ${sa} + ${bm / 8} + lr];
        let b0 = Bs[k * ${sb} + lc];
        let b1 = Bs[k * ${sb} + ${bn / 8} + lc];
        ${fma.join('\n        ')}
      }
      workgroupBarrier();
      if (t + 1 < numTiles) {
        ${storeA.join('\n        ')}
        ${storeB.join('\n        ')}
      }
      workgroupBarrier();
    }
    ${write.join('\n    ')}
  }`);
  const names = epilogue === 'relu-grad' ? ['A', 'B', 'Hm'] : ['A', 'B'];
  return {
    variableNames: names, outputShape: [Z, M, N],
    shaderKey: `${BATCH_GEMM}_${transposeA}_${transposeB}_${epilogue}_${bm}_${bn}_${bk}`,
    dispatchLayout: { x: [2], y: [1], z: [0] },
    dispatch: [Math.ceil(N / bn), Math.ceil(M / bm), Z], workgroupSize: [threads, 1, 1],
    uniforms: 'M : i32, N : i32, K : i32,', outputComponent: 4, variableComponents: names.map(() => 4),
    getUserCode: () => lines.join('\n'),
  };
}

let registered = false;

/** Registers the GEMM for 'webgpu'; attrs: transposeA, transposeB, epilogue, tile (optional). */
export function registerWebGpuGemm(): void {
  if (registered) return;
  registered = true;
  if (tf.getKernel(BATCH_GEMM, 'webgpu')) return;
  tf.registerKernel({
    kernelName: BATCH_GEMM, backendName: 'webgpu',
    kernelFunc: (({ inputs, backend, attrs }: { inputs: Record<string, tf.TensorInfo>; backend: unknown; attrs: Record<string, unknown> }) => {
      const tA = attrs.transposeA as boolean, tB = attrs.transposeB as boolean;
      const epilogue = (attrs.epilogue ?? 'none') as GemmEpilogue;
      const { Z, M, N, K } = gemmDims(inputs.a.shape, inputs.b.shape, tA, tB);
      const ins = epilogue === 'relu-grad' ? [inputs.a, inputs.b, inputs.h] : [inputs.a, inputs.b];
      if (epilogue === 'relu-grad' && (!inputs.h || inputs.h.shape.join() !== [Z, M, N].join())) {
        throw new Error(`${BATCH_GEMM}: relu-grad needs h of shape [${Z}, ${M}, ${N}], got [${inputs.h?.shape}]`);
      }
      const program = gemmProgram(Z, M, N, tA, tB, epilogue, (attrs.tile as GemmTile | undefined) ?? DEFAULT_TILE);
      return (backend as WebGpuBackendLike).runWebGPUProgram(program, ins, 'float32', [M, N, K].map((v) => ({ type: 'int32' as const, data: [v] })));
    }) as unknown as tf.KernelFunc,
  });
}

registerWebGpuGemm();
