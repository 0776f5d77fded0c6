/**
 * Where experts live: expert e's replicas sit on ranks expertToRanks[e] (EPLB's log2phy, by rank).
 * A rank holds "slots" (one per replica it hosts), in expert order. An expert with R replicas
 * splits its rows evenly: replica j takes rows [⌊j·n/R⌋, ⌊(j+1)·n/R⌋) of the expert's block.
 * Ranks are grouped into nodes contiguously: rank r is on node ⌊r / (epSize/nodes)⌋.
 */

export interface Placement {
  /** [E] ranks holding a replica of expert e (no duplicates; the first is the primary). */
  expertToRanks: number[][];
}

/** One expert replica hosted on a rank. */
export interface Slot {
  expert: number;
  /** index of this replica among the expert's replicas (0 = primary). */
  replica: number;
  /** replicas of the expert. */
  replicas: number;
}

/** Megatron's default: experts split into contiguous blocks of E/N per rank. */
export function defaultPlacement(numExperts: number, epSize: number): Placement {
  if (!Number.isInteger(epSize) || epSize < 1) throw new Error(`placement: epSize must be a positive integer, got ${epSize}`);
  if (!Number.isInteger(numExperts) || numExperts % epSize !== 0) {
    throw new Error(`placement: numExperts = ${numExperts} is not divisible by epSize = ${epSize}; pass a placement map`);
  }
  const per = numExperts / epSize;
  return { expertToRanks: Array.from({ length: numExperts }, (_, e) => [Math.floor(e / per)]) };
}

/** Checks a placement: E entries, ranks in 0..epSize−1, no rank twice for one expert, every rank used. */
export function checkPlacement(p: Placement, numExperts: number, epSize: number): void {
  const m = p?.expertToRanks;
  if (!Array.isArray(m) || m.length !== numExperts) {
    throw new Error(`placement: expertToRanks must list ranks for each of ${numExperts} experts, got length ${m?.length}`);
  }
  const used = new Array<boolean>(epSize).fill(false);
  m.forEach((ranks, e) => {
    if (!Array.isArray(ranks) || ranks.length === 0) throw new Error(`placement: expert ${e} has no rank (got ${JSON.stringify(ranks)})`);
    for (const r of ranks) {
      if (!Number.isInteger(r) || r < 0 || r >= epSize) throw new Error(`placement: expert ${e} is on rank ${r}, outside 0..${epSize - 1}`);
      used[r] = true;
    }
    if (new Set(ranks).size !== ranks.length) throw new Error(`placement: expert ${e} lists a rank twice: ${JSON.stringify(ranks)}`);
  });
  const idle = used.indexOf(false);
  if (idle >= 0) throw new Error(`placement: rank ${idle} holds no expert`);
}

/** Placement from the planner's phy2log row (slot s on rank ⌊s / slotsPerRank⌋ holds expert phy2log[s]). */
export function placementFromPhy2Log(phy2log: ArrayLike<number>, numExperts: number, epSize: number): Placement {
  if (phy2log.length % epSize !== 0) throw new Error(`placement: ${phy2log.length} slots do not split over ${epSize} ranks`);
  const per = phy2log.length / epSize;
  const m: number[][] = Array.from({ length: numExperts }, () => []);
  for (let s = 0; s < phy2log.length; s++) {
    const e = phy2log[s];
    if (!Number.isInteger(e) || e < 0 || e >= numExperts) throw new Error(`placement: slot ${s} holds expert ${e}, outside 0..${numExperts - 1}`);
    const r = Math.floor(s / per);
    if (!m[e].includes(r)) m[e].push(r); // two replicas of one expert on one rank would compute the same rows twice
  }
  checkPlacement({ expertToRanks: m }, numExperts, epSize);
  return { expertToRanks: m };
}

/** [E] rank of each expert's primary replica: the device groups for groupAuxLoss's expertToGroup. */
export function expertToRank(p: Placement): number[] {
  return p.expertToRanks.map((ranks) => ranks[0]);
}

/** [epSize] slots per rank, in expert order. */
export function rankSlots(p: Placement, epSize: number): Slot[][] {
  const out: Slot[][] = Array.from({ length: epSize }, () => []);
  p.expertToRanks.forEach((ranks, expert) => {
    ranks.forEach((r, replica) => out[r].push({ expert, replica, replicas: ranks.length }));
  });
  return out;
}

/** Rows [lo, hi) of an expert's block of n rows that replica j of R computes. */
export function replicaRange(n: number, j: number, R: number): [number, number] {
  return [Math.floor((j * n) / R), Math.floor(((j + 1) * n) / R)];
}

/** Node of rank r with ranks grouped contiguously: ⌊r / (epSize/nodes)⌋. */
export function nodeOf(rank: number, epSize: number, nodes: number): number {
  return Math.floor(rank / (epSize / nodes));
}

/** Checks that nodes divides epSize. */
export function checkNodes(nodes: number, epSize: number): void {
  if (!Number.isInteger(nodes) || nodes < 1 || epSize % nodes !== 0) {
    throw new Error(`parallel: nodes must be a positive divisor of epSize = ${epSize}, got ${nodes}`);
  }
}
