/**
 * The Switchyard run config's fields: plain data with snake_case names as in the seeds and Megatron-Core;
 * every field has a default and one comment, unknown fields are errors, every error names the field, the bad
 * value and what is allowed. No file access here (the browser and the training step import it); reading a
 * file, `--set` overrides and the cross-field rules (checks.ts) live in load.ts.
 */
import { z } from 'zod';
import { CAPACITY_POLICIES } from '../moe/capacity.ts';
import type { Activation } from '../moe/experts.ts';
import type { BackendName } from '../backend.ts';
import type { AuxLossName } from '../moe/layer.ts';
import type { TauSchedule } from '../router/gumbel.ts';
import type { GroupLimitedOptions } from '../router/group_limited.ts';
import type { DispatcherChoice } from '../moe/dispatch/index.ts';


// Enum values, spelled here so this module loads without tfjs; the type checks below keep them in step.
const ACTIVATION_VALUES = ['relu', 'gelu', 'swiglu'] as const;
const BACKEND_VALUES = ['wasm', 'cpu', 'webgpu'] as const;
const AUX_VALUES = ['none', 'switch', 'kl', 'cv2', 'variance', 'sequence', 'group'] as const;
const TAU_VALUES = ['exponential', 'linear', 'cosine'] as const;
const DROP_VALUES = ['drop-position', 'drop-probability', 'reroute', 'pad', 'dropless'] as const;
const DISPATCHER_VALUES = ['auto', 'gather', 'padded', 'onehot'] as const;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const typesInStep: [
  Same<(typeof ACTIVATION_VALUES)[number], Activation>,
  Same<(typeof BACKEND_VALUES)[number], BackendName>,
  Same<Exclude<(typeof AUX_VALUES)[number], 'none'>, Exclude<AuxLossName, 'z'>>,
  Same<(typeof TAU_VALUES)[number], TauSchedule>,
  Same<(typeof DROP_VALUES)[number], (typeof CAPACITY_POLICIES)[number]>,
  Same<'max' | 'top2-sum', NonNullable<GroupLimitedOptions['groupScore']>>,
  Same<(typeof DISPATCHER_VALUES)[number], DispatcherChoice>,
] = [true, true, true, true, true, true, true];
void typesInStep;
if (CAPACITY_POLICIES.join() !== DROP_VALUES.join()) throw new Error('config: drop policies out of step with capacity.ts');

// Leaf builders: the zod message is the allowed set or range; errors.ts adds the path and the bad value.
const int = (min: number, max: number, orNull = '') => {
  const a = `an integer in ${min}..${max}${orNull}`;
  return z.number({ error: a }).int({ error: a }).min(min, { error: a }).max(max, { error: `${a} (the bound on this size)` });
};
// Counts that only set loop lengths (steps, intervals) are bounded far above any run and below 2^53.
const STEPS = 1e9;
/** A number in a range: lo/hi bounds, open (exclusive) or closed. */
const num = (lo: number | null, hi: number | null, open: { lo?: boolean; hi?: boolean } = {}, orNull = '') => {
  const a = lo !== null && hi !== null
    ? `a number in ${open.lo ? '(' : '['}${lo}, ${hi}${open.hi ? ')' : ']'}${orNull}`
    : lo !== null ? `a number ${open.lo ? '>' : '≥'} ${lo}${orNull}` : `a number${orNull}`;
  let s = z.number({ error: a });
  if (lo !== null) s = open.lo ? s.gt(lo, { error: a }) : s.gte(lo, { error: a });
  if (hi !== null) s = open.hi ? s.lt(hi, { error: a }) : s.lte(hi, { error: a });
  return s;
};
const oneOf = <const T extends readonly [string, ...string[]]>(values: T) => z.enum(values, { error: `one of ${values.join(' | ')}` });
const bool = () => z.boolean({ error: 'true or false' });
/** A nested section; absent means all its defaults (`{} as never`: every field has a default, which TS can't see through S). */
const section = <S extends z.ZodRawShape>(name: string, shape: S) =>
  z.strictObject(shape, { error: (iss) => (iss.code === 'invalid_type' ? `a mapping of ${name} fields` : undefined) }).prefault({} as never);

