/**
 * Unigram entropy: the cross-entropy of the best context-free model (token frequencies) on the same tokens.
 * An LM's validation loss must get below it to have learned anything about context.
 */

/** Per-id counts of tokens, each checked to lie in [0, vocab). */
export function tokenCounts(tokens: Int32Array, vocab: number): Float64Array {
  if (!(tokens instanceof Int32Array)) throw new Error(`tokenCounts: tokens must be an Int32Array, got ${Object.prototype.toString.call(tokens)}`);
  if (!Number.isInteger(vocab) || vocab < 1) throw new Error(`tokenCounts: vocab must be a positive integer, got ${vocab}`);
  const counts = new Float64Array(vocab);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t < 0 || t >= vocab) throw new Error(`tokenCounts: token ${t} at position ${i} is outside [0, ${vocab})`);
    counts[t]++;
  }
  return counts;
}

/** H = −Σ_v p_v ln p_v with p_v = count_v / N (nats per token); bits = H / ln 2. */
export function unigramEntropy(tokens: Int32Array, vocab: number): { nats: number; bits: number } {
  const counts = tokenCounts(tokens, vocab);
  const N = tokens.length;
  if (N === 0) throw new Error('unigramEntropy: tokens is empty');
  let h = 0;
  for (const c of counts) if (c > 0) h -= (c / N) * Math.log(c / N);
  return { nats: h, bits: h / Math.LN2 };
}
