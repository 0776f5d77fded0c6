/**
 * The speed suite for one backend (called by bench/run.ts): ceiling, MoE step per dispatcher, dense ratio,
 * breakdown, leak check, small LM; on WebGPU also the WGSL GEMM tile search and the PyTorch reference
 * (parsed from reference_moe_torch.py's output, run in the same device call). Returns the JSON figures
 * and prints the markdown table.
 */
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import type { Dispatcher } from '../src/moe/dispatch/index.ts';
import { gemmTuning } from '../src/moe/expert_ffn.ts';
import { breakdown, moeVsDense, dispatchersAgree, matmulCeiling, moeFigures, profileStep, stepPhases, syncLatency, type MoeFigures, type Shape } from './speed.ts';
import { gemmSearch } from './gemm_search.ts';
import { speedTable } from './speed_table.ts';
import { leakCheck, lmSpeed } from './train_speed.ts';

/** Lines of reference_moe_torch.py: "torch tf32=False moe step: 35.1 ms, …" and "… matmul 8192: 52000 GFLOPS". */
export function parseTorch(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/torch tf32=(True|False) moe step: ([\d.]+) ms/g)) out[`moe_step_ms_tf32_${m[1].toLowerCase()}`] = +m[2];
  for (const m of text.matchAll(/torch tf32=(True|False) matmul 8192: ([\d.]+) GFLOPS/g)) out[`matmul_gflops_tf32_${m[1].toLowerCase()}`] = +m[2];
  return out;
}

/** Progress on stderr, with the live tensor count (each section must leave it where it found it). */
const log = (s: string) => process.stderr.write(`  ${s} (tensors alive: ${tf.memory().numTensors})\n`);

/** quick: one timed run each; smoke: tiny shapes too (a pipeline check, e.g. on a software GPU). */
export async function benchSpeed(opts: { torch?: string[]; quick?: boolean; smoke?: boolean } = {}): Promise<Record<string, unknown>> {
  const backend = tf.getBackend();
  const gpu = backend === 'webgpu';
  const runs = opts.quick || opts.smoke ? 1 : gpu ? 10 : 5; // a shared CPU: medians of 5
  const main: Shape = opts.smoke ? { T: 256, D: 64, H: 128, E: 8, k: 2 } : gpu ? { T: 16384, D: 1024, H: 4096, E: 8, k: 2 } : { T: 4096, D: 512, H: 2048, E: 8, k: 2 };
  const fine: Shape = { ...main, H: 512, E: 64, k: 4 };
  const best: Dispatcher = gpu ? 'padded' : 'gather'; // measured fastest (README); 'auto' picks the same
  const r: Record<string, unknown> = {};

  log('agreement of the three dispatchers (small problem)');
  r.dispatchers_max_rel_diff = +(await dispatchersAgree()).toExponential(2);
  if (gpu) {
    log('WGSL GEMM tile search');
    const search = await gemmSearch(main, opts.smoke ? 256 : 8192);
    gemmTuning.tile = search.best;
    r.gemm = search;
  }
  log('matmul ceiling');
  const expertShape: [number, number, number] = [(main.T * main.k) / main.E, main.D, main.H];
  const squares = opts.smoke ? [256] : gpu ? [4096, 8192] : backend === 'cpu' ? [512] : [1024, 2048];
  const ceiling = await matmulCeiling([...squares.map((n): [number, number, number] => [n, n, n]), expertShape], opts.smoke ? 1 : gpu ? 10 : 3);
  if (gpu && r.gemm) {
    // our WGSL GEMM beats tfjs's matMul on this backend: the ceiling is the best matmul available here
    const q = (r.gemm as Awaited<ReturnType<typeof gemmSearch>>).square;
    ceiling.all.push({ mkn: [q.n, q.n, q.n], gflops: q.wgsl_gflops, median_ms: q.wgsl_ms, kernel: 'WGSL GEMM' });
    const top = ceiling.all.reduce((a, b) => (b.gflops > a.gflops ? b : a));
    ceiling.gflops = top.gflops;
    ceiling.best = top.mkn;
  }
  r.ceiling = ceiling;

  const strategies: Record<string, MoeFigures | { skipped: string }> = {};
  const order: [string, Dispatcher, () => void][] = gpu
    ? [['gather (tfjs gatherND / per-expert matMul / scatterND)', 'gather', () => {}],
      ['padded, tfjs batched matMul', 'padded', () => { gemmTuning.enabled = false; }],
      ['padded, WGSL GEMM + row kernels', 'padded', () => { gemmTuning.enabled = true; }]]
    : [['gather', 'gather', () => {}], ['padded', 'padded', () => {}], ['onehot', 'onehot', () => {}]];
  for (const [name, d, setup] of order) {
    log(`MoE step, ${name}`);
    setup();
    strategies[name] = await moeFigures(main, d, ceiling.gflops, name === 'onehot' ? 1 : runs);
  }
  let moe = strategies[order[0][0]] as MoeFigures;
  if (gpu) {
    strategies.onehot = { skipped: `the one-hot dispatch and combine matrices are [T, E·C] = ${main.T}×${main.T * main.k} floats (${((main.T * main.T * main.k * 4) / 2 ** 30).toFixed(1)} GiB each)` };
    const wgsl = strategies['padded, WGSL GEMM + row kernels'] as MoeFigures, tfjs = strategies['padded, tfjs batched matMul'] as MoeFigures;
    gemmTuning.enabled = wgsl.median_ms <= tfjs.median_ms; // keep the faster GEMM for the figures below
    moe = gemmTuning.enabled ? wgsl : tfjs;
    log('kernel profiles and step phases');
    r.profile = { gather: await profileStep(main, 'gather'), padded: await profileStep(main, 'padded') };
    r.sync_latency = await syncLatency();
    r.phases = { gather: await stepPhases(main, 'gather', 5), padded: await stepPhases(main, 'padded', 5) };
  }
  r.strategies = strategies;
  r.moe = moe;
  log('MoE step, fine-grained');
  r.moe_fine = await moeFigures(fine, best, ceiling.gflops, runs);
  log('MoE step vs the dense FFN of equal active FLOPs, interleaved');
  const vs = await moeVsDense(main, moe.dispatcher, ceiling.gflops, runs);
  r.dense = { ...vs.dense, moe_same_rounds: vs.moe, method: vs.method };
  r.moe_over_dense = vs.moe_over_dense;
  log('breakdown');
  r.breakdown = await breakdown(main, best, moe.median_ms, runs);
  gemmTuning.enabled = true;
  if (opts.torch?.length) {
    const [given, withDx] = opts.torch.map((f) => (fs.existsSync(f) ? parseTorch(fs.readFileSync(f, 'utf8')) : {}));
    r.torch = { as_given_no_dx: given, with_dx: withDx ?? {} };
  }
  log('leak check (200 steps)');
  r.leak = await leakCheck();
  log('small-LM training');
  r.small_lm = await lmSpeed('small-lm.yaml', opts.quick || opts.smoke ? 2 : 4);
  console.log(speedTable(backend, r));
  return r;
}
