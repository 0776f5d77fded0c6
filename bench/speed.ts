/**
 * Speed of the MoE layer against the machine, each figure measured in the same run as its reference:
 * the backend's matmul ceiling, the MoE step (forward + backward) per dispatcher as a fraction of it,
 * the dense FFN of equal active FLOPs, and where the step's time goes (expert FFNs vs the rest:
 * routing, capacity, plan, dispatch, combine). Works on every backend: the step syncs once at its end
 * with `await data()` (WebGPU forbids dataSync), and on WebGPU routing is read ahead (readRouting).
 */
import * as tf from '@tensorflow/tfjs';
import { moeExperts, type Dispatcher } from '../src/moe/dispatch/index.ts';
import { ffn, initVariable } from '../src/moe/experts.ts';
import { MoELayer, type ForwardContext, type MoEConfig, type MoEOutput } from '../src/moe/layer.ts';
import { paddedExpertFfn } from '../src/moe/expert_ffn.ts';
import { Rng } from '../src/rng.ts';
import { ffnFlops } from './moe.ts';
import { roundRatio, timeInterleaved, type ArmTiming } from './interleave.ts';

export interface Timing { median_ms: number; min_ms: number; runs: number }
export interface Shape { T: number; D: number; H: number; E: number; k: number }

/** Median and min wall time of an async step (one sync at its end), after `warmup` untimed runs. */
export async function timeAsync(step: () => Promise<void>, runs: number, warmup = 1): Promise<Timing> {
  for (let i = 0; i < warmup; i++) await step();
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await step();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return { median_ms: +ms[Math.floor(ms.length / 2)].toFixed(2), min_ms: +ms[0].toFixed(2), runs };
}

/**
 * Waits for every tensor by reading one element of each: WebGPU runs submitted work in order, so these
 * reads return after everything before them. (A full tf.sum is no way to sync: tfjs-webgpu reduces to a
 * scalar in one workgroup, ≈65 ms for the step's 84 M gradient floats on an H100.)
 */
export async function settle(ts: tf.Tensor[]): Promise<void> {
  // pairwise adds: one AddN of many inputs exceeds WebGPU's storage buffers per shader stage
  const s = tf.tidy(() => ts.map((t) => tf.slice(tf.reshape(t, [-1]), [t.size - 1], [1])).reduce((a, b) => tf.add(a, b)));
  await s.data();
  s.dispose();
}

/**
 * loss = mean(y²), with its gradient written out (dL/dy = 2y/n). tfjs's own Mean and Sum gradients
 * build a ones tensor of the input's shape on the host and upload it: 64 MB and ≈80 ms per step at the
 * GPU shape (measured with a CPU profile on the device) — a cost of the loss, not of the layer.
 */
export function meanSquare(y: tf.Tensor): tf.Scalar {
  const n = y.size;
  const f = (v: tf.Tensor, save: (ts: tf.Tensor[]) => void) => {
    save([v]); // saved inputs are kept for the backward pass; a closure over v is not
    return {
      value: tf.mean(tf.mean(tf.square(v), -1)) as tf.Scalar, // two stages: tfjs-webgpu reduces to a scalar in one workgroup
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(saved[0], tf.mul(dy, 2 / n)),
    };
  };
  return tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0])(y) as tf.Scalar;
}

/** loss = Σ y ⊙ c with dL/dy = c (same reason as meanSquare). */
export function dotLoss(y: tf.Tensor, c: tf.Tensor): tf.Scalar {
  const f = (v: tf.Tensor) => ({
    value: tf.sum(tf.sum(tf.mul(v, c), -1)) as tf.Scalar,
    gradFunc: (dy: tf.Tensor) => tf.mul(c, dy),
  });
  return tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0])(y) as tf.Scalar;
}

/** Time per call of `fn` when `reps` calls are queued back to back and synced once (throughput, sync latency amortised). */
export async function timeQueued(fn: () => tf.Tensor, reps: number, rounds = 3): Promise<Timing> {
  const one = fn(); // warm-up: compile
  await settle([one]);
  one.dispose();
  return timeAsync(async () => {
    const outs: tf.Tensor[] = [];
    for (let i = 0; i < reps; i++) outs.push(fn());
    await settle(outs);
    tf.dispose(outs);
  }, rounds, 0).then((t) => ({ median_ms: +(t.median_ms / reps).toFixed(3), min_ms: +(t.min_ms / reps).toFixed(3), runs: rounds * reps }));
}

/** Round trip of one tiny read: what every sync point in a step costs at least. */
export async function syncLatency(): Promise<Timing> {
  const a = tf.zeros([4096]); // above tfjs-webgpu's 1000-element CPU hand-off, so the add runs on the device
  const t = await timeAsync(async () => { const s = tf.tidy(() => tf.slice(tf.add(a, 1), 0, 1)); await s.data(); s.dispose(); }, 20, 3);
  a.dispose();
  return t;
}

