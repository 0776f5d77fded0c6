/**
 * Dispatch and combine (Megatron-Core's token dispatcher, on one device): tokens are permuted into rows
 * grouped by expert, experts compute on contiguous row blocks, and outputs are scattered back, weighted.
 *
 *   xs[n]  = x[tokenOfRow[n]]                                  dispatch   [N, D]
 *   y[t]   = Σ_{n : tokenOfRow[n] = t} w[assignmentOfRow[n]] · ys[n]    combine    [T, D]
 *
 * Dropped assignments have no row, so they contribute zero (the residual path carries the token).
 */
import * as tf from '@tensorflow/tfjs';
import { gatherRows } from '../ops/gather_rows.ts';
import { scatterRows } from '../ops/scatter_rows.ts';

/** The routing map: where each dispatched row comes from and which gate weight it carries. */
export interface DispatchPlan {
  numTokens: number;
  numExperts: number;
  /** [N] source token of each row; rows grouped by expert in expert order. */
  tokenOfRow: Int32Array;
  /** [N] flat index into the gate weights ([T·k] or [E·C]); `numAssignments` marks a padding row. */
  assignmentOfRow: Int32Array;
  /** [E] rows per expert (padding rows included). */
  tokensPerExpert: number[];
  /** size of the flat gate-weight vector. */
  numAssignments: number;
  /** true when some rows are padding (fixed-shape 'pad' policy). */
  padded: boolean;
}

/**
 * Builds the plan for token-choice routing: a stable counting sort of kept assignments by expert.
 * `padTo` (the capacity) pads every expert's block to exactly that many rows.
 */
export function planTokenChoice(
  indices: Int32Array, keep: Uint8Array | null, numTokens: number, topK: number, numExperts: number, padTo?: number,
): DispatchPlan {
  const A = numTokens * topK;
  if (indices.length !== A) throw new Error(`planTokenChoice: indices has ${indices.length} entries, expected ${A}`);
  const counts = new Array<number>(numExperts).fill(0);
  for (let a = 0; a < A; a++) if (!keep || keep[a]) counts[indices[a]]++;
  const sizes = padTo === undefined ? counts : counts.map((c) => {
    if (c > padTo) throw new Error(`planTokenChoice: expert holds ${c} rows, above the pad size ${padTo}`);
    return padTo;
  });
  const offsets = new Int32Array(numExperts);
  for (let e = 1; e < numExperts; e++) offsets[e] = offsets[e - 1] + sizes[e - 1];
  const N = sizes.reduce((s, c) => s + c, 0);
  const tokenOfRow = new Int32Array(N);
  const assignmentOfRow = new Int32Array(N).fill(A); // padding rows point past the last weight
  const fill = Int32Array.from(offsets);
  // Token order within each expert: stable, so results do not depend on sort internals.
  for (let t = 0; t < numTokens; t++) {
    for (let j = 0; j < topK; j++) {
      const a = t * topK + j;
      if (keep && !keep[a]) continue;
      const n = fill[indices[a]]++;
      tokenOfRow[n] = t;
      assignmentOfRow[n] = a;
    }
  }
  return { numTokens, numExperts, tokenOfRow, assignmentOfRow, tokensPerExpert: sizes, numAssignments: A, padded: padTo !== undefined };
}

/** Plan for expert-choice routing: tokenIndices [E·C] row-major; expert e's rows are its C picks. */
export function planExpertChoice(tokenIndices: Int32Array, numTokens: number, numExperts: number): DispatchPlan {
  const C = tokenIndices.length / numExperts;
  if (!Number.isInteger(C)) throw new Error(`planExpertChoice: ${tokenIndices.length} picks do not split over ${numExperts} experts`);
  for (const t of tokenIndices) if (!(t >= 0 && t < numTokens)) throw new Error(`planExpertChoice: token index ${t} outside 0..${numTokens - 1}`);
  return {
    numTokens, numExperts,
    tokenOfRow: Int32Array.from(tokenIndices),
    assignmentOfRow: Int32Array.from({ length: tokenIndices.length }, (_, n) => n),
    tokensPerExpert: new Array<number>(numExperts).fill(C),
    numAssignments: tokenIndices.length,
    padded: false,
  };
}

/** xs[n] = x[tokenOfRow[n]]: x [T, D] → xs [N, D], grouped by expert. */
export function dispatch(x: tf.Tensor2D, plan: DispatchPlan): tf.Tensor2D {
  if (x.shape[0] !== plan.numTokens) throw new Error(`dispatch: x has ${x.shape[0]} tokens, plan expects ${plan.numTokens}`);
  return tf.tidy(() => gatherRows(x, tf.tensor1d(plan.tokenOfRow, 'int32')));
}

/** y[t] = Σ_{rows n of token t} weights[assignmentOfRow[n]] · ys[n]: ys [N, D], weights [T,k] or [E,C] → y [T, D]. */
export function combine(ys: tf.Tensor2D, weights: tf.Tensor, plan: DispatchPlan): tf.Tensor2D {
  if (ys.shape[0] !== plan.tokenOfRow.length) throw new Error(`combine: ys has ${ys.shape[0]} rows, plan has ${plan.tokenOfRow.length}`);
  if (weights.size !== plan.numAssignments) throw new Error(`combine: weights has ${weights.size} entries, plan expects ${plan.numAssignments}`);
  return tf.tidy(() => {
    let w = tf.reshape(weights, [plan.numAssignments, 1]) as tf.Tensor2D; // [A, 1]
    if (plan.padded) w = tf.concat([w, tf.zeros([1, 1])]) as tf.Tensor2D; // padding rows get weight 0
    const rowWeights = gatherRows(w, tf.tensor1d(plan.assignmentOfRow, 'int32')); // [N, 1]
    return scatterRows(tf.mul(ys, rowWeights) as tf.Tensor2D, tf.tensor1d(plan.tokenOfRow, 'int32'), plan.numTokens);
  });
}
