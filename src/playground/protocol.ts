/** Messages between the playground page and its training worker (structured-clone data only). */
import type { MetricRecord } from '../metrics/record.ts';
import type { BackendChoice } from './backend_choice.ts';
import type { Settings } from './settings.ts';

/** Page → worker. */
export type ToWorker =
  /**
   * build a fresh model and optimizer for these settings (step 0); `gen` tags every later message. The
   * backend is taken at a worker's first reset; `overrides` are `key=value` config overrides (the CLI's --set).
   */
  | { type: 'reset'; settings: Settings; gen: number; backend: BackendChoice; overrides: string[] }
  /** train until paused. */
  | { type: 'run' }
  | { type: 'pause' }
  /** train n steps, then pause. */
  | { type: 'step'; n: number }
  /** the resolved config.yaml of the run so far (steps = steps done). */
  | { type: 'export' };

/** Routing of the sample sentence in one MoE layer. */
export interface LayerProbe {
  /** [L][E] router probabilities of each token. */
  probs: number[][];
  /** [L] experts each token went to, in the router's order (token choice: k; expert choice: 0..E). */
  experts: number[][];
  /** [L] per chosen expert: kept (true) or dropped by capacity (false). */
  kept: boolean[][];
}

/** The sample sentence as routed after a step. */
export interface Probe {
  step: number;
  /** byte ids of the sentence. */
  tokens: number[];
  layers: LayerProbe[];
}

/** Worker → page; `gen` is the reset the message belongs to (the page drops a late message of an older run). */
export type FromWorker = { gen: number } & (
  | { type: 'ready'; backend: string; backendNote: string; params: number; layers: number; experts: number }
  | { type: 'record'; record: MetricRecord; stepMs: number }
  | { type: 'probe'; probe: Probe }
  | { type: 'state'; running: boolean }
  | { type: 'export'; configYaml: string; steps: number }
  | { type: 'error'; message: string });
