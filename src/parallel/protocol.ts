/**
 * The wire between the main thread and the expert workers. Control words live in one Int32Array over
 * a SharedArrayBuffer; both sides block in Atomics.wait (the main thread must: tfjs gradients are
 * synchronous) and every wait has a deadline. Commands and small replies are messages read
 * synchronously with receiveMessageOnPort; token rows travel through per-rank shared buffers.
 *
 *   ctrl[0] MAIN_SEQ   bumped by a worker on any progress; the main thread waits on it
 *   ctrl[1] ABORT      set by the main thread after a failure: workers stop waiting
 *   ctrl[2] STOP       set by dispose(): workers leave their loop
 *   per rank r, at rankBase(r):
 *     +0 CMD  command sequence (doorbell, main → worker)    +1 ACK  last command finished
 *     +2 STATUS 0 ok, 1 error (message on the reply port), 2 dead (thread exiting)
 *     +3 READY chunks whose stage-1 rows the main thread wrote   +4 DONE chunks computed
 *     +5+g FWD[g] chunks that gateway g forwarded to r (hierarchical stage 2)
 *   timing (Float64Array, per rank at 4·r): compute ms, comm ms, wait ms (accumulated), done-at (epoch ms)
 */
import type { Activation } from '../moe/experts.ts';
import type { AdamWState } from '../optim/adamw.ts';

export const MAIN_SEQ = 0;
export const ABORT = 1;
export const STOP = 2;
const HEAD = 4;
export const CMD = 0, ACK = 1, STATUS = 2, READY = 3, DONE = 4, FWD = 5;
export const STATUS_OK = 0, STATUS_ERROR = 1, STATUS_DEAD = 2;
export const T_COMPUTE = 0, T_COMM = 1, T_WAIT = 2, T_DONE_AT = 3;

/** Index of rank r's block in ctrl. */
export function rankBase(r: number, epSize: number): number {
  return HEAD + r * (FWD + epSize);
}

/** Words of ctrl for epSize ranks. */
export function ctrlWords(epSize: number): number {
  return rankBase(epSize, epSize);
}

/** Milliseconds since the epoch with sub-ms resolution, comparable across threads. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Blocks until done() is true, waiting on ctrl[index] between checks; throws what fail() returns
 * (a failure seen) or a timeout error built by timeoutError() once `timeoutMs` has passed.
 */
export function waitUntil(
  ctrl: Int32Array, index: number, done: () => boolean, timeoutMs: number,
  fail: () => Error | null, timeoutError: () => Error,
): void {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const seen = Atomics.load(ctrl, index);
    const err = fail();
    if (err) throw err;
    if (done()) return;
    const left = deadline - performance.now();
    if (left <= 0) throw timeoutError();
    Atomics.wait(ctrl, index, seen, Math.min(left, 100)); // slices: a missed wake costs ≤ 100 ms, never a hang
  }
}

/** Flat weights of one expert (row-major [D,H], [H,D], [D,H]). */
export interface ExpertArrays {
  w1: Float32Array;
  w2: Float32Array;
  w3: Float32Array | null;
}

export interface AdamWHyper {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export type FaultKind = 'throw' | 'exit' | 'hang';

/** Per-rank shared buffers, resent whenever one grows. */
export interface Buffers {
  inbox: SharedArrayBuffer[];
  outbox: SharedArrayBuffer[];
  meta: SharedArrayBuffer[];
}

/** Main → worker commands. Each is answered by ACK (and a reply message where it returns a value). */
export type Command =
  | { op: 'init'; dim: number[]; hidden: number[]; activation: Activation; adamw: AdamWHyper; experts: ExpertArrays[][]; slotExperts: number[]; primary: boolean[]; recompute?: boolean }
  | { op: 'fwd'; layer: number; call: number; save: boolean; buffers?: Buffers; timeoutMs: number }
  | { op: 'bwd'; layer: number; call: number; chunks: number; buffers?: Buffers; timeoutMs: number; reduce?: boolean }
  | { op: 'getGrads'; layer: number }
  | { op: 'setGrads'; layer: number; grads: (ExpertArrays | null)[] }
  | { op: 'normSq' }
  | { op: 'scale'; s: number }
  | { op: 'scaleExperts'; layer: number; s: number[] }
  | { op: 'gradStats'; layer: number }
  | { op: 'step'; lr: number; frozen?: number[][] }
  | { op: 'getExpert'; layer: number; expert: number }
  | { op: 'setExpert'; layer: number; expert: number; w: ExpertArrays; noise: ExpertArrays | null; rho: number }
  | { op: 'getWeights'; layer: number }
  | { op: 'setWeights'; layer: number; experts: ExpertArrays[] }
  | { op: 'kept' }
  | { op: 'getOpt' }
  | { op: 'setOpt'; state: AdamWState }
  | { op: 'fault'; kind: FaultKind; on: 'fwd' | 'bwd' };

/** Worker → main replies. */
export type Reply = { ok: true; value: unknown } | { ok: false; error: string };
