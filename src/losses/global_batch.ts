/**
 * Global-batch balance losses under gradient accumulation: the loss is formed from statistics summed
 * over ALL micro-batches (counts and mean probabilities), as if the optimizer step were one big batch
 * (Qiu et al. 2025, "Demystifying global-batch load balancing"; Megatron's global_aux_loss).
 *
 * With L(P) the loss as a function of the global mean probabilities P = Σ_m s_m·P_m (s_m = token share
 * of micro-batch m) and g = ∇L(P) at the global value, micro-batch m contributes
 *     ℓ_m = s_m·(L(P) − g·P) + s_m·g·P_m,
 * so Σ_m ℓ_m = L(P) (the value) and Σ_m ∇ℓ_m = g·∇P (the exact gradient of the big-batch loss).
 */
import * as tf from '@tensorflow/tfjs';
import { cvSquaredFromStats } from './cv_squared.ts';
import { groupAuxFromStats } from './group.ts';
import { klUniformFromStats } from './kl_uniform.ts';
import { switchLossFromStats } from './switch.ts';

/** Balance statistics summed over every micro-batch of one optimizer step, for one MoE layer. */
export interface GlobalBalanceStats {
  /** [E] router choices per expert over all micro-batches (before capacity). */
  counts: Float32Array;
  /** [E] mean router probability over all tokens of the step. */
  meanProbs: Float32Array;
  /** tokens in the whole step. */
  tokens: number;
  /** this micro-batch's share of those tokens, s_m. */
  tokenShare: number;
}

export type GlobalAuxName = 'switch' | 'kl' | 'cv2' | 'group';
export const GLOBAL_AUX: readonly string[] = ['switch', 'kl', 'cv2', 'group'];

/** L(P) with the global counts fixed, for the losses that are functions of (counts, P). */
function lossOfP(name: GlobalAuxName, P: tf.Tensor1D, g: GlobalBalanceStats, expertToGroup?: number[]): tf.Scalar {
  const total = g.counts.reduce((a, b) => a + b, 0);
  const f = tf.tensor1d(Array.from(g.counts, (c) => c / total));
  switch (name) {
    case 'switch': return switchLossFromStats(f, P);
    case 'kl': return klUniformFromStats(P);
    case 'cv2': return cvSquaredFromStats(tf.mul(P, g.tokens) as tf.Tensor1D, tf.tensor1d(g.counts));
    case 'group': return groupAuxFromStats(f, P, expertToGroup!);
  }
}

/** ℓ_m = s_m·(L(P) − g·P) + s_m·g·P_m: this micro-batch's part of the global-batch loss (see module doc). */
export function globalBatchAux(name: GlobalAuxName, microMeanProbs: tf.Tensor1D, g: GlobalBalanceStats, expertToGroup?: number[]): tf.Scalar {
  const [value, grad] = tf.tidy(() => {
    const P = tf.tensor1d(g.meanProbs);
    const vg = tf.valueAndGrad((p: tf.Tensor) => lossOfP(name, p as tf.Tensor1D, g, expertToGroup))(P);
    const offset = tf.sub(vg.value, tf.sum(tf.mul(vg.grad, P)));
    return [offset, vg.grad];
  });
  const out = tf.mul(g.tokenShare, tf.add(value, tf.sum(tf.mul(grad, microMeanProbs)))) as tf.Scalar;
  tf.dispose([value, grad]);
  return out;
}
