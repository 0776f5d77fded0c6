/**
 * Run config: every kind of bad input names the field, the bad value and what is allowed; the shipped
 * configs validate; overrides coerce types; defaults match the documented table; configToYaml round-trips.
 * No tfjs: config.ts must load without it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, DEFAULT_CONFIG, applyOverrides, configToYaml, denseHidden, loadConfig, parseConfig, type Config } from '../src/config/load.ts';
import { closest, editDistance } from '../src/config/errors.ts';
import { SEED_ALIASES } from '../src/config/aliases.ts';
import { scheduleNotes } from '../src/config/checks.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'config-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let fileNo = 0;
function writeTmp(text: string): string {
  const f = path.join(tmp, `c${fileNo++}.yaml`);
  fs.writeFileSync(f, text);
  return f;
}

/** Runs fn, expects a ConfigError, returns it. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError, none was thrown');
}

/** Expects exactly one issue at `at` whose message contains every fragment; and the error message shows it. */
function expectIssue(input: unknown, at: string, ...fragments: string[]): void {
  const err = configError(() => parseConfig(input));
  const hits = err.issues.filter((i) => i.path === at);
  expect(hits.map((i) => i.message), `issues: ${JSON.stringify(err.issues)}`).toHaveLength(1);
  for (const f of fragments) expect(hits[0].message).toContain(f);
  expect(err.message).toContain(`  ${at === '' ? '(top level)' : at}: ${hits[0].message}`);
}

