/**
 * Batches for next-token prediction (random windows for training, fixed windows for validation) and the
 * seed-000 synthetic regression task (standard-normal inputs and targets, MSE).
 */
import { Rng } from '../rng.ts';

/** inputs and targets are [B·L] row-major; targets[b, t] = tokens[start_b + t + 1] = inputs[b, t + 1]. */
export interface TokenBatch {
  inputs: Int32Array; // [B·L]
  targets: Int32Array; // [B·L]
}

/** Synthetic regression data: x and y are [T·dim] row-major, entries N(0, 1). */
export interface SyntheticBatch {
  inputs: Float32Array; // [T·dim]
  targets: Float32Array; // [T·dim]
}

function checkWindow(tokens: Int32Array, batchSize: number, seqLen: number, fn: string): void {
  if (!(tokens instanceof Int32Array)) throw new Error(`${fn}: tokens must be an Int32Array, got ${Object.prototype.toString.call(tokens)}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`${fn}: batchSize must be a positive integer, got ${batchSize}`);
  if (!Number.isInteger(seqLen) || seqLen < 1) throw new Error(`${fn}: seqLen must be a positive integer, got ${seqLen}`);
  if (tokens.length < seqLen + 1) {
    throw new Error(`${fn}: ${tokens.length} tokens are too few for one window of seqLen ${seqLen} (need ≥ ${seqLen + 1})`);
  }
}

/** Copies window b (tokens[s .. s + L], L + 1 ids) into row b of inputs and targets. */
function fill(out: TokenBatch, tokens: Int32Array, b: number, s: number, L: number): void {
  out.inputs.set(tokens.subarray(s, s + L), b * L);
  out.targets.set(tokens.subarray(s + 1, s + L + 1), b * L);
}

/** B random windows: start_b = rng.int(N − L), one draw per row, so the batch is fixed by the rng state. */
export function sampleBatch(tokens: Int32Array, batchSize: number, seqLen: number, rng: Rng): TokenBatch {
  checkWindow(tokens, batchSize, seqLen, 'sampleBatch');
  const out = { inputs: new Int32Array(batchSize * seqLen), targets: new Int32Array(batchSize * seqLen) };
  // N − L starts (0 … N − L − 1) keep the last target inside the array.
  for (let b = 0; b < batchSize; b++) fill(out, tokens, b, rng.int(tokens.length - seqLen), seqLen);
  return out;
}

/** Start of fixed window i of W: round(i · (N − L − 1) / (W − 1)), evenly spread from the first token to the last. */
export function evalWindowStart(i: number, windows: number, numTokens: number, seqLen: number): number {
  return windows === 1 ? 0 : Math.round((i * (numTokens - seqLen - 1)) / (windows - 1));
}

/**
 * count batches of B fixed windows (W = B·count, evenly spaced over the tokens, the same for every run), so
 * validation loss is comparable across runs and steps. Windows overlap when W·L exceeds the tokens.
 */
export function evalBatches(tokens: Int32Array, batchSize: number, seqLen: number, count: number): TokenBatch[] {
  checkWindow(tokens, batchSize, seqLen, 'evalBatches');
  if (!Number.isInteger(count) || count < 1) throw new Error(`evalBatches: count must be a positive integer, got ${count}`);
  const W = batchSize * count;
  const out: TokenBatch[] = [];
  for (let c = 0; c < count; c++) {
    const batch = { inputs: new Int32Array(batchSize * seqLen), targets: new Int32Array(batchSize * seqLen) };
    for (let b = 0; b < batchSize; b++) fill(batch, tokens, b, evalWindowStart(c * batchSize + b, W, tokens.length, seqLen), seqLen);
    out.push(batch);
  }
  return out;
}

function checkSynthetic(T: number, dim: number, fn: string): void {
  if (!Number.isInteger(T) || T < 1) throw new Error(`${fn}: T must be a positive integer, got ${T}`);
  if (!Number.isInteger(dim) || dim < 1) throw new Error(`${fn}: dim must be a positive integer, got ${dim}`);
}

/** Seed 000's task: inputs then targets, T·dim draws each from rng.normal() (a fresh batch every call). */
export function syntheticBatch(rng: Rng, T: number, dim: number): SyntheticBatch {
  checkSynthetic(T, dim, 'syntheticBatch');
  const inputs = rng.normals(T * dim);
  const targets = rng.normals(T * dim);
  return { inputs, targets };
}

/** Seed 000's fixed dataset: syntheticBatch(new Rng(seed), T, dim), the same arrays for a given seed. */
export function syntheticDataset(seed: number, T: number, dim: number): SyntheticBatch {
  if (!Number.isInteger(seed)) throw new Error(`syntheticDataset: seed must be an integer, got ${seed}`);
  checkSynthetic(T, dim, 'syntheticDataset');
  return syntheticBatch(new Rng(seed), T, dim);
}

/** A batch of seed 000's regression task: T rows of dim inputs and targets. */
export interface VectorBatch { kind: 'vectors'; inputs: Float32Array; targets: Float32Array; T: number; D: number }

/**
 * Seed 000's data for a config's shape: one fixed training set (the model must fit it) from seed + 1 and a
 * validation set from seed + 2, T = batch_size · seq_len rows each.
 */
export function regressionData(cfg: { seed: number; batch_size: number; seq_len: number; dim: number }): { tokensPerBatch: number; next: () => VectorBatch; validation: () => VectorBatch[] } {
  const T = cfg.batch_size * cfg.seq_len;
  const vec = (d: SyntheticBatch): VectorBatch => ({ kind: 'vectors', inputs: d.inputs, targets: d.targets, T, D: cfg.dim });
  const train = vec(syntheticDataset(cfg.seed + 1, T, cfg.dim));
  const val = vec(syntheticDataset(cfg.seed + 2, T, cfg.dim));
  return { tokensPerBatch: T, next: () => train, validation: () => [val] };
}
