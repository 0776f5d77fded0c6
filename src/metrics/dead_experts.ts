/**
 * Dead ("zombie") experts: experts that received no tokens in each of the last W steps.
 * A collapsed router starves some experts for good; they keep their parameters but never train
 * again, so the trainer reports them and a controller may revive them.
 */

function checkRow(load: ArrayLike<number>, fn: string, E?: number): void {
  if (load === null || typeof load !== 'object' || typeof load.length !== 'number') throw new Error(`${fn}: load must be an array of numbers, got ${String(load)}`);
  if (E !== undefined && load.length !== E) throw new Error(`${fn}: load has ${load.length} experts, expected ${E}`);
  for (let i = 0; i < load.length; i++) {
    const v = load[i];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`${fn}: load[${i}] = ${v} must be a finite number ≥ 0`);
  }
}

function checkWindow(window: number, fn: string): void {
  if (!Number.isInteger(window) || window < 1) throw new Error(`${fn}: window must be a positive integer, got ${window}`);
}

/**
 * dead = { i : load_s[i] = 0 for every s in the last W steps } (ascending expert ids).
 * Fewer than W steps of history → [] (not yet observable, rather than "everyone is dead").
 */
export function deadExperts(history: ArrayLike<ArrayLike<number>>, window: number): number[] {
  checkWindow(window, 'deadExperts');
  if (history.length < window) return [];
  const E = history[0].length;
  const alive = new Array<boolean>(E).fill(false);
  for (let s = history.length - window; s < history.length; s++) {
    checkRow(history[s], `deadExperts (step ${s})`, E);
    for (let i = 0; i < E; i++) if (history[s][i] > 0) alive[i] = true;
  }
  const out: number[] = [];
  for (let i = 0; i < E; i++) if (!alive[i]) out.push(i);
  return out;
}

/** Streaming form of deadExperts: O(E) state (each expert's current run of zero-load steps), no history kept. */
export class DeadExpertTracker {
  readonly numExperts: number;
  readonly window: number;
  private readonly streak: Int32Array;

  constructor(numExperts: number, window: number) {
    if (!Number.isInteger(numExperts) || numExperts < 1) throw new Error(`DeadExpertTracker: numExperts must be a positive integer, got ${numExperts}`);
    checkWindow(window, 'DeadExpertTracker');
    this.numExperts = numExperts;
    this.window = window;
    this.streak = new Int32Array(numExperts);
  }

  /** streak_i ← load_i = 0 ? streak_i + 1 : 0. */
  update(load: ArrayLike<number>): void {
    checkRow(load, 'DeadExpertTracker.update', this.numExperts);
    for (let i = 0; i < this.numExperts; i++) this.streak[i] = load[i] > 0 ? 0 : this.streak[i] + 1;
  }

  /** Experts whose zero-load streak is ≥ window (ascending ids). */
  dead(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.numExperts; i++) if (this.streak[i] >= this.window) out.push(i);
    return out;
  }

  /** Consecutive most recent steps with zero load for expert e. */
  zeroStreak(e: number): number {
    if (!Number.isInteger(e) || e < 0 || e >= this.numExperts) throw new Error(`DeadExpertTracker.zeroStreak: expert must be an integer in 0..${this.numExperts - 1}, got ${e}`);
    return this.streak[e];
  }

  /** Clears expert e's streak (after a revival gives it a fresh start), or every streak. */
  reset(e?: number): void {
    if (e === undefined) {
      this.streak.fill(0);
      return;
    }
    this.zeroStreak(e); // validates e
    this.streak[e] = 0;
  }

  /** The streaks, for a checkpoint (resume must not forget how long an expert has been idle). */
  state(): number[] {
    return Array.from(this.streak);
  }

  /** Restores streaks saved by state(). */
  restore(streaks: ArrayLike<number>): void {
    if (streaks.length !== this.numExperts) throw new Error(`DeadExpertTracker.restore: got ${streaks.length} streaks, expected ${this.numExperts}`);
    for (let i = 0; i < streaks.length; i++) {
      if (!Number.isInteger(streaks[i]) || streaks[i] < 0) throw new Error(`DeadExpertTracker.restore: streak[${i}] = ${streaks[i]} must be an integer ≥ 0`);
    }
    this.streak.set(Array.from(streaks));
  }
}