describe('field errors: path, bad value, allowed values', () => {
  it('wrong enum value, with a did-you-mean among the values', () => {
    expectIssue({ router: { type: 'sinkhorns' } }, 'router.type', '"sinkhorns"', 'topk | noisy_topk | gumbel | expert_choice | sinkhorn | group_limited', 'did you mean "sinkhorn"');
    expectIssue({ drop_policy: 'drop' }, 'drop_policy', '"drop"', 'drop-position | drop-probability | reroute | pad | dropless');
    expectIssue({ activation: 'SwiGLU' }, 'activation', '"SwiGLU"', 'relu | gelu | swiglu', 'did you mean "swiglu"');
    expectIssue({ aux_loss: { type: 'z' } }, 'aux_loss.type', '"z"', 'none | switch | kl | cv2 | variance | sequence | group');
  });
  it('wrong type: string for a number, number for a boolean, null where null is not allowed', () => {
    expectIssue({ dim: '64' }, 'dim', 'got "64"', 'an integer in 1..');
    expectIssue({ recompute: 1 }, 'recompute', 'got 1', 'true or false');
    expectIssue({ top_k: null }, 'top_k', 'got null', 'an integer in 1..');
    expectIssue({ data: { path: 5, source: 'file' } }, 'data.path', 'got 5', 'a file path (string) or null');
  });
  it('negative, zero and non-integer numbers', () => {
    expectIssue({ z_loss_weight: -1 }, 'z_loss_weight', 'got -1', 'a number ≥ 0');
    expectIssue({ lr: 0 }, 'lr', 'got 0', 'a number > 0');
    expectIssue({ steps: 10.5 }, 'steps', 'got 10.5', 'an integer in 1..');
    expectIssue({ shared_experts: -1 }, 'shared_experts', 'got -1', 'an integer in 0..');
    expectIssue({ capacity_factor: -2 }, 'capacity_factor', 'got -2', 'a number in (0, 1024] or null');
  });
  it('numbers outside closed, open and half-open ranges', () => {
    expectIssue({ beta2: 1 }, 'beta2', 'got 1', 'a number in [0, 1)');
    expectIssue({ data: { val_fraction: 0.6 } }, 'data.val_fraction', 'got 0.6', 'a number in (0, 0.5]');
    expectIssue({ min_lr_ratio: 1.5 }, 'min_lr_ratio', 'got 1.5', 'a number in [0, 1]');
    expectIssue({ data: { bpe_vocab: 256 } }, 'data.bpe_vocab', 'got 256', 'an integer in 257..');
  });
  it('a section that is not a mapping, and a config that is not one', () => {
    expectIssue({ router: 'topk' }, 'router', 'got "topk"', 'a mapping of router fields');
    expectIssue({ balance: { aux_free: true } }, 'balance.aux_free', 'got true', 'a mapping of balance.aux_free fields');
    expectIssue([1, 2], '', 'a list', 'a mapping of config fields');
    expectIssue(null, '', 'got null', 'a mapping of config fields');
  });
  it('unknown top-level fields: typo, Megatron/HF names, a field of another section', () => {
    expectIssue({ stpes: 10 }, 'stpes', 'unknown field', 'did you mean "steps"');
    expectIssue({ topK: 1 }, 'topK', 'did you mean "top_k"');
    expectIssue({ num_experts: 8 }, 'num_experts', 'did you mean "expert_num"');
    expectIssue({ moe_aux_loss_coeff: 0.01 }, 'moe_aux_loss_coeff', 'did you mean "aux_loss.weight"');
    expectIssue({ type: 'topk' }, 'type', 'did you mean "router.type" or "aux_loss.type"');
    expectIssue({ zzqx: 1 }, 'zzqx', 'unknown field', 'fields at the top level: model_type, layers');
  });
  it('unknown keys that name a field inside a section: the did-you-mean gives the dotted path', () => {
    expectIssue({ router_type: 'topk' }, 'router_type', 'unknown field', 'did you mean "router.type"');
    expectIssue({ aux_los_weight: 0.1 }, 'aux_los_weight', 'did you mean "aux_loss.weight"');
    expectIssue({ dead_expert_window: 5 }, 'dead_expert_window', 'did you mean "balance.dead_expert.window"');
    expectIssue({ parallel_ep_size: 2 }, 'parallel_ep_size', 'did you mean "parallel.ep_size"');
  });
  it('unknown nested fields, with suggestions from that section', () => {
    expectIssue({ router: { tpye: 'topk' } }, 'router.tpye', 'did you mean "router.type"');
    expectIssue({ balance: { aux_free: { enabeld: true } } }, 'balance.aux_free.enabeld', 'did you mean "balance.aux_free.enabled"');
    expectIssue({ data: { foo: 1 } }, 'data.foo', 'fields in data: source, path, tokenizer, bpe_vocab, val_fraction, max_chars');
  });
  it('runs cross-field rules only on individually valid fields', () => {
    // heads = 0 is out of range; the divisibility rule must not also run on it (dim % 0 is NaN).
    const err = configError(() => parseConfig({ heads: 0, capacity_factor: -2 }));
    expect(err.issues.map((i) => i.path)).toEqual(['heads', 'capacity_factor']);
  });
  it('lists every problem, one per line', () => {
    const err = configError(() => parseConfig({ dim: 0, router: { type: 'x' }, stpes: 1, beta1: 2 }));
    expect(err.issues.map((i) => i.path).sort()).toEqual(['beta1', 'dim', 'router.type', 'stpes']);
    const lines = err.message.split('\n');
    expect(lines[0]).toBe('invalid config (4 problems):');
    expect(lines).toHaveLength(5);
  });
});

