/**
 * A faster gradient for BatchMatMul on the wasm backend. tfjs's own gradient calls matMul with
 * transposeA / transposeB, which wasm runs 15–25× slower than a plain matMul (measured here:
 * [1024,512]ᵀ·[1024,256] 234 ms vs 14 ms for an explicit transpose then matMul). This gradient
 * transposes explicitly:  C = A·B  ⇒  dA = dC·Bᵀ,  dB = Aᵀ·dC  (flags folded in by transposing first).
 * Shapes with broadcast batch dimensions, and the webgpu backend, keep tfjs's original gradient.
 */
import * as tf from '@tensorflow/tfjs';

let registered = false;

/** Transposes the last two axes. */
function t(x: tf.Tensor): tf.Tensor {
  const perm = x.shape.map((_, i) => i);
  [perm[x.rank - 2], perm[x.rank - 1]] = [perm[x.rank - 1], perm[x.rank - 2]];
  return tf.transpose(x, perm);
}

/** Replaces the BatchMatMul gradient with the explicit-transpose one (idempotent). */
export function registerMatMulGradient(): void {
  if (registered) return;
  registered = true;
  const original = tf.getGradient('BatchMatMul');
  if (!original) return;
  const warn = console.warn;
  console.warn = () => {}; // tfjs warns about overriding a gradient: that is the point here
  try {
    tf.registerGradient({
      kernelName: 'BatchMatMul',
      inputsToSave: ['a', 'b'],
      gradFunc: (dy, saved, attrs) => {
        const [a, b] = saved;
        const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
        const sameBatch = a.rank === b.rank && a.shape.slice(0, -2).every((d, i) => d === b.shape[i]);
        // WebGPU reads transposed operands natively: explicit transposes would only add copies there.
        if (!sameBatch || tf.getBackend() === 'webgpu') return original.gradFunc(dy, saved, attrs);
        const g = dy as tf.Tensor;
        return {
          a: () => tf.tidy(() => {
            const bb = transposeB ? b : t(b); // Bᵀ in the orientation C was computed with
            const da = tf.matMul(g, bb); // dC·Bᵀ, shaped like op(A)
            return transposeA ? t(da) : da;
          }),
          b: () => tf.tidy(() => {
            const aa = transposeA ? a : t(a);
            const db = tf.matMul(aa, g); // op(A)ᵀ·dC, shaped like op(B)
            return transposeB ? t(db) : db;
          }),
        };
      },
    });
  } finally {
    console.warn = warn;
  }
}

registerMatMulGradient();