const gflops = (flops: number, ms: number) => +(flops / (ms / 1000) / 1e9).toFixed(1);

/**
 * The backend's matmul ceiling: the best GFLOPS over a few large matMuls [m, k]·[k, n] — squares and the
 * layer's own expert shape — so that every other figure is a fraction of what this backend reaches here.
 */
export interface CeilingEntry { mkn: [number, number, number]; gflops: number; median_ms: number; kernel?: string }
export async function matmulCeiling(shapes: [number, number, number][], runs = 3): Promise<{ gflops: number; best: [number, number, number]; all: CeilingEntry[] }> {
  const all: CeilingEntry[] = [];
  for (const [m, k, n] of shapes) {
    const a = tf.randomNormal([m, k]), b = tf.randomNormal([k, n]);
    const t = await timeQueued(() => tf.matMul(a, b), runs);
    tf.dispose([a, b]);
    all.push({ mkn: [m, k, n], gflops: gflops(2 * m * k * n, t.median_ms), median_ms: t.median_ms });
  }
  const best = all.reduce((x, y) => (y.gflops > x.gflops ? y : x));
  return { gflops: best.gflops, best: best.mkn, all };
}

export interface MoeFigures extends Timing { shape: Shape; dispatcher: Dispatcher; tokens_per_s: number; gflops: number; of_ceiling: number }

/**
 * A relu MoE layer (dropless top-k) at `shape` and its input as a variable, as in a model (dx is computed).
 * The Switch aux loss is on except on WebGPU, where the losses' index check reads indices with dataSync
 * (src/losses/check.ts); PyTorch's reference step has no aux loss either.
 */
export function moeSetup(s: Shape, dispatcher: Dispatcher, seed = 1): { layer: MoELayer; x: tf.Variable<tf.Rank.R2> } {
  const rng = new Rng(seed);
  const auxLosses: MoEConfig['auxLosses'] = tf.getBackend() === 'webgpu' ? [] : ['switch'];
  const cfg: MoEConfig = { dim: s.D, hidden: s.H, numExperts: s.E, topK: s.k, activation: 'relu', router: { type: 'topk' }, capacityFactor: null, capacityPolicy: 'dropless', sharedExperts: 0, auxLosses, dispatcher };
  return { layer: new MoELayer(cfg, rng), x: tf.tidy(() => tf.variable(tf.tensor2d(rng.normals(s.T * s.D), [s.T, s.D]))) };
}

/** Wall time of a step's phases: routing read back (sync 1), building + encoding the graph in JS, waiting for the GPU (sync 2). */
export interface Phases { route: number[]; encode: number[]; wait: number[] }

/** The benchmark's loss: mean(y²) (+ 0.01 · switch when the layer computes it). */
function stepLoss(out: MoEOutput): tf.Scalar {
  const task = meanSquare(out.y);
  return (out.aux.switch ? tf.add(task, tf.mul(0.01, out.aux.switch)) : task) as tf.Scalar;
}

/** One training step of the layer: loss = mean(y²) (+ 0.01 · switch); gradients of every weight and of x. */
export function moeStep(layer: MoELayer, x: tf.Variable<tf.Rank.R2>, phases?: Phases): () => Promise<void> {
  return async () => {
    const t0 = performance.now();
    const ctx: ForwardContext = { training: true };
    if (tf.getBackend() === 'webgpu') ctx.hostRouting = await layer.readRouting(x, ctx); // the step's one sync before the end
    const t1 = performance.now();
    const grads = tf.tidy(() => Object.values(tf.variableGrads(() => stepLoss(layer.forward(x, ctx)), [...layer.variables(), x]).grads));
    const t2 = performance.now();
    await settle(grads);
    tf.dispose(grads);
    if (phases) { phases.route.push(t1 - t0); phases.encode.push(t2 - t1); phases.wait.push(performance.now() - t2); }
  };
}

/** Median wall time of each phase over `runs` steps. */
export async function stepPhases(s: Shape, dispatcher: Dispatcher, runs: number): Promise<Record<keyof Phases, number>> {
  const { layer, x } = moeSetup(s, dispatcher);
  const phases: Phases = { route: [], encode: [], wait: [] };
  await moeStep(layer, x)();
  const step = moeStep(layer, x, phases);
  for (let i = 0; i < runs; i++) await step();
  layer.dispose();
  x.dispose();
  const med = (a: number[]) => +[...a].sort((p, q) => p - q)[Math.floor(a.length / 2)].toFixed(2);
  return { route: med(phases.route), encode: med(phases.encode), wait: med(phases.wait) };
}

