/**
 * The training loop (nanoGPT-sized): micro-batches → task loss + Σ weight·aux → accumulated gradients →
 * controllers → global-norm clip → AdamW → balance controllers; metrics.jsonl, validation, checkpoints.
 * Files, signals and the terminal stay in the few functions at the bottom; the step itself is pure tfjs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { configToYaml, type Config } from '../config/load.ts';
import { initBackend } from '../backend.ts';
import { writeJsonAtomic } from '../io/atomic.ts';
import type { GlobalBalanceStats } from '../losses/global_batch.ts';
import { loadBar } from '../metrics/terminal.ts';
import { MetricsWriter, truncateMetricsAfter, type MetricRecord } from '../metrics/jsonl.ts';
import { summarizeLayers } from '../metrics/balance.ts';
import { MoEModel, type ModelOutput } from '../model/model.ts';
import type { ForwardContext } from '../moe/layer.ts';
import { Rng } from '../rng.ts';
import { AdamW } from '../optim/adamw.ts';
import { createControllers, createSparseAccumulator, expertKeys, expertUpdateMask, tauAt, noiseScaleAt, type Controller, type ControllerContext } from './controllers/index.ts';
import { listCheckpoints, loadCheckpoint, saveCheckpoint, type Checkpoint, type TrainState } from './checkpoint.ts';
import { clipByGlobalNorm } from '../optim/clip.ts';
import { createDataSource, type Batch, type DataSource } from './data_source.ts';
import { ExpertParallel } from '../parallel/expert_parallel.ts';
import { placementFromPhy2Log } from '../parallel/placement.ts';
import { readPlacement } from '../plan/placement_io.ts';
import { learningRate } from '../optim/schedule.ts';

export interface TrainOptions {
  /** the run folder (created; must be empty or hold this run when resuming). */
  outDir: string;
  /** continue from the newest checkpoint in outDir. */
  resume?: boolean;
  /** called with each metrics record (progress display). */
  onRecord?: (r: MetricRecord, summary: string) => void;
  /** plain log lines (checkpoints, evaluations, skipped steps). */
  log?: (line: string) => void;
  /** test hook: make the task loss of these steps non-finite. */
  poisonStep?: (step: number) => boolean;
  /** set to true (e.g. by SIGINT) to save a checkpoint and stop after the current step. */
  stop?: { requested: boolean };
}

export interface TrainSummary {
  out_dir: string;
  steps: number;
  first_loss: number;
  final_loss: number;
  val_loss: number | null;
  val_ppl: number | null;
  tokens_per_s: number;
  step_time_ms: number;
  skipped_steps: number;
  stopped_early: boolean;
  params: number;
  per_layer_load: number[][];
  load_cv: number;
  max_load_share: number;
  maxvio: number;
  dropped_fraction: number;
}

/** Model-shaping fields a checkpoint must agree with. */
export function shapeFields(cfg: Config): Record<string, unknown> {
  const { model_type, layers, dim, heads, expert_num, top_k, expert_hidden, activation, shared_experts, fine_grained, moe_every, dense_hidden, positions } = cfg;
  return { model_type, layers, dim, heads, expert_num, top_k, expert_hidden, activation, shared_experts, fine_grained, moe_every, dense_hidden, positions, tokenizer: cfg.data.tokenizer };
}

/** Runs the model on one batch. */
export function forwardBatch(model: MoEModel, batch: Batch, ctx: (layer: number) => ForwardContext): ModelOutput {
  if (batch.kind === 'tokens') return model.forwardLM(batch.inputs, batch.targets, batch.B, batch.L, ctx);
  return model.forwardMlp(tf.tensor2d(batch.inputs, [batch.T, batch.D]), tf.tensor2d(batch.targets, [batch.T, batch.D]), ctx);
}

/** Aux loss weights by name: the configured balance loss and the z-loss. */
export function auxWeights(cfg: Config): Record<string, number> {
  const w: Record<string, number> = {};
  if (cfg.use_load_balance && cfg.aux_loss.type !== 'none') w[cfg.aux_loss.type] = cfg.aux_loss.weight;
  if (cfg.z_loss_weight > 0) w.z = cfg.z_loss_weight;
  return w;
}

