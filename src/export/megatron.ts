/**
 * A Switchyard run config as Megatron-Core (Megatron-LM pretrain_gpt.py) arguments, and back.
 *
 * Flag names and meanings are read from NVIDIA/Megatron-LM at commit d98e8a64ddf34856e74b24714e3bedb2f5a39553:
 * megatron/training/arguments.py, megatron/core/transformer/transformer_config.py, megatron/core/model_parallel_config.py,
 * megatron/training/config/training_config.py (test/fixtures/megatron_args.json lists every flag found there).
 * The numbers that need a convention check (all in megatron/core/transformer/moe/moe_utils.py and router.py):
 *   aux_loss:   coeff · E/(k·T²) · Σ_i (Σ_t p_ti)·count_i  = coeff · E · Σ_i f_i·P_i  (f_i = count_i/(T·k), P_i = mean_t p_ti),
 *               one loss per MoE layer, each micro-batch's scaled by 1/num_microbatches (pipeline_parallel/schedules.py,
 *               MoEAuxLossAutoScaler.set_loss_scale) — our Switch loss, summed over layers
 *               and averaged over micro-batches, times α: so --moe-aux-loss-coeff = α exactly.
 *   seq_aux_loss: the same per sequence, divided by the batch size: our `sequence` loss, coefficient unchanged.
 *   z-loss:     coeff · mean_t (logsumexp_j logits_tj)²: ours, coefficient unchanged.
 *   capacity:   ⌈T·k/E · capacity_factor⌉ (get_capacity with num_tokens·topk): ours.
 *   expert bias: b += rate · sign(mean load − load) (get_updated_expert_bias): ours; Megatron applies it only with
 *               sigmoid (or sqrtsoftplus) scores (TransformerConfig.__post_init__ raises otherwise).
 * Whatever Megatron-Core cannot express is listed in `warnings` with what the user loses; nothing is dropped silently.
 */
import { denseHidden, type Config } from '../config/schema.ts';

/** One emitted flag: its value (null for a store_true switch), and why, when the mapping is not one-to-one. */
export interface MegatronArg {
  flag: string;
  value: string | null;
  /** The Switchyard field(s) it comes from. */
  from: string;
}

export interface MegatronExport {
  args: MegatronArg[];
  /** Switchyard settings with no Megatron-Core equivalent, each with what is lost. */
  warnings: string[];
  /** Facts about the conversion that change nothing (assumptions, equivalent rewrites). */
  notes: string[];
}

export interface MegatronExportOptions {
  /** --expert-model-parallel-size (default: parallel.ep_size). */
  ep?: number;
}

const num = (v: number): string => (Number.isInteger(v) ? String(v) : String(v));

