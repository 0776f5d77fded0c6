/**
 * The speed bench's ratio under changing load: with a simulated clock where arm A costs 2 units and arm B
 * 1 unit times a load factor that jumps mid-run, the interleaved ratio is exactly 2; timing all of A and
 * then all of B (what the MoE/dense figure did) reports the load change instead.
 */
import { describe, expect, it } from 'vitest';
import { roundRatio, timeInterleaved } from '../bench/interleave.ts';

/** A fake machine: each call costs base × the load at that moment; the load is 1 for the first `calm` calls, then 4. */
function machine(calm: number) {
  let clock = 0, calls = 0;
  const load = () => (calls < calm ? 1 : 4);
  const step = (base: number) => () => { clock += base * load(); calls++; };
  return { now: () => clock, step, log: [] as string[] };
}

describe('interleaved timing', () => {
  it('alternates the arms within each round, flipping the order every round', async () => {
    const seen: string[] = [];
    await timeInterleaved({ a: () => { seen.push('a'); }, b: () => { seen.push('b'); } }, 3, 1);
    expect(seen.join('')).toBe('abbaabba');
  });
  it('the ratio holds when the load changes mid-run; sequential timing does not', async () => {
    const m = machine(9);
    const t = await timeInterleaved({ moe: m.step(2), dense: m.step(1) }, 9, 1, m.now);
    expect(roundRatio(t.moe, t.dense)).toBe(2);
    // the old way: all MoE runs, then all dense runs, on the same machine
    const s = machine(9);
    const seq = async (f: () => void) => { const ms: number[] = []; for (let i = 0; i < 9; i++) { const t0 = s.now(); f(); ms.push(s.now() - t0); } return ms.sort((p, q) => p - q)[4]; };
    const moe = await seq(s.step(2));
    const dense = await seq(s.step(1));
    expect(moe / dense).toBeCloseTo(0.5, 6); // the load jump lands between the arms: a 4× error
  });
  it('refuses arms of different lengths', () => {
    expect(() => roundRatio({ median_ms: 1, min_ms: 1, runs: 1, ms: [1] }, { median_ms: 1, min_ms: 1, runs: 0, ms: [] })).toThrow(/rounds/);
  });
});
