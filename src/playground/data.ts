/**
 * The playground's data sources, built from text already in memory (the page carries it): byte tokens of the
 * nlp-corpus slice, or seed 000's fixed random regression set. Same batch functions and RNG draws as the CLI's
 * data source, so a run exported to `switchyard train --config` sees the same batches in the same order.
 */
import { evalBatches, regressionData, sampleBatch } from '../data/batches.ts';
import { createTokenizer, encode, vocabSize } from '../data/tokenizer.ts';
import type { Rng } from '../rng.ts';

export type PlaygroundBatch =
  | { kind: 'tokens'; inputs: Int32Array; targets: Int32Array; B: number; L: number }
  | { kind: 'vectors'; inputs: Float32Array; targets: Float32Array; T: number; D: number };

/** What the training step draws batches from (the shape of the CLI's DataSource). */
export interface PlaygroundData {
  vocab: number;
  tokensPerBatch: number;
  next(rng: Rng): PlaygroundBatch;
  validation(): PlaygroundBatch[];
  /** a fixed batch whose first row is the sample sentence the page colours by expert (LM only). */
  sample: { batch: PlaygroundBatch; tokens: Int32Array } | null;
}

interface Shape { model_type: string; batch_size: number; seq_len: number; dim: number; seed: number; eval_batches: number }

/** The first whole sentence of the validation text that fills at least `L` bytes, padded with the next ones. */
function sampleWindow(ids: Int32Array, L: number): number {
  // start after a newline so the sentence begins at its first byte
  for (let i = 0; i + L + 1 < ids.length; i++) if (i === 0 || ids[i - 1] === 10) { if (ids.slice(i, i + L).indexOf(10) === -1) return i; }
  return 0;
}

/** Byte-LM data over train/val text, or the regression set, for a config's shape. */
export function playgroundData(cfg: Shape, text: { train: string; val: string }): PlaygroundData {
  const B = cfg.batch_size;
  const L = cfg.seq_len;
  if (cfg.model_type === 'moe_mlp') {
    return { vocab: 0, ...regressionData(cfg), sample: null }; // seed 000's task, as the CLI trains it
  }
  const tok = createTokenizer('byte', text.train);
  const trainIds = encode(tok, text.train);
  const valIds = encode(tok, text.val);
  const valBatches = evalBatches(valIds, B, L, cfg.eval_batches).map((b): PlaygroundBatch => ({ kind: 'tokens', ...b, B, L }));
  // the sample batch: row 0 a readable validation sentence, rows 1.. the first validation windows (so capacity sees B·L tokens, as in training)
  const s = sampleWindow(valIds, L);
  const inputs = Int32Array.from(valBatches[0].kind === 'tokens' ? valBatches[0].inputs : []);
  const targets = Int32Array.from(valBatches[0].kind === 'tokens' ? valBatches[0].targets : []);
  inputs.set(valIds.subarray(s, s + L), 0);
  targets.set(valIds.subarray(s + 1, s + L + 1), 0);
  return {
    vocab: vocabSize(tok), tokensPerBatch: B * L,
    next: (rng) => ({ kind: 'tokens', ...sampleBatch(trainIds, B, L, rng), B, L }),
    validation: () => valBatches,
    sample: { batch: { kind: 'tokens', inputs, targets, B, L }, tokens: valIds.slice(s, s + L) },
  };
}
