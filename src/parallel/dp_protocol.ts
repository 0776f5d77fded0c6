/**
 * The wire between rank 0 (the main thread) and a data-parallel worker rank: structured-clone messages on
 * the worker's port, answered in order. Nothing blocks: both sides run the asynchronous training step.
 */
import type { Config } from '../config/schema.ts';
import type { Batch, RankResult } from '../train/env.ts';

/** What a worker rank starts with (workerData). */
export interface DpWorkerInit {
  cfg: Config;
  rank: number;
  size: number;
  vocab: number;
  /** every parameter and buffer, flat in model order: written by rank 0, read by the workers. */
  weights: SharedArrayBuffer;
  /** this rank's gradients, flat in model order: written by the worker, read by rank 0. */
  grads: SharedArrayBuffer;
}

/** Rank 0 → worker. */
export type DpCommand =
  | { op: 'weights' }
  | { op: 'step'; step: number; batches: Batch[]; poison: boolean }
  | { op: 'reduced'; seq: number; v: Float64Array };

/** Worker → rank 0. */
export type DpReply =
  | { op: 'ready' }
  | { op: 'reduce'; seq: number; v: Float64Array }
  | { op: 'result'; value: RankResult }
  | { op: 'error'; message: string };