/** The Megatron-Core arguments that train the same MoE as cfg (moe_llama only). */
export function toMegatronArgs(cfg: Config, opts: MegatronExportOptions = {}): MegatronExport {
  if (cfg.model_type !== 'moe_llama') {
    throw new Error(`model_type ${cfg.model_type}: only moe_llama (a decoder-only LM) has a Megatron-Core model; moe_mlp is a single MoE layer on random vectors`);
  }
  const args: MegatronArg[] = [];
  const warnings: string[] = [];
  const notes: string[] = [];
  const put = (flag: string, value: string | number | null, from: string): void => {
    args.push({ flag, value: value === null ? null : typeof value === 'number' ? num(value) : value, from });
  };
  const m = cfg.fine_grained;
  const E = cfg.expert_num * m;
  const k = cfg.top_k * m;
  const H = cfg.expert_hidden / m;
  const ep = opts.ep ?? cfg.parallel.ep_size;
  if (!Number.isInteger(ep) || ep < 1) throw new Error(`--ep ${ep} must be a positive integer`);
  if (E % ep !== 0) throw new Error(`--ep ${ep} does not divide the ${E} routed experts (Megatron gives each EP rank E/ep experts)`);
  if (!Number.isInteger(H)) throw new Error(`expert_hidden ${cfg.expert_hidden} is not divisible by fine_grained ${m}`);

  // model shape
  put('--num-layers', cfg.layers, 'layers');
  put('--hidden-size', cfg.dim, 'dim');
  put('--num-attention-heads', cfg.heads, 'heads');
  put('--ffn-hidden-size', denseHidden(cfg), 'dense_hidden (dense blocks)');
  put('--seq-length', cfg.seq_len, 'seq_len');
  put('--max-position-embeddings', cfg.seq_len, 'seq_len');
  if (cfg.positions === 'rotary') {
    put('--position-embedding-type', 'rope', 'positions: rotary');
    put('--rotary-base', 10000, 'positions: rotary (θ = 10000, as ours)');
  } else {
    put('--position-embedding-type', 'learned_absolute', 'positions: learned');
  }
  put('--normalization', 'RMSNorm', 'model (RMSNorm everywhere)');
  put('--norm-epsilon', 1e-5, 'model (RMSNorm ε)');
  put('--disable-bias-linear', null, 'model (no linear biases)');
  put('--untie-embeddings-and-output-weights', null, 'model (separate lm_head)');
  put('--attention-dropout', 0, 'model (no dropout)');
  put('--hidden-dropout', 0, 'model (no dropout)');
  put('--init-method-std', 0.02, 'model (N(0, 0.02) init)');
  if (cfg.activation === 'swiglu') put('--swiglu', null, 'activation: swiglu');
  else if (cfg.activation === 'relu') warnings.push('activation: relu — Megatron-Core has no plain-ReLU flag (its default is GeLU; --squared-relu is ReLU²): the exported model uses GeLU, so its FFNs differ from ours');
  // gelu: Megatron's default activation

  // MoE layer
  put('--num-experts', E, m > 1 ? `expert_num × fine_grained (${cfg.expert_num} × ${m})` : 'expert_num');
  put('--moe-router-topk', k, m > 1 ? `top_k × fine_grained (${cfg.top_k} × ${m})` : 'top_k');
  put('--moe-ffn-hidden-size', H, m > 1 ? `expert_hidden / fine_grained (${cfg.expert_hidden} / ${m})` : 'expert_hidden');
  if (cfg.moe_every !== 1) put('--moe-layer-freq', cfg.moe_every, 'moe_every (layer i is MoE when i mod N = 0, in both)');
  if (cfg.shared_experts > 0) {
    put('--moe-shared-expert-intermediate-size', cfg.shared_experts * H, `shared_experts × expert width (${cfg.shared_experts} × ${H})`);
    if (cfg.shared_experts > 1) notes.push(`${cfg.shared_experts} shared experts of width ${H} = one shared expert of width ${cfg.shared_experts * H} (a sum of SwiGLU/GeLU MLPs is one MLP over the concatenated hidden units)`);
  }
  put('--expert-model-parallel-size', ep, opts.ep !== undefined ? '--ep' : 'parallel.ep_size');
  if (ep > 1) put('--moe-token-dispatcher-type', 'alltoall', 'parallel.ep_size > 1 (token all-to-all, as ours)');
  put('--moe-grouped-gemm', null, 'experts (one grouped GEMM over local experts)');

  // router
  const r = cfg.router;
  put('--moe-router-score-function', r.scoring, 'router.scoring');
  put('--moe-router-dtype', 'fp32', 'router (ours computes routing in float32)');
  if (r.scoring === 'softmax') {
    if (r.order === 'softmax-topk' && !r.renormalize) put('--moe-router-pre-softmax', null, 'router.order: softmax-topk (softmax over all experts, then top-k; weights not renormalised)');
    else if (r.order === 'softmax-topk' && r.renormalize) notes.push('router.order softmax-topk with renormalize = softmax over the k picked logits (Megatron\'s default order); no --moe-router-pre-softmax');
    if (k === 1 && !(r.order === 'softmax-topk' && !r.renormalize)) {
      put('--moe-router-pre-softmax', null, 'top_k = 1 (Megatron requires it)');
      warnings.push('top_k 1 with renormalised weights: Megatron-Core refuses softmax-after-top-1 (its weight would be constant 1) and needs --moe-router-pre-softmax, so the exported router weights each token by its softmax probability instead of 1');
    }
  } else if (!r.renormalize && k > 1) {
    warnings.push('router.scoring sigmoid without renormalize: Megatron-Core always divides the k sigmoid scores by their sum when top-k > 1, so its expert weights sum to 1 where ours do not');
  }

  // routing algorithm
  let lbType = 'none';
  const aux = cfg.use_load_balance && cfg.aux_loss.type !== 'none' && cfg.aux_loss.weight > 0 ? cfg.aux_loss : null;
  switch (r.type) {
    case 'topk': break;
    case 'sinkhorn':
      lbType = 'sinkhorn';
      notes.push(`router sinkhorn: Megatron-Core stops Sinkhorn at tolerance 1e-4, not after router.sinkhorn_iterations (${r.sinkhorn_iterations}); its gate is sigmoid for top-1, softmax for top-k > 1`);
      break;
    case 'group_limited': {
      put('--moe-router-num-groups', r.num_groups, 'router.num_groups');
      put('--moe-router-group-topk', r.topk_groups, 'router.topk_groups');
      const per = k / r.topk_groups;
      const same = (r.group_score === 'max' && per === 1) || (r.group_score === 'top2-sum' && per === 2);
      if (!same) {
        warnings.push(`router.group_score ${r.group_score}: Megatron-Core scores a group by the sum of its top-(top_k/group_topk) = top-${Number.isInteger(per) ? per : per.toFixed(2)} scores, not ${r.group_score === 'max' ? 'the max' : 'the top-2 sum'}; the groups a token may use can differ`);
      }
      break;
    }
    case 'noisy_topk':
      warnings.push(`router.type noisy_topk: Megatron-Core has no learned-noise gate (Shazeer et al. 2017); exported as plain top-k, so the exploration noise (noise_scale ${r.noise_scale}, anneal ${r.noise_anneal_steps} steps) is lost`);
      break;
    case 'gumbel':
      warnings.push(`router.type gumbel: Megatron-Core has no Gumbel-softmax routing; exported as plain top-k, so the temperature schedule (${r.tau_start} → ${r.tau_end}, ${r.tau_schedule}) is lost`);
      break;
    case 'expert_choice':
      warnings.push('router.type expert_choice: Megatron-Core routes token-choice only; exported as token-choice top-k, so experts no longer pick their tokens and per-token expert counts vary no more');
      break;
  }
  if (aux) {
    if (lbType === 'sinkhorn') {
      warnings.push(`aux_loss ${aux.type} (α ${aux.weight}) with sinkhorn routing: Megatron-Core asserts the aux coefficient is 0 under sinkhorn, so the balance loss is dropped`);
    } else if (aux.type === 'switch') {
      lbType = cfg.grad_accum_steps > 1 ? 'global_aux_loss' : 'aux_loss';
      put('--moe-aux-loss-coeff', aux.weight, 'aux_loss.weight (same convention: E·Σ f_i·P_i per layer, summed over layers)');
      if (cfg.grad_accum_steps > 1) {
        notes.push(`grad_accum_steps ${cfg.grad_accum_steps}: our Switch loss uses counts over all micro-batches of the step, so it maps to global_aux_loss; Megatron's is a running average over the micro-batches seen so far (and over data-parallel ranks)`);
      }
    } else if (aux.type === 'sequence') {
      lbType = 'seq_aux_loss';
      put('--moe-aux-loss-coeff', aux.weight, 'aux_loss.weight (per-sequence E·Σ f_i·P_i averaged over sequences, as ours)');
    } else {
      const what = ({ kl: 'KL divergence to the uniform load', cv2: 'squared coefficient of variation (CV²) of the importance', variance: 'load variance', group: 'DeepSeek-V2 device-level balance' } as Record<string, string>)[aux.type];
      warnings.push(`aux_loss.type ${aux.type} (${what}, α ${aux.weight}): Megatron-Core has no such loss; exported with no balance loss (aux_loss with --moe-aux-loss-coeff ${aux.weight} is the nearest, in the same convention)`);
    }
  }
  put('--moe-router-load-balancing-type', lbType, aux || r.type === 'sinkhorn' ? 'aux_loss.type / router.type' : 'no balance loss');
  if (cfg.z_loss_weight > 0 && cfg.use_load_balance) put('--moe-z-loss-coeff', cfg.z_loss_weight, 'z_loss_weight (mean_t logsumexp², as ours)');
  else if (cfg.z_loss_weight > 0) put('--moe-z-loss-coeff', cfg.z_loss_weight, 'z_loss_weight');

  // balance controllers
  const b = cfg.balance;
  if (b.aux_free.enabled && cfg.use_load_balance) {
    if (r.scoring === 'sigmoid') {
      put('--moe-router-enable-expert-bias', null, 'balance.aux_free.enabled');
      put('--moe-router-bias-update-rate', b.aux_free.update_rate, 'balance.aux_free.update_rate (b += u·sign(mean − load), as ours)');
    } else {
      warnings.push(`balance.aux_free with softmax scores: Megatron-Core applies the expert bias only to sigmoid (or sqrtsoftplus) scores and refuses it otherwise, so the aux-loss-free bias (rate ${b.aux_free.update_rate}) is dropped; set router.scoring: sigmoid to keep it`);
    }
  }
  if (b.dynamic_capacity.enabled) warnings.push(`balance.dynamic_capacity (${b.dynamic_capacity.rule} rule): Megatron-Core's capacity factor is fixed; the exported run keeps capacity_factor ${cfg.capacity_factor ?? 'none'} throughout and loses the adaptation to load`);
  if (b.gate_adjust.enabled) warnings.push(`balance.gate_adjust (strength ${b.gate_adjust.strength}${b.gate_adjust.learned ? ', learned' : ''}): Megatron-Core has no gate re-weighting by recent load; hot experts are no longer damped at the gate`);
  if (b.grad_reweight.enabled) warnings.push(`balance.grad_reweight (${b.grad_reweight.mode}): Megatron-Core has no per-expert gradient scaling; cold experts no longer get larger updates`);
  if (b.dead_expert.revive !== 'none') warnings.push(`balance.dead_expert.revive ${b.dead_expert.revive}: Megatron-Core does not revive experts that receive no tokens; dead experts stay dead`);
  if (b.sparse_accumulation.enabled) warnings.push(`balance.sparse_accumulation (min share ${b.sparse_accumulation.min_active_share}): Megatron-Core updates every expert every step; rarely active experts are no longer held back`);
  if (!cfg.use_load_balance && (cfg.aux_loss.type !== 'none' || b.aux_free.enabled)) notes.push('use_load_balance false: no balance loss and no controllers are exported');

  // capacity
  if (cfg.drop_policy !== 'dropless' && cfg.capacity_factor !== null && r.type !== 'expert_choice') {
    if (lbType === 'sinkhorn') warnings.push(`capacity_factor ${cfg.capacity_factor} with sinkhorn routing: Megatron-Core allows a capacity factor only with aux_loss, seq_aux_loss, global_aux_loss or none; the exported run is dropless`);
    else {
      put('--moe-expert-capacity-factor', cfg.capacity_factor, 'capacity_factor (capacity ⌈T·k/E·factor⌉, as ours)');
      const policy = cfg.drop_policy === 'drop-probability' || cfg.drop_policy === 'reroute' ? 'probs' : 'position';
      put('--moe-token-drop-policy', policy, `drop_policy ${cfg.drop_policy}`);
      if (cfg.drop_policy === 'pad') put('--moe-pad-expert-input-to-capacity', null, 'drop_policy pad');
      if (cfg.drop_policy === 'reroute') warnings.push('drop_policy reroute: Megatron-Core drops overflowing assignments; they are no longer rerouted to the next-best expert with room (exported as drop by probability)');
    }
  } else if (cfg.drop_policy !== 'dropless' && cfg.capacity_factor === null) {
    notes.push(`drop_policy ${cfg.drop_policy} without capacity_factor: dropless in both`);
  }

  // logging
  put('--moe-per-layer-logging', null, 'metrics (per-layer balance)');
  put('--save-tokens-per-expert-interval', cfg.log_every, 'log_every (tokens_per_expert/rank{R}.jsonl, readable by switchyard plan/report)');
  put('--log-interval', cfg.log_every, 'log_every');

  // optimizer and schedule
  put('--optimizer', 'adam', 'AdamW (Megatron\'s adam applies decoupled weight decay)');
  put('--lr', cfg.lr, 'lr');
  put('--min-lr', cfg.lr * cfg.min_lr_ratio, `lr × min_lr_ratio (${cfg.lr} × ${cfg.min_lr_ratio})`);
  put('--lr-decay-style', cfg.schedule, 'schedule');
  put('--lr-warmup-iters', cfg.warmup_steps, 'warmup_steps');
  put('--lr-decay-iters', cfg.steps, 'steps');
  put('--train-iters', cfg.steps, 'steps');
  put('--weight-decay', cfg.weight_decay, 'weight_decay');
  put('--adam-beta1', cfg.beta1, 'beta1');
  put('--adam-beta2', cfg.beta2, 'beta2');
  put('--clip-grad', cfg.grad_clip ?? 0, cfg.grad_clip === null ? 'grad_clip null (0 turns clipping off)' : 'grad_clip');
  put('--micro-batch-size', cfg.batch_size, 'batch_size');
  put('--global-batch-size', cfg.batch_size * cfg.grad_accum_steps, 'batch_size × grad_accum_steps (one data-parallel rank; multiply by DP)');
  put('--seed', cfg.seed, 'seed');
  if (cfg.recompute) {
    put('--recompute-granularity', 'selective', 'recompute');
    put('--recompute-modules', 'moe_act', 'recompute (expert FFN activations)');
  }
  notes.push('weight decay: Megatron-Core skips biases and norm weights by default; ours decays every weight matrix and norm gain');
  notes.push(`data and tokenizer are not exported (ours: ${cfg.data.source}, ${cfg.data.tokenizer} tokens): give --data-path and --tokenizer-type for your corpus`);
  if (cfg.parallel.mode === 'hierarchical' || cfg.parallel.chunks > 1 || cfg.parallel.placement) {
    notes.push('parallel.mode / chunks / placement are execution details of our threads; Megatron-Core chooses its own dispatcher and overlap');
  }
  return { args, warnings, notes };
}

