/**
 * Expert parallelism on worker threads: tokens/s of one MoE layer's training step (forward, backward,
 * AdamW) with experts on the main thread (ep 1) vs on 2 workers (ep 2), flat / chunked / hierarchical,
 * and the straggler's cost under a router skewed towards rank 0's experts vs a balanced one.
 * Run alone: `npm run bench -- --only parallel`.
 */
import * as tf from '@tensorflow/tfjs';
import { cpus, loadavg } from 'node:os';
import { initBackend } from '../src/backend.ts';
import { MoELayer, type MoEConfig } from '../src/moe/layer.ts';
import { Rng } from '../src/rng.ts';
import type { DispatchPlan } from '../src/moe/plan.ts';
import { AdamW } from '../src/optim/adamw.ts';
import { ExpertParallel } from '../src/parallel/expert_parallel.ts';
import { planExchange, type CommConfig } from '../src/parallel/exchange.ts';
import { defaultPlacement, rankSlots } from '../src/parallel/placement.ts';
import type { EpRankTiming } from '../src/metrics/jsonl.ts';

const LR = 1e-3;

interface Setup { layer: MoELayer; x: tf.Variable; cfg: MoEConfig }

function setup(T: number, D: number, H: number, E: number, k: number): Setup {
  const cfg: MoEConfig = { dim: D, hidden: H, numExperts: E, topK: k, activation: 'relu', router: { type: 'topk' }, capacityFactor: null, capacityPolicy: 'dropless', sharedExperts: 0, auxLosses: ['switch'] };
  const rng = new Rng(1);
  const layer = new MoELayer(cfg, rng);
  // The layer input is a variable, as it is in a model (it comes from attention): the backward reaches xs.
  const x = tf.variable(tf.tensor2d(rng.normals(T * D), [T, D]));
  return { layer, x, cfg };
}

/** One training step; `ep` null: experts on this thread, updated by the main AdamW. */
function makeStep(s: Setup, adam: AdamW, ep: ExpertParallel | null): () => void {
  const vars = ep ? [s.x, s.layer.gate] : [s.x, ...s.layer.variables()];
  return () => tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => {
      const out = s.layer.forward(s.x as tf.Tensor as tf.Tensor2D, { training: true });
      return tf.add(tf.mean(tf.square(out.y)), tf.mul(0.01, out.aux.switch!)) as tf.Scalar;
    }, vars);
    delete grads[s.x.name]; // dx is computed (it flows upstream in a model) but x is not trained here
    adam.step(grads, LR);
    ep?.step(LR);
    value.dataSync(); // sync point: the step is done
  });
}

/** Mean per-rank timings over steps. */
function meanTimings(all: EpRankTiming[][]): EpRankTiming[] {
  const n = all.length;
  return all[0].map((_, r) => {
    const pick = (f: (t: EpRankTiming) => number, d = 1) => +(all.reduce((a, step) => a + f(step[r]), 0) / n).toFixed(d);
    return {
      rank: r, compute_ms: pick((t) => t.compute_ms), comm_ms: pick((t) => t.comm_ms), idle_ms: pick((t) => t.idle_ms),
      bytes_sent: pick((t) => t.bytes_sent ?? 0, 0), bytes_inter: pick((t) => t.bytes_inter ?? 0, 0), bytes_inter_saved: pick((t) => t.bytes_inter_saved ?? 0, 0),
      comm_efficiency: pick((t) => t.comm_efficiency ?? 0, 3),
    };
  });
}

/** One configuration under test: how to enter it and run one step. */
interface Config { name: string; enter: () => void; step: () => void; ep: ExpertParallel | null }

/** Step times and (for ep) per-rank timings and traffic of one configuration. */
interface Samples { ms: number[]; ranks: EpRankTiming[][]; overlap: number[]; wall: number[]; inter: number[]; intra: number[]; dispatchInter: number[] }

const emptySamples = (): Samples => ({ ms: [], ranks: [], overlap: [], wall: [], inter: [], intra: [], dispatchInter: [] });

