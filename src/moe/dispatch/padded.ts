/**
 * padded: sort-based permutation into padded expert blocks (MegaBlocks' / GShard's padded layout on the row
 * kernels of permute.ts):
 *   xp [E, C, D] = permute(x) (padding rows are zero) → ys = executor.blocks(xp) (one batched GEMM per
 *   projection) → y[t] = Σ_j w[t, j] · ys[slot(t, j)]
 * Needs a padded plan (every expert block C rows) and token-choice routing.
 */
import * as tf from '@tensorflow/tfjs';
import type { TokenDispatcher } from './types.ts';
import { permute, rowMaps, unpermute } from './permute.ts';

export const padded: TokenDispatcher = {
  name: 'padded',
  paddedBlocks: true,
  run: (x, weights, plan, executor) => tf.tidy(() => {
    if (!plan.padded) throw new Error(`dispatcher 'padded' needs a padded plan (every expert block C rows)`);
    if (!executor.blocks) throw new Error(`dispatcher 'padded' needs an executor that runs padded blocks`);
    const D = x.shape[1];
    const E = plan.numExperts;
    const N = plan.tokenOfRow.length;
    const maps = rowMaps(plan, plan.numAssignments / plan.numTokens);
    const xp = permute(x, maps).reshape([E, N / E, D]) as tf.Tensor3D; // [E, C, D]
    const ys = executor.blocks(xp).reshape([N, D]) as tf.Tensor2D; // [E·C, D]
    return unpermute(ys, weights, maps); // [T, D]
  }),
};