describe('cross-field checks', () => {
  it('model shape: top_k vs experts, heads vs dim, rotary head width, fine-grained split', () => {
    expectIssue({ top_k: 9 }, 'top_k', 'top_k = 9', 'expert_num = 8', '1..8');
    expectIssue({ top_k: 3, expert_num: 2, fine_grained: 4, expert_hidden: 128 }, 'top_k', 'top_k = 3', 'expert_num = 2');
    expectIssue({ dim: 100, heads: 3 }, 'heads', 'dim = 100', 'heads = 3', '1, 2, 4, 5, 10, 20, 25, 50, 100');
    expectIssue({ dim: 12, heads: 4 }, 'heads', 'dim/heads = 12/4 = 3', 'allowed heads: 1, 2, 3, 6', 'positions: learned');
    expect(parseConfig({ dim: 12, heads: 4, positions: 'learned' }).heads).toBe(4);
    expectIssue({ expert_hidden: 100, fine_grained: 3 }, 'fine_grained', 'expert_hidden = 100', 'fine_grained = 3', '1, 2, 4, 5, 10');
  });
  it('router groups: num_groups | E·m, topk_groups ≤ num_groups, enough experts in the kept groups', () => {
    expectIssue({ router: { num_groups: 3 } }, 'router.num_groups', 'num_groups = 3', 'expert_num·fine_grained = 8', '1, 2, 4, 8');
    expectIssue({ router: { num_groups: 2, topk_groups: 3 } }, 'router.topk_groups', 'topk_groups = 3', 'num_groups = 2');
    expectIssue({ top_k: 4, router: { type: 'group_limited', num_groups: 4, topk_groups: 1 } }, 'router.topk_groups', 'topk_groups = 1', '2 experts', 'top_k·fine_grained = 4', 'topk_groups ≥ 2');
    expect(parseConfig({ top_k: 4, router: { type: 'group_limited', num_groups: 4, topk_groups: 2 } }).router.topk_groups).toBe(2);
  });
  it('capacity_factor and drop_policy: required, useless with dropless, expert choice rules', () => {
    expectIssue({ drop_policy: 'drop-position' }, 'capacity_factor', 'drop_policy "drop-position" needs capacity_factor', 'got null');
    expectIssue({ capacity_factor: 1.25 }, 'capacity_factor', 'capacity_factor = 1.25 has no effect with drop_policy dropless', 'drop-position | drop-probability | reroute | pad');
    expectIssue({ router: { type: 'expert_choice' } }, 'capacity_factor', 'expert_choice needs capacity_factor', 'got null');
    expectIssue({ router: { type: 'expert_choice' }, capacity_factor: 1, drop_policy: 'pad' }, 'drop_policy', 'drop_policy = "pad" has no effect with router.type expert_choice');
    expect(parseConfig({ router: { type: 'expert_choice' }, capacity_factor: 2 }).capacity_factor).toBe(2);
  });
  it('capacity vs tokens: capacity_factor·T·k/E < 1 is an error, with the smallest allowed factor', () => {
    // T = 2·2 = 4 tokens, k = 1, E = 64: 1·4·1/64 = 0.0625 < 1; the smallest factor is 64/4 = 16.
    expectIssue({ batch_size: 2, seq_len: 2, expert_num: 64, top_k: 1, capacity_factor: 1, drop_policy: 'pad' }, 'capacity_factor', '= 0.0625 < 1', 'T = batch_size·seq_len = 4', 'capacity_factor ≥ 16');
    expect(parseConfig({ batch_size: 2, seq_len: 2, expert_num: 64, top_k: 1, capacity_factor: 16, drop_policy: 'pad' }).capacity_factor).toBe(16);
  });
  it('aux losses: sequence needs the LM, group needs several groups', () => {
    expectIssue({ model_type: 'moe_mlp', data: { source: 'synthetic' }, aux_loss: { type: 'sequence' } }, 'aux_loss.type', '"sequence"', 'model_type "moe_mlp"');
    expectIssue({ aux_loss: { type: 'group' } }, 'aux_loss.type', '"group"', 'parallel.ep_size = 1', 'router.num_groups = 1');
    expect(parseConfig({ aux_loss: { type: 'group' }, router: { num_groups: 2 } }).aux_loss.type).toBe('group');
  });
  it('data: path iff source file; moe_mlp needs synthetic data', () => {
    expectIssue({ data: { source: 'file' } }, 'data.path', 'data.source "file" needs data.path', 'got null');
    expectIssue({ data: { path: 'x.txt' } }, 'data.path', 'data.path = "x.txt"', 'source "nlp-corpus"');
    expectIssue({ model_type: 'moe_mlp' }, 'data.source', 'moe_mlp', 'needs data.source "synthetic"', 'got "nlp-corpus"');
  });
  it('schedule: warmup and eval interval within steps, when the file itself writes both', () => {
    expectIssue({ steps: 20, warmup_steps: 30, eval_every: 10 }, 'warmup_steps', 'warmup_steps = 30', 'steps = 20', '0..20');
    expectIssue({ steps: 20, warmup_steps: 0, eval_every: 30 }, 'eval_every', 'eval_every = 30', 'steps = 20');
    const f = writeTmp('steps: 20\neval_every: 30\n');
    expect(configError(() => loadConfig(f)).message).toContain('eval_every (line 2): eval_every = 30 exceeds steps = 20');
  });
  it('shortening a run by override is never refused: evaluation and checkpoint move to the final step', () => {
    // tiny.yaml writes eval_every 100, checkpoint_every 100, warmup 10; the user shortens the run
    for (const steps of [5, 20, 30, 40]) expect(loadConfig('configs/tiny.yaml', [`steps=${steps}`]).steps).toBe(steps);
    // a default the user never wrote is not a contradiction either (default eval_every 50, warmup 10)
    expect(parseConfig({ steps: 5 }).steps).toBe(5);
    expect(loadConfig(writeTmp('steps: 300\neval_every: 100\n'), ['eval_every=500']).eval_every).toBe(500);
    const cfg = loadConfig('configs/tiny.yaml', ['steps=20']);
    expect(scheduleNotes(cfg)).toEqual(['steps = 20 is below eval_every = 100 and checkpoint_every = 100: validation and the checkpoint run at the final step (20)']);
    expect(scheduleNotes(loadConfig('configs/tiny.yaml', ['steps=5']))).toEqual([
      'steps = 5 is below eval_every = 100 and checkpoint_every = 100: validation and the checkpoint run at the final step (5)',
      'steps = 5 is below warmup_steps = 10: the learning rate rises to 5/10 of lr and does not decay',
    ]);
    expect(scheduleNotes(loadConfig('configs/tiny.yaml'))).toEqual([]);
  });
  it('expert parallelism: experts per rank, ranks per node, chunks per micro-batch; placement lifts the first', () => {
    expectIssue({ parallel: { ep_size: 3 } }, 'parallel.ep_size', 'expert_num·fine_grained = 8', 'parallel.ep_size = 3', '1, 2, 4, 8');
    expect(parseConfig({ parallel: { ep_size: 3, placement: 'plan.json' } }).parallel.ep_size).toBe(3);
    expectIssue({ parallel: { ep_size: 4, nodes: 3 } }, 'parallel.nodes', 'ep_size = 4', 'nodes = 3', '1, 2, 4');
    // what backend webgpu cannot run is refused when the config is read, naming the field
    expectIssue({ backend: 'webgpu', parallel: { ep_size: 2 } }, 'parallel.ep_size', 'parallel.ep_size = 2', 'backend webgpu', 'allowed with webgpu: 1');
    expect(parseConfig({ backend: 'wasm', parallel: { ep_size: 2 } }).parallel.ep_size).toBe(2);
    expectIssue({ backend: 'webgpu', balance: { grad_reweight: { enabled: true, mode: 'inverse_norm' } } }, 'balance.grad_reweight.mode', '"inverse_norm"', 'allowed with webgpu: utilization');
    expect(parseConfig({ backend: 'webgpu', balance: { grad_reweight: { enabled: true, mode: 'utilization' } } }).backend).toBe('webgpu');
    expectIssue({ batch_size: 1, seq_len: 4, parallel: { chunks: 5 } }, 'parallel.chunks', 'chunks = 5', '4 tokens', '1..4');
  });
  it('balance controllers: bias needs a biasable router, dynamic capacity needs a factor, ordered bounds, accumulation', () => {
    expectIssue({ router: { type: 'sinkhorn' }, balance: { aux_free: { enabled: true } } }, 'balance.aux_free.enabled', 'router.type "sinkhorn"', 'topk and group_limited');
    expectIssue({ balance: { dynamic_capacity: { enabled: true } } }, 'balance.dynamic_capacity.enabled', 'capacity_factor', 'null');
    expectIssue({ balance: { dynamic_capacity: { min_factor: 3 } } }, 'balance.dynamic_capacity.min_factor', 'min_factor = 3', 'max_factor = 2');
    expectIssue({ balance: { dynamic_capacity: { underload_threshold: 2 } } }, 'balance.dynamic_capacity.underload_threshold', '= 2', 'overload_threshold = 1.5');
    expectIssue({ balance: { grad_reweight: { low: 0.9, high: 0.5 } } }, 'balance.grad_reweight.low', 'low = 0.9', 'high = 0.5');
    expectIssue({ balance: { sparse_accumulation: { enabled: true } } }, 'balance.sparse_accumulation.enabled', 'grad_accum_steps > 1', 'got grad_accum_steps = 1');
  });
});