/** Runs one step of c, recording it into smp when given. */
function record(c: Config, smp: Samples | null): void {
  c.ep?.takeTimings(); c.ep?.takeTraffic();
  const t0 = performance.now();
  c.step();
  const ms = performance.now() - t0;
  if (!smp) return;
  smp.ms.push(ms);
  if (c.ep) {
    smp.ranks.push(c.ep.takeTimings());
    const tr = c.ep.takeTraffic();
    smp.overlap.push(tr.overlap_ms); smp.wall.push(tr.wall_ms); smp.inter.push(tr.total.inter); smp.intra.push(tr.total.intra); smp.dispatchInter.push(tr.dispatch.inter);
  }
}

/** Runs every config once per round (after a warm-up round), rounds interleaved, so load from other work hits all configs alike. */
function measureInterleaved(configs: Config[], rounds: number): Map<string, Samples> {
  const out = new Map<string, Samples>(configs.map((c) => [c.name, emptySamples()]));
  for (let round = -1; round < rounds; round++) {
    for (const c of configs) { c.enter(); record(c, round < 0 ? null : out.get(c.name)!); }
  }
  return out;
}

/**
 * Runs each config's steps back to back after two warm-up steps. Used for the router skews, in order of
 * rising skew: a rank that sat idle for a few steps runs its next steps measurably slower (measured: the
 * slowdown follows the idle rank when the placement is swapped), which would bias an interleaved run.
 */
function measureBlocks(configs: Config[], steps: number): Map<string, Samples> {
  const out = new Map<string, Samples>();
  for (const c of configs) {
    c.enter();
    record(c, null); record(c, null);
    const smp = emptySamples();
    for (let i = 0; i < steps; i++) record(c, smp);
    out.set(c.name, smp);
  }
  return out;
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;

/** Summary of one configuration's samples. */
function summarize(smp: Samples, tokens: number): Record<string, unknown> {
  const med = median(smp.ms), min = Math.min(...smp.ms);
  const base = { median_ms: +med.toFixed(1), min_ms: +min.toFixed(1), steps: smp.ms.length, tokens_per_s: Math.round(tokens / (med / 1000)), tokens_per_s_best: Math.round(tokens / (min / 1000)) };
  if (smp.ranks.length === 0) return base;
  return {
    ...base, ranks: meanTimings(smp.ranks), exchange_wall_ms: +mean(smp.wall).toFixed(1), overlap_ms: +mean(smp.overlap).toFixed(1),
    bytes_inter_per_step: Math.round(mean(smp.inter)), bytes_intra_per_step: Math.round(mean(smp.intra)), dispatch_bytes_inter_per_step: Math.round(mean(smp.dispatchInter)),
  };
}

/** The layer's dispatch plan at its current router. */
function currentPlan(s: Setup): DispatchPlan {
  let plan: DispatchPlan | null = null;
  tf.tidy(() => { plan = s.layer.plan(s.layer.route(s.x as tf.Tensor as tf.Tensor2D, { training: true })).plan; });
  return plan!;
}

/** Rows (token-expert pairs) per rank in one forward of the layer at its current routing. */
function rowsPerRank(s: Setup, epSize: number): number[] {
  const plan = currentPlan(s);
  const per = s.cfg.numExperts / epSize;
  const rows = new Array<number>(epSize).fill(0);
  plan.tokensPerExpert.forEach((c, e) => { rows[Math.floor(e / per)] += c; });
  return rows;
}

/** Bytes of the forward dispatch, flat vs hierarchical, for larger groups at this routing (planned, not run). */
function plannedTraffic(s: Setup): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const plan = currentPlan(s);
  for (const [ep, nodes] of [[2, 2], [4, 2], [8, 2], [8, 4]]) {
    const slots = rankSlots(defaultPlacement(s.cfg.numExperts, ep), ep);
    const f = planExchange(plan, slots, { mode: 'flat', nodes, chunks: 1 }, 4 * s.cfg.dim).traffic.dispatch;
    const h = planExchange(plan, slots, { mode: 'hierarchical', nodes, chunks: 1 }, 4 * s.cfg.dim).traffic.dispatch;
    out[`ep${ep}_nodes${nodes}`] = { flat: f, hierarchical: h, inter_saved: +(1 - h.inter / f.inter).toFixed(3) };
  }
  return out;
}