const RouterSchema = section('router', {
  type: oneOf(['topk', 'noisy_topk', 'gumbel', 'expert_choice', 'sinkhorn', 'group_limited']).default('topk'), // routing algorithm
  scoring: oneOf(['softmax', 'sigmoid']).default('softmax'), // gate activation (sigmoid: DeepSeek-V3)
  order: oneOf(['softmax-topk', 'topk-softmax']).default('softmax-topk'), // Switch/GShard vs Mixtral (softmax over the k picked logits)
  renormalize: bool().default(false), // rescale the k softmax weights to sum 1
  noise_scale: num(0, null).default(1), // noisy_topk: multiplier on the learned noise std
  noise_anneal_steps: int(0, STEPS).default(0), // noisy_topk: noise decays linearly to 0 over this many steps (0 = never)
  tau_start: num(0, null, { lo: true }).default(1), // gumbel: temperature at step 0
  tau_end: num(0, null, { lo: true }).default(0.5), // gumbel: temperature at the last step
  tau_schedule: oneOf(TAU_VALUES).default('exponential'), // gumbel: how τ moves from tau_start to tau_end
  sinkhorn_iterations: int(1, 10_000).default(50), // sinkhorn: cap on normalisation rounds
  num_groups: int(1, 4_096).default(1), // group_limited: contiguous expert groups (devices/nodes)
  topk_groups: int(1, 4_096).default(1), // group_limited: groups each token may use
  group_score: oneOf(['max', 'top2-sum']).default('max'), // group_limited: max (V2) or sum of top-2 scores (V3)
});

const AuxLossSchema = section('aux_loss', {
  type: oneOf(AUX_VALUES).default('switch'), // balance loss: Switch f·P, KL to uniform, CV², load variance, per-sequence, per-device-group
  weight: num(0, null).default(0.01), // α: total loss = task + α · aux (summed over MoE layers)
});

const DataSchema = section('data', {
  source: oneOf(['nlp-corpus', 'synthetic', 'file']).default('nlp-corpus'), // nlp-corpus: ≈100k English sentences shipped offline
  path: z.string({ error: 'a file path (string) or null' }).min(1, { error: 'a non-empty file path or null' }).nullable().default(null), // text file, source: file only
  tokenizer: oneOf(['byte', 'bpe']).default('byte'), // byte: 256 ids, no training; bpe: trained on the train split
  bpe_vocab: int(257, 65_536).default(512), // bpe: vocabulary size (256 bytes + merges)
  val_fraction: num(0, 0.5, { lo: true }).default(0.05), // share of the text held out for validation
  max_chars: int(1, 2 ** 30, ' or null').nullable().default(null), // use only the first N characters (null = all)
});