describe('overrides', () => {
  const base = { model_type: 'moe_llama', router: { type: 'topk' } };
  it('coerce values as YAML scalars into dotted paths, without touching the input', () => {
    const o = applyOverrides(base, ['top_k=1', 'router.type=sinkhorn', 'aux_loss.weight=0', 'router.renormalize=true', 'lr=1e-4', 'data.path="123"', 'data.max_chars=~']);
    expect(o).toEqual({
      model_type: 'moe_llama', top_k: 1, lr: 1e-4,
      router: { type: 'sinkhorn', renormalize: true }, aux_loss: { weight: 0 }, data: { path: '123', max_chars: null },
    });
    expect(base).toEqual({ model_type: 'moe_llama', router: { type: 'topk' } });
  });
  it('reach the validated config (capacity_factor=null clears a field)', () => {
    const f = writeTmp('capacity_factor: 1.5\ndrop_policy: pad\n');
    const c = loadConfig(f, ['capacity_factor=null', 'drop_policy=dropless', 'top_k=1', 'router.type=sinkhorn']);
    expect([c.capacity_factor, c.drop_policy, c.top_k, c.router.type]).toEqual([null, 'dropless', 1, 'sinkhorn']);
  });
  it('bad syntax, unknown paths, sections and non-scalars are ConfigErrors naming the override', () => {
    const cases: Array<[string, string[]]> = [
      ['top_k', ['--set "top_k"', 'no "="']],
      ['nokey=3', ['--set "nokey=3"', 'unknown field "nokey"']],
      ['stpes=3', ['unknown field "stpes"', 'did you mean "steps"']],
      ['router.tpye=gumbel', ['unknown field "router.tpye"', 'did you mean "router.type"']],
      ['top_k.x=1', ['unknown field "top_k.x"', 'top_k is not a section']],
      ['router=sinkhorn', ['"router" is a section', 'router.type']],
      ['top_k=', ['empty value']],
      ['top_k=[1, 2]', ['must be a scalar', 'a list']],
      ['a b=1', ['"a b" is not a field path']],
    ];
    for (const [text, fragments] of cases) {
      const err = configError(() => applyOverrides({}, [text]));
      expect(err.issues).toHaveLength(1);
      for (const f of fragments) expect(err.issues[0].message).toContain(f);
    }
    expect(configError(() => applyOverrides({}, ['x=1', 'y']))!.issues).toHaveLength(2);
  });
  it('a bad override value is reported as coming from --set', () => {
    const err = configError(() => loadConfig('configs/tiny.yaml', ['router.type=sinkhorns']));
    expect(err.message).toContain('router.type (from --set router.type=sinkhorns): got "sinkhorns"');
  });
});

