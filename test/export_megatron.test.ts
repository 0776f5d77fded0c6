/**
 * `export megatron` / `import megatron` against Megatron-LM's own source:
 * - every emitted flag is one Megatron-LM defines (test/fixtures/megatron_args.json, extracted from
 *   NVIDIA/Megatron-LM at the commit it names by test/fixtures/megatron_args_extract.py);
 * - the coefficients convert correctly: Megatron's aux loss, sequence aux loss, z-loss and capacity, written out here
 *   from megatron/core/transformer/moe/moe_utils.py and router.py (same commit), equal ours on a worked case;
 * - every Switchyard setting without a Megatron-Core equivalent is named in a warning;
 * - import(export(config)) gives back the same MoE.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.ts';
import { DEFAULT_CONFIG, loadConfig, parseConfig, type Config } from '../src/config/load.ts';
import { expertCapacity } from '../src/moe/capacity.ts';
import { fromMegatronArgs, parseMegatronArgs, toMegatronArgs, formatMegatronArgs } from '../src/export/megatron.ts';
import { sequenceAuxLoss } from '../src/losses/sequence.ts';
import { switchLoss } from '../src/losses/switch.ts';
import { zLoss } from '../src/losses/z_loss.ts';
import { auxLossWeights } from '../src/model/model.ts';

const fixture = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, 'fixtures/megatron_args.json'), 'utf8')) as {
  repository: string; commit: string; files: string[]; flags: Record<string, string>;
};

/** A config from the defaults plus overrides (deep-merged by parseConfig's defaults). */
function cfgWith(over: Record<string, unknown>): Config {
  return parseConfig(over);
}

const VARIANTS: Array<[string, Record<string, unknown>]> = [
  ['defaults', {}],
  ['sigmoid + aux-free + capacity by position', { router: { scoring: 'sigmoid', renormalize: true }, balance: { aux_free: { enabled: true, update_rate: 0.002 } }, capacity_factor: 1.25, drop_policy: 'drop-position' }],
  ['group-limited, shared, fine-grained, pad', { expert_num: 8, top_k: 2, fine_grained: 2, shared_experts: 2, router: { type: 'group_limited', num_groups: 4, topk_groups: 2, group_score: 'top2-sum' }, capacity_factor: 1, drop_policy: 'pad', parallel: { ep_size: 2 } }],
  ['sequence loss, learned positions, gelu, accum', { aux_loss: { type: 'sequence', weight: 0.001 }, positions: 'learned', activation: 'gelu', grad_accum_steps: 4, moe_every: 2, recompute: true, grad_clip: null }],
  ['sinkhorn, top-1', { top_k: 1, router: { type: 'sinkhorn' }, aux_loss: { type: 'none' } }],
  ['everything unexpressible', {
    router: { type: 'noisy_topk' }, aux_loss: { type: 'kl', weight: 0.01 }, activation: 'relu', capacity_factor: 1.5, drop_policy: 'reroute',
    balance: { gate_adjust: { enabled: true }, grad_reweight: { enabled: true }, dynamic_capacity: { enabled: true }, dead_expert: { revive: 'copy_hot' }, sparse_accumulation: { enabled: true } },
    grad_accum_steps: 2,
  }],
];

