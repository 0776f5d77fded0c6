/**
 * Cross-field rules of the run config (experts vs devices, capacity vs tokens, …). Each returns a message naming
 * the fields, their values and what would be allowed. They run only once every single field is valid.
 *
 * Decisions:
 * - capacity_factor is required by every drop policy but dropless, and an error with dropless (it would do
 *   nothing, and a user who set it expects drops).
 * - expert_choice has its own capacity (each expert takes its top C = ⌈T·k·capacity_factor/E⌉ tokens;
 *   a token no expert picks rides the residual): it needs capacity_factor and ignores drop_policy, which
 *   must stay at its default 'dropless' (any other value would look meaningful and is not).
 * - capacity vs tokens is an error, not a warning: with capacity_factor·T·k/E < 1 every expert's capacity
 *   rounds up to 1, so the factor no longer means what it says (and drops dominate).
 * - a run shorter than its eval_every / warmup_steps is refused only when the file itself writes both
 *   numbers (a contradiction the user wrote). Shortening a run by --steps / --set, or against a default, is
 *   the commonest override there is: validation and the checkpoint then run at the final step, and the
 *   trainer says so once (scheduleNotes).
 * - dispatcher padded / onehot where only gather can run (expert choice, an expert executor, recompute) is an
 *   error, not a silent fallback: the user asked for a data path they would not get.
 */
import type { Config } from './schema.ts';
import type { ConfigIssue } from './errors.ts';
import { MAX_TRAIN_BYTES, showBytes } from '../limits.ts';

/** Divisors of n in increasing order (O(√n) work, never an array of length n). */
function divisors(n: number): number[] {
  const lo: number[] = [];
  const hi: number[] = [];
  for (let d = 1; d * d <= n; d++) if (n % d === 0) { lo.push(d); if (d * d !== n) hi.unshift(n / d); }
  return [...lo, ...hi];
}
const list = (xs: number[]) => (xs.length > 12 ? `${xs.slice(0, 12).join(', ')}, ...` : xs.join(', '));
const TOKEN_DROP_POLICIES = 'drop-position | drop-probability | reroute | pad';

/**
 * Why data parallelism over `dp` ranks (each a replica on batch_size/dp sequences) would not train exactly as
 * one thread does: whatever looks at the whole batch at once (expert choice, Sinkhorn, capacity per batch,
 * the variance loss), draws router noise per batch, or needs a thread it cannot have. Empty: allowed.
 */
export function dataParallelIssues(c: Config, dp: number): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const bad = (path: string, message: string) => out.push({ path, message });
  const d = `parallel.dp_size = ${dp}`;
  if (c.batch_size % dp !== 0) {
    bad('parallel.dp_size', `${d} does not divide batch_size = ${c.batch_size} (each rank takes batch_size/dp_size sequences); allowed: ${list(divisors(c.batch_size).filter((x) => x <= 64))}`);
  }
  const r = c.router.type;
  if (r === 'expert_choice' || r === 'sinkhorn') {
    bad('router.type', `router.type ${r} ${r === 'sinkhorn' ? 'normalises' : 'picks'} over every token of the batch, which no rank sees with ${d}; allowed with dp_size > 1: topk | group_limited (or dp_size 1)`);
  } else if (r === 'noisy_topk' || r === 'gumbel') {
    bad('router.type', `router.type ${r} draws its noise for the whole batch, which a rank's share would not reproduce with ${d}; allowed with dp_size > 1: topk | group_limited (or dp_size 1)`);
  }
  if (c.drop_policy !== 'dropless') {
    bad('drop_policy', `drop_policy "${c.drop_policy}" keeps a capacity per batch, which ${d} would turn into a capacity per rank; allowed with dp_size > 1: dropless (or dp_size 1)`);
  }
  if (c.use_load_balance && c.aux_loss.type === 'variance' && c.aux_loss.weight > 0) {
    bad('aux_loss.type', `aux_loss.type "variance" is not linear in the batch's mean probabilities, so its ${d} parts do not add up to the whole batch's; allowed with dp_size > 1: none | switch | kl | cv2 | sequence | group (or dp_size 1)`);
  }
  if (c.balance.sparse_accumulation.enabled) {
    bad('balance.sparse_accumulation.enabled', `sparse accumulation keeps per-micro-batch expert gradients on one thread, which ${d} splits; allowed with dp_size > 1: false (or dp_size 1)`);
  }
  if (c.parallel.ep_size > 1) {
    bad('parallel.dp_size', `${d} together with parallel.ep_size = ${c.parallel.ep_size} is not supported (each data-parallel rank would need its own expert workers); allowed: dp_size 1 with ep_size > 1, or ep_size 1`);
  }
  if (c.backend === 'webgpu') {
    bad('parallel.dp_size', `${d} runs replicas in wasm worker threads, and backend webgpu has one GPU queue; allowed with webgpu: 1, or backend wasm | cpu`);
  }
  return out;
}