describe("the seeds' spellings (documented aliases)", () => {
  it("seed 001's config trains as written; the resolved YAML writes our names", () => {
    // seed 001 shows a user declaring exactly these five keys
    const f = writeTmp('model_type: moe_llama\nexpert_num: 8\ntop_k: 2\nuse_load_balance: true\naux_loss_weight: 0.05\n');
    const cfg = loadConfig(f);
    expect(cfg).toEqual({ ...structuredClone(DEFAULT_CONFIG), aux_loss: { type: 'switch', weight: 0.05 } });
    const yaml = configToYaml(cfg);
    expect(yaml).not.toContain('aux_loss_weight');
    expect(yaml).toMatch(/aux_loss:\n  type: switch\n  weight: 0.05\n/);
  });
  it('every alias maps onto our field; --set takes them too', () => {
    expect(SEED_ALIASES).toEqual({ aux_loss_weight: 'aux_loss.weight', balance_loss_weight: 'aux_loss.weight', use_gradient_checkpointing: 'recompute', accumulation_steps: 'grad_accum_steps' });
    const c = parseConfig({ balance_loss_weight: 0.02, use_gradient_checkpointing: true, accumulation_steps: 4 });
    expect([c.aux_loss.weight, c.recompute, c.grad_accum_steps]).toEqual([0.02, true, 4]);
    expect(loadConfig('configs/tiny.yaml', ['aux_loss_weight=0.03']).aux_loss.weight).toBe(0.03);
  });
  it('an alias and our name both given, or a bad value under an alias, are named as such', () => {
    expectIssue({ aux_loss_weight: 0.1, aux_loss: { weight: 0.2 } }, 'aux_loss_weight', 'the seeds\' spelling of aux_loss.weight', 'also set');
    const err = configError(() => loadConfig(writeTmp('dim: 64\naux_loss_weight: -1\n')));
    expect(err.message).toContain('aux_loss.weight (line 2, written as aux_loss_weight): got -1; expected a number ≥ 0');
  });
});