const BalanceSchema = section('balance', {
  aux_free: section('balance.aux_free', { // DeepSeek-V3 aux-loss-free bias: b_i += u · sign(mean load − load_i)
    enabled: bool().default(false), // on/off
    update_rate: num(0, null, { lo: true }).default(0.001), // u
  }),
  dynamic_capacity: section('balance.dynamic_capacity', { // capacity factor that adapts to load (seeds)
    enabled: bool().default(false), // on/off; needs a capacity_factor to adapt
    rule: oneOf(['ratio', 'trend']).default('ratio'), // ratio: by max/mean load; trend: windowed utilization and imbalance
    overload_threshold: num(0, null, { lo: true }).default(1.5), // load/mean above this → grow
    underload_threshold: num(0, null).default(0.5), // load/mean below this → shrink
    grow: num(1, null).default(1.2), // factor multiplier when overloaded
    shrink: num(0, 1, { lo: true }).default(0.8), // factor multiplier when underloaded
    window: int(1, 1_000_000).default(100), // steps per trend window
    min_factor: num(0, null, { lo: true }).default(0.5), // lower clamp on the capacity factor
    max_factor: num(0, 1024, { lo: true }).default(2.0), // upper clamp on the capacity factor
  }),
  gate_adjust: section('balance.gate_adjust', { // router probs re-weighted by inverse recent load (seeds' "RL gating")
    enabled: bool().default(false), // on/off
    strength: num(0, null).default(1), // exponent on (mean load / recent load)
    window: int(1, 10_000).default(10), // steps of load history
    learned: bool().default(false), // learn the strength from a reward (balance and task loss)
  }),
  grad_reweight: section('balance.grad_reweight', { // scale each expert's gradients, normalised to mean 1
    enabled: bool().default(false), // on/off
    mode: oneOf(['importance', 'utilization', 'inverse_norm']).default('utilization'), // what sets the scale
    low: num(0, 1).default(0.1), // utilization below this → low_scale
    high: num(0, 1).default(0.9), // utilization above this → high_scale
    low_scale: num(0, null, { lo: true }).default(2.0), // gradient scale for cold experts
    high_scale: num(0, null, { lo: true }).default(0.5), // gradient scale for hot experts
  }),
  dead_expert: section('balance.dead_expert', { // "zombie" experts: no tokens for `window` steps
    window: int(1, 1_000_000).default(50), // steps without tokens before an expert counts as dead
    revive: oneOf(['none', 'reinit_gate', 'copy_hot']).default('none'), // report only, re-init its gate row, or copy a hot expert + noise
  }),
  sparse_accumulation: section('balance.sparse_accumulation', { // seed 004: update an expert only if active often enough
    enabled: bool().default(false), // on/off; needs grad_accum_steps > 1
    min_active_share: num(0, 1, { lo: true }).default(0.5), // share of micro-batches the expert must receive tokens in
  }),
});

const ParallelSchema = section('parallel', {
  ep_size: int(1, 64).default(1), // expert-parallel ranks (worker threads), each owning E/ep_size experts
  dp_size: z.union([int(1, 64), z.literal('auto')], { error: 'an integer in 1..64 or auto' }).default(1), // data-parallel ranks (main thread + worker threads), each a full replica on batch_size/dp_size sequences; auto: min(cores, 2), 1 where not allowed
  nodes: int(1, 64).default(1), // ranks are grouped into this many "nodes" (hierarchical all-to-all)
  mode: oneOf(['flat', 'hierarchical']).default('flat'), // flat all-to-all, or once per node then fan out inside it
  chunks: int(1, 4_096).default(1), // pipeline chunks per micro-batch (overlap dispatch with compute)
  placement: z.string({ error: 'a placement file path (string) or null' }).min(1, { error: 'a non-empty path or null' }).nullable().default(null), // planner's expert → rank map (replicas allowed)
});

const LoggingSchema = section('logging', {
  tensorboard: bool().default(false), // also write TensorBoard event files to RUN/tensorboard/ (docs/metrics.md lists the tags)
});

