/**
 * Whole training steps of the Trainer (forward, backward, clip, AdamW, the step's reads) at the shapes of
 * configs/gpu-lm.yaml (WebGPU only: 109 M parameters) and configs/small-lm.yaml, against PyTorch eager fp32
 * of the same model when `--torch-lm FILE` gives that reference's output from the same machine and call
 * (lines "… params=N L=… D=… E=… k=… H=… B=… T=…: X ms/step, Y tokens/s"). The ratio is ours / PyTorch's.
 */
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { loadConfig } from '../src/config/load.ts';
import { lmSpeed } from './train_speed.ts';

export interface TorchLm { params: number; L: number; D: number; E: number; k: number; H: number; B: number; T: number; ms_per_step: number; tokens_per_s: number; tf32: boolean }

/** Parses the PyTorch reference's result lines. */
export function parseTorchLm(text: string): TorchLm[] {
  const out: TorchLm[] = [];
  const re = /tf32=(True|False) params=(\d+) L=(\d+) D=(\d+) E=(\d+) k=(\d+) H=(\d+) B=(\d+) T=(\d+): ([\d.]+) ms\/step, (\d+) tokens\/s/g;
  for (const m of text.matchAll(re)) {
    out.push({ tf32: m[1] === 'True', params: +m[2], L: +m[3], D: +m[4], E: +m[5], k: +m[6], H: +m[7], B: +m[8], T: +m[9], ms_per_step: +m[10], tokens_per_s: +m[11] });
  }
  return out;
}

/** The LM step figures of this backend; each with PyTorch's fp32 figure of the same shape when given. */
export async function benchLm(opts: { torchLm?: string[]; steps?: number } = {}): Promise<Record<string, unknown>> {
  const torch = (opts.torchLm ?? []).filter((f) => fs.existsSync(f)).flatMap((f) => parseTorchLm(fs.readFileSync(f, 'utf8')));
  const configs = tf.getBackend() === 'webgpu' ? ['gpu-lm.yaml', 'small-lm.yaml'] : ['small-lm.yaml'];
  const out: Record<string, unknown> = {};
  for (const file of configs) {
    process.stderr.write(`  ${file}: training steps\n`);
    const ours = await lmSpeed(file, opts.steps ?? 5);
    const c = loadConfig(`configs/${file}`);
    const ref = torch.find((t) => !t.tf32 && t.L === c.layers && t.D === c.dim && t.E === c.expert_num && t.k === c.top_k && t.H === c.expert_hidden && t.B === c.batch_size && t.T === c.seq_len);
    out[file.replace('.yaml', '').replace('-', '_')] = {
      ...ours,
      ...(ref ? { torch_fp32: ref, torch_params_equal: ref.params === ours.params, ratio_to_torch: +(ours.median_ms / ref.ms_per_step).toFixed(2) } : {}),
    };
  }
  return out;
}
