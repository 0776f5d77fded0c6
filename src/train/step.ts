/**
 * One training step (nanoGPT-sized): micro-batches → task loss + Σ weight·aux → accumulated gradients →
 * controllers → global-norm clip → AdamW → balance controllers. Pure tfjs: no Node module is imported here
 * (the browser and the WebGPU path run it); data, checkpoint storage and expert-parallel workers come in
 * through TrainerEnv (env.ts), and the run around it (files, metrics, signals) is run.ts.
 *
 * One code path for every backend, with no synchronous read (WebGPU in Node has none): each MoE layer's
 * routing decisions come back with `await data()` for the host capacity plan (the forward pass awaits
 * between layers, on an async tape: ops/async_grads.ts); clipping stays on the device; then ONE read brings
 * the step's numbers back together (loss, aux losses, entropies, the gradient norm parts), from which the
 * NaN check decides whether AdamW (on the device) runs, and the controllers are updated.
 */
import * as tf from '@tensorflow/tfjs';
import type { Config } from '../config/schema.ts';
import { checkGpuErrors, trimGpuPool } from '../webgpu_device.ts';
import type { GlobalBalanceStats } from '../losses/global_batch.ts';
import { dataParallelIssues } from '../config/checks.ts';
import { MoEModel, auxLossWeights, type ModelOutput } from '../model/model.ts';
import type { ForwardContext } from '../moe/layer.ts';
import { AdamW } from '../optim/adamw.ts';
import { clipOnDevice, normFromParts } from '../optim/clip.ts';
import { scoped, variableGradsAsync } from '../ops/async_grads.ts';
import { copyInto, flatLayout, tensorFrom, writeFlat, type FlatLayout } from '../parallel/flat_buffers.ts';
import { learningRate } from '../optim/schedule.ts';
import { Rng } from '../rng.ts';
import { createControllers, createSparseAccumulator, expertKeys, expertUpdateMask, tauAt, noiseScaleAt, type Controller, type ControllerContext } from './controllers/index.ts';
import type { Batch, Checkpoint, CheckpointStore, DataParallelBridge, DataParallelPeers, DataSource, ExpertParallelBridge, RankResult, TrainState, TrainerEnv } from './env.ts';

export type { Batch, DataSource, TrainerEnv } from './env.ts';

/** Model-shaping fields a checkpoint must agree with. */
export function shapeFields(cfg: Config): Record<string, unknown> {
  const { model_type, layers, dim, heads, expert_num, top_k, expert_hidden, activation, shared_experts, fine_grained, moe_every, dense_hidden, positions } = cfg;
  return { model_type, layers, dim, heads, expert_num, top_k, expert_hidden, activation, shared_experts, fine_grained, moe_every, dense_hidden, positions, tokenizer: cfg.data.tokenizer };
}

/** The learning rate of step `step` from the config's lr, warmup_steps, steps, schedule and min_lr_ratio. */
export function learningRateAt(step: number, cfg: Config): number {
  return learningRate(step, { lr: cfg.lr, warmupSteps: cfg.warmup_steps, steps: cfg.steps, schedule: cfg.schedule, minLrRatio: cfg.min_lr_ratio });
}

/** Runs the model on one batch, each MoE layer's routing read with `await data()` (every backend). */
export function forwardBatch(model: MoEModel, batch: Batch, ctx: (layer: number) => ForwardContext): Promise<ModelOutput> {
  if (batch.kind === 'tokens') return model.forwardLMAsync(batch.inputs, batch.targets, batch.B, batch.L, ctx);
  return model.forwardMlpAsync(tf.tensor2d(batch.inputs, [batch.T, batch.D]), tf.tensor2d(batch.targets, [batch.T, batch.D]), ctx);
}

/** Tokens in one micro-batch (rows for moe_mlp). */
export function batchTokens(b: Batch): number {
  return b.kind === 'tokens' ? b.B * b.L : b.T;
}

