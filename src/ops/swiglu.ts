/**
 * SwiGLU's gate, silu(h)·u, as tfjs's sigmoid plus one fused wasm kernel each way (src/kernels/wasm_fused.ts):
 *   y = h·σ(h)·u,  dh = dy·u·σ(h)·(1 + h·(1 − σ(h))),  du = dy·h·σ(h)
 * instead of two multiplies forward and a seven-kernel gradient. Wasm only: callers check
 * fusedKernelActive(SWIGLU_KERNEL) and use the tfjs ops elsewhere (moe/experts.ts's swiglu does).
 */
import * as tf from '@tensorflow/tfjs';
import { SWIGLU_GRAD_KERNEL, SWIGLU_KERNEL } from '../kernels/wasm_fused.ts';

const op = tf.customGrad(((h: tf.Tensor, u: tf.Tensor, save: (ts: tf.Tensor[]) => void) => {
  const s = tf.sigmoid(h); // tfjs's own vectorised sigmoid; the kernels fuse everything around it
  save([h, s, u]);
  return {
    value: tf.engine().runKernel(SWIGLU_KERNEL, { h, s, u }, {}) as tf.Tensor,
    gradFunc: (dy: tf.Tensor, [hs, ss, us]: tf.Tensor[]) => tf.engine().runKernel(SWIGLU_GRAD_KERNEL, { dy, h: hs, s: ss, u: us }, {}) as tf.Tensor[],
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]);

/** silu(h)·u (h, u of one shape) through the fused wasm kernels (wasm backend only). */
export function swigluFused(h: tf.Tensor, u: tf.Tensor): tf.Tensor {
  return op(h, u);
}
