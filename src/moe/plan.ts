/**
 * The dispatch plan: plain data on the host, built from the routing decisions after capacity. Rows are the
 * kept (token, expert) assignments grouped by expert in expert order; a dispatcher (dispatch/) moves tokens
 * by it and the executor computes on its expert blocks.
 *   tokenOfRow[n]       source token of row n
 *   assignmentOfRow[n]  flat index of its gate weight ([T·k] or [E·C]); numAssignments marks a padding row
 */

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
