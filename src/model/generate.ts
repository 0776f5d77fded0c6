/** Sampling from the trained LM: temperature and top-k over the last position's logits. */
import * as tf from '@tensorflow/tfjs';
import type { MoEModel } from './model.ts';
import type { Rng } from '../rng.ts';
import { scoped } from '../ops/async_grads.ts';

export interface SampleOptions { maxTokens: number; temperature: number; topK: number }

/** Appends maxTokens sampled ids to `prompt` (context cropped to the model's seq_len); reads with `await data()`. */
export async function generateTokens(model: MoEModel, prompt: Int32Array, opts: SampleOptions, rng: Rng): Promise<Int32Array> {
  if (model.cfg.model_type !== 'moe_llama') throw new Error(`generate: model_type ${model.cfg.model_type} is not a language model`);
  if (prompt.length === 0) throw new Error('generate: the prompt is empty');
  const L = model.cfg.seq_len;
  const ids = Array.from(prompt);
  for (let n = 0; n < opts.maxTokens; n++) {
    const ctx = ids.slice(-L);
    const row = await scoped(async () => {
      const out = await model.forwardLMAsync(Int32Array.from(ctx), Int32Array.from(ctx), 1, ctx.length, () => ({ training: false }));
      return out.output.slice([ctx.length - 1, 0], [1, model.vocab]);
    });
    const logits = (await row.data()) as Float32Array; // one row per token
    row.dispose();
    ids.push(sampleFrom(logits, opts, rng));
  }
  return Int32Array.from(ids);
}

/** Samples an id from logits: softmax(logits/T) restricted to the topK largest (T = 0: argmax). */
export function sampleFrom(logits: Float32Array, opts: Pick<SampleOptions, 'temperature' | 'topK'>, rng: Rng): number {
  const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]);
  if (opts.temperature <= 0) return order[0];
  const keep = order.slice(0, Math.max(1, Math.min(opts.topK, order.length)));
  const m = logits[keep[0]];
  const w = keep.map((i) => Math.exp((logits[i] - m) / opts.temperature));
  let u = rng.next() * w.reduce((a, b) => a + b, 0);
  for (let j = 0; j < keep.length; j++) { u -= w[j]; if (u <= 0) return keep[j]; }
  return keep[keep.length - 1];
}
