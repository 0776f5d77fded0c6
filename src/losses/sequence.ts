/**
 * Sequence-wise balance loss (DeepSeek-V3 §2.1.2): the Switch loss computed inside each sequence
 * and averaged over sequences, so no single sequence may pile onto a few experts:
 *   loss = (1/S) Σ_s E · Σ_i f_{s,i} · P_{s,i},  f_{s,i} = count_{s,i}/(L·k),  P_{s,i} = mean_{t∈s} probs[t,i],
 * with L = seqLen tokens per sequence and S = T/L (DeepSeek writes f_i = E/(k·L)·count_i, the same).
 * Tokens are the rows of probs in order, sequence after sequence. 1 at perfect per-sequence balance.
 */
import * as tf from '@tensorflow/tfjs';
import { checkRouting } from './check.ts';
import { stopGradient } from './switch.ts';

/** loss = (1/S) Σ_s E · Σ_i f_{s,i} · P_{s,i} from per-sequence shares f [S, E] and mean probs P [S, E]. */
export function sequenceAuxFromStats(f: tf.Tensor2D, P: tf.Tensor2D): tf.Scalar {
  const who = 'sequenceAuxFromStats';
  if (f.rank !== 2 || f.dtype !== 'float32') throw new Error(`${who}: f must be float32 [S, E], got ${f.dtype} [${f.shape}]`);
  if (P.rank !== 2 || P.dtype !== 'float32') throw new Error(`${who}: P must be float32 [S, E], got ${P.dtype} [${P.shape}]`);
  if (f.shape[0] !== P.shape[0] || f.shape[1] !== P.shape[1] || f.size === 0) {
    throw new Error(`${who}: f [${f.shape}] and P [${P.shape}] must have the same non-empty shape`);
  }
  const [S, E] = f.shape;
  return tf.tidy(() => tf.mul(tf.sum(tf.mul(stopGradient(f), P)), E / S) as tf.Scalar);
}

/** loss = mean over the T/seqLen sequences of E · Σ_i f_i · P_i computed within each sequence. */
export function sequenceAuxLoss(
  probs: tf.Tensor2D, indices: tf.Tensor2D, numExperts: number, seqLen: number,
): tf.Scalar {
  const who = 'sequenceAuxLoss';
  const { T, E, k } = checkRouting(probs, indices, numExperts, who);
  if (!Number.isInteger(seqLen) || seqLen < 1) throw new Error(`${who}: seqLen must be an integer ≥ 1, got ${seqLen}`);
  if (T % seqLen !== 0) throw new Error(`${who}: T = ${T} tokens is not a multiple of seqLen = ${seqLen}`);
  const S = T / seqLen;
  return tf.tidy(() => {
    // float before the sum: tfjs-webgpu's int32 transpose inside a 3-D reduction emits invalid WGSL
    const hot = tf.cast(tf.oneHot(tf.reshape(indices, [S, seqLen * k]), E), 'float32'); // [S, L·k, E]
    const f = tf.div(tf.sum(hot, 1), seqLen * k); // [S, E]
    const P = tf.mean(tf.reshape(probs, [S, seqLen, E]), 1); // [S, E]
    return tf.mul(tf.sum(tf.mul(f, P)), E / S) as tf.Scalar;
  });
}
