/**
 * The whole small-lm training step on this machine's CPU: tokens/s, where the time goes (kernels and matrix
 * products by shape), and, with `--pytorch`, the same model in PyTorch eager fp32 (bench/torch/moe_lm.py, one
 * thread) timed in the same rounds: each round times our steps, then PyTorch's, so each round's ratio holds on a
 * busy machine. For a per-core figure run the whole bench pinned: `taskset -c 0 npm run bench -- --only profile --pytorch`.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadConfig } from '../src/config/load.ts';
import { openTrainer } from '../src/train/run.ts';
import { parseTorchLm, type TorchLm } from './lm.ts';

export interface ProfileRound { ours_ms: number; ours_cpu_ms: number; pytorch_ms?: number; ratio?: number }
interface KernelRow { kernel: string; calls: number; ms: number; share: number }
interface ProductRow { shape: string; calls: number; ms: number; gflops: number }

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

/** The PyTorch reference at a config's shape: one run of `steps` timed steps (one CPU thread, or CUDA beside WebGPU); null when python3 or torch is missing. */
function pytorchStep(cfg: ReturnType<typeof loadConfig>, vocab: number, steps: number): TorchLm | null {
  const script = path.join(import.meta.dirname, 'torch', 'moe_lm.py');
  const gpu = tf.getBackend() === 'webgpu'; // beside a GPU run: PyTorch on CUDA; else one CPU thread
  const args = [script, '--device', gpu ? 'cuda' : 'cpu', '--threads', gpu ? '0' : '1', '--layers', `${cfg.layers}`, '--dim', `${cfg.dim}`, '--heads', `${cfg.heads}`,
    '--experts', `${cfg.expert_num}`, '--topk', `${cfg.top_k}`, '--expert-hidden', `${cfg.expert_hidden}`, '--vocab', `${vocab}`,
    '--batch', `${cfg.batch_size}`, '--seq', `${cfg.seq_len}`, '--steps', `${steps}`, '--warmup', '2'];
  try {
    return parseTorchLm(execFileSync('python3', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }))[0] ?? null;
  } catch (e) {
    process.stderr.write(`  PyTorch reference not run (${(e as Error).message.split('\n')[0]})\n`);
    return null;
  }
}

