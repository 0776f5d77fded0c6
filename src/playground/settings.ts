/**
 * What the playground's controls set, and the run config they stand for. The page edits Settings; the worker
 * trains the Config that `settingsToConfig` builds from them, and "Export run" writes that same config, so a
 * run found in the browser is a `switchyard train --config` run. Plain data only (no tfjs, no Node).
 */

/** The router choices, as the papers name them. */
export const ROUTERS = {
  'softmax-topk': 'softmax → top-k (Switch)',
  'topk-softmax': 'top-k → softmax (Mixtral)',
  sigmoid: 'sigmoid + bias (DeepSeek-V3)',
  noisy: 'noisy top-k (Shazeer)',
  gumbel: 'Gumbel-softmax with τ',
  expert_choice: 'expert choice (Zhou)',
  sinkhorn: 'Sinkhorn (S-BASE)',
} as const;
export type RouterChoice = keyof typeof ROUTERS;

/** The balancing choices: one aux loss, the router z-loss alone, or DeepSeek-V3's aux-loss-free bias. */
export const BALANCING = {
  none: 'none',
  switch: 'Switch loss E·Σ f·P',
  z: 'z-loss (ST-MoE)',
  kl: 'KL(uniform ‖ P̄)',
  cv2: 'CV² (importance, load)',
  sequence: 'sequence-wise (DeepSeek-V3)',
  aux_free: 'aux-free bias (DeepSeek-V3)',
} as const;
export type BalancingChoice = keyof typeof BALANCING;

export const DROP_POLICIES = ['dropless', 'drop-position', 'drop-probability', 'reroute', 'pad'] as const;
export type DropChoice = (typeof DROP_POLICIES)[number];

export const TASKS = { lm: 'byte LM (nlp-corpus)', regression: 'regression (seed 000)' } as const;
export type TaskChoice = keyof typeof TASKS;

/** LM sizes: S trains ≈3× faster than M (the demo's width at half its batch). */
export const SIZES = { S: 'S: D 32, 4×32 bytes/step', M: 'M: D 64, 4×64 bytes/step' } as const;
export type SizeChoice = keyof typeof SIZES;

export interface Settings {
  task: TaskChoice;
  /** LM model size (the regression task has seed 000's fixed shape). */
  size: SizeChoice;
  router: RouterChoice;
  /** Gumbel temperature τ (held constant). */
  tau: number;
  experts: number;
  topK: number;
  balancing: BalancingChoice;
  /** α of the aux loss (or the z-loss weight when balancing = z). */
  auxWeight: number;
  /** u of the aux-loss-free bias update. */
  biasRate: number;
  /** capacity factor; ignored when drop = dropless. */
  capacity: number;
  drop: DropChoice;
  lr: number;
  seed: number;
}

export const DEFAULT_SETTINGS: Readonly<Settings> = Object.freeze({
  task: 'lm', size: 'M', router: 'softmax-topk', tau: 1, experts: 8, topK: 2, balancing: 'none', auxWeight: 0.01, biasRate: 0.01,
  capacity: 1.25, drop: 'dropless', lr: 3e-3, seed: 0,
});

/** Model and batch shape of each task: small enough for ≈10 steps/s on one browser thread (wasm). */
/** Characters of nlp-corpus the page carries (whole sentences, ≈300 KB of UTF-8) and its validation share. */
export const PLAYGROUND_CHARS = 300_000;
export const PLAYGROUND_VAL_FRACTION = 0.05;
const LM_DATA = { source: 'nlp-corpus', tokenizer: 'byte', max_chars: PLAYGROUND_CHARS, val_fraction: PLAYGROUND_VAL_FRACTION };
const TASK_SHAPE: Record<'regression' | `lm-${SizeChoice}`, Record<string, unknown>> = {
  // the demo's model (configs/tiny.yaml) at half the batch: 2 blocks, D 64, 4 heads, H 128, 4 × 64 bytes per step
  'lm-M': { model_type: 'moe_llama', layers: 2, dim: 64, heads: 4, expert_hidden: 128, activation: 'swiglu', batch_size: 4, seq_len: 64, data: LM_DATA },
  'lm-S': { model_type: 'moe_llama', layers: 2, dim: 32, heads: 2, expert_hidden: 64, activation: 'swiglu', batch_size: 4, seq_len: 32, data: LM_DATA },
  // seed 000 (configs/seed000.yaml): one MoE layer on a fixed random set, D 128, H 512, ReLU, 4 × 10 tokens
  regression: { model_type: 'moe_mlp', layers: 1, dim: 128, expert_hidden: 512, activation: 'relu', batch_size: 4, seq_len: 10, data: { source: 'synthetic' } },
};

