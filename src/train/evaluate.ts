/** Validation: the mean task loss over the data's fixed validation batches, and each MoE layer's expert load. */
import * as tf from '@tensorflow/tfjs';
import type { MoEModel } from '../model/model.ts';
import type { DataSource } from './env.ts';
import { forwardBatch } from './step.ts';

/** Mean validation task loss over the fixed validation batches (no noise, no dropping beyond the config's). */
export function evaluate(model: MoEModel, data: DataSource): { loss: number; perLayerLoad: number[][] } {
  const batches = data.validation();
  let sum = 0;
  const load = model.moeLayers.map(() => new Array<number>(model.moeLayers[0]?.config.numExperts ?? 0).fill(0));
  for (const b of batches) {
    sum += tf.tidy(() => {
      const out = forwardBatch(model, b, () => ({ training: false }));
      out.moe.forEach((m, l) => m.stats.load.forEach((c, e) => { load[l][e] += c; }));
      return out.loss.dataSync()[0]; // sync: evaluation only
    });
  }
  return { loss: sum / batches.length, perLayerLoad: load };
}
