/**
 * Routing model for expected traffic: which k experts a token picks.
 *
 * Each token picks a set S of k distinct experts with P(S) ∝ Π_{e∈S} w_e (conditional Poisson sampling: independent
 * Bernoulli draws conditioned on exactly k successes). The weights w are fitted so that each expert's inclusion
 * probability π_e = P(e ∈ S) equals k·f_e, f_e being its share of the routed load (water-filled at π_e ≤ 1).
 * Uniform loads give equal w, i.e. a uniform k-subset: every hit probability is the exact hypergeometric one.
 * Expected values of products over the chosen set are ratios of elementary symmetric polynomials:
 *   E[Π_{e∈S} c_e] = e_k(w ⊙ c) / e_k(w).
 */

/** A fitted top-k model: π [E], w [E] (0 for never-picked), forced experts (π = 1) and the free k' = k − |forced|. */
export interface TopKModel {
  k: number;
  pi: Float64Array;
  w: Float64Array;
  forced: Uint8Array;
  kFree: number;
  /** e_{k'}(w) over free experts. */
  ek: number;
}

/** Inclusion targets: π_e = min(1, λ·f_e) with Σ π_e = k (water-filling); zero-load experts share any remainder. */
export function inclusionTargets(f: ArrayLike<number>, k: number): Float64Array {
  const E = f.length;
  if (!Number.isInteger(k) || k < 1 || k > E) throw new Error(`top_k ${k} must be an integer in [1, ${E}]`);
  const pi = new Float64Array(E);
  const capped = new Uint8Array(E);
  const positive = Array.from(f).filter((x) => x > 0).length;
  if (positive <= k) {
    // Every expert with load is always picked; the rest of the k picks fall uniformly on the zero-load ones.
    for (let e = 0; e < E; e++) pi[e] = f[e] > 0 ? 1 : (k - positive) / (E - positive);
    return pi;
  }
  for (;;) {
    let rest = 0, nCapped = 0;
    for (let e = 0; e < E; e++) if (capped[e]) nCapped++; else rest += f[e];
    const lambda = (k - nCapped) / rest;
    let changed = false;
    for (let e = 0; e < E; e++) {
      if (capped[e]) { pi[e] = 1; continue; }
      pi[e] = lambda * f[e];
      if (pi[e] >= 1) { capped[e] = 1; changed = true; }
    }
    if (!changed) return pi;
  }
}

/** e_j(w ⊙ c) for j = 0..k over experts with mask[e] = 0 (forced excluded); c defaults to 1. */
export function elementarySymmetric(w: Float64Array, k: number, skip?: Uint8Array, c?: ArrayLike<number>): Float64Array {
  const e = new Float64Array(k + 1);
  e[0] = 1;
  for (let i = 0; i < w.length; i++) {
    if (skip?.[i]) continue;
    const x = c ? w[i] * c[i] : w[i];
    if (x === 0) continue;
    for (let j = k; j >= 1; j--) e[j] += x * e[j - 1];
  }
  return e;
}

/** CPS inclusion probabilities of the free experts under weights w: π_e = w_e·e_{k'−1}(w∖e) / e_{k'}(w). */
function cpsInclusion(w: Float64Array, k: number, skip: Uint8Array): Float64Array {
  const E = w.length;
  const pre: Float64Array[] = [new Float64Array(k + 1)];
  pre[0][0] = 1;
  for (let i = 0; i < E; i++) {
    const p = Float64Array.from(pre[i]);
    if (!skip[i] && w[i] > 0) for (let j = k; j >= 1; j--) p[j] += w[i] * p[j - 1];
    pre.push(p);
  }
  let suf = new Float64Array(k + 1);
  suf[0] = 1;
  const pi = new Float64Array(E);
  for (let i = E - 1; i >= 0; i--) {
    if (!skip[i] && w[i] > 0) {
      let s = 0;
      for (let a = 0; a <= k - 1; a++) s += pre[i][a] * suf[k - 1 - a];
      pi[i] = (w[i] * s) / pre[E][k];
      const next = Float64Array.from(suf);
      for (let j = k; j >= 1; j--) next[j] += w[i] * suf[j - 1];
      suf = next;
    }
  }
  return pi;
}

