/**
 * Three ways to move tokens to experts and back (the strategies), behind one call:
 *
 *   gather   xs = x[tokenOfRow] (compact, grouped by expert) → one matMul pair per expert on its row block
 *            → y = Σ w · ys by segment sum                                   (Megatron's permute dispatcher)
 *   onehot   xp = Dᵀ·x with a one-hot dispatch matrix D [T, E·C], y = (D ⊙ w)·ys          (GShard's einsums)
 *   padded   xp [E, C, D] by a row permutation (padding rows are zero) → one batched GEMM per projection
 *            → y[t] = Σ_j w[t, j] · ys[slot(t, j)]                     (sort-based permutation, padded experts)
 *
 * 'auto' picks the fastest measured on the backend (bench/speed.ts): gather on wasm / cpu, padded on
 * webgpu. Expert-choice routing and an expert executor (expert parallelism) always use gather.
 */
import * as tf from '@tensorflow/tfjs';
import { combine, dispatch, type DispatchPlan } from './plan.ts';
import { runExperts, type Activation, type ExpertWeights } from './experts.ts';
import { paddedExpertFfn } from './expert_ffn.ts';
import { gatherRows } from '../ops/gather_rows.ts';
import { permute, rowMaps, unpermute } from './permute.ts';

export type Dispatcher = 'gather' | 'onehot' | 'padded';
export type DispatcherChoice = Dispatcher | 'auto';
export const DISPATCHERS: readonly DispatcherChoice[] = ['auto', 'gather', 'onehot', 'padded'];

/** The dispatcher to run: 'auto' → padded on webgpu, gather elsewhere; gather when the others cannot apply. */
export function resolveDispatcher(choice: DispatcherChoice | undefined, backend: string, tokenChoice: boolean, hasExecutor: boolean): Dispatcher {
  const c = choice ?? 'auto';
  if (!DISPATCHERS.includes(c)) throw new Error(`dispatcher: '${String(c)}' is not one of ${DISPATCHERS.join(', ')}`);
  if (!tokenChoice || hasExecutor) return 'gather';
  if (c === 'auto') return backend === 'webgpu' ? 'padded' : 'gather';
  return c;
}

/** Rows per expert block for the padded layouts: the capacity when fixed, else the largest load rounded up to 4 (vec4 rows). */
export function paddedRows(received: ArrayLike<number>, capacity: number | null): number {
  if (capacity !== null) return capacity;
  let max = 1;
  for (let e = 0; e < received.length; e++) max = Math.max(max, received[e]);
  return Math.ceil(max / 4) * 4;
}

/** y [T, D] = Σ_j w[t, j] · expert_{e(t, j)}(x[t]) by the chosen dispatcher; padded plans for onehot / padded. */
export function moeExperts(d: Dispatcher, x: tf.Tensor2D, weights: tf.Tensor, plan: DispatchPlan, topK: number, experts: ExpertWeights, activation: Activation): tf.Tensor2D {
  if (d !== 'gather' && !plan.padded) throw new Error(`moeExperts: dispatcher '${d}' needs a padded plan (every expert block C rows)`);
  return tf.tidy(() => {
    const D = x.shape[1];
    const E = plan.numExperts;
    const N = plan.tokenOfRow.length;
    const C = N / E;
    switch (d) {
      case 'gather': {
        const xs = dispatch(x, plan); // [N, D]
        return combine(runExperts(xs, experts, plan.tokensPerExpert, activation), weights, plan); // [T, D]
      }
      case 'padded': {
        const maps = rowMaps(plan, topK);
        const xp = permute(x, maps).reshape([E, C, D]) as tf.Tensor3D; // [E, C, D]
        const ys = paddedExpertFfn(xp, experts, activation).reshape([N, D]) as tf.Tensor2D; // [E·C, D]
        return unpermute(ys, weights, maps); // [T, D]
      }
      case 'onehot': {
        const T = plan.numTokens;
        const A = plan.numAssignments;
        const dispatchT = new Float32Array(N * T); // [E·C, T] = Dᵀ, built on the host: routing is a constant
        const combineMask = new Float32Array(T * N); // [T, E·C] = D
        for (let n = 0; n < N; n++) {
          if (plan.assignmentOfRow[n] >= A) continue; // padding row
          const t = plan.tokenOfRow[n];
          dispatchT[n * T + t] = 1;
          combineMask[t * N + n] = 1;
        }
        const xp = tf.matMul(tf.tensor2d(dispatchT, [N, T]), x); // [E·C, D]
        const ys = paddedExpertFfn(xp.reshape([E, C, D]) as tf.Tensor3D, experts, activation).reshape([N, D]); // [E·C, D]
        const wPadded = tf.concat([tf.reshape(weights, [A, 1]), tf.zeros([1, 1])]) as tf.Tensor2D; // padding rows → weight 0
        const rowW = gatherRows(wPadded, tf.tensor1d(plan.assignmentOfRow, 'int32')).reshape([1, N]); // [1, E·C]
        return tf.matMul(tf.mul(tf.tensor2d(combineMask, [T, N]), rowW), ys) as tf.Tensor2D; // [T, D]
      }
    }
  });
}