/** Every cross-field problem of a config whose fields are individually valid; `written(path)`: the user's file set it. */
export function crossChecks(c: Config, written: (path: string) => boolean = () => true): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const bad = (path: string, message: string) => out.push({ path, message });
  const m = c.fine_grained;
  const E = c.expert_num * m; // experts actually routed to (fine-grained)
  const k = c.top_k * m;
  const T = c.batch_size * c.seq_len; // tokens per micro-batch entering each MoE layer
  const r = c.router;
  const ec = r.type === 'expert_choice';

  // Model shape.
  if (c.top_k > c.expert_num) bad('top_k', `top_k = ${c.top_k} exceeds expert_num = ${c.expert_num}; allowed: 1..${c.expert_num}`);
  if (c.expert_hidden % m !== 0) {
    bad('fine_grained', `expert_hidden = ${c.expert_hidden} is not divisible by fine_grained = ${m} (each of the m pieces has width expert_hidden/m); allowed: ${list(divisors(c.expert_hidden))}`);
  }
  if (c.model_type === 'moe_llama') {
    if (c.dim % c.heads !== 0) bad('heads', `dim = ${c.dim} is not divisible by heads = ${c.heads}; allowed: ${list(divisors(c.dim))}`);
    else if (c.positions === 'rotary' && (c.dim / c.heads) % 2 !== 0) {
      bad('heads', `rotary positions rotate pairs of channels, so the head width dim/heads = ${c.dim}/${c.heads} = ${c.dim / c.heads} must be even; allowed heads: ${list(divisors(c.dim).filter((h) => (c.dim / h) % 2 === 0))} (or positions: learned)`);
    }
  }

  // Router groups (DeepSeek-V3 group-limited routing).
  if (E % r.num_groups !== 0) {
    bad('router.num_groups', `router.num_groups = ${r.num_groups} does not divide the expert count expert_num·fine_grained = ${E}; allowed: ${list(divisors(E))}`);
  } else if (r.topk_groups > r.num_groups) {
    bad('router.topk_groups', `router.topk_groups = ${r.topk_groups} exceeds router.num_groups = ${r.num_groups}; allowed: 1..${r.num_groups}`);
  } else if (r.type === 'group_limited' && k > r.topk_groups * (E / r.num_groups)) {
    const need = Math.ceil(k / (E / r.num_groups));
    bad('router.topk_groups', `group_limited routing keeps router.topk_groups = ${r.topk_groups} group(s) of E/num_groups = ${E / r.num_groups} experts, fewer than the top_k·fine_grained = ${k} experts a token picks; allowed: topk_groups ≥ ${need} (or lower top_k)`);
  }

  // Capacity, drop policy and expert choice.
  if (ec) {
    if (c.capacity_factor === null) bad('capacity_factor', `router.type expert_choice needs capacity_factor (each expert takes C = ⌈T·k·capacity_factor/E⌉ tokens); got null; allowed: a number > 0, e.g. 1 or 2`);
    if (c.drop_policy !== 'dropless') bad('drop_policy', `drop_policy = "${c.drop_policy}" has no effect with router.type expert_choice (experts pick their top-C tokens; a token no expert picks rides the residual); remove it`);
  } else if (c.drop_policy === 'dropless' && c.capacity_factor !== null) {
    bad('capacity_factor', `capacity_factor = ${c.capacity_factor} has no effect with drop_policy dropless; remove it (null) or pick a drop policy (${TOKEN_DROP_POLICIES})`);
  } else if (c.drop_policy !== 'dropless' && c.capacity_factor === null) {
    bad('capacity_factor', `drop_policy "${c.drop_policy}" needs capacity_factor (capacity = ⌈capacity_factor·T·k/E⌉); got null; allowed: a number > 0 (e.g. 1.25), or drop_policy: dropless`);
  }
  if (c.capacity_factor !== null && (ec || c.drop_policy !== 'dropless')) {
    const perExpert = (c.capacity_factor * T * k) / E;
    if (perExpert < 1) {
      bad('capacity_factor', `capacity_factor·T·k/E = ${c.capacity_factor}·${T}·${k}/${E} = ${+perExpert.toPrecision(3)} < 1 with T = batch_size·seq_len = ${T} tokens per micro-batch: every expert's capacity would round up to 1 token and the factor would not mean what it says; allowed: capacity_factor ≥ ${+(E / (T * k)).toPrecision(3)}, or more tokens per micro-batch`);
    }
  }

  // Aux losses.
  const a = c.aux_loss.type;
  if (a === 'sequence' && c.model_type !== 'moe_llama') bad('aux_loss.type', `aux_loss.type "sequence" balances within each sequence and needs model_type moe_llama; got model_type "${c.model_type}"; allowed here: none | switch | kl | cv2 | variance | group`);
  if (a === 'group' && c.parallel.ep_size === 1 && r.num_groups === 1) {
    bad('aux_loss.type', `aux_loss.type "group" balances load across device groups, but parallel.ep_size = 1 and router.num_groups = 1 give a single group; allowed: parallel.ep_size > 1 or router.num_groups > 1, or another aux_loss.type`);
  }

  // Data.
  if (c.data.source === 'file' && c.data.path === null) bad('data.path', 'data.source "file" needs data.path (a text file); got null');
  if (c.data.source !== 'file' && c.data.path !== null) bad('data.path', `data.path = ${JSON.stringify(c.data.path)} is only read with data.source "file" (got source "${c.data.source}"); remove it or set data.source: file`);
  if (c.model_type === 'moe_mlp' && c.data.source !== 'synthetic') bad('data.source', `model_type moe_mlp trains on random inputs and targets (seed 000) and needs data.source "synthetic"; got "${c.data.source}"`);

  // Schedule.
  const both = (field: string) => written('steps') && written(field); // else: scheduleNotes
  if (c.warmup_steps > c.steps && both('warmup_steps')) bad('warmup_steps', `warmup_steps = ${c.warmup_steps} exceeds steps = ${c.steps}; allowed: 0..${c.steps}`);
  if (c.eval_every > c.steps && both('eval_every')) bad('eval_every', `eval_every = ${c.eval_every} exceeds steps = ${c.steps} (no evaluation would run); allowed: 0 (never) or 1..${c.steps}`);

  // Expert parallelism.
  const p = c.parallel;
  if (p.placement === null && E % p.ep_size !== 0) {
    bad('parallel.ep_size', `the expert count expert_num·fine_grained = ${E} is not divisible by parallel.ep_size = ${p.ep_size} (each rank owns E/ep_size experts); allowed: ${list(divisors(E))}, or a parallel.placement map`);
  }
  if (p.ep_size % p.nodes !== 0) bad('parallel.nodes', `parallel.ep_size = ${p.ep_size} ranks cannot be split evenly into parallel.nodes = ${p.nodes} nodes; allowed: ${list(divisors(p.ep_size))}`);
  if (p.chunks > T) bad('parallel.chunks', `parallel.chunks = ${p.chunks} exceeds the ${T} tokens per micro-batch (batch_size·seq_len); allowed: 1..${T}`);

  // Data parallelism (a number; `auto` falls back to 1 where these would refuse it: run.ts).
  if (typeof p.dp_size === 'number' && p.dp_size > 1) for (const i of dataParallelIssues(c, p.dp_size)) out.push(i);

  // What the webgpu backend cannot run (WebGPU in Node has no synchronous read-back).
  if (c.backend === 'webgpu' && p.ep_size > 1) {
    bad('parallel.ep_size', `parallel.ep_size = ${p.ep_size} runs experts in wasm worker threads fed by synchronous reads of the rows, which backend webgpu does not allow; allowed with webgpu: 1 (one GPU holds every expert), or backend wasm | cpu`);
  }
  if (c.dispatcher === 'padded' || c.dispatcher === 'onehot') {
    const only = ec ? 'router.type expert_choice' : p.ep_size > 1 ? `parallel.ep_size = ${p.ep_size}` : c.recompute ? 'recompute: true' : null;
    if (only !== null) bad('dispatcher', `dispatcher = "${c.dispatcher}" cannot run with ${only} (only gather moves tokens there); allowed: auto or gather`);
  }

  // Balance controllers.
  const b = c.balance;
  if (c.backend === 'webgpu' && b.grad_reweight.enabled && b.grad_reweight.mode !== 'utilization') {
    bad('balance.grad_reweight.mode', `balance.grad_reweight.mode "${b.grad_reweight.mode}" reads per-expert gradient norms back to the host between backward and update, which backend webgpu does not allow synchronously; allowed with webgpu: utilization (from the step's loads), or backend wasm | cpu`);
  }
  if (b.aux_free.enabled && r.type !== 'topk' && r.type !== 'group_limited') {
    bad('balance.aux_free.enabled', `aux-loss-free balancing adds a selection bias that only router.type topk and group_limited take; got router.type "${r.type}"`);
  }
  const dc = b.dynamic_capacity;
  if (dc.enabled && c.capacity_factor === null) bad('balance.dynamic_capacity.enabled', 'dynamic capacity adapts capacity_factor, which is null (drop_policy dropless); set capacity_factor and a drop policy, or disable it');
  if (dc.min_factor > dc.max_factor) bad('balance.dynamic_capacity.min_factor', `min_factor = ${dc.min_factor} exceeds max_factor = ${dc.max_factor}`);
  if (dc.underload_threshold >= dc.overload_threshold) {
    bad('balance.dynamic_capacity.underload_threshold', `underload_threshold = ${dc.underload_threshold} must be below overload_threshold = ${dc.overload_threshold}`);
  }
  const gr = b.grad_reweight;
  if (gr.low >= gr.high) bad('balance.grad_reweight.low', `low = ${gr.low} must be below high = ${gr.high}`);
  if (b.sparse_accumulation.enabled && c.grad_accum_steps === 1) {
    bad('balance.sparse_accumulation.enabled', 'sparse expert gradient accumulation needs grad_accum_steps > 1 (it counts the micro-batches each expert was active in); got grad_accum_steps = 1');
  }
  if (out.length === 0) {
    const why = trainingMemoryIssue(c);
    if (why) bad('', why);
  }
  return out;
}