/** Every field with its default; the cross-field rules are added in load.ts. */
export const FieldsSchema = z.strictObject({
  model_type: oneOf(['moe_llama', 'moe_mlp']).default('moe_llama'), // moe_llama: decoder-only LM; moe_mlp: seed 000's single MoE layer on random data, MSE
  layers: int(1, 256).default(2), // transformer blocks (moe_mlp: stacked MoE layers; seed 000 uses 1)
  dim: int(1, 16_384).default(64), // model width D
  heads: int(1, 1_024).default(4), // attention heads (moe_llama); must divide dim
  expert_num: int(1, 4_096).default(8), // routed experts E
  top_k: int(1, 1_024).default(2), // experts per token k (expert_choice: average experts per token)
  expert_hidden: int(1, 65_536).default(128), // hidden width H of each routed expert
  activation: oneOf(ACTIVATION_VALUES).default('swiglu'), // expert and dense FFN activation
  shared_experts: int(0, 64).default(0), // always-active experts of width expert_hidden (DeepSeekMoE)
  fine_grained: int(1, 64).default(1), // DeepSeekMoE granularity m: E·m experts of hidden H/m, k·m active
  moe_every: int(1, 256).default(1), // Megatron moe_layer_freq: layer i (0-based) is MoE when i % moe_every == 0, dense else
  dense_hidden: int(1, 262_144, ' or null').nullable().default(null), // dense FFN width; null → (top_k + shared_experts)·expert_hidden (equal active FLOPs)
  positions: oneOf(['rotary', 'learned']).default('rotary'), // position encoding (moe_llama)
  router: RouterSchema, // how tokens pick experts
  capacity_factor: num(0, 1024, { lo: true }, ' or null').nullable().default(null), // C = ⌈capacity_factor·T·k/E⌉; null with dropless
  drop_policy: oneOf(DROP_VALUES).default('dropless'), // what happens to assignments beyond capacity (ignored by expert_choice)
  aux_loss: AuxLossSchema, // load-balancing loss
  z_loss_weight: num(0, null).default(0), // router z-loss weight (ST-MoE; 1e-3 there)
  use_load_balance: bool().default(true), // the seeds' master switch: false = no aux loss and no balance controllers
  lr: num(0, null, { lo: true }).default(1e-3), // peak learning rate (AdamW)
  min_lr_ratio: num(0, 1).default(0.1), // final lr = lr · min_lr_ratio (cosine/linear decay)
  warmup_steps: int(0, STEPS).default(10), // linear warmup from 0 to lr
  schedule: oneOf(['cosine', 'constant', 'linear']).default('cosine'), // lr decay after warmup
  weight_decay: num(0, null).default(0.01), // AdamW decoupled weight decay
  beta1: num(0, 1, { hi: true }).default(0.9), // Adam β1
  beta2: num(0, 1, { hi: true }).default(0.95), // Adam β2
  grad_clip: num(0, null, { lo: true }, ' or null').nullable().default(1.0), // max global gradient norm (null = no clipping)
  batch_size: int(1, 65_536).default(8), // sequences per micro-batch
  seq_len: int(1, 65_536).default(64), // tokens per sequence
  grad_accum_steps: int(1, 4_096).default(1), // micro-batches per optimizer step (balance stats over all of them)
  steps: int(1, STEPS).default(200), // optimizer steps
  eval_every: int(0, STEPS).default(50), // validation every N steps (0 = never)
  eval_batches: int(1, 4_096).default(4), // validation micro-batches per evaluation
  log_every: int(1, STEPS).default(10), // metrics.jsonl line every N steps
  checkpoint_every: int(0, STEPS).default(100), // checkpoint every N steps (0 = only at the end)
  keep_checkpoints: int(1, 1_000).default(3), // newest checkpoints kept
  max_nan_steps: int(1, 1_000_000).default(5), // stop after this many non-finite steps in a row
  seed: int(0, 0xffffffff).default(0), // seeds init, data order and router noise
  backend: oneOf(BACKEND_VALUES).default('wasm'), // tfjs backend (webgpu falls back to wasm)
  data: DataSchema, // training text
  balance: BalanceSchema, // balance controllers; all off by default
  parallel: ParallelSchema, // expert parallelism over worker threads
  recompute: bool().default(false), // drop expert FFN activations in forward, recompute in backward
  logging: LoggingSchema, // extra metric sinks beside metrics.jsonl
  dispatcher: oneOf(DISPATCHER_VALUES).default('auto'), // token movement (src/moe/dispatch/); auto: padded on webgpu, gather elsewhere
}, { error: (iss) => (iss.code === 'invalid_type' ? 'a mapping of config fields' : undefined) });

/** A validated run config with every default filled in. */
export type Config = z.infer<typeof FieldsSchema>;

/** Every default; deep-frozen (copy it with structuredClone to change it). The defaults pass the cross-field rules. */
export const DEFAULT_CONFIG: Readonly<Config> = deepFreeze(FieldsSchema.parse({}));

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object') for (const v of Object.values(o)) deepFreeze(v);
  return Object.freeze(o);
}

/** Dense FFN width: dense_hidden, or (top_k + shared_experts)·expert_hidden (the MoE FFN's active width). */
export function denseHidden(cfg: Pick<Config, 'dense_hidden' | 'top_k' | 'shared_experts' | 'expert_hidden'>): number {
  return cfg.dense_hidden ?? (cfg.top_k + cfg.shared_experts) * cfg.expert_hidden;
}
