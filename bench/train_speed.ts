/**
 * Training-loop figures: the tensor-leak check (tf.memory() after 200 steps equals that after 10) and
 * training tokens/s of the Trainer at a config's shape (small-lm on every backend, gpu-lm on WebGPU).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadConfig, parseConfig } from '../src/config/load.ts';
import { openTrainer } from '../src/train/run.ts';
import { moeSetup, moeStep, timeAsync, type Timing } from './speed.ts';

export interface MemorySnapshot { numTensors: number; numBytes: number }
export interface LeakCheck { what: string; after_10: MemorySnapshot; after_200: MemorySnapshot; leak_free: boolean }

const snapshot = (): MemorySnapshot => { const m = tf.memory(); return { numTensors: m.numTensors, numBytes: m.numBytes }; };

/** Runs `step` 200 times; memory after step 10 must equal memory after step 200. */
async function leakOver200(what: string, step: () => Promise<void> | void): Promise<LeakCheck> {
  let after10: MemorySnapshot | null = null;
  for (let i = 1; i <= 200; i++) {
    await step();
    if (i === 10) after10 = snapshot();
  }
  const after200 = snapshot();
  return { what, after_10: after10!, after_200: after200, leak_free: after10!.numTensors === after200.numTensors && after10!.numBytes === after200.numBytes };
}

/** A small MoE LM (2 layers, D=32, E=4, k=2, seq 32, batch 4) trained by the Trainer for 200 steps. */
export async function leakCheck(): Promise<LeakCheck> {
  const cfg = parseConfig({
    model_type: 'moe_llama', layers: 2, dim: 32, heads: 2, expert_num: 4, top_k: 2, expert_hidden: 64, activation: 'swiglu',
    batch_size: 4, seq_len: 32, steps: 200, warmup_steps: 5, eval_every: 0, checkpoint_every: 0,
    data: { source: 'nlp-corpus', tokenizer: 'byte' }, backend: tf.getBackend(),
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchyard-leak-'));
  const trainer = openTrainer(cfg, dir);
  try {
    return await leakOver200('Trainer.trainStep of a 2-layer MoE LM (D=32, E=4, k=2, swiglu, AdamW)', async () => { await trainer.trainStep(); });
  } finally {
    trainer.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Tokens/s of Trainer.trainStep (forward, backward, clip, AdamW, the step's reads) at a config's shape. */
export async function lmSpeed(config = 'small-lm.yaml', steps = 4): Promise<Timing & { tokens_per_step: number; tokens_per_s: number; params: number; config: string }> {
  const cfg = loadConfig(path.join(import.meta.dirname, '..', 'configs', config), [`backend=${tf.getBackend()}`]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchyard-lm-'));
  const trainer = openTrainer(cfg, dir);
  try {
    await trainer.trainStep(); // first step: shader compilation and kernel warm-up, not timed
    const t = await timeAsync(async () => { await trainer.trainStep(); }, steps);
    const tokens = cfg.batch_size * cfg.seq_len * cfg.grad_accum_steps;
    return { ...t, tokens_per_step: tokens, tokens_per_s: Math.round(tokens / (t.median_ms / 1000)), params: trainer.model.numParams(), config: `configs/${config}` };
  } finally {
    trainer.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
