/** Trainer.dispose() frees everything the trainer made: tf.memory().numTensors returns to its value before it. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.ts';
import { evaluate } from '../src/train/evaluate.ts';
import { openTrainer } from '../src/train/run.ts';
import { describeBackends } from './helpers.ts';

const cfgWith = (backend: string, over: Record<string, unknown>) => parseConfig({
  layers: 2, dim: 16, heads: 2, expert_num: 4, top_k: 2, expert_hidden: 16, seq_len: 8, batch_size: 2,
  steps: 3, eval_every: 0, checkpoint_every: 0, warmup_steps: 0, data: { source: 'nlp-corpus', max_chars: 50_000 }, backend, ...over,
});

describeBackends('Trainer.dispose', (backend) => {
  const cases: [string, Record<string, unknown>][] = [
    ['plain top-k', {}],
    ['noisy top-k, shared experts, z-loss', { router: { type: 'noisy_topk' }, shared_experts: 1, z_loss_weight: 0.001, aux_loss: { type: 'cv2' } }],
    ['every balance controller, accumulation', {
      grad_accum_steps: 2, capacity_factor: 1.5, drop_policy: 'drop-position',
      balance: { aux_free: { enabled: true }, dynamic_capacity: { enabled: true }, gate_adjust: { enabled: true, learned: true }, grad_reweight: { enabled: true }, dead_expert: { window: 1, revive: 'copy_hot' }, sparse_accumulation: { enabled: true } },
    }],
    ['moe_mlp on synthetic data, learned positions', { model_type: 'moe_mlp', data: { source: 'synthetic' }, layers: 1 }],
  ];
  for (const [name, over] of cases) {
    it(`${name}: made, trained, evaluated, disposed → no tensor left`, async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-dispose-'));
      const before = tf.memory().numTensors;
      const t = openTrainer(cfgWith(backend, over), dir);
      for (let i = 0; i < 3; i++) await t.trainStep();
      await evaluate(t.model, t.data);
      t.dispose();
      expect(tf.memory().numTensors).toBe(before);
      fs.rmSync(dir, { recursive: true, force: true });
    });
  }
  it('a trainer made and disposed at once leaves nothing either', () => {
    const before = tf.memory().numTensors;
    const t = openTrainer(cfgWith(backend, {}), fs.mkdtempSync(path.join(os.tmpdir(), 'sy-dispose-')));
    t.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