describe('dispatcher', () => {
  it('is a config field: auto | gather | padded | onehot, reaching the MoE layer', () => {
    expect(DEFAULT_CONFIG.dispatcher).toBe('auto');
    expect(parseConfig({ dispatcher: 'padded' }).dispatcher).toBe('padded');
    expectIssue({ dispatcher: 'scatter' }, 'dispatcher', '"scatter"', 'auto | gather | padded | onehot');
  });
  it('padded and onehot are refused where only gather runs (expert choice, expert parallelism, recompute)', () => {
    expectIssue({ dispatcher: 'onehot', router: { type: 'expert_choice' }, capacity_factor: 1 }, 'dispatcher', 'router.type expert_choice', 'auto or gather');
    expectIssue({ dispatcher: 'padded', parallel: { ep_size: 2 } }, 'dispatcher', 'parallel.ep_size = 2');
    expectIssue({ dispatcher: 'padded', recompute: true }, 'dispatcher', 'recompute');
  });
});

describe('files', () => {
  it('errors in a file carry the line of the field; duplicate keys are caught by the YAML reader', () => {
    const f = writeTmp('dim: 64\nrouter:\n  type: sinkhorns\n  tpye: topk\n');
    const err = configError(() => loadConfig(f));
    expect(err.message).toContain(`invalid config ${f} (2 problems)`);
    expect(err.message).toContain('router.type (line 3): got "sinkhorns"');
    expect(err.message).toContain('router.tpye (line 4): unknown field; did you mean "router.type"?');
    const dup = configError(() => loadConfig(writeTmp('top_k: 1\ndim: 64\ntop_k: 2\n')));
    expect(dup.message).toMatch(/:3:1: duplicate key "top_k"/);
    expect(configError(() => loadConfig(path.join(tmp, 'missing.yaml'))).message).toContain('ENOENT');
  });
  it('YAML specials: .inf, .nan and quoted numbers are rejected by value', () => {
    const err = configError(() => loadConfig(writeTmp('lr: .inf\nweight_decay: .nan\nsteps: "100"\n')));
    expect(err.message).toContain('lr (line 1): got Infinity; expected a number > 0');
    expect(err.message).toContain('weight_decay (line 2): got NaN; expected a number ≥ 0');
    expect(err.message).toContain('steps (line 3): got "100"; expected an integer in 1..1000000000');
  });
  it('a top-level list is named as such', () => {
    expect(configError(() => loadConfig(writeTmp('- 1\n- 2\n'))).message).toContain('(top level): got a list ([1,2]); expected a mapping of config fields');
  });
  it('an empty file is an error, not the default config (a config torn to 0 bytes must not train on defaults)', () => {
    expect(configError(() => loadConfig(writeTmp(''))).message).toContain('the file is empty');
    expect(configError(() => loadConfig(writeTmp('# nothing\n'))).message).toContain('the file is empty');
    expect(loadConfig(writeTmp('{}\n'))).toEqual(DEFAULT_CONFIG);
  });
  it('the shipped configs load and hold what they promise', () => {
    const tiny = loadConfig('configs/tiny.yaml');
    expect([tiny.model_type, tiny.data.source, tiny.data.tokenizer, tiny.layers, tiny.dim, tiny.expert_num, tiny.top_k, tiny.expert_hidden, tiny.seq_len, tiny.batch_size, tiny.steps])
      .toEqual(['moe_llama', 'nlp-corpus', 'byte', 2, 64, 8, 2, 128, 64, 8, 300]);
    const s = loadConfig('configs/seed000.yaml');
    expect([s.model_type, s.batch_size, s.seq_len, s.dim, s.expert_num, s.top_k, s.expert_hidden, s.activation, s.lr, s.weight_decay, s.warmup_steps, s.schedule, s.grad_clip, s.steps, s.aux_loss, s.drop_policy, s.data.source])
      .toEqual(['moe_mlp', 4, 10, 128, 8, 2, 512, 'relu', 1e-3, 0, 0, 'constant', null, 100, { type: 'switch', weight: 0.01 }, 'dropless', 'synthetic']);
    const lm = loadConfig('configs/small-lm.yaml');
    expect([lm.layers, lm.dim, lm.heads, lm.expert_num, lm.top_k, lm.expert_hidden, lm.seq_len, lm.batch_size, lm.steps, lm.data.tokenizer])
      .toEqual([4, 128, 4, 8, 2, 256, 128, 8, 1200, 'byte']);
    // their parameter counts are counted on the built model in model_size.test.ts
  });
  it('configToYaml round-trips through loadConfig, for shipped and non-default configs', () => {
    const odd = parseConfig({
      router: { type: 'group_limited', num_groups: 4, topk_groups: 2, scoring: 'sigmoid' }, capacity_factor: 1.25, drop_policy: 'reroute',
      lr: 3e-4, data: { source: 'file', path: 'corpus: "x".txt', max_chars: 1000 }, parallel: { ep_size: 2, mode: 'hierarchical', nodes: 2 },
      balance: { aux_free: { enabled: true, update_rate: 1e-3 } }, dense_hidden: 300,
    });
    const shortened = loadConfig('configs/tiny.yaml', ['steps=20']); // eval_every 100 > steps: fine in a resolved config
    for (const cfg of [odd, shortened, DEFAULT_CONFIG as Config, loadConfig('configs/tiny.yaml'), loadConfig('configs/seed000.yaml'), loadConfig('configs/small-lm.yaml')]) {
      expect(loadConfig(writeTmp(configToYaml(cfg)))).toEqual(cfg);
    }
  });
});