export async function benchParallel(opts: { T?: number; D?: number; H?: number; E?: number; k?: number; rounds?: number } = {}): Promise<Record<string, unknown>> {
  const { T = 2048, D = 256, H = 1024, E = 8, k = 2, rounds = 4 } = opts;
  await initBackend('wasm', { quiet: true });
  const machine = { cpus: cpus().length, load_avg_1m_at_start: +loadavg()[0].toFixed(2), note: 'ep1 vs ep2 configurations interleaved per round; router skews measured in blocks on a fresh group' };

  // ep 1: experts on the main thread; ep 2: the same layer (same seed), experts on two workers.
  const s1 = setup(T, D, H, E, k);
  const adam1 = new AdamW(s1.layer.variables(), {});
  const s = setup(T, D, H, E, k);
  const start = async () => {
    const g = new ExpertParallel({ epSize: 2, nodes: 2, layerWeights: s.layer.experts, activation: 'relu', timeoutMs: 120_000 });
    const t0 = performance.now();
    await g.ready();
    return { g, ms: Math.round(performance.now() - t0) };
  };
  const { g: ep, ms: startMs } = await start();
  s.layer.executor = ep;
  const adam = new AdamW([s.layer.gate], {});
  const step1 = makeStep(s1, adam1, null);
  const ep2 = (name: string, comm: Partial<CommConfig>): Config => ({ name, ep, step: makeStep(s, adam, ep), enter: () => ep.setComm(comm) });
  const samples = measureInterleaved([
    { name: 'ep1_main_thread', ep: null, step: step1, enter: () => {} },
    ep2('ep2_flat', { mode: 'flat', chunks: 1 }),
    ep2('ep2_flat_chunks4', { mode: 'flat', chunks: 4 }),
    ep2('ep2_hierarchical_nodes2', { mode: 'hierarchical', chunks: 1 }),
  ], rounds);
  const rows0 = rowsPerRank(s, 2);
  const planned = plannedTraffic(s);
  await ep.dispose();

  // Skew: raise the logits of rank 0's experts (0..E/2−1) so more tokens pick them (init logits have std ≈ 0.3).
  // A fresh group (same initial weights), biases in rising order, bias 0 as the balanced reference.
  const { g: sk } = await start();
  s.layer.executor = sk;
  const adamS = new AdamW([s.layer.gate], {});
  const skew = (bias: number) => s.layer.logitAdjust.assign(tf.tensor1d(Array.from({ length: E }, (_, e) => (e < E / 2 ? bias : 0))));
  const biases = [0, 0.25, 0.5, 2];
  const rows = Object.fromEntries(biases.map((b) => { skew(b); return [b, rowsPerRank(s, 2)]; }));
  const skewSamples = measureBlocks(biases.map((b) => ({ name: `bias_${b}`, ep: sk, step: makeStep(s, adamS, sk), enter: () => skew(b) })), rounds);
  skew(0);
  adam.dispose(); adam1.dispose(); adamS.dispose();
  await sk.dispose();
  for (const z of [s1, s]) { z.layer.dispose(); z.x.dispose(); }

  const sum = (name: string) => summarize(samples.get(name)!, T);
  const tps = (name: string) => T / (median(samples.get(name)!.ms) / 1000);
  const share = (r: number[]) => +(r[0] / (r[0] + r[1])).toFixed(3);
  return {
    shape: { T, D, H, E, k, activation: 'relu', policy: 'dropless' }, machine, worker_start_ms: startMs,
    ep1_main_thread: sum('ep1_main_thread'),
    ep2_flat: { rows_per_rank: rows0, ...sum('ep2_flat') },
    ep2_flat_chunks4: sum('ep2_flat_chunks4'),
    ep2_hierarchical_nodes2: sum('ep2_hierarchical_nodes2'),
    speedup_ep2_over_ep1: +(tps('ep2_flat') / tps('ep1_main_thread')).toFixed(2),
    chunking_time_saved_ms: +(median(samples.get('ep2_flat')!.ms) - median(samples.get('ep2_flat_chunks4')!.ms)).toFixed(1),
    skewed_router: Object.fromEntries(biases.map((b) => [`bias_${b}`, { rows_per_rank: rows[b], rank0_share: share(rows[b]), ...summarize(skewSamples.get(`bias_${b}`)!, T) }])),
    planned_dispatch_bytes: planned,
  };
}