/** Times and profiles small-lm training steps; `rounds` × `steps` timed steps, PyTorch's beside ours in each round when asked. */
export async function benchStepProfile(opts: { steps?: number; rounds?: number; pytorch?: boolean; config?: string } = {}): Promise<Record<string, unknown>> {
  const steps = opts.steps ?? 5;
  const rounds = opts.rounds ?? 3;
  const config = opts.config ?? 'small-lm.yaml';
  const cfg = loadConfig(path.join(import.meta.dirname, '..', 'configs', config), ['eval_every=0', 'checkpoint_every=0', `backend=${tf.getBackend()}`]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchyard-profile-'));
  const trainer = openTrainer(cfg, dir);
  try {
    const tokens = cfg.batch_size * cfg.seq_len * cfg.grad_accum_steps;
    for (let i = 0; i < 3; i++) await trainer.trainStep(); // kernel warm-up and XNNPACK operator caches
    const out: ProfileRound[] = [];
    let torch: TorchLm | null = null;
    for (let r = 0; r < rounds; r++) {
      const times: number[] = [];
      const cpu: number[] = []; // this process's CPU time (user + system): steadier than wall time on a shared machine
      for (let i = 0; i < steps; i++) {
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        await trainer.trainStep();
        const c = process.cpuUsage(c0);
        times.push(performance.now() - t0);
        cpu.push((c.user + c.system) / 1000);
      }
      const round: ProfileRound = { ours_ms: +median(times).toFixed(1), ours_cpu_ms: +median(cpu).toFixed(1) };
      if (opts.pytorch) {
        const ref = pytorchStep(cfg, trainer.data.vocab, steps);
        if (ref) { torch = ref; round.pytorch_ms = ref.ms_per_step; round.ratio = +(round.ours_ms / ref.ms_per_step).toFixed(2); }
      }
      out.push(round);
      process.stderr.write(`  round ${r + 1}: ours ${round.ours_ms} ms (CPU ${round.ours_cpu_ms} ms)${round.pytorch_ms ? `, PyTorch ${round.pytorch_ms} ms, ratio ${round.ratio}` : ''}\n`);
    }
    const ms = median(out.map((r) => r.ours_ms));
    const params = trainer.model.numParams();
    const cpuMs = median(out.map((r) => r.ours_cpu_ms));
    console.log(`${config} training step (${tf.getBackend()}, ${params} parameters, ${tokens} tokens): median ${ms.toFixed(1)} ms (CPU time ${cpuMs.toFixed(1)} ms), ${Math.round(tokens / (ms / 1000))} tokens/s`);
    const ratios = out.flatMap((r) => (r.ratio ? [r.ratio] : []));
    if (ratios.length) console.log(`PyTorch eager fp32 (${tf.getBackend() === 'webgpu' ? 'CUDA' : '1 CPU thread'}), same shape (${torch!.params} parameters): median ${median(out.map((r) => r.pytorch_ms!)).toFixed(1)} ms; ours / PyTorch per round ${ratios.join(', ')}, median ${median(ratios)}`);

    const prof = await tf.profile(async () => { await trainer.trainStep(); });
    const byName = new Map<string, { calls: number; ms: number }>();
    const byShape = new Map<string, { calls: number; ms: number; flop: number }>();
    let total = 0;
    for (const k of prof.kernels) {
      const kms = Number(k.kernelTimeMs) || 0;
      total += kms;
      const e = byName.get(k.name) ?? { calls: 0, ms: 0 };
      e.calls++; e.ms += kms; byName.set(k.name, e);
      if (k.name !== 'BatchMatMul') continue;
      const a = (k.inputShapes as number[][])[0];
      const o = (k.outputShapes as number[][])[0];
      const key = `${JSON.stringify(a)} → ${JSON.stringify(o)}`;
      const m = byShape.get(key) ?? { calls: 0, ms: 0, flop: 0 };
      m.calls++; m.ms += kms; m.flop += 2 * o.reduce((x, y) => x * y, 1) * a[a.length - 1]; byShape.set(key, m);
    }
    const kernels: KernelRow[] = [...byName].sort((a, b) => b[1].ms - a[1].ms)
      .map(([kernel, e]) => ({ kernel, calls: e.calls, ms: +e.ms.toFixed(2), share: +(e.ms / total).toFixed(4) }));
    const products: ProductRow[] = [...byShape].sort((a, b) => b[1].ms - a[1].ms)
      .map(([shape, e]) => ({ shape, calls: e.calls, ms: +e.ms.toFixed(2), gflops: +(e.flop / e.ms / 1e6).toFixed(2) }));
    console.log(`profiled step: ${prof.kernels.length} kernel calls, ${total.toFixed(0)} ms in kernels`);
    console.log('| kernel | calls | ms | share |\n|---|---|---|---|');
    for (const k of kernels.slice(0, 15)) console.log(`| ${k.kernel} | ${k.calls} | ${k.ms.toFixed(1)} | ${(100 * k.share).toFixed(1)}% |`);
    console.log('| matrix product (a → out) | calls | ms | GFLOP/s |\n|---|---|---|---|');
    for (const p of products.slice(0, 8)) console.log(`| ${p.shape} | ${p.calls} | ${p.ms.toFixed(1)} | ${p.gflops.toFixed(2)} |`);
    return {
      config: `configs/${config}`, params, tokens_per_step: tokens, median_ms: ms, cpu_median_ms: cpuMs, tokens_per_s: Math.round(tokens / (ms / 1000)), rounds: out,
      ...(torch ? { pytorch: { reference: torch, params_equal: torch.params === params, ratio_median: median(ratios) } } : {}),
      kernel_calls: prof.kernels.length, kernel_ms: +total.toFixed(1), kernels: kernels.slice(0, 25), products: products.slice(0, 12),
    };
  } finally {
    trainer.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
