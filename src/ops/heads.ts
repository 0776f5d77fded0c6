/**
 * Attention heads split and merged in one wasm kernel each (src/kernels/wasm_fused.ts), with the RoPE rotation
 * applied on the way: split [B·L, H·hd] → [B, H, L, hd] (rotated by the position's angles), merge the reverse.
 * This replaces reshape + transpose + split + four multiplies + concat (and their gradients). The gradient of a
 * split is a merge with the inverse rotation, and of a merge a split. Wasm only: callers check
 * fusedKernelActive(HEADS_KERNEL) and use the tfjs ops elsewhere (model/blocks.ts does).
 */
import * as tf from '@tensorflow/tfjs';
import { HEADS_KERNEL } from '../kernels/wasm_fused.ts';

/** RoPE's cos and sin tables [L, hd/2] (model/blocks.ts's ropeTables). */
export interface RopeTables { cos: tf.Tensor2D; sin: tf.Tensor2D }

type Direction = 'split' | 'merge';

function heads(x: tf.Tensor, direction: Direction, L: number, H: number, rope: RopeTables | null, sign: number): tf.Tensor {
  const inputs: Record<string, tf.Tensor> = rope ? { x, cos: rope.cos, sin: rope.sin } : { x };
  return tf.engine().runKernel(HEADS_KERNEL, inputs, { direction, seqLen: L, heads: H, sign }) as tf.Tensor;
}

/** heads(x) with gradient heads'(dy) = the opposite direction with the inverse rotation; rope tables get none. */
function headsOp(x: tf.Tensor, direction: Direction, L: number, H: number, rope: RopeTables | null): tf.Tensor {
  const back: Direction = direction === 'split' ? 'merge' : 'split';
  const op = tf.customGrad(((xi: tf.Tensor) => ({
    value: heads(xi, direction, L, H, rope, 1),
    gradFunc: (dy: tf.Tensor) => heads(dy, back, L, H, rope, -1),
  })) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x) as tf.Tensor;
}

/** [B·L, H·hd] → [B, H, L, hd], each head vector rotated by RoPE (rotate-half) when tables are given (wasm only). */
export function splitHeadsFused(x: tf.Tensor2D, L: number, H: number, rope: RopeTables | null): tf.Tensor4D {
  return headsOp(x, 'split', L, H, rope) as tf.Tensor4D;
}

/** [B, H, L, hd] → [B·L, H·hd] (wasm only). */
export function mergeHeadsFused(y: tf.Tensor4D): tf.Tensor2D {
  return headsOp(y, 'merge', y.shape[2], y.shape[1], null) as tf.Tensor2D;
}
