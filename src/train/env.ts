/**
 * What the training step needs from outside the tensor math: data, checkpoint storage and, for expert
 * parallelism, the worker threads. The step (step.ts) imports no Node module so that the browser and the
 * WebGPU path can run it; the run (run.ts) supplies these from files and threads, a browser from memory.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Config } from '../config/schema.ts';
import type { EpRankTiming } from '../metrics/jsonl.ts';
import type { ExpertExecutor } from '../moe/executors.ts';
import type { MoELayer } from '../moe/layer.ts';
import type { AdamWState } from '../optim/adamw.ts';
import type { Rng } from '../rng.ts';
import type { Tokenizer } from '../data/tokenizer.ts';
import type { ExpertArrays } from '../parallel/protocol.ts';
import type { ExpertOptimizerState } from '../parallel/stacking.ts';
import type { RemoteExperts } from './controllers/types.ts';

/** One micro-batch: token windows (moe_llama) or regression vectors (moe_mlp). */
export type Batch =
  | { kind: 'tokens'; inputs: Int32Array; targets: Int32Array; B: number; L: number }
  | { kind: 'vectors'; inputs: Float32Array; targets: Float32Array; T: number; D: number };

/** Where the step's micro-batches come from. */
export interface DataSource {
  vocab: number;
  tokenizer: Tokenizer | null;
  /** a training micro-batch (draws from rng). */
  next(rng: Rng): Batch;
  /** the fixed validation batches. */
  validation(): Batch[];
  /** tokens in one micro-batch. */
  tokensPerBatch: number;
}

/** Everything besides tensors that a resumed run needs to continue bit for bit. */
export interface TrainState {
  /** optimizer steps completed (the next step to run). */
  step: number;
  rng: Record<string, unknown>;
  controllers: unknown[];
  nanStreak: number;
  skippedSteps: number;
  /** the model-shaping config fields, checked against the model on load. */
  shape: Record<string, unknown>;
  extra?: Record<string, unknown>;
}

/** A checkpoint read back: parameters and AdamW moments by checkpoint name, and the training state. */
export interface Checkpoint {
  dir: string;
  params: Record<string, Float32Array>;
  optimizer: AdamWState;
  state: TrainState;
}

/** Checkpoint storage of one run (run.ts: RUN/checkpoints/ on disk). */
export interface CheckpointStore {
  /**
   * The newest checkpoint, checked against the model it goes into: tensor names and shapes (`expectedShapes`:
   * parameters and buffers; `trainableShapes`: those with optimizer moments) and the model-shaping fields.
   * Throws when there is none.
   */
  loadNewest(expectedShapes: Record<string, number[]>, trainableShapes: Record<string, number[]>, shape: Record<string, unknown>): Checkpoint;
  /** Writes one checkpoint whole (or nothing), keeps the newest `keep`; resolves to where it went (reads with `await data()`). */
  save(params: Record<string, tf.Variable>, optimizer: AdamWState, paramShapes: Record<string, number[]>, state: TrainState, keep: number): Promise<string>;
}

/**
 * The routed experts under expert parallelism (parallel.ep_size > 1): their weights, gradients and AdamW
 * live elsewhere (worker threads in Node). The step runs each MoE layer's experts through `executor(l)`.
 */
export interface ExpertParallelBridge extends RemoteExperts {
  executor(layer: number): ExpertExecutor;
  /** Σ over the experts' gradients of g² (for global-norm clipping together with the main thread's). */
  globalGradNormSq(): number;
  scaleGrads(s: number): void;
  /** one AdamW update of the experts at learning rate lr; experts in frozen[l] (per MoE layer) are held. */
  step(lr: number, frozen?: number[][]): void;
  takeTimings(): EpRankTiming[];
  getWeights(layer: number): Promise<ExpertArrays>;
  setWeights(w: ExpertArrays, layer: number): Promise<void>;
  getOptimizerState(): Promise<ExpertOptimizerState>;
  setOptimizerState(s: ExpertOptimizerState): Promise<void>;
  dispose(): Promise<void>;
}

/** Starts expert parallelism for these MoE layers from their current expert weights (ready when resolved). */
export type StartExpertParallel = (cfg: Config, layers: MoELayer[]) => Promise<ExpertParallelBridge>;

/** The data-parallel ranks as one rank sees them (parallel.dp_size > 1): an all-reduce of host numbers. */
export interface DataParallelPeers {
  /** ranks in all, this one included. */
  size: number;
  /** Σ_r v_r over every rank, added in rank order, so every rank gets the same numbers. Each rank calls it in the same order. */
  allReduce(v: Float64Array): Promise<Float64Array>;
}

/** What a worker rank's share of one step sends back to rank 0 (its gradients lie in the bridge's grads(r)). */
export interface RankResult {
  /** per micro-batch: [loss, aux…, entropy…] as the step's read lays them out. */
  readouts: Float32Array;
  loads: Int32Array[];
  routed: Int32Array[];
  dropped: number[];
  assignments: number[];
}

/** Rank 0's handle on the data-parallel worker ranks 1..size-1, each a full model replica. */
export interface DataParallelBridge extends DataParallelPeers {
  /** shared with every worker: rank 0 writes every parameter and buffer here (flat, in model order), then calls weightsWritten(). */
  weights: Float32Array;
  /** the workers' replicas take `weights` before their next step. */
  weightsWritten(): void;
  /** worker rank r's gradients of the last step (flat, parameters in model order), valid once results() resolved. */
  grads(r: number): Float32Array;
  /** starts step `step` on the workers; shares[r-1] are rank r's micro-batches. */
  start(step: number, shares: Batch[][], poison: boolean): void;
  /** the workers' results of the started step, rank 1 first. */
  results(): Promise<RankResult[]>;
  dispose(): Promise<void>;
}

/** Starts size−1 worker ranks with replicas of cfg's model for a vocabulary of `vocab`, with flat buffers of these sizes (ready when resolved). */
export type StartDataParallel = (cfg: Config, size: number, vocab: number, sizes: { weights: number; grads: number }) => Promise<DataParallelBridge>;

/** What a Trainer is built with. */
export interface TrainerEnv {
  data: DataSource;
  /** absent: save() and restore() throw. */
  checkpoints?: CheckpointStore;
  /** absent: parallel.ep_size > 1 is refused. */
  startExpertParallel?: StartExpertParallel;
  /** absent: parallel.dp_size > 1 is refused and `auto` means 1. */
  startDataParallel?: StartDataParallel;
  /** cores that `parallel.dp_size: auto` may use (absent: 1). */
  cores?: number;
}
