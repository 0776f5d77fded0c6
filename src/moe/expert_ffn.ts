/**
 * Expert FFNs over padded experts: xp [E, C, D] (every expert's block padded to C rows) →
 * ys[e] = act(xp[e]·W1[e])·W2[e], as one batched GEMM per projection (GShard's / MegaBlocks' padded layout).
 * - webgpu, relu: our WGSL GEMM (src/kernels/webgpu_gemm.ts) with relu fused into the up projection and
 *   the relu mask fused into the backward: dH = (dY·W2ᵀ) ⊙ 1[h > 0], dX = dH·W1ᵀ, dW1 = Xᵀ·dH, dW2 = hᵀ·dY.
 * - other activations on webgpu: tfjs's batched matMul (native batched kernel, autodiff gradients).
 * - wasm / cpu: one plain matMul pair per expert on row blocks (tfjs-wasm's batched BatchMatMul runs a
 *   naive loop at ≈0.5 GFLOPS, 50× slower than its XNNPACK path for a single matrix).
 */
import * as tf from '@tensorflow/tfjs';
import { ffn, gelu, swiglu, type Activation, type ExpertWeights } from './experts.ts';
import { BATCH_GEMM, type GemmEpilogue, type GemmTile } from '../kernels/webgpu_gemm.ts';

/** The WGSL GEMM's switch and tile; the GPU benchmark sets the tile after timing the candidates. */
export const gemmTuning: { enabled: boolean; tile: GemmTile | undefined } = { enabled: true, tile: undefined };

/** out[z] = epilogue(op(a[z])·op(b[z])) on the WebGPU GEMM (forward only). */
export function batchGemm(a: tf.Tensor3D, b: tf.Tensor3D, transposeA: boolean, transposeB: boolean, epilogue: GemmEpilogue = 'none', h?: tf.Tensor3D): tf.Tensor3D {
  const inputs: tf.NamedTensorMap = h ? { a, b, h } : { a, b };
  const attrs = { transposeA, transposeB, epilogue, tile: gemmTuning.tile } as unknown as tf.NamedAttrMap;
  return tf.engine().runKernel(BATCH_GEMM, inputs, attrs) as tf.Tensor3D;
}

/** True when the fused WGSL path applies: webgpu backend, relu, no gate projection, dims multiples of 4. */
export function useWgslFfn(xp: tf.Tensor3D, w: ExpertWeights, activation: Activation): boolean {
  const [, C, D] = xp.shape;
  const H = w.w1.shape[2] as number;
  return gemmTuning.enabled && tf.getBackend() === 'webgpu' && activation === 'relu' && !w.w3 && C % 4 === 0 && D % 4 === 0 && H % 4 === 0;
}

/** relu FFN on the WGSL GEMM with its hand-written backward (4 GEMMs, relu mask fused). */
function wgslReluFfn(xp: tf.Tensor3D, w1: tf.Tensor3D, w2: tf.Tensor3D): tf.Tensor3D {
  const f = (x: tf.Tensor3D, a: tf.Tensor3D, b: tf.Tensor3D, save: (ts: tf.Tensor[]) => void) => {
    const h = batchGemm(x, a, false, false, 'relu'); // [E, C, H]
    save([x, a, b, h]);
    return {
      value: batchGemm(h, b, false, false), // [E, C, D]
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, w1s, w2s, hs] = saved as tf.Tensor3D[];
        const g = dy as tf.Tensor3D;
        const dh = batchGemm(g, w2s, false, true, 'relu-grad', hs); // [E, C, H] = (dY·W2ᵀ) ⊙ 1[h > 0]
        return [
          batchGemm(dh, w1s, false, true), // dX  [E, C, D]
          batchGemm(xs, dh, true, false), // dW1 [E, D, H]
          batchGemm(hs, g, true, false), // dW2 [E, H, D]
        ];
      },
    };
  };
  return tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0])(xp, w1, w2) as tf.Tensor3D;
}

/** ys [E, C, D] = act(xp·W1)·W2 per expert (SwiGLU: (silu(xp·W1) ⊙ xp·W3)·W2); differentiable. */
export function paddedExpertFfn(xp: tf.Tensor3D, w: ExpertWeights, activation: Activation): tf.Tensor3D {
  const [E, , D] = xp.shape;
  if (w.w1.shape[0] !== E || w.w1.shape[1] !== D) throw new Error(`paddedExpertFfn: xp is [${xp.shape}] but W1 is [${w.w1.shape}]`);
  return tf.tidy(() => {
    if (useWgslFfn(xp, w, activation)) return wgslReluFfn(xp, w.w1 as tf.Tensor as tf.Tensor3D, w.w2 as tf.Tensor as tf.Tensor3D);
    if (tf.getBackend() === 'webgpu') {
      const h = tf.matMul(xp, w.w1); // [E, C, H]
      let a: tf.Tensor;
      switch (activation) {
        case 'relu': a = tf.relu(h); break;
        case 'gelu': a = gelu(h); break;
        case 'swiglu': a = swiglu(h, tf.matMul(xp, w.w3!)); break;
      }
      return tf.matMul(a as tf.Tensor3D, w.w2) as tf.Tensor3D;
    }
    const xs = tf.unstack(xp) as tf.Tensor2D[];
    const w1s = tf.unstack(w.w1) as tf.Tensor2D[];
    const w2s = tf.unstack(w.w2) as tf.Tensor2D[];
    const w3s = w.w3 ? (tf.unstack(w.w3) as tf.Tensor2D[]) : null;
    return tf.stack(xs.map((x, e) => ffn(x, w1s[e], w2s[e], w3s ? w3s[e] : null, activation))) as tf.Tensor3D;
  });
}
