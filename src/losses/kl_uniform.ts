/**
 * KL divergence from the uniform routing distribution to the batch-mean router distribution:
 *   loss = KL(U ‖ P̄) = Σ_i (1/E) · log((1/E) / P̄_i) = −log E − (1/E) Σ_i log P̄_i,  P̄ = mean_t probs[t].
 * Zero iff P̄ is uniform; differentiable in probs. No epsilon: softmax/normalised-sigmoid
 * probabilities are positive, and a P̄_i that underflows to 0 (an expert no token gives any
 * weight) honestly yields +∞.
 */
import * as tf from '@tensorflow/tfjs';
import { checkProbs, checkStat } from './check.ts';

/** loss = −log E − (1/E) Σ_i log P̄_i = KL(U ‖ P̄) for P̄ [E] the (aggregated) mean router probabilities. */
export function klUniformFromStats(meanProbs: tf.Tensor1D): tf.Scalar {
  const E = checkStat(meanProbs, 'meanProbs', null, 'klUniformFromStats');
  return tf.tidy(() => tf.sub(tf.neg(tf.mean(tf.log(meanProbs))), Math.log(E)) as tf.Scalar);
}

/** loss = KL(U ‖ P̄) = Σ_i (1/E) · log((1/E) / P̄_i), P̄ = mean over tokens of probs [T, E]. */
export function klUniformLoss(probs: tf.Tensor2D): tf.Scalar {
  checkProbs(probs, 'klUniformLoss');
  return tf.tidy(() => klUniformFromStats(tf.mean(probs, 0) as tf.Tensor1D)); // P̄ [E]
}

/**
 * The balance "loss" of seed article 000 (MindSpore LoadBalancedGate), as a plain-number metric:
 *   q = softmax(counts),  metric = (1/E) · Σ_i (1/E) · (log(1/E) − log(q_i + 1e-8)).
 * The seed counts each expert's top-k hits in the batch, takes a softmax of the raw counts,
 * and calls nn.KLDivLoss(reduction='batchmean')(log(q + 1e-8), uniform); 'batchmean' divides
 * the sum by input.shape[0], which for the 1-D [E] input is E, hence the leading 1/E.
 * We drop the seed's balance_loss_weight (0.01) factor: weights belong to the trainer.
 * It carries no gradient (counts come from top-k), so despite the article it cannot train the
 * gate; and a softmax of raw counts saturates (counts 128 vs 96 already give q ≈ one-hot) and
 * changes with batch size, so it is a coarse imbalance indicator only.
 */
export function klUniformCountMetric(counts: number[]): number {
  const E = counts.length;
  if (E < 1) throw new Error('klUniformCountMetric: counts must be non-empty, got []');
  counts.forEach((c, i) => {
    if (!Number.isFinite(c)) throw new Error(`klUniformCountMetric: counts[${i}] = ${c} is not finite`);
  });
  const max = Math.max(...counts);
  const ex = counts.map((c) => Math.exp(c - max)); // shifted softmax, float64
  const z = ex.reduce((a, b) => a + b, 0);
  let sum = 0;
  for (const e of ex) sum += (1 / E) * (Math.log(1 / E) - Math.log(e / z + 1e-8));
  return sum / E;
}
