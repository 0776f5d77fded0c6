/**
 * Device-level balance loss (DeepSeek-V2 §2.3.2): balances the load of device groups of experts
 * rather than of single experts, so expert parallelism stays balanced while experts inside a
 * device may specialise:
 *   loss = Σ_d f'_d · P'_d,  f'_d = (1/|E_d|) Σ_{i∈E_d} f_i,  P'_d = Σ_{i∈E_d} P_i,
 * with f_i = E · count_i/(T·k) (DeepSeek's normalisation: 1 per expert at balance) and P_i the mean
 * router probability. Equals 1 under perfect balance, for any group sizes.
 */
import * as tf from '@tensorflow/tfjs';
import { checkIndices, checkProbs, checkStat } from './check.ts';
import { oneHotCounts, stopGradient } from './switch.ts';

/** Checks expertToGroup has length E, integer ids ≥ 0 and no empty group; returns the group sizes. */
export function checkExpertToGroup(expertToGroup: number[], E: number, who: string): number[] {
  if (!Array.isArray(expertToGroup) || expertToGroup.length !== E) {
    throw new Error(`${who}: expertToGroup must have one group id per expert (${E}), got length ${expertToGroup?.length}`);
  }
  expertToGroup.forEach((g, i) => {
    if (!Number.isInteger(g) || g < 0) throw new Error(`${who}: expertToGroup[${i}] = ${g} is not a group id (integer ≥ 0)`);
  });
  const D = Math.max(...expertToGroup) + 1;
  const sizes = new Array<number>(D).fill(0);
  for (const g of expertToGroup) sizes[g]++;
  const empty = sizes.indexOf(0);
  if (empty >= 0) throw new Error(`${who}: group ${empty} of 0..${D - 1} has no experts in expertToGroup`);
  return sizes;
}

/** Σ_d f'_d · P'_d with f [E] the assignment shares count_i/(T·k) and P [E] the mean router probabilities. */
export function groupAuxFromStats(f: tf.Tensor1D, P: tf.Tensor1D, expertToGroup: number[]): tf.Scalar {
  const who = 'groupAuxFromStats';
  const E = checkStat(f, 'f', null, who);
  checkStat(P, 'P', E, who);
  const sizes = checkExpertToGroup(expertToGroup, E, who);
  return tf.tidy(() => groupAux(stopGradient(f), P, expertToGroup, sizes));
}

/** loss = Σ_d f'_d · P'_d (DeepSeek-V2 device balance); 1 under perfect balance. */
export function groupAuxLoss(probs: tf.Tensor2D, indices: tf.Tensor2D, expertToGroup: number[]): tf.Scalar {
  const who = 'groupAuxLoss';
  const [T, E] = checkProbs(probs, who); // E comes from probs: expertToGroup must cover it
  const k = checkIndices(indices, T, E, who);
  const sizes = checkExpertToGroup(expertToGroup, E, who);
  return tf.tidy(() => {
    const f = tf.div(oneHotCounts(indices, E), T * k) as tf.Tensor1D; // [E] shares
    const P = tf.mean(probs, 0) as tf.Tensor1D; // [E]
    return groupAux(f, P, expertToGroup, sizes);
  });
}

/** The shared arithmetic: group sums through a constant [E, D] membership matrix. */
function groupAux(f: tf.Tensor1D, P: tf.Tensor1D, expertToGroup: number[], sizes: number[]): tf.Scalar {
  const E = expertToGroup.length;
  const D = sizes.length;
  const member = tf.cast(tf.oneHot(tf.tensor1d(expertToGroup, 'int32'), D), 'float32'); // [E, D]
  const fGroup = tf.div(tf.matMul(tf.reshape(tf.mul(f, E), [1, E]), member), tf.tensor2d(sizes, [1, D])); // [1, D] f'
  const PGroup = tf.matMul(tf.reshape(P, [1, E]), member); // [1, D] P'
  return tf.sum(tf.mul(fGroup, PGroup)) as tf.Scalar;
}
