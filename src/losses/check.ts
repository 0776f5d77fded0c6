/**
 * Entry checks shared by the balance losses: shapes, dtypes and index ranges, with errors that
 * name the bad value (a wrong shape otherwise surfaces as a broadcast error deep inside tfjs).
 */
import * as tf from '@tensorflow/tfjs';

/** Checks probs is a float [T, E] with T ≥ 1, E ≥ 1; returns [T, E]. */
export function checkProbs(probs: tf.Tensor, who: string, name = 'probs'): [number, number] {
  if (probs.rank !== 2) throw new Error(`${who}: ${name} must be [T, E], got shape [${probs.shape}]`);
  if (probs.dtype !== 'float32') throw new Error(`${who}: ${name} must be float32, got ${probs.dtype}`);
  const [T, E] = probs.shape;
  if (T < 1 || E < 1) throw new Error(`${who}: ${name} must be non-empty, got shape [${probs.shape}]`);
  return [T, E];
}

/**
 * Checks int32 indices [T, k] with 1 ≤ k ≤ E and every value in 0..E-1 (tf.oneHot silently drops
 * out-of-range ids, which would corrupt the counts); returns k. The values are read back where the backend
 * reads synchronously; WebGPU cannot, and there the MoE layer's capacity step (applyCapacity), which
 * reads the same indices for its host plan before any loss uses them, checks the range instead.
 */
export function checkIndices(indices: tf.Tensor, T: number | null, E: number, who: string): number {
  if (indices.rank !== 2) throw new Error(`${who}: indices must be [T, k], got shape [${indices.shape}]`);
  if (indices.dtype !== 'int32') throw new Error(`${who}: indices must be int32, got ${indices.dtype}`);
  const [rows, k] = indices.shape;
  if (T !== null && rows !== T) throw new Error(`${who}: indices has ${rows} rows, probs has T = ${T}`);
  if (rows < 1) throw new Error(`${who}: indices must be non-empty, got shape [${indices.shape}]`);
  if (k < 1 || k > E) throw new Error(`${who}: indices must have k in 1..${E} columns, got k = ${k}`);
  if (tf.getBackend() === 'webgpu') return k;
  const v = indices.dataSync();
  for (let n = 0; n < v.length; n++) {
    if (v[n] < 0 || v[n] >= E) {
      throw new Error(`${who}: indices[${Math.floor(n / k)}, ${n % k}] = ${v[n]} is not an expert id in 0..${E - 1}`);
    }
  }
  return k;
}

/** Checks numExperts is an integer ≥ 1 and, when probs' E is given, equals it. */
export function checkNumExperts(numExperts: number, E: number | null, who: string): void {
  if (!Number.isInteger(numExperts) || numExperts < 1) {
    throw new Error(`${who}: numExperts must be an integer ≥ 1, got ${numExperts}`);
  }
  if (E !== null && numExperts !== E) throw new Error(`${who}: numExperts = ${numExperts} but probs has E = ${E}`);
}

/** Validates (probs [T,E], indices [T,k], numExperts = E); returns { T, E, k }. */
export function checkRouting(
  probs: tf.Tensor, indices: tf.Tensor, numExperts: number, who: string,
): { T: number; E: number; k: number } {
  const [T, E] = checkProbs(probs, who);
  checkNumExperts(numExperts, E, who);
  const k = checkIndices(indices, T, E, who);
  return { T, E, k };
}

/** Checks a float per-expert statistic is [E] (and E matches `E` when given); returns E. */
export function checkStat(x: tf.Tensor, name: string, E: number | null, who: string): number {
  if (x.rank !== 1) throw new Error(`${who}: ${name} must be [E], got shape [${x.shape}]`);
  if (x.dtype !== 'float32') throw new Error(`${who}: ${name} must be float32, got ${x.dtype}`);
  if (x.shape[0] < 1) throw new Error(`${who}: ${name} must be non-empty, got shape [${x.shape}]`);
  if (E !== null && x.shape[0] !== E) throw new Error(`${who}: ${name} has ${x.shape[0]} experts, expected ${E}`);
  return x.shape[0];
}