/** Rank r's share of a batch split by sequences into `size` equal parts (moe_mlp: by rows). */
export function batchShare(b: Batch, r: number, size: number): Batch {
  if (b.kind === 'tokens') {
    const B = b.B / size, n = B * b.L;
    return { kind: 'tokens', inputs: b.inputs.slice(r * n, (r + 1) * n), targets: b.targets.slice(r * n, (r + 1) * n), B, L: b.L };
  }
  const T = b.T / size, n = T * b.D;
  return { kind: 'vectors', inputs: b.inputs.slice(r * n, (r + 1) * n), targets: b.targets.slice(r * n, (r + 1) * n), T, D: b.D };
}

/**
 * The data-parallel ranks parallel.dp_size asks for, given `cores` for `auto` (min(cores, 2), or 1 where
 * dataParallelIssues refuses it, with a note saying why) and whether the environment has threads.
 */
export function resolveDataParallel(cfg: Config, cores: number, threads: boolean): { size: number; note: string | null } {
  const want = cfg.parallel.dp_size;
  if (want !== 'auto') {
    if (want > 1 && !threads) throw new Error(`parallel.dp_size = ${want} needs worker threads, which this environment does not provide; allowed here: 1`);
    return { size: want, note: null };
  }
  const size = Math.min(2, Math.max(1, Math.floor(cores)));
  if (size === 1 || !threads) return { size: 1, note: null };
  const issues = dataParallelIssues(cfg, size);
  if (issues.length) return { size: 1, note: `parallel.dp_size auto: one thread (${issues.map((i) => `${i.path}: ${i.message.split(';')[0]}`).join('; ')})` };
  return { size, note: null };
}

/**
 * Forms every MoE layer's aux losses of a forward run with `deferAux` from balance statistics all-reduced over
 * the data-parallel ranks in one exchange: per layer [counts (E), Σ_t probs (E), tokens] summed, so every rank
 * forms the whole batch's balance losses (global_batch.ts), its gradient through its own tokens' probabilities
 * weighted by its token share. The aux losses only enter the loss at the end, so one exchange per forward suffices.
 */
export async function allReducedAux(model: MoEModel, out: ModelOutput, peers: DataParallelPeers): Promise<void> {
  const L = out.moe.length;
  const E = model.moeLayers[0]?.config.numExperts ?? 0;
  if (L === 0) return;
  const sums = tf.tidy(() => tf.stack(out.moe.map((m) => tf.mul(m.stats.meanProbs, m.stats.numTokens)))); // [L, E] Σ_t p
  const probSum = (await sums.data()) as Float32Array;
  sums.dispose();
  const W = 2 * E + 1;
  const v = new Float64Array(L * W);
  out.moe.forEach((m, l) => {
    m.stats.routed.forEach((c, e) => { v[l * W + e] = c; });
    for (let e = 0; e < E; e++) v[l * W + E + e] = probSum[l * E + e];
    v[l * W + 2 * E] = m.stats.numTokens;
  });
  const g = await peers.allReduce(v);
  out.moe.forEach((m, l) => {
    const o = l * W;
    const tokens = g[o + 2 * E];
    const stats = { counts: Float32Array.from(g.subarray(o, o + E)), meanProbs: Float32Array.from(g.subarray(o + E, o + 2 * E), (p) => p / tokens), tokens, tokenShare: m.stats.numTokens / tokens };
    m.aux = model.moeLayers[l].auxLosses(m.routing, stats);
  });
}

/**
 * Folds the workers' read-back numbers into rank 0's (vals: `accum` micro-batches of [loss, aux…, entropy…]):
 * loss and entropy are token means, so averaged over the equal shares; aux losses already carry each rank's
 * token share, so summed.
 */
export function mergeReadouts(vals: ArrayLike<number>, others: Float32Array[], accum: number, auxCount: number, layers: number): Float64Array {
  const width = 1 + auxCount + layers;
  const out = Float64Array.from({ length: accum * width }, (_, i) => vals[i]);
  const size = others.length + 1;
  for (let i = 0; i < out.length; i++) {
    for (const o of others) out[i] += o[i];
    const j = i % width;
    if (j === 0 || j > auxCount) out[i] /= size;
  }
  return out;
}

/** What one optimizer step measured (host numbers for the log). */
export interface StepResult {
  loss: number;
  aux: Record<string, number>;
  gradNorm: number;
  finite: boolean;
  loads: Int32Array[];
  routed: Int32Array[];
  dropped: number[];
  assignments: number[];
  entropy: number[];
  capacity: (number | null)[];
  /** sparse accumulation: experts held this step, per layer. */
  frozen?: number[][];
}