describe('export megatron', () => {
  beforeAll(async () => { await initBackend('cpu', { quiet: true }); });

  it('names its source: repository, commit and files of the flag list', () => {
    expect(fixture.repository).toBe('https://github.com/NVIDIA/Megatron-LM');
    expect(fixture.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(fixture.files).toContain('megatron/training/arguments.py');
    expect(fixture.files).toContain('megatron/core/transformer/transformer_config.py');
    expect(Object.keys(fixture.flags).length).toBeGreaterThan(300);
  });

  it('emits only flags Megatron-LM defines, each once', () => {
    for (const [name, over] of VARIANTS) {
      const x = toMegatronArgs(cfgWith(over));
      const flags = x.args.map((a) => a.flag);
      const unknown = flags.filter((f) => !(f in fixture.flags));
      expect(unknown, name).toEqual([]);
      expect(new Set(flags).size, `${name}: duplicate flags ${flags}`).toBe(flags.length);
    }
    const small = toMegatronArgs(loadConfig(path.join(import.meta.dirname, '../configs/small-lm.yaml')));
    expect(small.args.filter((a) => !(a.flag in fixture.flags))).toEqual([]);
  });

  it('the aux-loss coefficient is α: Megatron\'s switch_load_balancing_loss_func equals our Switch loss × α', () => {
    const cfg = cfgWith({ aux_loss: { type: 'switch', weight: 0.02 }, expert_num: 4, top_k: 2 });
    const x = toMegatronArgs(cfg);
    const coeff = Number(x.args.find((a) => a.flag === '--moe-aux-loss-coeff')!.value);
    expect(x.args.find((a) => a.flag === '--moe-router-load-balancing-type')!.value).toBe('aux_loss');
    expect(coeff).toBe(auxLossWeights(cfg).switch); // the weight our training step applies per layer
    // T = 5 tokens, E = 4, k = 2 (hand-picked, skewed)
    const probs = [[0.5, 0.3, 0.1, 0.1], [0.6, 0.2, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.4, 0.1, 0.4, 0.1], [0.3, 0.3, 0.2, 0.2]];
    const idx = [[0, 1], [0, 1], [1, 0], [0, 2], [0, 1]];
    const T = 5, E = 4, k = 2;
    // Megatron (moe_utils.py): aux = Σ_i (Σ_t p_ti)·tokens_per_expert_i · E·coeff/(k·T·T)
    const tpe = [0, 0, 0, 0];
    for (const row of idx) for (const e of row) tpe[e]++;
    const colSum = [0, 1, 2, 3].map((i) => probs.reduce((a, r) => a + r[i], 0));
    const megatron = colSum.reduce((a, p, i) => a + p * tpe[i], 0) * ((E * coeff) / (k * T * T));
    // by hand: tpe = [5, 4, 1, 0], colSum = [1.9, 1.6, 0.9, 0.6] → (9.5 + 6.4 + 0.9)·(4·0.02/50) = 0.02688
    expect(megatron).toBeCloseTo(0.02688, 10);
    const ours = tf.tidy(() => switchLoss(tf.tensor2d(probs), tf.tensor2d(idx, undefined, 'int32'), E).dataSync()[0]);
    expect(ours * cfg.aux_loss.weight).toBeCloseTo(megatron, 6);
  });

  it('seq_aux_loss equals our sequence loss (Megatron reshapes [seq, batch·E] and divides by the batch size)', () => {
    const cfg = cfgWith({ aux_loss: { type: 'sequence', weight: 0.003 }, expert_num: 3, top_k: 1, router: { order: 'softmax-topk' } });
    const x = toMegatronArgs(cfg);
    expect(x.args.find((a) => a.flag === '--moe-router-load-balancing-type')!.value).toBe('seq_aux_loss');
    const coeff = Number(x.args.find((a) => a.flag === '--moe-aux-loss-coeff')!.value);
    // ours: batch-major tokens, 2 sequences of length 3, E = 3, k = 1
    const B = 2, S = 3, E = 3, k = 1;
    const probs = [[0.7, 0.2, 0.1], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.6, 0.3, 0.1]];
    const idx = [[0], [0], [2], [1], [2], [0]];
    // Megatron's layout is [s, b]: token (b, s) sits at row s·B + b; reshape(seq, -1) gives columns b·E + i
    const scores = Array.from({ length: S }, (_, s) => Array.from({ length: B * E }, (_, c) => probs[Math.floor(c / E) * S + s][c % E]));
    const map = Array.from({ length: S }, (_, s) => Array.from({ length: B * E }, (_, c) => (idx[Math.floor(c / E) * S + s][0] === c % E ? 1 : 0)));
    const tpe = Array.from({ length: B * E }, (_, c) => map.reduce((a, r) => a + r[c], 0));
    const colSum = Array.from({ length: B * E }, (_, c) => scores.reduce((a, r) => a + r[c], 0));
    const total = S; // get_tokens_per_expert_and_token_count: routing_map.shape[0]
    const megatron = (colSum.reduce((a, p, c) => a + p * tpe[c], 0) * ((E * coeff) / (k * total * total))) / B;
    const ours = tf.tidy(() => sequenceAuxLoss(tf.tensor2d(probs), tf.tensor2d(idx, undefined, 'int32'), E, S).dataSync()[0]);
    expect(ours * cfg.aux_loss.weight).toBeCloseTo(megatron, 7); // ours weighted by α, Megatron's by the exported coeff
  });

  it('z-loss and capacity use the same formulas', () => {
    const cfg = cfgWith({ z_loss_weight: 0.001, capacity_factor: 1.3, drop_policy: 'drop-probability' });
    const x = toMegatronArgs(cfg);
    const get = (f: string): string | null | undefined => x.args.find((a) => a.flag === f)?.value;
    const zc = Number(get('--moe-z-loss-coeff'));
    const logits = [[1, 2, 0.5], [-1, 3, 0], [0.2, 0.1, 0.3]];
    const lse = logits.map((r) => Math.log(r.reduce((a, v) => a + Math.exp(v), 0)));
    const megatronZ = (lse.reduce((a, v) => a + v * v, 0) / lse.length) * zc; // z_loss_func
    const ours = tf.tidy(() => zLoss(tf.tensor2d(logits)).dataSync()[0]);
    expect(ours * cfg.z_loss_weight).toBeCloseTo(megatronZ, 7);
    // get_capacity(num_tokens = T·topk, E, factor) = ceil(T·k/E · factor)
    expect(Number(get('--moe-expert-capacity-factor'))).toBe(1.3);
    expect(get('--moe-token-drop-policy')).toBe('probs');
    for (const [T, E, k, f] of [[40, 8, 2, 1.3], [64, 16, 8, 1.0], [10, 3, 1, 2.5]]) {
      expect(expertCapacity(T, E, k, f)).toBe(Math.ceil(((T * k) / E) * f));
    }
  });

  it('converts shapes: fine-grained and shared experts, min lr, batch, clipping off', () => {
    const cfg = cfgWith({ expert_num: 8, top_k: 2, expert_hidden: 256, fine_grained: 4, shared_experts: 1, lr: 3e-3, min_lr_ratio: 0.1, batch_size: 4, grad_accum_steps: 3, grad_clip: null });
    const x = toMegatronArgs(cfg);
    const get = (f: string): string | null | undefined => x.args.find((a) => a.flag === f)?.value;
    expect(get('--num-experts')).toBe('32');
    expect(get('--moe-router-topk')).toBe('8');
    expect(get('--moe-ffn-hidden-size')).toBe('64');
    expect(get('--moe-shared-expert-intermediate-size')).toBe('64');
    expect(Number(get('--min-lr'))).toBeCloseTo(3e-4, 12);
    expect(get('--global-batch-size')).toBe('12');
    expect(get('--clip-grad')).toBe('0');
    expect(() => toMegatronArgs(cfg, { ep: 3 })).toThrow(/--ep 3 does not divide the 32 routed experts/);
    expect(() => toMegatronArgs(cfgWith({ model_type: 'moe_mlp' }))).toThrow(/moe_mlp/);
  });

  it('names every setting Megatron-Core cannot express, with what is lost', () => {
    const x = toMegatronArgs(cfgWith(VARIANTS[VARIANTS.length - 1][1]));
    const text = x.warnings.join('\n');
    for (const field of ['router.type noisy_topk', 'aux_loss.type kl', 'activation: relu', 'drop_policy reroute', 'balance.dynamic_capacity',
      'balance.gate_adjust', 'balance.grad_reweight', 'balance.dead_expert.revive', 'balance.sparse_accumulation']) {
      expect(text, field).toContain(field);
    }
    for (const w of x.warnings) expect(w).toMatch(/no |not |lost|drop|differ|instead|loses|dead|held back|damped|larger/);
    // softmax + aux-free: Megatron refuses the expert bias; we warn and leave it out
    const af = toMegatronArgs(cfgWith({ balance: { aux_free: { enabled: true } } }));
    expect(af.args.some((a) => a.flag === '--moe-router-enable-expert-bias')).toBe(false);
    expect(af.warnings.join()).toMatch(/aux_free with softmax/);
    // a plain config converts without warnings
    expect(toMegatronArgs(DEFAULT_CONFIG as Config).warnings).toEqual([]);
  });
});

