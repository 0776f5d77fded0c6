/**
 * Sinkhorn's balanced selection on the host, from logits already read back: the same log-space iteration as
 * sinkhorn.ts (u = −logsumexp_e(K + v), v = log(T/E) − logsumexp_t(K + u), stop when every row sum is within
 * tol of 1) in float64, with a real early stop. The training step reads each MoE layer's routing ahead of its
 * forward anyway; doing the loop here instead of as 30 device ops per iteration (on every backend, twice per
 * layer) takes a step from ≈ 67,000 kernels to ≈ 2,600 at small-lm's shape.
 */

/** log Σ exp over `n` values of `f(i)`, stable (max subtracted). */
function logSumExp(n: number, f: (i: number) => number): number {
  let m = -Infinity;
  for (let i = 0; i < n; i++) m = Math.max(m, f(i));
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(f(i) - m);
  return m + Math.log(s);
}

/** log P of the balanced matrix, P = diag(e^u)·exp(K)·diag(e^v) with rows summing to 1 and columns to T/E (rows within tol). */
export function sinkhornLogHost(logK: ArrayLike<number>, T: number, E: number, iterations: number, tol: number): Float64Array {
  const u = new Float64Array(T);
  let v: Float64Array = new Float64Array(E);
  const logColTarget = Math.log(T / E);
  const rowStep = (vv: Float64Array): void => { for (let t = 0; t < T; t++) u[t] = -logSumExp(E, (e) => logK[t * E + e] + vv[e]); };
  const colStep = (): Float64Array => {
    const out = new Float64Array(E);
    for (let e = 0; e < E; e++) out[e] = logColTarget - logSumExp(T, (t) => logK[t * E + e] + u[t]);
    return out;
  };
  for (let i = 0; i < iterations; i++) {
    rowStep(v);
    v = colStep();
    if (tol <= 0) continue;
    let worst = 0; // after the column step the columns are exact; the rows drift
    for (let t = 0; t < T; t++) worst = Math.max(worst, Math.abs(Math.exp(logSumExp(E, (e) => logK[t * E + e] + u[t] + v[e])) - 1));
    if (worst <= tol) break;
  }
  rowStep(v); // rows exactly 1, then the columns re-scaled to T/E, as sinkhorn.ts ends
  const logP = new Float64Array(T * E);
  for (let t = 0; t < T; t++) for (let e = 0; e < E; e++) logP[t * E + e] = logK[t * E + e] + u[t];
  for (let e = 0; e < E; e++) {
    const c = logColTarget - logSumExp(T, (t) => logP[t * E + e]);
    for (let t = 0; t < T; t++) logP[t * E + e] += c;
  }
  return logP;
}

/** The k largest entries of each row of scores [T, E], best first (ties: the lower index first, as tf.topk). */
export function topKRowsHost(scores: ArrayLike<number>, T: number, E: number, k: number): Int32Array {
  const out = new Int32Array(T * k);
  const order = Array.from({ length: E }, (_, e) => e);
  for (let t = 0; t < T; t++) {
    order.sort((a, b) => scores[t * E + b] - scores[t * E + a] || a - b);
    for (let j = 0; j < k; j++) out[t * k + j] = order[j];
  }
  return out;
}
