/**
 * What the trainer trains on, from the config's `data` section: tokenised real text (moe_llama) or
 * seed 000's fixed random regression set (moe_mlp).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Config } from '../config/schema.ts';
import { evalBatches, regressionData, sampleBatch, type TokenBatch } from '../data/batches.ts';
import { loadCorpus, splitTrainVal } from '../data/corpus.ts';
import { createTokenizer, encode, tokenizerFromJson, vocabSize, type Tokenizer } from '../data/tokenizer.ts';
import { readRegularText } from '../io/regular_file.ts';
import type { Batch, DataSource } from './env.ts';

export type { Batch, DataSource } from './env.ts';

const tok = (b: TokenBatch, B: number, L: number): Batch => ({ kind: 'tokens', inputs: b.inputs, targets: b.targets, B, L });

/** Builds the data source; the tokenizer is read from RUN/tokenizer.json when there is one (train() stores a new one once the run starts). */
export function createDataSource(cfg: Config, runDir: string): DataSource {
  const B = cfg.batch_size;
  const L = cfg.seq_len;
  if (cfg.model_type === 'moe_mlp') {
    return { vocab: 0, tokenizer: null, ...regressionData(cfg) }; // seed 000's task
  }
  const text = loadCorpus({ source: cfg.data.source as 'nlp-corpus' | 'file', path: cfg.data.path, maxChars: cfg.data.max_chars });
  const { train, val } = splitTrainVal(text, cfg.data.val_fraction);
  const tokFile = path.join(runDir, 'tokenizer.json');
  const tokenizer = fs.existsSync(tokFile)
    ? tokenizerFromJson(readRegularText(tokFile, 64 * 1024 ** 2, 'tokenizer'))
    : createTokenizer(cfg.data.tokenizer, train, cfg.data.tokenizer === 'bpe' ? cfg.data.bpe_vocab : undefined);
  const trainIds = encode(tokenizer, train);
  const valIds = encode(tokenizer, val);
  if (trainIds.length <= L + 1 || valIds.length <= L + 1) {
    throw new Error(`data: the text is too short for seq_len = ${L} (train ${trainIds.length} tokens, validation ${valIds.length})`);
  }
  const valBatches = evalBatches(valIds, B, L, cfg.eval_batches).map((b) => tok(b, B, L));
  return {
    vocab: vocabSize(tokenizer), tokenizer, tokensPerBatch: B * L,
    next: (rng) => tok(sampleBatch(trainIds, B, L, rng), B, L),
    validation: () => valBatches,
  };
}