/**
 * Adds the read-back numbers of `accum` micro-batches ([loss, aux…, entropy…] each, from the start of vals)
 * to res: loss and entropy averaged over micro-batches, aux losses summed (each already carries its share).
 * Returns the index after them.
 */
export function addReadouts(res: StepResult, vals: ArrayLike<number>, accum: number, auxNames: string[]): number {
  const L = res.entropy.length;
  const width = 1 + auxNames.length + L;
  for (let i = 0; i < accum; i++) {
    const o = i * width;
    res.loss += vals[o] / accum;
    auxNames.forEach((name, j) => { res.aux[name] = (res.aux[name] ?? 0) + vals[o + 1 + j]; });
    for (let l = 0; l < L; l++) res.entropy[l] += vals[o + 1 + auxNames.length + l] / accum;
  }
  return accum * width;
}

export class Trainer {
  readonly cfg: Config;
  readonly env: TrainerEnv;
  readonly model: MoEModel;
  readonly optimizer: AdamW;
  readonly data: DataSource;
  /** separate streams so that data order does not depend on router noise and vice versa. */
  readonly dataRng: Rng;
  readonly noiseRng: Rng;
  readonly controllers: Controller[];
  step = 0;
  nanStreak = 0;
  skippedSteps = 0;
  /** the last step's controller metrics (capacity factors, dead experts, biases). */
  controllerMetrics: Record<string, unknown> = {};
  /** expert parallelism (parallel.ep_size > 1): the routed experts' weights, gradients and AdamW live elsewhere. */
  ep: ExpertParallelBridge | null = null;
  /** data parallelism on rank 0: the worker ranks (parallel.dp_size > 1). */
  dp: DataParallelBridge | null = null;
  /** data parallelism on any rank: the all-reduce of balance statistics. */
  peers: DataParallelPeers | null = null;
  /** data parallelism: the workers' replicas differ from these weights (after an update or a restore). */
  private replicasStale = true;

  /** A trainer on env's data, checkpoint storage and expert-parallel workers (run.ts's openTrainer: a run folder). */
  constructor(cfg: Config, env: TrainerEnv) {
    this.cfg = cfg;
    this.env = env;
    this.data = env.data;
    const initRng = new Rng(cfg.seed);
    this.model = new MoEModel(cfg, this.data.vocab, initRng);
    this.dataRng = new Rng(cfg.seed + 1000);
    this.noiseRng = new Rng(cfg.seed + 2000);
    const parallel = cfg.parallel.ep_size > 1;
    this.optimizer = new AdamW(parallel ? this.denseVariables() : this.model.variables(), { beta1: cfg.beta1, beta2: cfg.beta2, weightDecay: cfg.weight_decay });
    this.controllers = createControllers(cfg, { layers: this.model.moeLayers });
  }

  /** Routed experts' weights of every MoE layer (the part expert parallelism moves into workers). */
  private expertVariables(): Set<tf.Variable> {
    return new Set(this.model.moeLayers.flatMap((l) => [l.experts.w1, l.experts.w2, ...(l.experts.w3 ? [l.experts.w3] : [])]));
  }

  /** Trainable variables that stay on the main thread under expert parallelism. */
  private denseVariables(): tf.Variable[] {
    const experts = this.expertVariables();
    return this.model.variables().filter((v) => !experts.has(v));
  }

  /**
   * Starts expert parallelism (parallel.ep_size > 1) from the model's current expert weights, or data
   * parallelism (parallel.dp_size > 1 or auto); `log` hears why auto stayed at one thread.
   */
  async startParallel(log: (line: string) => void = () => {}): Promise<void> {
    const p = this.cfg.parallel;
    if (!this.dp && p.dp_size !== 1) {
      const { size, note } = resolveDataParallel(this.cfg, this.env.cores ?? 1, !!this.env.startDataParallel);
      if (note) log(note);
      if (size > 1) {
        this.dp = await this.env.startDataParallel!(this.cfg, size, this.data.vocab, { weights: this.weightLayout().total, grads: this.gradLayout().total });
        this.peers = this.dp;
        this.replicasStale = true;
      }
    }
    if (p.ep_size <= 1 || this.ep) return;
    if (!this.env.startExpertParallel) throw new Error(`parallel.ep_size = ${p.ep_size} needs worker threads, which this environment does not provide; use ep_size 1`);
    this.ep = await this.env.startExpertParallel(this.cfg, this.model.moeLayers);
    this.model.moeLayers.forEach((l, i) => { l.executor = this.ep!.executor(i); });
  }