/** MoE layer step at `shape` with `dispatcher`: time, tokens/s, useful GFLOPS (expert matmuls, no padding) and share of the ceiling. */
export async function moeFigures(s: Shape, dispatcher: Dispatcher, ceilingGflops: number, runs: number): Promise<MoeFigures> {
  const { layer, x } = moeSetup(s, dispatcher);
  const t = await timeAsync(moeStep(layer, x), runs);
  layer.dispose();
  x.dispose();
  const g = gflops(ffnFlops(s.T * s.k, s.D, s.H), t.median_ms);
  return { shape: s, dispatcher, ...t, tokens_per_s: Math.round(s.T / (t.median_ms / 1000)), gflops: g, of_ceiling: +(g / ceilingGflops).toFixed(3) };
}

/** A training step of the dense FFN (hidden k·H) of the same active FLOPs as the MoE layer at `s`; dispose() frees it. */
export function denseSetup(s: Shape): { step: () => Promise<void>; dispose: () => void } {
  const rng = new Rng(2);
  const w1 = initVariable(rng, [s.D, s.k * s.H], 0.02), w2 = initVariable(rng, [s.k * s.H, s.D], 0.02);
  const x = tf.tidy(() => tf.variable(tf.tensor2d(rng.normals(s.T * s.D), [s.T, s.D])));
  const step = async () => {
    const grads = tf.tidy(() => Object.values(tf.variableGrads(() => meanSquare(ffn(x, w1 as tf.Tensor as tf.Tensor2D, w2 as tf.Tensor as tf.Tensor2D, null, 'relu')), [w1, w2, x]).grads));
    await settle(grads);
    tf.dispose(grads);
  };
  return { step, dispose: () => tf.dispose([w1, w2, x]) };
}

export interface MoeVsDense {
  moe: MoeFigures;
  dense: Timing & { hidden: number; gflops: number };
  /** median over rounds of (MoE step / dense step), both timed in the same round. */
  moe_over_dense: number;
  method: string;
}

/**
 * The MoE layer step at `s` against the dense FFN of equal active FLOPs, the two timed alternately within
 * each round (bench/interleave.ts), so that load on a shared machine hits both alike; the ratio is the
 * median of the per-round ratios.
 */
export async function moeVsDense(s: Shape, dispatcher: Dispatcher, ceilingGflops: number, runs: number): Promise<MoeVsDense> {
  const { layer, x } = moeSetup(s, dispatcher);
  const dense = denseSetup(s);
  const t = await timeInterleaved({ moe: moeStep(layer, x), dense: dense.step }, runs);
  layer.dispose();
  x.dispose();
  dense.dispose();
  const strip = ({ ms: _ms, ...rest }: ArmTiming): Timing => rest;
  const g = gflops(ffnFlops(s.T * s.k, s.D, s.H), t.moe.median_ms);
  return {
    moe: { shape: s, dispatcher, ...strip(t.moe), tokens_per_s: Math.round(s.T / (t.moe.median_ms / 1000)), gflops: g, of_ceiling: +(g / ceilingGflops).toFixed(3) },
    dense: { ...strip(t.dense), hidden: s.k * s.H, gflops: gflops(ffnFlops(s.T, s.D, s.k * s.H), t.dense.median_ms) },
    moe_over_dense: +roundRatio(t.moe, t.dense).toFixed(3),
    method: 'MoE and dense steps alternated within each round; median of per-round ratios',
  };
}

/**
 * Where the step's time goes. gather: measured directly — the same step with identity experts (the expert
 * executor seam returning its rows: routing, capacity, plan, dispatch, combine, loss, and their backward),
 * interleaved with full steps so that load on a shared CPU hits both alike. Other dispatchers (WebGPU's
 * padded): the expert FFNs alone (forward + backward on [E, C, D] rows), rest = step − experts. Also the
 * host part (capacity + plan on the [T, k] decisions) on its own.
 */
