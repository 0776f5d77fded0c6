/**
 * RMSNorm as one fused kernel each way on wasm (src/kernels/wasm_fused.ts), with its closed-form gradient:
 *   y = x·r·g,  r = 1/√(mean(x²) + ε) per row
 *   dx = r·g·dy − x·r³/D·Σ_d(dy·g·x),  dg = Σ_rows dy·x·r
 * tfjs's chain is six kernels forward and about fifteen backward; this is one each. Wasm only: callers check
 * fusedKernelActive(RMS_NORM_KERNEL) and use the tfjs ops elsewhere (model/blocks.ts's rmsNorm does).
 */
import * as tf from '@tensorflow/tfjs';
import { RMS_NORM_GRAD_KERNEL, RMS_NORM_KERNEL } from '../kernels/wasm_fused.ts';

/** x / √(mean(x²) + ε) · g on x [N, D], g [D] through the fused wasm kernels (wasm backend only). */
export function rmsNormFused(x: tf.Tensor2D, g: tf.Tensor1D, eps: number): tf.Tensor2D {
  const op = tf.customGrad(((xi: tf.Tensor2D, gi: tf.Tensor1D, save: (ts: tf.Tensor[]) => void) => {
    const [y, r] = tf.engine().runKernel(RMS_NORM_KERNEL, { x: xi, g: gi }, { eps }) as tf.Tensor[];
    save([xi, gi, r]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, [xs, gs, rs]: tf.Tensor[]) => tf.engine().runKernel(RMS_NORM_GRAD_KERNEL, { dy, x: xs, g: gs, r: rs }, {}) as tf.Tensor[],
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x, g) as tf.Tensor2D;
}