  /** The forward context of step `step` for every layer (τ and noise annealing live here). */
  private layerContext(step: number, globals: GlobalBalanceStats[] | null, deferAux = false): (layer: number) => ForwardContext {
    const tau = tauAt(step, this.cfg);
    const noiseScale = noiseScaleAt(step, this.cfg);
    return (l) => ({ training: true, rng: this.noiseRng, tau, noiseScale, globalStats: globals?.[l], deferAux });
  }

  /** Phase 1 of global-batch balancing: routing statistics of every micro-batch, no gradients (one read for the probabilities). */
  private async globalStats(batches: Batch[]): Promise<GlobalBalanceStats[]> {
    const E = this.model.moeLayers[0].config.numExperts;
    const counts = this.model.moeLayers.map(() => new Float32Array(E));
    let tokens = 0;
    const saved = this.noiseRng.getState();
    const ctx = this.layerContext(this.step, null);
    const sums: tf.Tensor[] = []; // per micro-batch: [L, E] Σ_t p (mean probabilities · tokens)
    for (const b of batches) {
      sums.push(await scoped(async () => {
        const out = await forwardBatch(this.model, b, ctx);
        out.moe.forEach((m, l) => m.stats.routed.forEach((c, e) => { counts[l][e] += c; }));
        return tf.stack(out.moe.map((m) => tf.mul(m.stats.meanProbs, m.stats.numTokens)));
      }));
      tokens += batchTokens(b);
    }
    const total = sums.reduce((x, y) => tf.add(x, y)); // a fold: addN binds every input at once (WebGPU allows 8)
    let probSum: ArrayLike<number> = (await total.data()) as Float32Array;
    tf.dispose([total, ...sums]);
    this.noiseRng.setState(saved); // phase 2 replays the same router noise
    if (this.peers) {
      // data parallelism: the statistics of every rank's micro-batches, [counts (L·E), Σ p (L·E), tokens]
      const LE = counts.length * E;
      const v = new Float64Array(2 * LE + 1);
      counts.forEach((c, l) => c.forEach((x, e) => { v[l * E + e] = x; }));
      for (let i = 0; i < LE; i++) v[LE + i] = probSum[i];
      v[2 * LE] = tokens;
      const g = await this.peers.allReduce(v);
      counts.forEach((c, l) => c.forEach((_, e) => { c[e] = g[l * E + e]; }));
      probSum = g.slice(LE, 2 * LE);
      tokens = g[2 * LE];
    }
    const share = batchTokens(batches[0]) / tokens;
    return counts.map((c, l) => ({ counts: c, meanProbs: Float32Array.from({ length: E }, (_, e) => probSum[l * E + e] / tokens), tokens, tokenShare: share }));
  }

