/**
 * Ratios that hold on a busy machine: the arms of a comparison are timed alternately within each round
 * (A, B, A, B, …; the order flips every round so neither arm always runs first), and a ratio is the median
 * of the per-round ratios. Load that comes and goes then hits both arms of a round alike, where timing
 * all of A and then all of B would put a load change between them.
 */

export interface ArmTiming { median_ms: number; min_ms: number; runs: number; ms: number[] }

const median = (a: number[]) => { const s = [...a].sort((p, q) => p - q); return s[Math.floor(s.length / 2)]; };

/** Times every arm once per round for `rounds` rounds after `warmup` untimed rounds; `now` is the clock (ms). */
export async function timeInterleaved<K extends string>(
  arms: Record<K, () => Promise<void> | void>, rounds: number, warmup = 1, now: () => number = () => performance.now(),
): Promise<Record<K, ArmTiming>> {
  const names = Object.keys(arms) as K[];
  const ms = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<K, number[]>;
  for (let r = 0; r < warmup + rounds; r++) {
    const order = r % 2 === 0 ? names : [...names].reverse();
    for (const n of order) {
      const t0 = now();
      await arms[n]();
      if (r >= warmup) ms[n].push(now() - t0);
    }
  }
  return Object.fromEntries(names.map((n) => [n, { median_ms: +median(ms[n]).toFixed(2), min_ms: +Math.min(...ms[n]).toFixed(2), runs: rounds, ms: ms[n] }])) as Record<K, ArmTiming>;
}

/** Median over rounds of a.ms[r] / b.ms[r] (both timed in the same round). */
export function roundRatio(a: ArmTiming, b: ArmTiming): number {
  if (a.ms.length !== b.ms.length || a.ms.length === 0) throw new Error(`roundRatio: arms have ${a.ms.length} and ${b.ms.length} rounds`);
  return median(a.ms.map((x, r) => x / b.ms[r]));
}