/** Fits the top-k model to load shares f [E] (any non-negative scale): π_e = k·f_e/Σf water-filled. */
export function fitTopK(f: ArrayLike<number>, k: number): TopKModel {
  const E = f.length;
  let total = 0;
  for (let e = 0; e < E; e++) total += f[e];
  if (!(total > 0)) throw new Error('routing load is all zero: nothing to route');
  const target = inclusionTargets(Array.from(f, (x) => x / total), k);
  const forced = new Uint8Array(E);
  let kFree = k;
  for (let e = 0; e < E; e++) if (target[e] >= 1 - 1e-12) { forced[e] = 1; kFree--; }
  const w = new Float64Array(E);
  // Equal free targets: w = 1 exactly, so hit probabilities are exact binomial-coefficient ratios.
  const free = Array.from(target).filter((t, e) => !forced[e] && t > 0);
  const uniform = free.every((t) => t === free[0]);
  for (let e = 0; e < E; e++) if (!forced[e] && target[e] > 0) w[e] = uniform ? 1 : target[e] / (1 - target[e]);
  if (!uniform && kFree > 0) {
    for (let it = 0; it < 1000; it++) {
      const pi = cpsInclusion(w, kFree, forced);
      let err = 0, max = 0;
      for (let e = 0; e < E; e++) {
        if (forced[e] || w[e] === 0) continue;
        err = Math.max(err, Math.abs(pi[e] - target[e]));
        w[e] *= target[e] / pi[e];
        max = Math.max(max, w[e]);
      }
      for (let e = 0; e < E; e++) w[e] /= max; // keep e_k in range
      if (err < 1e-13) break;
    }
  }
  const ek = kFree > 0 ? elementarySymmetric(w, kFree, forced)[kFree] : 1;
  const pi = Float64Array.from(target, (t, e) => (forced[e] ? 1 : t));
  return { k, pi, w, forced, kFree, ek };
}

/**
 * P(a token sends nothing to a target) when a chosen expert e sends there with probability ρ_e (the share of its
 * replicas on the target): E[Π_{e∈S}(1 − ρ_e)] = Π_{forced}(1 − ρ_e) · e_{k'}(w ⊙ (1 − ρ)) / e_{k'}(w).
 * `experts` lists the experts with ρ > 0 (others have ρ = 0); one free expert short-cuts to 1 − π_e·ρ_e.
 */
export function missProbability(m: TopKModel, experts: number[], rho: number[]): number {
  let forcedPart = 1;
  const free: number[] = [];
  const freeRho: number[] = [];
  experts.forEach((e, i) => {
    if (m.forced[e]) forcedPart *= 1 - rho[i];
    else if (m.w[e] > 0) { free.push(e); freeRho.push(rho[i]); }
  });
  if (free.length === 0 || m.kFree === 0) return forcedPart;
  if (free.length === 1) return forcedPart * (1 - m.pi[free[0]] * freeRho[0]);
  const c = new Float64Array(m.w.length).fill(1);
  free.forEach((e, i) => { c[e] = 1 - freeRho[i]; });
  return forcedPart * (elementarySymmetric(m.w, m.kFree, m.forced, c)[m.kFree] / m.ek);
}

/** The model for a relabelled expert set: expert e takes the base model's entry rankOf[e] (same e_k). */
export function permuteModel(m: TopKModel, rankOf: ArrayLike<number>): TopKModel {
  const pick = <A extends Float64Array | Uint8Array>(a: A): A => {
    const out = new (a.constructor as { new (n: number): A })(a.length);
    for (let e = 0; e < a.length; e++) out[e] = a[rankOf[e]];
    return out;
  };
  return { k: m.k, pi: pick(m.pi), w: pick(m.w), forced: pick(m.forced), kFree: m.kFree, ek: m.ek };
}
