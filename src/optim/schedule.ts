/**
 * Learning-rate schedule: linear warmup, then cosine / linear decay to lr·minLrRatio at `steps`, or constant.
 * With W = warmupSteps, S = steps, lr_min = lr·minLrRatio and step s counted from 0 (the update about to run):
 *   s < W:          lr·(s + 1)/W                        (first update lr/W, update W − 1 gets the full lr)
 *   s ≥ W, p = clamp((s − W)/(S − W), 0, 1):
 *     cosine:       lr_min + (lr − lr_min)·½(1 + cos πp)  (p = ½ gives (lr + lr_min)/2)
 *     linear:       lr − (lr − lr_min)·p
 *     constant:     lr
 * When S ≤ W there is nothing to decay over and the rate stays lr after warmup.
 */

export type ScheduleKind = 'cosine' | 'constant' | 'linear';

export interface ScheduleConfig {
  lr: number;
  warmupSteps: number;
  steps: number;
  schedule: ScheduleKind;
  minLrRatio: number;
}

/** The learning rate for 0-based step `step` under cfg (formula in the module comment). */
export function learningRate(step: number, cfg: ScheduleConfig): number {
  const { lr, warmupSteps: W, steps: S, schedule, minLrRatio } = cfg;
  if (!Number.isInteger(step) || step < 0) throw new Error(`learningRate: step must be an integer ≥ 0, got ${step}`);
  if (!Number.isFinite(lr) || lr <= 0) throw new Error(`learningRate: lr must be a finite number > 0, got ${lr}`);
  if (!Number.isInteger(W) || W < 0) throw new Error(`learningRate: warmupSteps must be an integer ≥ 0, got ${W}`);
  if (!Number.isInteger(S) || S < 1) throw new Error(`learningRate: steps must be an integer ≥ 1, got ${S}`);
  if (!Number.isFinite(minLrRatio) || minLrRatio < 0 || minLrRatio > 1) {
    throw new Error(`learningRate: minLrRatio must be in [0, 1], got ${minLrRatio}`);
  }
  if (schedule !== 'cosine' && schedule !== 'linear' && schedule !== 'constant') {
    throw new Error(`learningRate: schedule must be 'cosine', 'linear' or 'constant', got ${JSON.stringify(schedule)}`);
  }
  if (step < W) return (lr * (step + 1)) / W;
  const lrMin = lr * minLrRatio;
  const p = S > W ? Math.min(1, (step - W) / (S - W)) : 0;
  switch (schedule) {
    case 'cosine':
      return lrMin + (lr - lrMin) * 0.5 * (1 + Math.cos(Math.PI * p));
    case 'linear':
      return lr - (lr - lrMin) * p;
    case 'constant':
      return lr;
  }
}
