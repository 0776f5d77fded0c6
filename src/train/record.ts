/**
 * The metrics.jsonl record of one optimizer step, from the step's host numbers: the CLI's run and the browser
 * playground log the same fields. The balance scalars are means over MoE layers (metrics/balance.ts).
 */
import { mean, summarizeLayers } from '../metrics/balance.ts';
import type { MetricRecord } from '../metrics/record.ts';
import type { StepResult, Trainer } from './step.ts';

/** Mean of per-layer numbers (0 for a model without MoE layers). */
export const meanOf = (xs: number[]) => mean(xs, 0);

/** The metrics.jsonl record of one step. */
export function stepRecord(t: Trainer, r: StepResult, lr: number, tokensPerS: number): MetricRecord {
  const layers = summarizeLayers(r.loads.map((l) => Array.from(l)));
  return {
    step: t.step, loss: r.loss, aux: r.aux, lr, grad_norm: r.gradNorm, tokens_per_s: tokensPerS,
    expert_load: r.loads.map((l) => Array.from(l)), dropped: r.dropped,
    dropped_fraction: meanOf(r.dropped.map((d, l) => d / Math.max(1, r.assignments[l]))),
    load_cv: layers.mean.cv, max_load_share: layers.mean.maxLoadShare, maxvio: layers.mean.maxVio,
    router_entropy: meanOf(r.entropy), capacity_factor: t.model.moeLayers.map((l) => l.capacityFactor),
    skipped_steps: t.skippedSteps,
    ...(r.frozen ? { sparse_frozen: r.frozen } : {}),
    ...t.controllerMetrics,
  } as MetricRecord;
}