  /**
   * Gradients of one optimizer step summed over its micro-batches: task/accum + Σ weight·aux, with
   * global-batch balance statistics when there are several micro-batches. `readouts` (one per micro-batch,
   * [loss, aux…, entropy…] on the device) and `auxNames` are for the step's one read. Caller disposes all tensors.
   */
  async accumulateGradients(batches: Batch[], poison = false): Promise<{ grads: Record<string, tf.Tensor>; res: StepResult; masks: Record<string, tf.Tensor>; readouts: tf.Tensor1D[]; auxNames: string[] }> {
    const cfg = this.cfg;
    const accum = batches.length;
    const weights: Record<string, number> = auxLossWeights(cfg);
    const globals = accum > 1 ? await this.globalStats(batches) : null;
    // data parallelism with one micro-batch: the aux losses are formed after the forward from all-reduced statistics
    const peers = globals ? null : this.peers;
    const ctx = this.layerContext(this.step, globals, peers !== null);
    const shared = globals !== null || peers !== null; // aux losses come back already weighted by this share
    const ranks = this.peers?.size ?? 1;
    const L = this.model.moeLayers.length;
    const E = this.model.moeLayers[0]?.config.numExperts ?? 0;
    const res: StepResult = {
      loss: 0, aux: {}, gradNorm: 0, finite: true,
      loads: Array.from({ length: L }, () => new Int32Array(E)), routed: Array.from({ length: L }, () => new Int32Array(E)),
      dropped: new Array(L).fill(0), assignments: new Array(L).fill(0), entropy: new Array(L).fill(0), capacity: new Array(L).fill(null),
    };
    const vars = this.ep ? this.denseVariables() : this.model.variables();
    const sparse = accum > 1 ? createSparseAccumulator(cfg, this.model.moeLayers) : null;
    sparse?.beginStep();
    let acc: Record<string, tf.Tensor> | null = null;
    const readouts: tf.Tensor1D[] = [];
    let auxNames: string[] = [];
    for (const batch of batches) {
      const microLoads: Int32Array[] = [];
      const { value, grads } = await variableGradsAsync(async () => {
        const out = await forwardBatch(this.model, batch, ctx);
        if (peers) await allReducedAux(this.model, out, peers);
        let total = tf.div(out.loss, accum * ranks) as tf.Scalar; // a token mean: this micro-batch's (and rank's) share
        if (poison) total = tf.mul(total, NaN) as tf.Scalar;
        // the numbers the log needs, read with the step's one read: [loss, (aux per layer and name)…, entropy per layer…]
        const read: tf.Scalar[] = [out.loss];
        auxNames = [];
        out.moe.forEach((m, l) => {
          for (const [name, v] of Object.entries(m.aux)) {
            const w = weights[name] ?? 0;
            // with global stats an aux loss already carries this micro-batch's share; else average over micro-batches
            const scaled = shared ? v! : (tf.div(v!, accum) as tf.Scalar);
            read.push(scaled);
            auxNames.push(name);
            if (w > 0) total = tf.add(total, tf.mul(scaled, w)) as tf.Scalar;
          }
          microLoads.push(m.stats.load);
          m.stats.load.forEach((c, e) => { res.loads[l][e] += c; });
          m.stats.routed.forEach((c, e) => { res.routed[l][e] += c; });
          res.dropped[l] += m.stats.dropped;
          res.assignments[l] += m.stats.assignments;
          res.capacity[l] = m.stats.capacity;
        });
        read.push(...out.moe.map((m) => m.stats.entropy));
        readouts.push(tf.keep(tf.stack(read) as tf.Tensor1D)); // kept past the forward's scope
        return total;
      }, vars);
      value.dispose(); // the loss is in the readout; only the gradients live on
      if (sparse) {
        // seed 004: each expert's gradient is averaged over the micro-batches where it got tokens
        const full = Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, tf.mul(g, accum)])); // undo the 1/accum
        sparse.addMicroBatch(full, microLoads);
        tf.dispose([...Object.values(grads), ...Object.values(full)]);
        continue;
      }
      if (acc === null) acc = grads;
      else {
        const prev: Record<string, tf.Tensor> = acc;
        acc = Object.fromEntries(Object.entries(prev).map(([k, g]) => [k, tf.add(g, grads[k])]));
        tf.dispose([...Object.values(prev), ...Object.values(grads)]);
      }
    }
    if (sparse) {
      const out = sparse.finish(accum);
      const masks: Record<string, tf.Tensor> = {};
      out.frozenExperts.forEach((frozen, l) => {
        if (this.ep) {
          // the workers summed Σ_m g_m/accum over every micro-batch (an expert without tokens in m adds exactly 0):
          // ĝ_e = (accum/a_e)·that sum, 0 for frozen experts, which step() then holds
          const scales = Array.from(out.activeCounts[l], (a, e) => (frozen.includes(e) ? 0 : accum / a));
          if (scales.some((x) => x !== 1)) this.ep.scaleExpertGrads(l, scales);
          return;
        }
        if (frozen.length === 0) return;
        const layer = this.model.moeLayers[l];
        for (const key of expertKeys(layer)) masks[key] = expertUpdateMask(frozen, layer.config.numExperts);
      });
      res.frozen = out.frozenExperts;
      return { grads: out.grads, res, masks, readouts, auxNames };
    }
    return { grads: acc!, res, masks: {}, readouts, auxNames };
  }

  /** One optimizer step: accumulate over micro-batches, clip, update (masked out on the device if non-finite), one read. */
  async trainStep(poison = false): Promise<StepResult> {
    const cfg = this.cfg;
    let batches = Array.from({ length: cfg.grad_accum_steps }, () => this.data.next(this.dataRng));
    const dp = this.dp;
    if (dp) {
      // data parallelism: rank r trains on the r-th share of every micro-batch, its replica first made equal to ours
      if (this.replicasStale) await this.sendWeights(dp);
      dp.start(this.step, Array.from({ length: dp.size - 1 }, (_, r) => batches.map((b) => batchShare(b, r + 1, dp.size))), poison);
      batches = batches.map((b) => batchShare(b, 0, dp.size));
    }
    const { grads: mine, res, masks, readouts, auxNames } = await this.accumulateGradients(batches, poison);
    let raw = mine;
    let others: RankResult[] = [];
    if (dp) {
      others = await dp.results();
      raw = this.addRankGradients(mine, dp);
      for (const o of others) {
        o.loads.forEach((x, l) => x.forEach((c, e) => { res.loads[l][e] += c; }));
        o.routed.forEach((x, l) => x.forEach((c, e) => { res.routed[l][e] += c; }));
        o.dropped.forEach((d, l) => { res.dropped[l] += d; });
        o.assignments.forEach((a, l) => { res.assignments[l] += a; });
      }
      this.replicasStale = true; // the update below (and the controllers) change the weights
    }
    const ctx: ControllerContext = {
      step: this.step, layers: this.model.moeLayers, loads: res.loads, routed: res.routed, capacities: res.capacity, taskLoss: NaN, // taskLoss: after the read
      ...(this.ep ? { experts: this.ep } : {}),
    };
    let acc = raw;
    for (const c of this.controllers) {
      if (!c.transformGrads) continue;
      const changed = c.transformGrads(acc, ctx);
      for (const [k, g] of Object.entries(changed)) { if (acc[k] !== g) acc[k].dispose(); acc = { ...acc, [k]: g }; }
    }
    const clip = clipOnDevice(acc, cfg.grad_clip, this.ep ? this.ep.globalGradNormSq() : 0);
    tf.dispose(Object.values(acc));
    // the step's one read: every micro-batch's [loss, aux…, entropy…], then [max |g|, Σ (g/max)², scale]
    const all = tf.concat([...readouts, clip.parts]);
    const read = await all.data();
    tf.dispose([all, ...readouts, clip.parts, clip.finite]);
    checkGpuErrors();
    trimGpuPool();
    const merged = dp ? mergeReadouts(read, others.map((r) => r.readouts), readouts.length, auxNames.length, res.entropy.length) : null;
    const vals: ArrayLike<number> = merged ? [...merged, ...read.slice(merged.length)] : read;
    const o = addReadouts(res, vals, readouts.length, auxNames);
    const norm = normFromParts(vals[o], vals[o + 1]);
    res.gradNorm = norm.norm;
    res.finite = norm.finite && Number.isFinite(res.loss);
    if (res.finite) {
      const lr = learningRateAt(this.step, cfg);
      this.optimizer.step(clip.grads, lr, masks); // on the device, queued behind the read's work
      if (this.ep) {
        const scale = vals[o + 2];
        if (scale !== 1) this.ep.scaleGrads(scale); // the workers hold the expert gradients
        this.ep.step(lr, res.frozen);
      }
    } else this.ep?.scaleGrads(0); // drop the workers' gradients too: the step is skipped everywhere
    tf.dispose([...Object.values(clip.grads), ...Object.values(masks)]);
    ctx.taskLoss = res.loss;
    if (res.finite) {
      this.nanStreak = 0;
      for (const c of this.controllers) c.afterStep?.(ctx);
      this.controllerMetrics = Object.assign({}, ...this.controllers.map((c) => c.metrics?.() ?? {}));
    } else {
      this.nanStreak++;
      this.skippedSteps++;
    }
    this.step++;
    return res;
  }

  /** Where each parameter and buffer lies in the flat weights shared with data-parallel workers. */
  weightLayout(): FlatLayout {
    return flatLayout({ ...this.model.params, ...this.model.buffers() });
  }

  /** Where each parameter's gradient lies in a data-parallel worker's flat gradients. */
  gradLayout(): FlatLayout {
    return flatLayout(this.model.params);
  }

  /** rank 0's gradients (by variable name) plus each worker's (its flat buffer), added in rank order. */
  private addRankGradients(mine: Record<string, tf.Tensor>, dp: DataParallelBridge): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {};
    const layout = this.gradLayout();
    for (const e of layout.entries) {
      const v = this.model.params[e.name];
      const g = mine[v.name];
      if (!g) continue;
      out[v.name] = tf.tidy(() => {
        let acc: tf.Tensor = g;
        for (let r = 1; r < dp.size; r++) acc = tf.add(acc, tensorFrom(dp.grads(r).subarray(e.offset, e.offset + e.size), e.shape));
        return acc;
      });
    }
    tf.dispose(Object.values(mine));
    return out;
  }

  /** Writes every parameter and buffer to the workers' shared weights (their replicas then equal this model). */
  private async sendWeights(dp: DataParallelBridge): Promise<void> {
    await writeFlat({ ...this.model.params, ...this.model.buffers() }, this.weightLayout(), dp.weights);
    dp.weightsWritten();
    this.replicasStale = false;
  }

  /**
   * A worker rank's share of one step (data parallelism): its gradients summed over its micro-batches, the
   * balance statistics all-reduced with the other ranks on the way, read back for rank 0.
   */
  async rankStep(step: number, batches: Batch[], poison: boolean, gradsOut: Float32Array): Promise<RankResult> {
    this.step = step;
    const { grads, res, masks, readouts } = await this.accumulateGradients(batches, poison);
    for (const e of this.gradLayout().entries) {
      const g = grads[this.model.params[e.name].name];
      if (g) await copyInto(g, gradsOut, e.offset);
      else gradsOut.fill(0, e.offset, e.offset + e.size);
    }
    const stacked = tf.concat(readouts);
    const vals = Float32Array.from(await stacked.data());
    tf.dispose([stacked, ...readouts, ...Object.values(grads), ...Object.values(masks)]);
    return { readouts: vals, loads: res.loads, routed: res.routed, dropped: res.dropped, assignments: res.assignments };
  }

  /** Sets every parameter and buffer from flat weights in weightLayout() order (a worker rank's replica from rank 0's). */
  setWeights(flat: Float32Array): void {
    const named = { ...this.model.params, ...this.model.buffers() };
    const layout = this.weightLayout();
    if (layout.total !== flat.length) throw new Error(`data parallelism: the shared weights hold ${flat.length} numbers, this replica has ${layout.total}`);
    for (const e of layout.entries) {
      const t = tensorFrom(flat.subarray(e.offset, e.offset + e.size), e.shape);
      named[e.name].assign(t);
      t.dispose();
    }
  }

  /** Training state for a checkpoint (everything but tensors). */
  state(): TrainState {
    return {
      step: this.step, rng: { data: this.dataRng.getState(), noise: this.noiseRng.getState() }, controllers: this.controllers.map((c) => c.state()),
      nanStreak: this.nanStreak, skippedSteps: this.skippedSteps, shape: shapeFields(this.cfg),
    };
  }

  /** Writes a checkpoint (under expert parallelism, expert weights and moments come back from the workers first). */
  async save(): Promise<string> {
    const byVar = await this.optimizer.getState();
    const m: Record<string, Float32Array> = { ...byVar.m };
    const v: Record<string, Float32Array> = { ...byVar.v };
    if (this.ep) {
      const opt = await this.ep.getOptimizerState();
      for (const [l, layer] of this.model.moeLayers.entries()) {
        const w = await this.ep.getWeights(l);
        for (const key of ['w1', 'w2', 'w3'] as const) {
          const variable = layer.experts[key];
          if (!variable) continue;
          variable.assign(tf.tensor(w[key]!, variable.shape));
          m[variable.name] = opt.layers[l].m[key]!;
          v[variable.name] = opt.layers[l].v[key]!;
        }
      }
    }
    const shapes: Record<string, number[]> = {};
    const params = { ...this.model.params, ...this.model.buffers() };
    const mOut: Record<string, Float32Array> = {};
    const vOut: Record<string, Float32Array> = {};
    for (const [name, variable] of Object.entries(this.model.params)) {
      mOut[name] = m[variable.name];
      vOut[name] = v[variable.name];
      shapes[name] = variable.shape;
    }
    return this.store().save(params, { step: byVar.step, m: mOut, v: vOut }, shapes, this.state(), this.cfg.keep_checkpoints);
  }

  /** Restores the newest checkpoint into the main thread and, under expert parallelism, into the workers. */
  async restoreAll(): Promise<number> {
    const ck = this.newestCheckpoint();
    const step = this.applyCheckpoint(ck);
    if (this.ep) {
      const opt = ck.optimizer;
      const pick = (src: Record<string, Float32Array>, l: number) => {
        const pre = this.model.moePrefixes[l];
        return { w1: src[`${pre}experts.w1`], w2: src[`${pre}experts.w2`], w3: src[`${pre}experts.w3`] ?? null };
      };
      const layers = this.model.moeLayers.map((_, l) => ({ m: pick(opt.m, l), v: pick(opt.v, l) }));
      for (let l = 0; l < this.model.moeLayers.length; l++) await this.ep.setWeights(pick(ck.params, l), l);
      await this.ep.setOptimizerState({ step: opt.step, layers } as Parameters<ExpertParallelBridge['setOptimizerState']>[0]);
    }
    return step;
  }

  /** The checkpoint storage this trainer was given. */
  private store(): CheckpointStore {
    if (!this.env.checkpoints) throw new Error('this trainer has no checkpoint storage (TrainerEnv.checkpoints)');
    return this.env.checkpoints;
  }

  /** The newest checkpoint, checked against this model. */
  private newestCheckpoint(): Checkpoint {
    const shapesOf = (vs: Record<string, tf.Variable>) => Object.fromEntries(Object.entries(vs).map(([k, v]) => [k, v.shape]));
    return this.store().loadNewest(shapesOf({ ...this.model.params, ...this.model.buffers() }), shapesOf(this.model.params), shapeFields(this.cfg));
  }

  /** Restores the newest checkpoint into the main thread; returns its step. */
  restore(): number {
    return this.applyCheckpoint(this.newestCheckpoint());
  }

  /** Loads a checkpoint into the main thread's model, optimizer, RNG streams and controllers. */
  private applyCheckpoint(ck: Checkpoint): number {
    const params = { ...this.model.params, ...this.model.buffers() };
    for (const [name, variable] of Object.entries(params)) variable.assign(tf.tensor(ck.params[name], variable.shape));
    const m: Record<string, Float32Array> = {};
    const v: Record<string, Float32Array> = {};
    const optimized = new Set(this.optimizer.names());
    for (const [name, variable] of Object.entries(this.model.params)) {
      if (!optimized.has(variable.name)) continue; // expert moments live in the workers under expert parallelism
      m[variable.name] = ck.optimizer.m[name];
      v[variable.name] = ck.optimizer.v[name];
    }
    this.optimizer.setState({ step: ck.optimizer.step, m, v });
    this.dataRng.setState(ck.state.rng.data as ReturnType<Rng['getState']>);
    this.noiseRng.setState(ck.state.rng.noise as ReturnType<Rng['getState']>);
    if (ck.state.controllers.length !== this.controllers.length) {
      throw new Error(`${ck.dir}: checkpoint has ${ck.state.controllers.length} balance controllers, the config has ${this.controllers.length}`);
    }
    this.controllers.forEach((c, i) => c.restore(ck.state.controllers[i]));
    this.step = ck.state.step;
    this.nanStreak = ck.state.nanStreak;
    this.skippedSteps = ck.state.skippedSteps;
    this.replicasStale = true;
    return this.step;
  }

  dispose(): void {
    void this.ep?.dispose();
    this.ep = null;
    void this.dp?.dispose();
    this.dp = null;
    this.peers = null;
    this.model.dispose();
    this.optimizer.dispose();
  }
}
