/**
 * Router temperature and noise schedules for the trainer's ForwardContext (Gumbel temperature
 * annealing; noisy-gate noise annealing). Pure functions of the step and the config.
 *
 * - Gumbel τ (seed 001: "训练后期可逐步降温" — anneal towards deterministic routing late in training):
 *   annealTau from router/gumbel.ts, τ(0) = tau_start, τ(steps − 1) = tau_end (the config's "temperature
 *   at the last step"), shape router.tau_schedule.
 * - Noisy top-k (Shazeer et al. 2017) noise multiplier: linear decay to 0 over noise_anneal_steps,
 *   noise(t) = noise_scale · max(0, 1 − t / noise_anneal_steps); noise_anneal_steps = 0 keeps noise_scale.
 */
import type { Config } from '../../config/schema.ts';
import { annealTau } from '../../router/gumbel.ts';

function checkStep(step: number, who: string): void {
  if (!Number.isInteger(step) || step < 0) throw new Error(`${who}: step must be an integer ≥ 0, got ${step}`);
}

/** τ(t) = annealTau(t; tau_start → tau_end over steps − 1 steps, tau_schedule); τ = tau_start when steps = 1. */
export function tauAt(step: number, cfg: Pick<Config, 'router' | 'steps'>): number {
  checkStep(step, 'tauAt');
  const r = cfg.router;
  if (cfg.steps <= 1) return r.tau_start;
  return annealTau(step, { tauStart: r.tau_start, tauEnd: r.tau_end, steps: cfg.steps - 1, schedule: r.tau_schedule });
}

/** noise(t) = noise_scale · max(0, 1 − t/N), N = router.noise_anneal_steps (N = 0: noise_scale always). */
export function noiseScaleAt(step: number, cfg: Pick<Config, 'router'>): number {
  checkStep(step, 'noiseScaleAt');
  const { noise_scale: s, noise_anneal_steps: n } = cfg.router;
  if (n === 0) return s;
  return s * Math.max(0, 1 - step / n);
}