/** Mean validation task loss over the fixed validation batches (no noise, no dropping beyond the config's). */
export function evaluate(model: MoEModel, data: DataSource): { loss: number; perLayerLoad: number[][] } {
  const batches = data.validation();
  let sum = 0;
  const load = model.moeLayers.map(() => new Array<number>(model.moeLayers[0]?.config.numExperts ?? 0).fill(0));
  for (const b of batches) {
    sum += tf.tidy(() => {
      const out = forwardBatch(model, b, () => ({ training: false }));
      out.moe.forEach((m, l) => m.stats.load.forEach((c, e) => { load[l][e] += c; }));
      return out.loss.dataSync()[0]; // sync: evaluation only
    });
  }
  return { loss: sum / batches.length, perLayerLoad: load };
}

interface StepResult {
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

export class Trainer {
  readonly cfg: Config;
  readonly outDir: string;
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
  /** expert parallelism (parallel.ep_size > 1): the routed experts' weights, gradients and AdamW live in workers. */
  ep: ExpertParallel | null = null;

  constructor(cfg: Config, outDir: string) {
    this.cfg = cfg;
    this.outDir = outDir;
    this.data = createDataSource(cfg, outDir);
    const initRng = new Rng(cfg.seed);
    this.model = new MoEModel(cfg, this.data.vocab, initRng);
    this.dataRng = new Rng(cfg.seed + 1000);
    this.noiseRng = new Rng(cfg.seed + 2000);
    const parallel = cfg.parallel.ep_size > 1;
    if (parallel) {
      const b = cfg.balance;
      const bad = [b.grad_reweight.enabled && 'balance.grad_reweight', b.sparse_accumulation.enabled && 'balance.sparse_accumulation',
        b.dead_expert.revive === 'copy_hot' && 'balance.dead_expert.revive = copy_hot', cfg.recompute && 'recompute'].filter(Boolean);
      if (bad.length) throw new Error(`parallel.ep_size = ${cfg.parallel.ep_size}: ${bad.join(', ')} change expert weights or gradients on the main thread and do not work with expert parallelism yet; use ep_size 1`);
    }
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

  /** Starts the expert-parallel workers (parallel.ep_size > 1) from the model's current expert weights. */
  async startParallel(): Promise<void> {
    const p = this.cfg.parallel;
    if (p.ep_size <= 1 || this.ep) return;
    const E = this.model.moeLayers[0].config.numExperts;
    const placement = p.placement ? placementFromPhy2Log((await readPlacement(p.placement))[0], E, p.ep_size) : undefined;
    this.ep = new ExpertParallel({
      epSize: p.ep_size, nodes: p.nodes, mode: p.mode, chunks: p.chunks, placement,
      layerWeights: this.model.moeLayers.map((l) => l.experts), activation: this.model.moeLayers[0].config.activation,
      adamw: { beta1: this.cfg.beta1, beta2: this.cfg.beta2, eps: 1e-8, weightDecay: this.cfg.weight_decay },
      backend: this.cfg.backend === 'cpu' ? 'cpu' : 'wasm',
    });
    await this.ep.ready();
    this.model.moeLayers.forEach((l, i) => { l.executor = this.ep!.executor(i); });
  }

  /** The forward context of step `step` for every layer (τ and noise annealing live here). */
  private layerContext(step: number, globals: GlobalBalanceStats[] | null): (layer: number) => ForwardContext {
    const tau = tauAt(step, this.cfg);
    const noiseScale = noiseScaleAt(step, this.cfg);
    return (l) => ({ training: true, rng: this.noiseRng, tau, noiseScale, globalStats: globals?.[l] });
  }

  /** Phase 1 of global-batch balancing: routing statistics of every micro-batch, no gradients. */
  private globalStats(batches: Batch[]): GlobalBalanceStats[] {
    const E = this.model.moeLayers[0].config.numExperts;
    const counts = this.model.moeLayers.map(() => new Float32Array(E));
    const probSum = this.model.moeLayers.map(() => new Float32Array(E));
    let tokens = 0;
    const saved = this.noiseRng.getState();
    const ctx = this.layerContext(this.step, null);
    for (const b of batches) {
      tf.tidy(() => {
        const out = forwardBatch(this.model, b, ctx);
        out.moe.forEach((m, l) => {
          m.stats.routed.forEach((c, e) => { counts[l][e] += c; });
          const P = m.stats.meanProbs.dataSync(); // sync: once per micro-batch and layer, [E] floats
          P.forEach((p, e) => { probSum[l][e] += p * m.stats.numTokens; });
        });
      });
      tokens += this.data.tokensPerBatch;
    }
    this.noiseRng.setState(saved); // phase 2 replays the same router noise
    const share = this.data.tokensPerBatch / tokens;
    return counts.map((c, l) => ({ counts: c, meanProbs: probSum[l].map((s) => s / tokens), tokens, tokenShare: share }));
  }

  /**
   * Gradients of one optimizer step summed over its micro-batches: task/accum + Σ weight·aux, with
   * global-batch balance statistics when there are several micro-batches. Caller disposes the grads.
   */
  accumulateGradients(batches: Batch[], poison = false): { grads: Record<string, tf.Tensor>; res: StepResult; masks: Record<string, tf.Tensor> } {
    const cfg = this.cfg;
    const accum = batches.length;
    const weights = auxWeights(cfg);
    const globals = accum > 1 ? this.globalStats(batches) : null;
    const ctx = this.layerContext(this.step, globals);
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
    for (const batch of batches) {
      const microLoads: Int32Array[] = [];
      const { value, grads } = tf.variableGrads(() => {
        const out = forwardBatch(this.model, batch, ctx);
        let total = tf.div(out.loss, accum) as tf.Scalar;
        if (poison) total = tf.mul(total, NaN) as tf.Scalar;
        // the numbers the log needs, read back together: [loss, (aux per layer and name)…, entropy per layer…]
        const read: tf.Scalar[] = [out.loss];
        const auxNames: string[] = [];
        out.moe.forEach((m, l) => {
          for (const [name, v] of Object.entries(m.aux)) {
            const w = weights[name] ?? 0;
            // with global stats an aux loss already carries this micro-batch's share; else average over micro-batches
            const scaled = globals ? v! : (tf.div(v!, accum) as tf.Scalar);
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
        const vals = tf.stack(read).dataSync(); // sync: one per micro-batch (the NaN check and the log need it)
        res.loss += vals[0] / accum;
        auxNames.forEach((name, i) => { res.aux[name] = (res.aux[name] ?? 0) + vals[1 + i]; });
        out.moe.forEach((_, l) => { res.entropy[l] += vals[1 + auxNames.length + l] / accum; });
        return total;
      }, vars);
      value.dispose(); // the loss value was read above; only the gradients live on
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
        if (frozen.length === 0) return;
        const layer = this.model.moeLayers[l];
        for (const key of expertKeys(layer)) masks[key] = expertUpdateMask(frozen, layer.config.numExperts);
      });
      res.frozen = out.frozenExperts;
      return { grads: out.grads, res, masks };
    }
    return { grads: acc!, res, masks: {} };
  }

  /** One optimizer step: accumulate over micro-batches, clip, update (or skip if non-finite). */
  trainStep(poison = false): StepResult {
    const cfg = this.cfg;
    const batches = Array.from({ length: cfg.grad_accum_steps }, () => this.data.next(this.dataRng));
    const { grads: raw, res, masks } = this.accumulateGradients(batches, poison);
    const ctx: ControllerContext = {
      step: this.step, layers: this.model.moeLayers, loads: res.loads, routed: res.routed, capacities: res.capacity, taskLoss: res.loss,
    };
    let acc = raw;
    for (const c of this.controllers) {
      if (!c.transformGrads) continue;
      const changed = c.transformGrads(acc, ctx);
      for (const [k, g] of Object.entries(changed)) { if (acc[k] !== g) acc[k].dispose(); acc = { ...acc, [k]: g }; }
    }
    const clipped = this.ep ? this.clipWithExperts(acc) : clipByGlobalNorm(acc, cfg.grad_clip);
    tf.dispose(Object.values(acc));
    res.gradNorm = clipped.norm;
    res.finite = clipped.finite && Number.isFinite(res.loss);
    if (res.finite) {
      const lr = learningRate(this.step, { lr: cfg.lr, warmupSteps: cfg.warmup_steps, steps: cfg.steps, schedule: cfg.schedule, minLrRatio: cfg.min_lr_ratio });
      this.optimizer.step(clipped.grads, lr, masks);
      this.ep?.step(lr);
      this.nanStreak = 0;
      for (const c of this.controllers) c.afterStep?.(ctx);
      this.controllerMetrics = Object.assign({}, ...this.controllers.map((c) => c.metrics?.() ?? {}));
    } else {
      this.ep?.scaleGrads(0); // drop the workers' gradients too: the step is skipped everywhere
      this.nanStreak++;
      this.skippedSteps++;
    }
    tf.dispose([...Object.values(clipped.grads), ...Object.values(masks)]);
    this.step++;
    return res;
  }

  /** Global-norm clipping over main-thread gradients and the workers' expert gradients together. */
  private clipWithExperts(grads: Record<string, tf.Tensor>): { grads: Record<string, tf.Tensor>; norm: number; finite: boolean } {
    const local = clipByGlobalNorm(grads, null); // measures only
    const norm = Math.sqrt(local.norm ** 2 + this.ep!.globalGradNormSq());
    const finite = local.finite && Number.isFinite(norm);
    const max = this.cfg.grad_clip;
    const scale = finite && max !== null ? Math.min(1, max / (norm + 1e-6)) : 1;
    if (scale === 1) return { grads: local.grads, norm, finite };
    this.ep!.scaleGrads(scale);
    const scaled = Object.fromEntries(Object.entries(local.grads).map(([k, g]) => [k, tf.mul(g, scale)]));
    tf.dispose(Object.values(local.grads));
    return { grads: scaled, norm, finite };
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
    const byVar = this.optimizer.getState();
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
    return saveCheckpoint(this.outDir, params, { step: byVar.step, m: mOut, v: vOut }, shapes, this.state(), this.cfg.keep_checkpoints);
  }

  /** Restores the newest checkpoint into the main thread and, under expert parallelism, into the workers. */
  async restoreAll(): Promise<number> {
    const ck = this.newestCheckpoint();
    const step = this.applyCheckpoint(ck);
    if (this.ep) {
      const opt = ck.optimizer;
      const pick = (src: Record<string, Float32Array>, l: number) => {
        const pre = this.moePrefix(l);
        return { w1: src[`${pre}experts.w1`], w2: src[`${pre}experts.w2`], w3: src[`${pre}experts.w3`] ?? null };
      };
      const layers = this.model.moeLayers.map((_, l) => ({ m: pick(opt.m, l), v: pick(opt.v, l) }));
      for (let l = 0; l < this.model.moeLayers.length; l++) await this.ep.setWeights(pick(ck.params, l), l);
      await this.ep.setOptimizerState({ step: opt.step, layers } as Parameters<ExpertParallel['setOptimizerState']>[0]);
    }
    return step;
  }

  /** Checkpoint-name prefix of MoE layer l's parameters (e.g. "blocks.2.moe."). */
  private moePrefix(l: number): string {
    const gate = this.model.moeLayers[l].gate;
    const name = Object.entries(this.model.params).find(([, v]) => v === gate)![0];
    return name.slice(0, -'gate'.length);
  }

  /** The newest checkpoint of the run folder, checked against this model. */
  private newestCheckpoint(): Checkpoint {
    const all = listCheckpoints(this.outDir);
    if (all.length === 0) throw new Error(`${this.outDir}: no checkpoint to resume from`);
    const shapesOf = (vs: Record<string, tf.Variable>) => Object.fromEntries(Object.entries(vs).map(([k, v]) => [k, v.shape]));
    return loadCheckpoint(all[all.length - 1], shapesOf({ ...this.model.params, ...this.model.buffers() }), shapesOf(this.model.params), shapeFields(this.cfg));
  }

  /** Restores the newest checkpoint of the run folder into the main thread; returns its step. */
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
    return this.step;
  }

  dispose(): void {
    void this.ep?.dispose();
    this.ep = null;
    this.model.dispose();
    this.optimizer.dispose();
  }
}

/** Mean of per-layer numbers (0 for a model without MoE layers). */
const meanOf = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

/** The metrics.jsonl record of one step. */
function record(t: Trainer, r: StepResult, lr: number, tokensPerS: number): MetricRecord {
  const layers = summarizeLayers(r.loads.map((l) => Array.from(l)));
  return {
    step: t.step, loss: r.loss, aux: r.aux, lr, grad_norm: r.gradNorm, tokens_per_s: tokensPerS,
    expert_load: r.loads.map((l) => Array.from(l)), dropped: r.dropped,
    dropped_fraction: meanOf(r.dropped.map((d, l) => d / Math.max(1, r.assignments[l]))),
    load_cv: layers.mean.cv, max_load_share: layers.mean.maxLoadShare, maxvio: layers.mean.maxVio,
    router_entropy: meanOf(r.entropy), capacity_factor: t.model.moeLayers.map((l) => l.capacityFactor),
    skipped_steps: t.skippedSteps,
    ...(r.frozen ? { sparse_frozen: r.frozen } : {}),
    ...t.controllerMetrics,
  } as MetricRecord;
}

/** Trains cfg into opts.outDir (fresh or resumed) and returns the summary also written to summary.json. */
export async function train(cfg: Config, opts: TrainOptions): Promise<TrainSummary> {
  await initBackend(cfg.backend);
  const log = opts.log ?? (() => {});
  fs.mkdirSync(opts.outDir, { recursive: true });
  if (!opts.resume && listCheckpoints(opts.outDir).length > 0) {
    throw new Error(`${opts.outDir} already holds a run; resume it with --resume or choose another --out`);
  }
  fs.writeFileSync(path.join(opts.outDir, 'config.yaml'), configToYaml(cfg));
  const t = new Trainer(cfg, opts.outDir);
  await t.startParallel();
  const metricsFile = path.join(opts.outDir, 'metrics.jsonl');
  if (opts.resume) {
    const step = await t.restoreAll();
    truncateMetricsAfter(metricsFile, step); // a killed run may have logged past its last checkpoint
    log(`resumed from step ${step}`);
  } else if (fs.existsSync(metricsFile)) fs.rmSync(metricsFile);
  const writer = new MetricsWriter(metricsFile);
  let first = NaN;
  let last = NaN;
  let lastVal: number | null = null;
  let lastRes: StepResult | null = null;
  let windowTokens = 0;
  let windowStart = performance.now();
  const t0 = performance.now();
  const startStep = t.step;
  let stopped = false;
  try {
    while (t.step < cfg.steps) {
      if (opts.stop?.requested) { stopped = true; break; }
      const step = t.step;
      const lr = learningRate(step, { lr: cfg.lr, warmupSteps: cfg.warmup_steps, steps: cfg.steps, schedule: cfg.schedule, minLrRatio: cfg.min_lr_ratio });
      const r = t.trainStep(opts.poisonStep?.(step) ?? false);
      lastRes = r;
      windowTokens += t.data.tokensPerBatch * cfg.grad_accum_steps;
      if (!r.finite) {
        log(`step ${step + 1}: non-finite loss or gradient, update skipped (${t.nanStreak} in a row)`);
        if (t.nanStreak >= cfg.max_nan_steps) {
          throw new Error(`stopped: ${t.nanStreak} non-finite steps in a row (max_nan_steps = ${cfg.max_nan_steps}); lower lr or enable grad_clip. The last good checkpoint is kept.`);
        }
      } else {
        if (Number.isNaN(first)) first = r.loss;
        last = r.loss;
      }
      const done = t.step === cfg.steps;
      const evalNow = cfg.eval_every > 0 && (t.step % cfg.eval_every === 0 || done);
      const logNow = t.step % cfg.log_every === 0 || done || evalNow;
      if (logNow) {
        const now = performance.now();
        const rec = record(t, r, lr, windowTokens / ((now - windowStart) / 1000));
        if (t.ep) rec.ep = t.ep.takeTimings();
        if (evalNow) {
          const ev = evaluate(t.model, t.data);
          lastVal = ev.loss;
          rec.val_loss = ev.loss;
          rec.val_ppl = Math.exp(ev.loss);
        }
        writer.write(rec);
        opts.onRecord?.(rec, loadBar(rec.expert_load[0] ?? [], 32));
        windowTokens = 0;
        windowStart = performance.now();
      }
      if ((cfg.checkpoint_every > 0 && t.step % cfg.checkpoint_every === 0) || done) log(`checkpoint ${await t.save()}`);
      await new Promise((resolve) => setImmediate(resolve)); // let SIGINT handlers run
    }
    if (stopped) log(`stopped at step ${t.step}: checkpoint ${await t.save()}`);
  } finally {
    writer.close();
    if (t.ep) { await t.ep.dispose().catch(() => {}); t.ep = null; } // never leave worker threads behind, even on failure
  }
  const elapsed = (performance.now() - t0) / 1000;
  const ran = Math.max(1, t.step - startStep);
  const loads = lastRes ? lastRes.loads.map((l) => Array.from(l)) : [];
  const layers = summarizeLayers(loads.length ? loads : [[1]]);
  const summary: TrainSummary = {
    out_dir: opts.outDir, steps: t.step, first_loss: first, final_loss: last, val_loss: lastVal,
    val_ppl: lastVal === null ? null : Math.exp(lastVal),
    tokens_per_s: Math.round((ran * t.data.tokensPerBatch * cfg.grad_accum_steps) / elapsed),
    step_time_ms: +((elapsed * 1000) / ran).toFixed(1), skipped_steps: t.skippedSteps, stopped_early: stopped,
    params: t.model.numParams(), per_layer_load: loads,
    load_cv: layers.mean.cv, max_load_share: layers.mean.maxLoadShare, maxvio: layers.mean.maxVio,
    dropped_fraction: lastRes ? meanOf(lastRes.dropped.map((d, l) => d / Math.max(1, lastRes!.assignments[l]))) : 0,
  };
  writeJsonAtomic(path.join(opts.outDir, 'summary.json'), summary);
  t.dispose();
  return summary;
}
