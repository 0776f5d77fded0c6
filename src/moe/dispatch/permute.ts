/**
 * permute / unpermute (Megatron-Core's names) on the row kernels of src/kernels/row_kernels.ts:
 *
 *   permute:    xs[n] = x[rows[n]]                               (rows[n] = −1 → zero row, e.g. padding)
 *   unpermute:  y[t]  = Σ_j w[t, j] · ys[slots[t, j]]             (slots[t, j] = −1 → dropped)
 *
 * and their gradients, also on the row kernels (no scatter-add, no atomics):
 *   permute:    dx[t]      = Σ_j dxs[slots[t, j]]
 *   unpermute:  dys[n]     = w[slotOfRow[n]] · dy[rows[n]]       dw[t, j] = ⟨dy[t], ys[slots[t, j]]⟩
 * Works on every backend that has the row kernels (cpu, wasm, webgpu).
 */
import * as tf from '@tensorflow/tfjs';
import type { DispatchPlan } from '../plan.ts';
import { GATHER_ROWS, ROW_DOT, SUM_ROWS } from '../../kernels/row_kernels.ts';
import '../../kernels/webgpu_rows.ts';

/** The plan's maps in the row kernels' form (token-choice plans: assignment a = t·k + j). */
export interface RowMaps {
  numTokens: number;
  topK: number;
  /** [N] source token of each row; −1 for a padding row. */
  rows: Int32Array;
  /** [T·k] row holding assignment (t, j); −1 when dropped. */
  slots: Int32Array;
  /** [N] assignment index t·k + j of each row; −1 for a padding row. */
  slotOfRow: Int32Array;
}

/** Builds the row maps of a token-choice plan; throws for other plans (expert choice has no fixed k). */
export function rowMaps(plan: DispatchPlan, topK: number): RowMaps {
  const T = plan.numTokens;
  if (plan.numAssignments !== T * topK) {
    throw new Error(`rowMaps: plan has ${plan.numAssignments} assignments, a token-choice plan has T·k = ${T * topK}`);
  }
  const N = plan.tokenOfRow.length;
  const rows = new Int32Array(N);
  const slotOfRow = new Int32Array(N);
  const slots = new Int32Array(T * topK).fill(-1);
  for (let n = 0; n < N; n++) {
    const a = plan.assignmentOfRow[n];
    const pad = a >= plan.numAssignments;
    rows[n] = pad ? -1 : plan.tokenOfRow[n];
    slotOfRow[n] = pad ? -1 : a;
    if (!pad) slots[a] = n;
  }
  return { numTokens: T, topK, rows, slots, slotOfRow };
}

const run = (name: string, inputs: tf.NamedTensorMap) => tf.engine().runKernel(name, inputs) as tf.Tensor;

/** out[n] = scale[n] · x[rows[n]] (forward only). */
export function gatherRowsScaled(x: tf.Tensor2D, rows: tf.Tensor1D, scale?: tf.Tensor1D): tf.Tensor2D {
  // tf.fill runs on the device; tf.ones builds the array on the host and uploads it
  return tf.tidy(() => run(GATHER_ROWS, { x, rows, scale: scale ?? tf.fill([rows.shape[0]], 1) }) as tf.Tensor2D);
}

/** out[t] = Σ_s w[t, s] · ys[slots[t, s]] (forward only). */
export function sumRows(ys: tf.Tensor2D, slots: tf.Tensor2D, w?: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => run(SUM_ROWS, { ys, slots, w: w ?? tf.fill(slots.shape, 1) }) as tf.Tensor2D);
}

/** out[t, s] = ⟨a[t], b[slots[t, s]]⟩ (forward only). */
export function rowDot(a: tf.Tensor2D, b: tf.Tensor2D, slots: tf.Tensor2D): tf.Tensor2D {
  return run(ROW_DOT, { a, b, slots }) as tf.Tensor2D;
}

type GradFn = (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[];
/** tf.customGrad over float inputs followed by int32 map inputs; maps are saved (kept alive) and get zero gradients. */
function withMaps(numFloat: number, forward: (ins: tf.Tensor[]) => tf.Tensor, backward: (dy: tf.Tensor, ins: tf.Tensor[]) => tf.Tensor[]) {
  const f = (...args: unknown[]) => {
    const save = args.pop() as (ts: tf.Tensor[]) => void;
    const ins = args as tf.Tensor[];
    save(ins);
    const gradFunc: GradFn = (dy, saved) => [...backward(dy, saved), ...saved.slice(numFloat).map((m) => tf.fill(m.shape, 0))];
    return { value: forward(ins), gradFunc };
  };
  return tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (...ins: tf.Tensor[]) => tf.Tensor;
}

/** xs = permute(x): x [T, D] → xs [N, D] with xs[n] = x[rows[n]]; differentiable in x. */
export function permute(x: tf.Tensor2D, maps: RowMaps): tf.Tensor2D {
  if (x.rank !== 2 || x.shape[0] !== maps.numTokens) throw new Error(`permute: x must be [${maps.numTokens}, D], got [${x.shape}]`);
  const { numTokens: T, topK: k } = maps;
  return tf.tidy(() => withMaps(1,
    ([xx, rows]) => gatherRowsScaled(xx as tf.Tensor2D, rows as tf.Tensor1D),
    (dy, [, , slots]) => [sumRows(dy as tf.Tensor2D, slots as tf.Tensor2D)],
  )(x, tf.tensor1d(maps.rows, 'int32'), tf.tensor2d(maps.slots, [T, k], 'int32')) as tf.Tensor2D);
}

/** y = unpermute(ys, w): y[t] = Σ_j w[t, j] · ys[slots[t, j]] for ys [N, D], w [T, k]; differentiable in ys and w. */
export function unpermute(ys: tf.Tensor2D, weights: tf.Tensor, maps: RowMaps): tf.Tensor2D {
  const { numTokens: T, topK: k } = maps;
  if (ys.rank !== 2 || ys.shape[0] !== maps.rows.length) throw new Error(`unpermute: ys must have ${maps.rows.length} rows, got [${ys.shape}]`);
  if (weights.size !== T * k) throw new Error(`unpermute: weights must hold T·k = ${T * k} entries, got [${weights.shape}]`);
  return tf.tidy(() => withMaps(2,
    ([y, w, , slots]) => sumRows(y as tf.Tensor2D, slots as tf.Tensor2D, w as tf.Tensor2D),
    (dy, [y, w, rows, slots, slotOfRow]) => {
      const N = rows.shape[0];
      // the weight each row was combined with: w[slotOfRow[n]] (0 for padding rows)
      const rowW = gatherRowsScaled(tf.reshape(w, [T * k, 1]) as tf.Tensor2D, slotOfRow as tf.Tensor1D).reshape([N]) as tf.Tensor1D;
      return [
        gatherRowsScaled(dy as tf.Tensor2D, rows as tf.Tensor1D, rowW),
        rowDot(dy as tf.Tensor2D, y as tf.Tensor2D, slots as tf.Tensor2D),
      ];
    },
  )(ys, tf.reshape(weights, [T, k]), tf.tensor1d(maps.rows, 'int32'), tf.tensor2d(maps.slots, [T, k], 'int32'), tf.tensor1d(maps.slotOfRow, 'int32')) as tf.Tensor2D);
}
