/**
 * Export to Hugging Face (Mixtral layout): an independent NumPy forward pass of Mixtral (test/py/mixtral_numpy.py,
 * float64, written from transformers' modeling semantics) loads the exported folder and reproduces our logits
 * within 1e-4 on three prompts; configs that do not map are refused by field; nothing is half-written.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.ts';
import { configToYaml, parseConfig, type Config } from '../src/config/load.ts';
import { mixtralMismatches } from '../src/export/hf.ts';
import { exportHfRun } from '../src/export/hf_run.ts';
import { writeSafetensorsAtomic } from '../src/io/safetensors.ts';
import { MoEModel } from '../src/model/model.ts';
import { Rng } from '../src/rng.ts';

const base = {
  model_type: 'moe_llama', layers: 2, dim: 32, heads: 4, expert_num: 4, top_k: 2, expert_hidden: 48, activation: 'swiglu',
  positions: 'rotary', router: { type: 'topk', order: 'topk-softmax' }, capacity_factor: null, drop_policy: 'dropless',
  seq_len: 16, batch_size: 2, backend: 'cpu', data: { tokenizer: 'byte' },
};

/** A run folder holding the model's weights as a checkpoint, as `train` writes it. */
function writeRun(dir: string, cfg: Config, model: MoEModel): void {
  fs.mkdirSync(path.join(dir, 'checkpoints', 'step-00000007'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.yaml'), configToYaml(cfg));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({ type: 'byte' }));
  const tensors = Object.fromEntries(Object.entries({ ...model.params, ...model.buffers() })
    .map(([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape, data: v.dataSync() as Float32Array }]));
  writeSafetensorsAtomic(path.join(dir, 'checkpoints', 'step-00000007', 'model.safetensors'), tensors);
  fs.writeFileSync(path.join(dir, 'checkpoints', 'step-00000007', 'state.json'), '{}');
}

describe('export hf (Mixtral)', () => {
  beforeAll(async () => { await initBackend('cpu', { quiet: true }); });

  it('NumPy Mixtral reproduces our logits within 1e-4 on three prompts', () => {
    const cfg = parseConfig(base);
    const model = new MoEModel(cfg, 256, new Rng(5));
    // widen the router and the norms so routing has clear margins and every weight matters
    for (const [name, v] of Object.entries(model.params)) {
      if (/gate$|norm/.test(name)) v.assign(tf.tidy(() => tf.add(v, tf.randomNormal(v.shape, 0, 0.5, 'float32', 7))));
    }
    const dir = fs.mkdtempSync(path.join(tmpdir(), 'hf-'));
    writeRun(path.join(dir, 'run'), cfg, model);
    const res = exportHfRun(path.join(dir, 'run'), path.join(dir, 'hf'));
    expect(res.step).toBe(7);
    expect(res.parameters).toBe(model.numParams());
    expect(fs.readdirSync(path.join(dir, 'hf')).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json']);
    // transformers 5 validates these as floats: an integral value must carry a decimal point
    const text = fs.readFileSync(path.join(dir, 'hf', 'config.json'), 'utf8');
    expect(text).toMatch(/"router_jitter_noise": 0\.0,/);
    expect(text).toMatch(/"rope_theta": 10000\.0,/);
    expect(text).toMatch(/"num_local_experts": 4,/);
    const prompts = ['The expert', 'load is balanced.', 'Zürich → 東京'].map((s) => Array.from(new TextEncoder().encode(s)));
    const ours = prompts.map((ids) => tf.tidy(() => {
      const x = Int32Array.from(ids);
      return Array.from(model.forwardLM(x, x, 1, ids.length, () => ({ training: false })).output.dataSync());
    }));
    fs.writeFileSync(path.join(dir, 'prompts.json'), JSON.stringify(prompts));
    const out = JSON.parse(execFileSync('python3', ['test/py/mixtral_numpy.py', path.join(dir, 'hf'), path.join(dir, 'prompts.json')], { encoding: 'utf8', maxBuffer: 64 << 20 }));
    expect(out.tokenizer_ok).toBe(true);
    let worst = 0;
    prompts.forEach((_, p) => {
      const theirs = (out.logits[p] as number[][]).flat();
      expect(theirs.length).toBe(ours[p].length);
      theirs.forEach((v, i) => { worst = Math.max(worst, Math.abs(v - ours[p][i])); });
    });
    expect(worst).toBeLessThan(1e-4);
    expect(worst).toBeGreaterThan(0); // two different implementations, not one file read twice
    model.dispose();
  });

  it('refuses what Mixtral cannot express, naming the field', () => {
    expect(mixtralMismatches(parseConfig(base))).toEqual([]);
    const bad = mixtralMismatches(parseConfig({ ...base, shared_experts: 1, positions: 'learned', router: { type: 'topk', order: 'softmax-topk' } }));
    expect(bad.join('\n')).toMatch(/shared_experts = 1/);
    expect(bad.join('\n')).toMatch(/positions = "learned"/);
    expect(bad.join('\n')).toMatch(/router.order \/ router.renormalize/);
    expect(mixtralMismatches(parseConfig({ ...base, router: { type: 'topk', order: 'softmax-topk', renormalize: true } }))).toEqual([]);
    expect(mixtralMismatches(parseConfig({ ...base, router: { type: 'sinkhorn' } })).join()).toMatch(/router.type = "sinkhorn"/);
  });

  it('a non-zero aux-free bias is refused and nothing is written', () => {
    const cfg = parseConfig(base);
    const model = new MoEModel(cfg, 256, new Rng(1));
    model.moeLayers[0].expertBias.assign(tf.tensor1d([0.1, 0, 0, 0]));
    const dir = fs.mkdtempSync(path.join(tmpdir(), 'hf-'));
    writeRun(path.join(dir, 'run'), cfg, model);
    expect(() => exportHfRun(path.join(dir, 'run'), path.join(dir, 'hf'))).toThrow(/moe\.0\.expert_bias is non-zero/);
    expect(fs.readdirSync(dir)).toEqual(['run']);
    model.dispose();
  });
});