/** Why this config cannot train within the wasm heap (4 GiB), or null: only backend wasm has that bound (cpu keeps tensors in JS memory, webgpu on the GPU). */
export function trainingMemoryIssue(c: Config): string | null {
  if (c.backend !== 'wasm') return null;
  const m = trainingMemory(c);
  if (m.total <= MAX_TRAIN_BYTES) return null;
  return `this model needs about ${showBytes(m.total)} to train (${m.params.toExponential(2)} parameters × 16 bytes for weights, gradients and AdamW moments = ${showBytes(m.params * 16)}, plus about ${showBytes(m.activations)} of activations per micro-batch), above the ${showBytes(MAX_TRAIN_BYTES)} bound (the wasm heap); ` +
    `lower expert_num = ${c.expert_num}, expert_hidden = ${c.expert_hidden}, dim = ${c.dim}, layers = ${c.layers}, batch_size = ${c.batch_size} or seq_len = ${c.seq_len}`;
}

/**
 * Rough training memory of a valid config, bytes: params·16 (weights, gradients, AdamW m and v, fp32) plus the
 * activations of one micro-batch kept for backward (×2 for their gradients). An estimate to refuse configs that
 * cannot fit long before tfjs tries to allocate them; it is not a measurement.
 */
export function trainingMemory(c: Config): { params: number; activations: number; total: number } {
  const lm = c.model_type === 'moe_llama';
  const D = c.dim;
  const E = c.expert_num * c.fine_grained;
  const k = c.top_k * c.fine_grained;
  const H = c.expert_hidden / c.fine_grained;
  const w = c.activation === 'swiglu' ? 3 : 2;
  const V = !lm ? 0 : c.data.tokenizer === 'bpe' ? c.data.bpe_vocab : 256;
  const B = c.batch_size;
  const L = c.seq_len;
  const T = B * L;
  const dense = c.dense_hidden ?? (c.top_k + c.shared_experts) * c.expert_hidden;
  let params = lm ? 2 * V * D + D + (c.positions === 'learned' ? L * D : 0) : 0;
  let acts = lm ? 3 * T * V : 2 * T * D;
  for (let i = 0; i < c.layers; i++) {
    if (lm) { params += 4 * D * D + 2 * D; acts += 12 * T * D + 2 * B * c.heads * L * L; }
    if (!lm || i % c.moe_every === 0) {
      params += D * E + E * w * D * H + c.shared_experts * w * D * c.expert_hidden;
      acts += 4 * T * E + T * k * (3 * H + 2 * D) + c.shared_experts * T * 3 * c.expert_hidden;
    } else {
      params += w * D * dense;
      acts += T * 3 * dense;
    }
  }
  const activations = 2 * 4 * acts;
  return { params, activations, total: 16 * params + activations };
}

/** What a run shorter than its intervals does instead (the trainer logs each line once); [] when nothing changes. */
export function scheduleNotes(c: Pick<Config, 'steps' | 'eval_every' | 'checkpoint_every' | 'warmup_steps'>): string[] {
  const out: string[] = [];
  const evalLate = c.eval_every > c.steps;
  const ckptLate = c.checkpoint_every > c.steps;
  if (evalLate && ckptLate) out.push(`steps = ${c.steps} is below eval_every = ${c.eval_every} and checkpoint_every = ${c.checkpoint_every}: validation and the checkpoint run at the final step (${c.steps})`);
  else if (evalLate) out.push(`steps = ${c.steps} is below eval_every = ${c.eval_every}: validation runs at the final step (${c.steps})`);
  else if (ckptLate) out.push(`steps = ${c.steps} is below checkpoint_every = ${c.checkpoint_every}: the checkpoint is written at the final step (${c.steps})`);
  if (c.warmup_steps > c.steps) out.push(`steps = ${c.steps} is below warmup_steps = ${c.warmup_steps}: the learning rate rises to ${c.steps}/${c.warmup_steps} of lr and does not decay`);
  return out;
}