/** The arguments as a shell fragment: one flag per line, continued with backslashes; warnings as comments above. */
export function formatMegatronArgs(x: MegatronExport, source: string): string {
  const lines = [
    `# Megatron-Core arguments for ${source}, written by switchyard export megatron.`,
    '# Flag names from NVIDIA/Megatron-LM (commit d98e8a64ddf34856e74b24714e3bedb2f5a39553). Add data, tokenizer and parallel sizes.',
    ...x.warnings.map((w) => `# WARNING: ${w}`),
    ...x.notes.map((n) => `# note: ${n}`),
    'MOE_ARGS=(',
    ...x.args.map((a) => `  ${a.flag}${a.value === null ? '' : ` ${a.value}`}`),
    ')',
  ];
  return `${lines.join('\n')}\n`;
}

/** Flags and their values from a Megatron command line or args file (shell continuations, comments, --flag=value). */
export function parseMegatronArgs(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const joined = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/).map((l) => l.replace(/(^|\s)#.*$/, '')).join(' ');
  const tokens: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g;
  for (let mt = re.exec(joined); mt; mt = re.exec(joined)) tokens.push(mt[1] ?? mt[2] ?? mt[3]);
  let cur: string | null = null;
  for (const t of tokens) {
    if (/^--[a-zA-Z]/.test(t)) {
      const eq = t.indexOf('=');
      cur = eq > 0 ? t.slice(0, eq) : t;
      out.set(cur, eq > 0 ? [t.slice(eq + 1)] : []);
      if (eq > 0) cur = null;
    } else if (cur && !/^[()]$/.test(t)) {
      out.get(cur)!.push(t);
    } else {
      cur = null; // a program name, a shell word: not a value
    }
  }
  return out;
}

/** Flags whose meaning `import megatron` takes over; everything else is reported as ignored. */
const IMPORTED = new Set([
  '--num-layers', '--hidden-size', '--num-attention-heads', '--ffn-hidden-size', '--seq-length', '--max-position-embeddings',
  '--position-embedding-type', '--normalization', '--swiglu', '--num-experts', '--moe-router-topk', '--moe-ffn-hidden-size',
  '--moe-layer-freq', '--moe-shared-expert-intermediate-size', '--expert-model-parallel-size', '--moe-router-score-function',
  '--moe-router-pre-softmax', '--moe-router-load-balancing-type', '--moe-aux-loss-coeff', '--moe-z-loss-coeff',
  '--moe-router-enable-expert-bias', '--moe-router-bias-update-rate', '--moe-expert-capacity-factor', '--moe-token-drop-policy',
  '--moe-pad-expert-input-to-capacity', '--moe-router-num-groups', '--moe-router-group-topk', '--lr', '--min-lr',
  '--lr-decay-style', '--lr-warmup-iters', '--train-iters', '--weight-decay', '--adam-beta1', '--adam-beta2', '--clip-grad',
  '--micro-batch-size', '--global-batch-size', '--seed', '--save-tokens-per-expert-interval', '--log-interval',
]);
/** Flags that change nothing in a one-machine reproduction (performance, precision, logging, I/O). */
const HARMLESS = /^--(tensor|pipeline|context|expert-tensor|virtual)-|^--(bf16|fp16|fp8|use-|overlap-|moe-grouped-gemm|moe-token-dispatcher-type|moe-per-layer-logging|moe-router-dtype|moe-router-fusion|moe-permute-fusion|sequence-parallel|data-path|split|tokenizer|vocab|merge-file|save|load|tensorboard|wandb|log-|eval-|distributed-|ckpt|no-|disable-bias-linear|untie-embeddings|attention-dropout|hidden-dropout|init-method-std|norm-epsilon|rotary-base|lr-decay-iters|recompute|transformer-impl|attention-backend|exit-|manual-gc|num-workers|dataloader|mock-data|cross-entropy|calculate-per-token-loss|async-)/;

export interface MegatronImport {
  /** Raw Switchyard config fields (validate with parseConfig). */
  config: Record<string, unknown>;
  warnings: string[];
}

/** A Switchyard config for the MoE a Megatron-Core command line trains (the same model at the same width). */
export function fromMegatronArgs(args: Map<string, string[]>, source = 'args'): MegatronImport {
  const warnings: string[] = [];
  const one = (flag: string): string | undefined => {
    const v = args.get(flag);
    if (v === undefined) return undefined;
    if (v.length !== 1) throw new Error(`${source}: ${flag} needs one value, got ${v.length ? v.join(' ') : 'none'}`);
    return v[0];
  };
  const number = (flag: string, int = false): number | undefined => {
    const v = one(flag);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || (int && !Number.isInteger(n))) throw new Error(`${source}: ${flag} ${JSON.stringify(v)} is not ${int ? 'an integer' : 'a number'}`);
    return n;
  };
  const has = (flag: string): boolean => args.has(flag);
  const E = number('--num-experts', true);
  if (E === undefined) throw new Error(`${source}: no --num-experts: not an MoE command line`);
  const k = number('--moe-router-topk', true) ?? 2;
  const c: Record<string, unknown> = { model_type: 'moe_llama', expert_num: E, top_k: k };
  const set = (field: string, v: unknown): void => { if (v !== undefined) c[field] = v; };
  set('layers', number('--num-layers', true));
  set('dim', number('--hidden-size', true));
  set('heads', number('--num-attention-heads', true));
  set('seq_len', number('--seq-length', true));
  const hidden = number('--hidden-size', true) ?? 4096;
  set('expert_hidden', number('--moe-ffn-hidden-size', true) ?? number('--ffn-hidden-size', true) ?? 4 * hidden);
  set('dense_hidden', number('--ffn-hidden-size', true));
  c.activation = has('--swiglu') ? 'swiglu' : 'gelu';
  const pos = one('--position-embedding-type') ?? 'learned_absolute';
  if (pos === 'rope') c.positions = 'rotary';
  else if (pos === 'learned_absolute') c.positions = 'learned';
  else { c.positions = 'rotary'; warnings.push(`--position-embedding-type ${pos}: Switchyard has rotary and learned positions only; using rotary`); }
  if ((one('--normalization') ?? 'LayerNorm') !== 'RMSNorm') warnings.push(`--normalization ${one('--normalization') ?? 'LayerNorm (default)'}: Switchyard's model uses RMSNorm`);
  const freq = one('--moe-layer-freq');
  if (freq !== undefined) {
    if (/^\d+$/.test(freq)) c.moe_every = Number(freq);
    else warnings.push(`--moe-layer-freq ${freq}: a layer pattern; Switchyard supports every N-th layer only, so every layer is MoE`);
  }
  const shared = number('--moe-shared-expert-intermediate-size', true);
  const Hexp = c.expert_hidden as number;
  if (shared !== undefined) {
    if (shared % Hexp === 0) c.shared_experts = shared / Hexp;
    else { c.shared_experts = Math.max(1, Math.round(shared / Hexp)); warnings.push(`--moe-shared-expert-intermediate-size ${shared} is not a multiple of the expert width ${Hexp}: ${c.shared_experts} shared expert(s) of width ${Hexp}`); }
  }
  const router: Record<string, unknown> = {};
  const score = one('--moe-router-score-function') ?? 'softmax';
  if (score !== 'softmax' && score !== 'sigmoid') warnings.push(`--moe-router-score-function ${score}: Switchyard has softmax and sigmoid; using sigmoid`);
  router.scoring = score === 'softmax' ? 'softmax' : 'sigmoid';
  if (score === 'softmax') router.order = has('--moe-router-pre-softmax') ? 'softmax-topk' : 'topk-softmax';
  else { router.order = 'softmax-topk'; router.renormalize = k > 1; }
  const groups = number('--moe-router-num-groups', true), gtop = number('--moe-router-group-topk', true);
  const lbRaw = args.get('--moe-router-load-balancing-type') ?? ['aux_loss'];
  const coeffs = (args.get('--moe-aux-loss-coeff') ?? ['0']).map(Number);
  if (lbRaw.length > 1) warnings.push(`--moe-router-load-balancing-type ${lbRaw.join(' ')}: Switchyard trains one balance loss; using ${lbRaw[0]}`);
  const lb = lbRaw[0];
  const coeff = coeffs[0] ?? 0;
  if (!Number.isFinite(coeff)) throw new Error(`${source}: --moe-aux-loss-coeff ${coeffs.join(' ')} is not a number`);
  if (lb === 'sinkhorn') router.type = 'sinkhorn';
  else if (gtop) { router.type = 'group_limited'; router.num_groups = groups; router.topk_groups = gtop; router.group_score = k / gtop === 1 ? 'max' : 'top2-sum'; if (k / gtop !== 1 && k / gtop !== 2) warnings.push(`group scores: Megatron sums the top-${k / gtop} scores per group; Switchyard's nearest is top2-sum`); }
  else router.type = 'topk';
  c.router = router;
  if (lb === 'aux_loss' || lb === 'global_aux_loss') c.aux_loss = { type: coeff > 0 ? 'switch' : 'none', weight: coeff };
  else if (lb === 'seq_aux_loss') c.aux_loss = { type: coeff > 0 ? 'sequence' : 'none', weight: coeff };
  else if (lb === 'none' || lb === 'sinkhorn') c.aux_loss = { type: 'none', weight: 0 };
  else { c.aux_loss = { type: 'none', weight: 0 }; warnings.push(`--moe-router-load-balancing-type ${lb}: no Switchyard equivalent; no balance loss`); }
  if (lb === 'global_aux_loss') warnings.push('global_aux_loss: Switchyard forms the Switch loss from counts over all micro-batches of a step when grad_accum_steps > 1 (not a running average, and one data-parallel rank)');
  set('z_loss_weight', number('--moe-z-loss-coeff'));
  if (has('--moe-router-enable-expert-bias')) c.balance = { aux_free: { enabled: true, update_rate: number('--moe-router-bias-update-rate') ?? 1e-3 } };
  const cf = number('--moe-expert-capacity-factor');
  if (cf !== undefined && cf > 0) {
    c.capacity_factor = cf;
    c.drop_policy = has('--moe-pad-expert-input-to-capacity') ? 'pad' : (one('--moe-token-drop-policy') ?? 'probs') === 'position' ? 'drop-position' : 'drop-probability';
    if (c.drop_policy === 'pad' && (one('--moe-token-drop-policy') ?? 'probs') === 'probs') warnings.push('--moe-pad-expert-input-to-capacity with drop policy probs: Switchyard\'s pad drops by position');
  }
  const ep = number('--expert-model-parallel-size', true);
  if (ep !== undefined) c.parallel = { ep_size: ep };
  set('lr', number('--lr'));
  const lr = number('--lr'), minLr = number('--min-lr');
  if (lr !== undefined && lr > 0) c.min_lr_ratio = (minLr ?? 0) / lr; // --min-lr defaults to 0
  const style = one('--lr-decay-style');
  if (style !== undefined) {
    if (['cosine', 'constant', 'linear'].includes(style)) c.schedule = style;
    else { c.schedule = 'cosine'; warnings.push(`--lr-decay-style ${style}: Switchyard has cosine, constant and linear; using cosine`); }
  } else c.schedule = 'linear'; // Megatron's default
  // absent flags take Megatron-LM's defaults (arguments.py, training_config.py), not ours
  c.warmup_steps = number('--lr-warmup-iters', true) ?? 0;
  set('steps', number('--train-iters', true));
  c.weight_decay = number('--weight-decay') ?? 0.01;
  c.beta1 = number('--adam-beta1') ?? 0.9;
  c.beta2 = number('--adam-beta2') ?? 0.999;
  const clip = number('--clip-grad') ?? 1.0;
  c.grad_clip = clip > 0 ? clip : null;
  const mbs = number('--micro-batch-size', true), gbs = number('--global-batch-size', true);
  set('batch_size', mbs);
  if (mbs !== undefined && gbs !== undefined && gbs % mbs === 0) c.grad_accum_steps = gbs / mbs;
  set('seed', number('--seed', true));
  const every = number('--save-tokens-per-expert-interval', true) ?? number('--log-interval', true);
  if (every !== undefined) c.log_every = every;
  if ((one('--optimizer') ?? 'adam') !== 'adam') warnings.push(`--optimizer ${one('--optimizer')}: Switchyard trains with AdamW`);
  const ignored = [...args.keys()].filter((f) => !IMPORTED.has(f) && !HARMLESS.test(f) && f !== '--optimizer');
  if (ignored.length) warnings.push(`ignored (no Switchyard field): ${ignored.join(' ')}`);
  return { config: c, warnings };
}