describe('import megatron', () => {
  it('parses shell continuations, comments, --flag=value and multi-value flags', () => {
    const text = [
      '#!/bin/bash', 'torchrun --nproc-per-node 8 pretrain_gpt.py \\', '  --num-experts 64 \\ ', '  --moe-router-topk=6 \\',
      '  --moe-router-load-balancing-type seq_aux_loss aux_loss  # two types', '  --moe-grouped-gemm --swiglu \\', '  --data-path "my data"',
    ].join('\n');
    const a = parseMegatronArgs(text.replace('\\ \n', '\\\n'));
    expect(a.get('--num-experts')).toEqual(['64']);
    expect(a.get('--moe-router-topk')).toEqual(['6']);
    expect(a.get('--moe-router-load-balancing-type')).toEqual(['seq_aux_loss', 'aux_loss']);
    expect(a.get('--moe-grouped-gemm')).toEqual([]);
    expect(a.get('--data-path')).toEqual(['my data']);
    expect(a.has('--nproc-per-node')).toBe(true);
  });

  it('round-trips: import(export(config)) trains the same MoE', () => {
    for (const [name, over] of VARIANTS.slice(0, 5)) {
      const cfg = cfgWith(over);
      const text = formatMegatronArgs(toMegatronArgs(cfg), name);
      const back = parseConfig(fromMegatronArgs(parseMegatronArgs(text)).config);
      const m = cfg.fine_grained;
      expect(back.expert_num, name).toBe(cfg.expert_num * m);
      expect(back.top_k, name).toBe(cfg.top_k * m);
      expect(back.expert_hidden, name).toBe(cfg.expert_hidden / m);
      for (const f of ['layers', 'dim', 'heads', 'seq_len', 'activation', 'positions', 'moe_every', 'lr', 'warmup_steps', 'steps', 'weight_decay', 'beta1', 'beta2', 'grad_clip', 'batch_size', 'grad_accum_steps', 'seed', 'z_loss_weight', 'capacity_factor', 'drop_policy', 'schedule'] as const) {
        if (f === 'capacity_factor' && cfg.drop_policy === 'dropless') continue;
        expect(back[f], `${name}: ${f}`).toEqual(cfg[f]);
      }
      expect(back.min_lr_ratio, name).toBeCloseTo(cfg.min_lr_ratio, 12);
      expect(back.router.scoring, name).toBe(cfg.router.scoring);
      expect(back.router.type, name).toBe(cfg.router.type === 'sinkhorn' || cfg.router.type === 'group_limited' ? cfg.router.type : 'topk');
      expect(back.aux_loss.type, name).toBe(cfg.aux_loss.type);
      if (cfg.aux_loss.type !== 'none') expect(back.aux_loss.weight, name).toBe(cfg.aux_loss.weight);
      expect(back.balance.aux_free.enabled, name).toBe(cfg.balance.aux_free.enabled && cfg.router.scoring === 'sigmoid');
      expect(back.shared_experts * back.expert_hidden, name).toBe(cfg.shared_experts * (cfg.expert_hidden / m));
      expect(back.parallel.ep_size, name).toBe(cfg.parallel.ep_size);
    }
  });

  it('names what it ignores and refuses a command line without experts', () => {
    const r = fromMegatronArgs(parseMegatronArgs('--num-experts 8 --moe-router-topk 2 --hidden-size 64 --num-attention-heads 4 --mtp-num-layers 1 --tensor-model-parallel-size 4'));
    expect(r.warnings.join()).toContain('ignored (no Switchyard field): --mtp-num-layers');
    expect(r.warnings.join()).not.toContain('--tensor-model-parallel-size');
    expect(() => fromMegatronArgs(parseMegatronArgs('--hidden-size 64'))).toThrow(/no --num-experts/);
    expect(() => fromMegatronArgs(parseMegatronArgs('--num-experts x'))).toThrow(/--num-experts "x" is not an integer/);
    // absent flags take Megatron's defaults, not ours: β2 0.999, no warmup, min lr 0, linear decay, clip 1
    const d = parseConfig(r.config);
    expect([d.beta2, d.warmup_steps, d.schedule, d.grad_clip]).toEqual([0.999, 0, 'linear', 1]);
    expect(parseConfig(fromMegatronArgs(parseMegatronArgs('--num-experts 8 --lr 0.001')).config).min_lr_ratio).toBe(0);
  });
});
