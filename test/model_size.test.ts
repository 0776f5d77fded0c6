/**
 * The parameter counts the shipped configs and the README promise, counted on the built model's variables
 * (not on a formula): total, routed-expert share, and active per token.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.ts';
import { loadConfig } from '../src/config/load.ts';
import { MoEModel } from '../src/model/model.ts';
import { Rng } from '../src/rng.ts';

/** Sizes of the built model's variables: all, routed experts (…moe.experts.*), and those one token uses with top-k. */
function count(file: string) {
  const cfg = loadConfig(file);
  const model = new MoEModel(cfg, 256, new Rng(0)); // byte tokenizer: 256 ids
  const sizes = Object.entries(model.params).map(([name, v]) => ({ name, size: v.size }));
  model.dispose();
  const total = sizes.reduce((s, v) => s + v.size, 0);
  const experts = sizes.filter((v) => /\.moe\.experts\./.test(v.name)).reduce((s, v) => s + v.size, 0);
  return { cfg, total, experts, active: total - experts + (experts * cfg.top_k) / cfg.expert_num, names: sizes.map((v) => v.name) };
}

describe('parameter counts of the shipped configs', () => {
  beforeAll(async () => { await initBackend('cpu', { quiet: true }); });

  it('small-lm.yaml: ≈3.5 M parameters, ≈3.1 M in experts, ≈1.1 M active per token', () => {
    const c = count('configs/small-lm.yaml');
    expect(c.names).toContain('blocks.3.moe.experts.w3'); // swiglu: three expert matrices, four blocks
    expect(c.total / 1e6).toBeCloseTo(3.5, 1);
    expect(c.experts / 1e6).toBeCloseTo(3.1, 1);
    expect(c.active / 1e6).toBeCloseTo(1.1, 1);
  });

  it('tiny.yaml (the demo): ≈0.46 M parameters, ≈0.39 M in experts', () => {
    const c = count('configs/tiny.yaml');
    expect(c.total / 1e6).toBeCloseTo(0.46, 2);
    expect(c.experts / 1e6).toBeCloseTo(0.39, 2);
  });
});
