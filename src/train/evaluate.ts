/** Validation: the mean task loss over the data's fixed validation batches, and each MoE layer's expert load. */
import * as tf from '@tensorflow/tfjs';
import type { MoEModel } from '../model/model.ts';
import { scoped } from '../ops/async_grads.ts';
import type { DataSource } from './env.ts';
import { forwardBatch } from './step.ts';

/** Mean validation task loss over the fixed validation batches (no noise, no dropping beyond the config's); one read for the losses. */
export async function evaluate(model: MoEModel, data: DataSource): Promise<{ loss: number; perLayerLoad: number[][] }> {
  const batches = data.validation();
  const load = model.moeLayers.map(() => new Array<number>(model.moeLayers[0]?.config.numExperts ?? 0).fill(0));
  const losses: tf.Tensor[] = [];
  for (const b of batches) {
    losses.push(await scoped(async () => {
      const out = await forwardBatch(model, b, () => ({ training: false }));
      out.moe.forEach((m, l) => m.stats.load.forEach((c, e) => { load[l][e] += c; }));
      return out.loss;
    }));
  }
  const all = tf.stack(losses);
  const vals = await all.data();
  tf.dispose([all, ...losses]);
  let sum = 0;
  for (const v of vals) sum += v;
  return { loss: sum / batches.length, perLayerLoad: load };
}
