/**
 * The model's forward pass with its MoE layers' routing read by `await data()` (the path WebGPU needs and
 * every backend trains with) equals the synchronous one: same loss, logits and loads, including with router
 * noise (drawn again identically after the read) and a capacity policy that ranks by probability.
 */
import * as tf from '@tensorflow/tfjs';
import { expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.ts';
import { MoEModel } from '../src/model/model.ts';
import { Rng } from '../src/rng.ts';
import { describeBackends } from './helpers.ts';

describeBackends('forwardLMAsync', () => {
  const cases = [
    { name: 'noisy top-k, drop-probability', cfg: { router: { type: 'noisy_topk' }, capacity_factor: 1, drop_policy: 'drop-probability' } },
    { name: 'gumbel, dropless', cfg: { router: { type: 'gumbel' } } },
    { name: 'expert choice', cfg: { router: { type: 'expert_choice' }, capacity_factor: 1 } },
  ];
  for (const c of cases) {
    it(`equals forwardLM: ${c.name}`, async () => {
      const cfg = parseConfig({ layers: 2, dim: 16, heads: 2, expert_num: 4, top_k: 2, expert_hidden: 24, seq_len: 8, batch_size: 2, ...c.cfg });
      const model = new MoEModel(cfg, 32, new Rng(3));
      const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 7 + 3) % 32);
      const tgt = Int32Array.from({ length: 16 }, (_, i) => (i * 5 + 1) % 32);
      const run = async (useAsync: boolean) => {
        const rng = new Rng(11);
        const ctx = () => ({ training: true, rng, tau: 1, noiseScale: 1 });
        tf.engine().startScope();
        const out = useAsync ? await model.forwardLMAsync(ids, tgt, 2, 8, ctx) : model.forwardLM(ids, tgt, 2, 8, ctx);
        const res = { loss: (await out.loss.data())[0], logits: Array.from(await out.output.data()), loads: out.moe.map((m) => Array.from(m.stats.load)), rng: rng.getState() };
        tf.engine().endScope();
        return res;
      };
      const sync = await run(false);
      const viaAwait = await run(true);
      expect(Number.isFinite(sync.loss)).toBe(true);
      expect(viaAwait).toEqual(sync);
      model.dispose();
    });
  }
});
