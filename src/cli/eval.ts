/** `switchyard eval RUN_DIR` and `switchyard generate RUN_DIR --prompt TEXT`: load a run's newest checkpoint. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { initBackend } from '../backend.ts';
import { loadConfig, type Config } from '../config/load.ts';
import { decode, encode } from '../data/tokenizer.ts';
import { summarizeLoad } from '../metrics/balance.ts';
import { loadBar, summaryTable } from '../report/terminal.ts';
import { generateTokens } from '../model/generate.ts';
import { Rng } from '../rng.ts';
import { evaluate } from '../train/evaluate.ts';
import { openTrainer } from '../train/run.ts';
import type { Trainer } from '../train/step.ts';
import { readRegularText } from '../io/regular_file.ts';

/** Largest prompt file, bytes; most tokens one generate call samples. */
const MAX_PROMPT_BYTES = 16 * 1024 * 1024;
const MAX_GENERATE_TOKENS = 1_000_000;

/** A trainer restored from the newest checkpoint of a run folder. */
export async function openRun(runDir: string, sets: string[] = []): Promise<{ cfg: Config; trainer: Trainer; step: number }> {
  const file = path.join(runDir, 'config.yaml');
  if (!fs.existsSync(file)) throw new Error(`${runDir}: not a run folder (no config.yaml)`);
  const cfg = loadConfig(file, sets);
  await initBackend(cfg.backend);
  const trainer = openTrainer(cfg, runDir);
  const step = trainer.restore();
  return { cfg, trainer, step };
}

export function register(program: Command): void {
  program.command('eval')
    .description('validation loss, perplexity and per-expert load of a trained run on held-out text')
    .argument('<run_dir>', 'a folder written by `switchyard train`')
    .option('--batches <n>', 'validation batches (default: the config\'s eval_batches)')
    .action(async (runDir: string, o: { batches?: string }) => {
      const { trainer, step } = await openRun(runDir, o.batches ? [`eval_batches=${o.batches}`] : []);
      const ev = await evaluate(trainer.model, trainer.data);
      console.log(`${runDir} at step ${step}: val_loss ${ev.loss.toFixed(4)}  perplexity ${Math.exp(ev.loss).toFixed(3)}`);
      const rows = ev.perLayerLoad.map((load, l) => {
        const m = summarizeLoad(load);
        return { layer: l, load: loadBar(load, 32), cv: m.cv, max_share: m.maxLoadShare, maxvio: m.maxVio };
      });
      console.log(summaryTable(rows, ['layer', 'load', { key: 'cv', digits: 3 }, { key: 'max_share', digits: 3 }, { key: 'maxvio', digits: 3 }]));
      trainer.dispose();
    });

  program.command('generate')
    .description('sample text from a trained language model')
    .argument('<run_dir>', 'a folder written by `switchyard train`')
    .option('--prompt <text>', 'text to continue')
    .option('--prompt-file <file>', 'read the prompt from a UTF-8 text file (for prompts past the argument-length limit)')
    .option('--tokens <n>', 'tokens to sample', '200')
    .option('--temperature <t>', 'softmax temperature (0 = greedy)', '0.8')
    .option('--top-k <k>', 'sample among the k most likely tokens', '40')
    .option('--seed <n>', 'sampling seed', '0')
    .action(async (runDir: string, o: { prompt?: string; promptFile?: string; tokens: string; temperature: string; topK: string; seed: string }) => {
      const num = (v: string, name: string, min: number, max = Number.MAX_SAFE_INTEGER) => {
        const n = Number(v);
        if (!Number.isFinite(n) || n < min || n > max) throw new Error(`generate: --${name} must be a number in ${min}..${max}, got '${v.slice(0, 40)}'`);
        return n;
      };
      if ((o.prompt === undefined) === (o.promptFile === undefined)) throw new Error('generate: give exactly one of --prompt TEXT or --prompt-file FILE');
      const text = o.promptFile !== undefined ? readRegularText(o.promptFile, MAX_PROMPT_BYTES, 'prompt file') : o.prompt!;
      const maxTokens = Math.floor(num(o.tokens, 'tokens', 1, MAX_GENERATE_TOKENS));
      const { trainer } = await openRun(runDir);
      if (!trainer.data.tokenizer) throw new Error(`${runDir}: model_type ${trainer.cfg.model_type} does not generate text`);
      const tok = trainer.data.tokenizer;
      const prompt = encode(tok, text);
      const ids = await generateTokens(trainer.model, prompt, {
        maxTokens, temperature: num(o.temperature, 'temperature', 0), topK: Math.floor(num(o.topK, 'top-k', 1)),
      }, new Rng(Math.floor(num(o.seed, 'seed', 0))));
      console.log(decode(tok, ids));
      trainer.dispose();
    });
}