describe('defaults', () => {
  it('fill every field with the documented value', () => {
    // The table from the config spec, written out independently of the schema.
    expect(parseConfig({})).toEqual({
      model_type: 'moe_llama', layers: 2, dim: 64, heads: 4, expert_num: 8, top_k: 2, expert_hidden: 128, activation: 'swiglu',
      shared_experts: 0, fine_grained: 1, moe_every: 1, dense_hidden: null, positions: 'rotary',
      router: {
        type: 'topk', scoring: 'softmax', order: 'softmax-topk', renormalize: false, noise_scale: 1, noise_anneal_steps: 0,
        tau_start: 1, tau_end: 0.5, tau_schedule: 'exponential', sinkhorn_iterations: 50, num_groups: 1, topk_groups: 1, group_score: 'max',
      },
      capacity_factor: null, drop_policy: 'dropless', aux_loss: { type: 'switch', weight: 0.01 }, z_loss_weight: 0, use_load_balance: true,
      lr: 1e-3, min_lr_ratio: 0.1, warmup_steps: 10, schedule: 'cosine', weight_decay: 0.01, beta1: 0.9, beta2: 0.95, grad_clip: 1.0,
      batch_size: 8, seq_len: 64, grad_accum_steps: 1, steps: 200, eval_every: 50, eval_batches: 4, log_every: 10,
      checkpoint_every: 100, keep_checkpoints: 3, max_nan_steps: 5, seed: 0, backend: 'wasm',
      data: { source: 'nlp-corpus', path: null, tokenizer: 'byte', bpe_vocab: 512, val_fraction: 0.05, max_chars: null },
      balance: {
        aux_free: { enabled: false, update_rate: 0.001 },
        dynamic_capacity: { enabled: false, rule: 'ratio', overload_threshold: 1.5, underload_threshold: 0.5, grow: 1.2, shrink: 0.8, window: 100, min_factor: 0.5, max_factor: 2.0 },
        gate_adjust: { enabled: false, strength: 1, window: 10, learned: false },
        grad_reweight: { enabled: false, mode: 'utilization', low: 0.1, high: 0.9, low_scale: 2.0, high_scale: 0.5 },
        dead_expert: { window: 50, revive: 'none' },
        sparse_accumulation: { enabled: false, min_active_share: 0.5 },
      },
      parallel: { ep_size: 1, dp_size: 1, nodes: 1, mode: 'flat', chunks: 1, placement: null },
      recompute: false, dispatcher: 'auto',
      logging: { tensorboard: false },
    });
    expect(DEFAULT_CONFIG).toEqual(parseConfig({}));
  });
  it('fill a partly given section and leave the given fields', () => {
    const c = parseConfig({ router: { type: 'gumbel', tau_end: 0.1 } });
    expect(c.router).toMatchObject({ type: 'gumbel', tau_end: 0.1, tau_start: 1, tau_schedule: 'exponential' });
  });
  it('DEFAULT_CONFIG is frozen, parse results are fresh objects', () => {
    expect(() => { (DEFAULT_CONFIG as Config).router.type = 'gumbel'; }).toThrow(TypeError);
    const a = parseConfig({});
    a.router.type = 'gumbel';
    expect(parseConfig({}).router.type).toBe('topk');
  });
  it('denseHidden: (top_k + shared_experts)·expert_hidden unless set', () => {
    expect(denseHidden(parseConfig({}))).toBe(256);
    expect(denseHidden(parseConfig({ shared_experts: 1 }))).toBe(384);
    expect(denseHidden(parseConfig({ dense_hidden: 100 }))).toBe(100);
  });
});

describe('did-you-mean helpers', () => {
  it('edit distance counts a transposition as one edit', () => {
    expect(editDistance('steps', 'stpes')).toBe(1);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
  });
  it('closest: case and separators first, then small distances, nothing when far', () => {
    expect(closest('Top-K', ['top_k', 'topk_groups'])).toEqual(['top_k']);
    expect(closest('layrs', ['layers', 'heads'])).toEqual(['layers']);
    expect(closest('type', ['top_k', 'dim'])).toEqual([]);
  });
});

describe('the training-memory bound is the wasm heap', () => {
  it('refuses gpu-lm on wasm, with the estimate and the fields to lower, and accepts it on webgpu and cpu', () => {
    expect(() => loadConfig('configs/gpu-lm.yaml', ['backend=wasm'])).toThrow(/needs about 9\.\d+ GiB to train .*above the 4\.00 GiB bound \(the wasm heap\); lower expert_num = 16/);
    expect(loadConfig('configs/gpu-lm.yaml').backend).toBe('webgpu');
    expect(loadConfig('configs/gpu-lm.yaml', ['backend=cpu']).dim).toBe(512);
  });
});
