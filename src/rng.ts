/**
 * Seeded pseudo-random numbers (splitmix32 → xorshift-style mixing), with state that a checkpoint can save.
 * tfjs's own random ops are seeded from this, so a run is deterministic given `seed`.
 */
export class Rng {
  private s: number;
  private spare: number | null = null;

  constructor(seed: number) {
    this.s = seed >>> 0;
  }

  /** Uniform in [0, 1). splitmix32. */
  next(): number {
    this.s = (this.s + 0x9e3779b9) >>> 0;
    let z = this.s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    return z / 4294967296;
  }

  /** Standard normal N(0, 1), Box–Muller. */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** A fresh 31-bit seed for a tfjs random op. */
  seed(): number {
    return Math.floor(this.next() * 0x7fffffff);
  }

  /** Array of n normals scaled by std. */
  normals(n: number, std = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal() * std;
    return out;
  }

  getState(): { s: number; spare: number | null } {
    return { s: this.s, spare: this.spare };
  }

  setState(st: { s: number; spare: number | null }): void {
    this.s = st.s >>> 0;
    this.spare = st.spare;
  }
}