export async function breakdown(s: Shape, dispatcher: Dispatcher, stepMs: number, runs: number): Promise<{ method: string; step_ms: number; experts_ms: number; rest_ms: number; rest_share: number; host_plan_ms: number }> {
  const { layer, x } = moeSetup(s, dispatcher);
  const ctx: ForwardContext = { training: true };
  const host = await layer.readRouting(x, ctx);
  const routing = tf.tidy(() => layer.route(x, ctx) as unknown as tf.TensorContainer) as unknown as ReturnType<MoELayer['route']>;
  const padded = dispatcher !== 'gather';
  const tPlan = await timeAsync(async () => { layer.plan(routing, host, padded); }, runs);
  const { plan } = layer.plan(routing, host, padded);
  tf.dispose(routing as unknown as tf.TensorContainer);
  const hostPlan = tPlan.median_ms;
  if (!padded) {
    const full = moeStep(layer, x);
    const identity = async () => {
      layer.executor = { run: (xs) => xs }; // experts = identity: everything but the expert FFNs
      const grads = tf.tidy(() => Object.values(tf.variableGrads(() => stepLoss(layer.forward(x, ctx)), [layer.gate, x]).grads));
      await settle(grads);
      tf.dispose(grads);
      layer.executor = null;
    };
    await full();
    await identity();
    const tf_: number[] = [], ti: number[] = [];
    for (let i = 0; i < runs; i++) {
      let t0 = performance.now(); await full(); tf_.push(performance.now() - t0);
      t0 = performance.now(); await identity(); ti.push(performance.now() - t0);
    }
    tf.dispose([x]);
    layer.dispose();
    const med = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
    const step = med(tf_), rest = med(ti);
    return { method: 'identity experts, interleaved with full steps', step_ms: +step.toFixed(1), experts_ms: +(step - rest).toFixed(1), rest_ms: +rest.toFixed(1), rest_share: +(rest / step).toFixed(3), host_plan_ms: hostPlan };
  }
  const N = plan.tokenOfRow.length;
  const rows = tf.tidy(() => tf.variable(tf.randomNormal([N, s.D], 0, 1, 'float32', 3) as tf.Tensor2D));
  const c = tf.randomNormal([N, s.D], 0, 1, 'float32', 4);
  const { w1, w2 } = layer.experts;
  const expertsOnly = async () => {
    const grads = tf.tidy(() => Object.values(tf.variableGrads(() => {
      const ys = paddedExpertFfn(rows.reshape([s.E, N / s.E, s.D]) as tf.Tensor3D, layer.experts, 'relu').reshape([N, s.D]);
      return dotLoss(ys, c);
    }, [w1, w2, rows]).grads));
    await settle(grads);
    tf.dispose(grads);
  };
  const tExp = await timeAsync(expertsOnly, runs);
  tf.dispose([rows, c, x]);
  layer.dispose();
  const rest = Math.max(0, stepMs - tExp.median_ms);
  return { method: 'step − expert FFNs alone', step_ms: stepMs, experts_ms: tExp.median_ms, rest_ms: +rest.toFixed(1), rest_share: +(rest / stepMs).toFixed(3), host_plan_ms: hostPlan };
}

/** Checks that all three dispatchers compute the same layer output: max |Δy| / max |y| on a small problem. */
export async function dispatchersAgree(): Promise<number> {
  const s: Shape = { T: 64, D: 16, H: 32, E: 4, k: 2 };
  const { layer, x } = moeSetup(s, 'gather');
  const host = await layer.readRouting(x, { training: true });
  const ys: Float32Array[] = [];
  for (const d of ['gather', 'onehot', 'padded'] as Dispatcher[]) {
    const y = tf.tidy(() => {
      const routing = layer.route(x, { training: true });
      const { plan, weights } = layer.plan(routing, host, d !== 'gather');
      return moeExperts(d, x, weights, plan, s.k, layer.experts, 'relu');
    });
    ys.push(await y.data() as Float32Array);
    y.dispose();
  }
  let dev = 0, scale = 0;
  for (let i = 0; i < ys[0].length; i++) {
    scale = Math.max(scale, Math.abs(ys[0][i]));
    dev = Math.max(dev, Math.abs(ys[1][i] - ys[0][i]), Math.abs(ys[2][i] - ys[0][i]));
  }
  layer.dispose();
  x.dispose();
  return dev / scale;
}

/** Kernel times of one step (tf.profile; on WebGPU from timestamp queries), summed by kernel, largest first. */
export async function profileStep(s: Shape, dispatcher: Dispatcher, top = 12): Promise<{ total_ms: number; kernels: { name: string; ms: number; calls: number }[] }> {
  const { layer, x } = moeSetup(s, dispatcher);
  const step = moeStep(layer, x);
  await step(); // compile outside the profile
  const info = await tf.profile(async () => { await step(); return [] as tf.Tensor[]; });
  const by = new Map<string, { ms: number; calls: number }>();
  for (const k of info.kernels) {
    const e = by.get(k.name) ?? { ms: 0, calls: 0 };
    e.ms += Number(k.kernelTimeMs) || 0;
    e.calls++;
    by.set(k.name, e);
  }
  layer.dispose();
  x.dispose();
  const kernels = [...by.entries()].map(([name, e]) => ({ name, ms: +e.ms.toFixed(2), calls: e.calls })).sort((a, b) => b.ms - a.ms);
  return { total_ms: +kernels.reduce((a, k) => a + k.ms, 0).toFixed(1), kernels: kernels.slice(0, top) };
}
