/**
 * Traffic of group-limited top-k routing counted on sampled tokens, the way DeepEP's benchmarks draw their routing
 * (DeepSeek-V3's node-limited routing): scores s_{t,e} = |N(0,1)| + 1, a token keeps the `groups` nodes with the
 * highest max score and picks its top-k experts inside them (groups = nodes: plain top-k). Experts sit E/G per GPU,
 * in order. Sources are alike (scores do not depend on them), so one source's T tokens give
 *   λ_j = (1/T) Σ_t |S_t ∩ experts(j)|,   q_j = (1/T) Σ_t [S_t ∩ experts(j) ≠ ∅],   h_m = (1/T) Σ_t [S_t ∩ experts(m) ≠ ∅]
 * Seeded, so a figure is the same on every run (Monte-Carlo error ≈ 1/√T of q and h).
 */
import { Rng } from '../rng.ts';
import type { LayerTraffic } from './traffic.ts';

export interface GroupLimitedSpec {
  experts: number;
  gpus: number;
  nodes: number;
  topK: number;
  /** nodes a token may reach (DeepSeek-V3: 4); ≥ nodes means plain top-k. */
  groups: number;
  /** sampled tokens. */
  tokens: number;
  seed: number;
}

/** λ, q, h of group-limited top-k routing over `tokens` sampled tokens (header). */
export function sampledGroupLimitedTraffic(s: GroupLimitedSpec): LayerTraffic {
  const { experts: E, gpus: G, nodes: N, topK: k, tokens: T } = s;
  if (E % G !== 0 || G % N !== 0) throw new Error(`sampled traffic: ${E} experts over ${G} GPUs over ${N} nodes do not divide evenly`);
  const groups = Math.min(s.groups, N);
  if (k > (E / N) * groups) throw new Error(`sampled traffic: top-${k} does not fit in ${groups} groups of ${E / N} experts`);
  const perGpu = E / G, perNode = E / N;
  const rng = new Rng(s.seed);
  const lambda = new Float64Array(G), q = new Float64Array(G), h = new Float64Array(N);
  const score = new Float64Array(E);
  const nodeMax = new Float64Array(N);
  const allowed = new Uint8Array(N);
  const hitGpu = new Uint8Array(G), hitNode = new Uint8Array(N);
  const taken = new Uint8Array(E);
  const nodes = Array.from({ length: N }, (_, m) => m);
  for (let t = 0; t < T; t++) {
    nodeMax.fill(0);
    for (let e = 0; e < E; e++) {
      score[e] = Math.abs(rng.normal()) + 1;
      const m = Math.floor(e / perNode);
      if (score[e] > nodeMax[m]) nodeMax[m] = score[e];
    }
    allowed.fill(0);
    nodes.sort((a, b) => nodeMax[b] - nodeMax[a]);
    for (let i = 0; i < groups; i++) allowed[nodes[i]] = 1;
    hitGpu.fill(0);
    hitNode.fill(0);
    taken.fill(0);
    for (let i = 0; i < k; i++) { // k passes of argmax: cheaper than a sort for k ≪ E
      let best = -1;
      for (let e = 0; e < E; e++) if (!taken[e] && allowed[Math.floor(e / perNode)] && (best < 0 || score[e] > score[best])) best = e;
      taken[best] = 1;
      const j = Math.floor(best / perGpu);
      lambda[j]++;
      hitGpu[j] = 1;
      hitNode[Math.floor(best / perNode)] = 1;
    }
    for (let j = 0; j < G; j++) q[j] += hitGpu[j];
    for (let m = 0; m < N; m++) h[m] += hitNode[m];
  }
  for (let j = 0; j < G; j++) { lambda[j] /= T; q[j] /= T; }
  for (let m = 0; m < N; m++) h[m] /= T;
  return { lambda, q, h };
}
