/**
 * Token dispatchers: how tokens move to the experts and back. Each is one module and declares its own padding:
 *
 *   gather   xs = x[tokenOfRow] (compact, grouped by expert) → executor.run (row blocks)
 *            → y = Σ w · ys by segment sum                                   (Megatron's permute dispatcher)
 *   padded   xp [E, C, D] by a row permutation (padding rows are zero) → executor.blocks (batched GEMM)
 *            → y[t] = Σ_j w[t, j] · ys[slot(t, j)]                     (sort-based permutation, padded experts)
 *   onehot   xp = Dᵀ·x with a one-hot dispatch matrix D [T, E·C] → executor.blocks, y = (D ⊙ w)·ys (GShard)
 *
 * 'auto' picks the fastest measured on the backend (bench/speed.ts): gather on wasm / cpu, padded on
 * webgpu. Expert-choice routing and executors that run rows only (recompute, expert parallelism) use gather.
 */
import * as tf from '@tensorflow/tfjs';
import { localExperts } from '../executors.ts';
import type { Activation, ExpertWeights } from '../experts.ts';
import type { DispatchPlan } from '../plan.ts';
import { gather } from './gather.ts';
import { onehot } from './onehot.ts';
import { padded } from './padded.ts';
import type { Dispatcher, TokenDispatcher } from './types.ts';

export type { Dispatcher, TokenDispatcher } from './types.ts';

export type DispatcherChoice = Dispatcher | 'auto';
export const DISPATCHERS: readonly DispatcherChoice[] = ['auto', 'gather', 'onehot', 'padded'];

export const DISPATCHER_BY_NAME: Readonly<Record<Dispatcher, TokenDispatcher>> = { gather, padded, onehot };

/**
 * The dispatcher to run: 'auto' → padded on webgpu, gather elsewhere; gather when the others cannot apply
 * (expert-choice routing, or an executor that runs rows only).
 */
export function resolveDispatcher(choice: DispatcherChoice | undefined, backend: string, tokenChoice: boolean, rowsOnly: boolean): Dispatcher {
  const c = choice ?? 'auto';
  if (!DISPATCHERS.includes(c)) throw new Error(`dispatcher: '${String(c)}' is not one of ${DISPATCHERS.join(', ')}`);
  if (!tokenChoice || rowsOnly) return 'gather';
  if (c === 'auto') return backend === 'webgpu' ? 'padded' : 'gather';
  return c;
}

/**
 * Rows per expert block for the padded layouts: the capacity when fixed, else the largest load n rounded up
 * to a size class: a multiple of 4 (vec4 rows) below 32, above it a multiple of 2^(⌊log2 n⌋ − 3) (eight
 * classes per doubling, ≤ 12.5% padding). A dropless load changes every step; tfjs-webgpu keeps freed
 * buffers for reuse by exact size and never frees them, so sizes from a small set are what keeps GPU
 * memory bounded (exact sizes filled 141 GB of an H200 in four steps of configs/gpu-lm.yaml).
 */
export function paddedRows(received: ArrayLike<number>, capacity: number | null): number {
  if (capacity !== null) return capacity;
  let max = 1;
  for (let e = 0; e < received.length; e++) max = Math.max(max, received[e]);
  if (max <= 32) return Math.ceil(max / 4) * 4;
  const step = 2 ** (Math.floor(Math.log2(max)) - 3);
  return Math.ceil(max / step) * step;
}

/** y [T, D] by dispatcher d on this thread's experts (padded plans for onehot / padded). */
export function moeExperts(d: Dispatcher, x: tf.Tensor2D, weights: tf.Tensor, plan: DispatchPlan, topK: number, experts: ExpertWeights, activation: Activation): tf.Tensor2D {
  if (d !== 'gather' && !plan.padded) throw new Error(`moeExperts: dispatcher '${d}' needs a padded plan (every expert block C rows)`);
  if (plan.numAssignments !== plan.numTokens * topK && d !== 'gather') throw new Error(`moeExperts: the plan has ${plan.numAssignments} assignments, not T·k = ${plan.numTokens * topK}`);
  return tf.tidy(() => DISPATCHER_BY_NAME[d].run(x, weights, plan, localExperts(experts, activation)));
}