/** Problems with settings that the config cannot express, as field → message (empty when fine). */
export function settingsProblems(s: Settings): string[] {
  const out: string[] = [];
  if (!(Number.isInteger(s.experts) && s.experts >= 2 && s.experts <= 64)) out.push(`experts E = ${s.experts}: allowed 2..64`);
  if (!(Number.isInteger(s.topK) && s.topK >= 1 && s.topK <= s.experts)) out.push(`top-k = ${s.topK}: allowed 1..E (${s.experts})`);
  if (!(s.lr > 0 && s.lr <= 1)) out.push(`learning rate = ${s.lr}: allowed (0, 1]`);
  if (!(s.capacity > 0)) out.push(`capacity factor = ${s.capacity}: allowed > 0`);
  if (!(s.tau > 0)) out.push(`τ = ${s.tau}: allowed > 0`);
  if (!(s.biasRate > 0)) out.push(`bias rate u = ${s.biasRate}: allowed > 0`);
  if (!(s.auxWeight >= 0)) out.push(`aux weight α = ${s.auxWeight}: allowed ≥ 0`);
  if (s.balancing === 'aux_free' && !['softmax-topk', 'topk-softmax', 'sigmoid'].includes(s.router)) {
    out.push(`aux-loss-free bias acts on top-k selection: choose a top-k router (softmax, Mixtral or sigmoid), not ${ROUTERS[s.router]}`);
  }
  if (s.balancing === 'sequence' && s.task !== 'lm') out.push('the sequence-level loss needs sequences: use the LM task');
  return out;
}

/** The run config (plain data, for the config schema) of some settings; `steps` is the schedule's length. */
export function settingsToConfig(s: Settings, steps: number): Record<string, unknown> {
  const router: Record<string, unknown> = { type: 'topk' };
  switch (s.router) {
    case 'softmax-topk': break;
    case 'topk-softmax': router.order = 'topk-softmax'; break;
    case 'sigmoid': router.scoring = 'sigmoid'; router.renormalize = true; break;
    case 'noisy': router.type = 'noisy_topk'; break;
    case 'gumbel': Object.assign(router, { type: 'gumbel', tau_start: s.tau, tau_end: s.tau, tau_schedule: 'linear' }); break;
    case 'expert_choice': router.type = 'expert_choice'; break;
    case 'sinkhorn': router.type = 'sinkhorn'; break;
  }
  const lossy = ['switch', 'kl', 'cv2', 'sequence'].includes(s.balancing);
  const dropless = s.drop === 'dropless' && s.router !== 'expert_choice';
  return {
    ...TASK_SHAPE[s.task === 'lm' ? (`lm-${s.size}` as const) : 'regression'],
    expert_num: s.experts, top_k: s.topK, router,
    capacity_factor: dropless ? null : s.capacity, drop_policy: s.router === 'expert_choice' ? 'dropless' : s.drop,
    aux_loss: { type: lossy ? s.balancing : 'none', weight: lossy ? s.auxWeight : 0 },
    z_loss_weight: s.balancing === 'z' ? s.auxWeight : 0,
    balance: { aux_free: { enabled: s.balancing === 'aux_free', update_rate: s.biasRate } },
    // A playground run has no end: constant lr after a short warmup, so any prefix equals a CLI run of that length.
    lr: s.lr, warmup_steps: Math.min(10, steps), schedule: 'constant', steps,
    eval_every: 0, log_every: 1, checkpoint_every: 0, seed: s.seed, backend: 'wasm',
  };
}

/**
 * Applies the page's `set=key=value` URL parameters to a config object (a copy): dotted keys as the CLI's
 * --set, the value read as JSON where it parses (numbers, true, null, objects), else as a string. The
 * schema validates the result, so a wrong key or value is the config's own error.
 */
export function applySets(obj: Record<string, unknown>, sets: readonly string[]): Record<string, unknown> {
  const out = structuredClone(obj);
  for (const text of sets) {
    const eq = text.indexOf('=');
    const key = eq > 0 ? text.slice(0, eq).trim() : '';
    if (!/^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$/.test(key)) throw new Error(`set=${text}: expected key=value with a dotted config key`);
    const raw = text.slice(eq + 1).trim();
    let value: unknown = raw;
    try { value = JSON.parse(raw); } catch { /* a bare word is a string */ }
    const segs = key.split('.');
    let at = out;
    for (const seg of segs.slice(0, -1)) {
      const next = at[seg];
      if (next === null || typeof next !== 'object' || Array.isArray(next)) at[seg] = {};
      at = at[seg] as Record<string, unknown>;
    }
    at[segs[segs.length - 1]] = value;
  }
  return out;
}
