/**
 * Gumbel-softmax gating (Jang et al. 2017; Maddison et al. 2017): y = softmax((logits + g)/τ),
 * g ~ Gumbel(0, 1). The top-k of y is a sample of k experts without replacement from softmax(logits)
 * (Gumbel-top-k, Kool et al. 2019); τ → 0 makes y one-hot, large τ makes it uniform.
 * The trainer owns the noise (gumbelNoise) and the temperature (annealTau), so the router stays pure.
 */
import * as tf from '@tensorflow/tfjs';
import { stopGradient } from '../ops/stop_gradient.ts';
import { takeAlongRows } from '../ops/take_along_rows.ts';
import type { Rng } from '../rng.ts';
import { checkK, topKIndices } from './topk.ts';
import type { TokenChoiceRouting } from './types.ts';

export interface GumbelOptions {
  k: number;
  /** temperature τ > 0. */
  tau: number;
  /** [T, E] Gumbel(0, 1) noise from gumbelNoise (caller-supplied: the router stays deterministic). */
  gumbel: tf.Tensor2D;
  /**
   * renormalise the k picked y to sum 1. Default k > 1: with k = 1 the renormalised weight is the
   * constant 1 and carries no gradient, so k = 1 keeps y at the pick (as Switch keeps p at the pick).
   */
  renormalize?: boolean;
  /**
   * straight-through: the forward weights are the hard selection (1/k on each pick; 1 for k = 1),
   * the backward pass is that of the soft weights: w = hard + (w_soft − stopGradient(w_soft)).
   */
  hard?: boolean;
}

/** Gumbel router: y = softmax((h + g)/τ); indices = topk(y); weights = y at picks (/Σ if renormalised); probs = softmax(h). */
export function routeGumbel(logits: tf.Tensor2D, opts: GumbelOptions): TokenChoiceRouting {
  const { k, tau, gumbel, hard = false } = opts;
  const E = checkK(logits, k, 'routeGumbel');
  const T = logits.shape[0];
  const renormalize = opts.renormalize ?? k > 1;
  if (!Number.isFinite(tau) || tau <= 0) throw new Error(`routeGumbel: tau must be a finite number > 0, got ${tau}`);
  if (gumbel.rank !== 2 || gumbel.shape[0] !== T || gumbel.shape[1] !== E) {
    throw new Error(`routeGumbel: gumbel noise must have shape [${T}, ${E}], got [${gumbel.shape}]`);
  }
  return tf.tidy(() => {
    const y = tf.softmax(tf.div(tf.add(logits, gumbel), tau)) as tf.Tensor2D; // [T, E]
    const indices = topKIndices(stopGradient(y), k); // [T, k] a constant
    let soft = takeAlongRows(y, indices); // [T, k]
    if (renormalize) soft = tf.div(soft, tf.sum(soft, 1, true)) as tf.Tensor2D;
    const weights = hard ? straightThrough(soft, 1 / k) : soft;
    const probs = tf.softmax(logits) as tf.Tensor2D; // [T, E] clean, for the balance losses
    return { kind: 'token-choice' as const, probs, indices, weights, logits };
  });
}

/** hard + (soft − stopGradient(soft)): forward every entry = value exactly, backward = that of soft. */
function straightThrough(soft: tf.Tensor2D, value: number): tf.Tensor2D {
  return tf.add(tf.sub(soft, stopGradient(soft)), value) as tf.Tensor2D;
}

/** Gumbel(0, 1) noise g = −log(−log U), U ~ Uniform(0, 1) from a seeded source; shape [T, E]. */
export function gumbelNoise(shape: [number, number], rng: Pick<Rng, 'next'>): tf.Tensor2D {
  const [T, E] = shape;
  if (!Number.isInteger(T) || !Number.isInteger(E) || T < 1 || E < 1) {
    throw new Error(`gumbelNoise: shape must be two positive integers, got [${shape}]`);
  }
  const out = new Float32Array(T * E);
  for (let i = 0; i < out.length; i++) {
    let u = rng.next();
    while (u <= 0) u = rng.next(); // next() is in [0, 1): U = 0 would give −∞
    out[i] = -Math.log(-Math.log(u));
  }
  return tf.tensor2d(out, [T, E]);
}

export type TauSchedule = 'exponential' | 'linear' | 'cosine';

export interface TauAnnealOptions {
  tauStart: number;
  tauEnd: number;
  /** steps over which τ moves from tauStart to tauEnd; τ = tauEnd afterwards. */
  steps: number;
  schedule: TauSchedule;
}

/**
 * τ at `step`, with progress p = min(step/steps, 1):
 * - exponential: τ = τ0 · (τ1/τ0)^p  (Jang et al.'s τ = max(τ1, τ0·e^{−r t}) with r = ln(τ0/τ1)/steps);
 * - linear:      τ = τ0 + (τ1 − τ0) · p;
 * - cosine:      τ = τ1 + (τ0 − τ1) · (1 + cos(π p)) / 2.
 */
export function annealTau(step: number, opts: TauAnnealOptions): number {
  const { tauStart, tauEnd, steps, schedule } = opts;
  if (!Number.isFinite(tauStart) || tauStart <= 0) throw new Error(`annealTau: tauStart must be > 0, got ${tauStart}`);
  if (!Number.isFinite(tauEnd) || tauEnd <= 0) throw new Error(`annealTau: tauEnd must be > 0, got ${tauEnd}`);
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`annealTau: steps must be an integer ≥ 1, got ${steps}`);
  if (!Number.isFinite(step) || step < 0) throw new Error(`annealTau: step must be a finite number ≥ 0, got ${step}`);
  const p = Math.min(step / steps, 1);
  switch (schedule) {
    case 'exponential':
      return tauStart * Math.pow(tauEnd / tauStart, p);
    case 'linear':
      return tauStart + (tauEnd - tauStart) * p;
    case 'cosine':
      return tauEnd + ((tauStart - tauEnd) * (1 + Math.cos(Math.PI * p))) / 2;
    default:
      throw new Error(`annealTau: schedule must be 'exponential', 'linear' or 'cosine', got '${String(schedule)}'`);
  }
}
