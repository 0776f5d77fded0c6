/**
 * Expert parallelism on worker threads. Each rank is a worker with its own tfjs backend owning its
 * experts' weights, gradients and AdamW state; the main thread keeps the router (so balance
 * statistics and aux losses see the global load) and runs the all-to-all through shared memory.
 *
 *   ys  = EP(xs):   dispatch xs rows → ranks compute their experts → combine ys rows home
 *   dxs = EPᵀ(dy):  dy rows → ranks (dW stays there, summed until step) → dxs rows home
 *
 * A tfjs op with a custom gradient: the main thread blocks inside forward and backward (tfjs
 * gradients are synchronous). The backward runs only when xs lies on a path from a differentiated
 * variable to the loss — always in a model (xs comes from embeddings and attention).
 * Usage: `const ep = new ExpertParallel({...}); await ep.ready(); layer.executor = ep; ... ep.step(lr)`.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendName } from '../backend.ts';
import type { DispatchPlan } from '../moe/plan.ts';
import type { Activation, ExpertWeights } from '../moe/experts.ts';
import type { ExpertExecutor } from '../moe/executors.ts';
import type { EpRankTiming } from '../metrics/jsonl.ts';
import type { AdamWState } from '../optim/adamw.ts';
import { prepareForward, resetCounters, SharedBuffers, streamBackward, streamForward } from './alltoall.ts';
import { COMM_MODES, checkTokenRows, planExchange, type CommConfig, type CommMode } from './exchange.ts';
import { WorkerGroup } from './group.ts';
import { checkNodes, checkPlacement, defaultPlacement, expertToRank, nodeOf, rankSlots, type Placement, type Slot } from './placement.ts';
import type { AdamWHyper, ExpertArrays, FaultKind } from './protocol.ts';
import { EpClock, type EpTraffic } from './timings.ts';
import { gatherStacked, splitStacked, stackedOptState, splitOptState, sumReplicas, type ExpertOptimizerState } from './stacking.ts';

export interface ExpertParallelOptions {
  /** ranks (worker threads), ep_size. */
  epSize: number;
  /** nodes the ranks are grouped into (contiguously); default 1. */
  nodes?: number;
  /** 'flat' (per-assignment all-to-all) or 'hierarchical' (node dedup); default 'flat'. */
  mode?: CommMode;
  /** chunks pipelined through dispatch → compute → combine; default 1. */
  chunks?: number;
  /** experts (and replicas) per rank; default E/epSize contiguous experts per rank. */
  placement?: Placement;
  /** initial expert weights of each MoE layer (all layers share E and the placement). */
  layerWeights: ExpertWeights | ExpertWeights[];
  activation: Activation;
  /** the trainer's AdamW hyperparameters (AdamW's defaults where absent). */
  adamw?: Partial<AdamWHyper>;
  /** deadline of every wait, ms; default 30000. */
  timeoutMs?: number;
  /** each worker's tfjs backend; default 'wasm'. */
  backend?: Exclude<BackendName, 'webgpu'>;
  /** keep only the expert input rows from forward and recompute the FFN's intermediates in backward; default false. */
  recompute?: boolean;
}

export type { ExpertArrays, ExpertOptimizerState, EpTraffic, FaultKind };

export class ExpertParallel implements ExpertExecutor {
  readonly epSize: number;
  readonly numExperts: number;
  readonly placement: Placement;
  /** whether the ranks keep only expert input rows and recompute the FFN in backward. */
  readonly recompute: boolean;
  private comm: CommConfig;
  private readonly opts: ExpertParallelOptions;
  private readonly layers: ExpertWeights[];
  private readonly slots: Slot[][];
  private group: WorkerGroup | null = null;
  private bufs: SharedBuffers;
  private clock: EpClock;
  private nextCall = 0;
  /** forwards with kept activations / backwards run since the last step. */
  private savedForwards = 0;
  private backwards = 0;
  /** where replicated experts' gradient sums sit (see reduceReplicas). */
  private replicaGrads: 'partial' | 'primary' | 'all' = 'all';

  constructor(opts: ExpertParallelOptions) {
    const { epSize } = opts;
    if (!Number.isInteger(epSize) || epSize < 1) throw new Error(`ExpertParallel: epSize must be a positive integer, got ${epSize}`);
    this.layers = Array.isArray(opts.layerWeights) ? opts.layerWeights : [opts.layerWeights];
    if (this.layers.length === 0) throw new Error('ExpertParallel: layerWeights is empty');
    this.numExperts = this.layers[0].w1.shape[0];
    this.layers.forEach((w, l) => {
      if (w.w1.shape[0] !== this.numExperts) throw new Error(`ExpertParallel: layer ${l} has ${w.w1.shape[0]} experts, layer 0 has ${this.numExperts}`);
      if ((w.w3 !== null) !== (opts.activation === 'swiglu')) throw new Error(`ExpertParallel: layer ${l} ${w.w3 ? 'has' : 'lacks'} w3 but activation is '${opts.activation}'`);
    });
    this.placement = opts.placement ?? defaultPlacement(this.numExperts, epSize);
    checkPlacement(this.placement, this.numExperts, epSize);
    this.epSize = epSize;
    this.opts = opts;
    this.recompute = opts.recompute ?? false;
    this.slots = rankSlots(this.placement, epSize);
    this.comm = { mode: 'flat', nodes: 1, chunks: 1 };
    this.setComm({ mode: opts.mode ?? 'flat', nodes: opts.nodes ?? 1, chunks: opts.chunks ?? 1 });
    const timeoutMs = opts.timeoutMs ?? 30_000;
    if (!(timeoutMs > 0)) throw new Error(`ExpertParallel: timeoutMs must be > 0, got ${timeoutMs}`);
    this.bufs = new SharedBuffers(epSize);
    this.clock = new EpClock(epSize);
  }

  /** Changes how tokens travel (between calls): mode, nodes, chunks. Results do not depend on it. */
  setComm(c: Partial<CommConfig>): void {
    const next = { ...this.comm, ...c };
    if (!COMM_MODES.includes(next.mode)) throw new Error(`ExpertParallel: mode must be one of ${COMM_MODES.join(', ')}, got '${next.mode}'`);
    checkNodes(next.nodes, this.epSize);
    if (!Number.isInteger(next.chunks) || next.chunks < 1) throw new Error(`ExpertParallel: chunks must be a positive integer, got ${next.chunks}`);
    this.comm = next;
  }

  /** Starts the workers and hands each its experts' weights (read from layerWeights now). */
  async ready(): Promise<void> {
    if (this.group) return;
    const stacked = await Promise.all(this.layers.map(async (w) => ({
      w1: (await w.w1.data()) as Float32Array, w2: (await w.w2.data()) as Float32Array, w3: w.w3 ? ((await w.w3.data()) as Float32Array) : null,
    })));
    const group = await WorkerGroup.start(this.epSize, this.opts.backend ?? 'wasm', this.opts.timeoutMs ?? 30_000);
    const a = this.opts.adamw ?? {};
    const adamw: AdamWHyper = { beta1: a.beta1 ?? 0.9, beta2: a.beta2 ?? 0.999, eps: a.eps ?? 1e-8, weightDecay: a.weightDecay ?? 0.01 };
    try {
      group.command((r) => ({
        op: 'init', activation: this.opts.activation, adamw,
        dim: this.layers.map((w) => shape3(w)[1]), hidden: this.layers.map((w) => shape3(w)[2]),
        experts: stacked.map((s, l) => splitStacked(s, shape3(this.layers[l]), this.slots[r].map((x) => x.expert))),
        slotExperts: this.slots[r].map((s) => s.expert), primary: this.slots[r].map((s) => s.replica === 0),
        recompute: this.recompute,
      }), 'init');
    } catch (e) {
      await group.dispose();
      throw e;
    }
    this.group = group;
  }

  private g(): WorkerGroup {
    if (!this.group) throw new Error('ExpertParallel: call await ready() first');
    this.group.checkUsable();
    return this.group;
  }

  /** ExpertExecutor for layer 0. */
  run(xs: tf.Tensor2D, plan: DispatchPlan): tf.Tensor2D {
    return this.runLayer(0, xs, plan);
  }

  /** ExpertExecutor for MoE layer l (the l-th entry of layerWeights). */
  executor(l: number): ExpertExecutor {
    if (!Number.isInteger(l) || l < 0 || l >= this.layers.length) throw new Error(`ExpertParallel: layer ${l} outside 0..${this.layers.length - 1}`);
    return { run: (xs, plan) => this.runLayer(l, xs, plan) };
  }

  /** ys = experts(xs), rows grouped by expert per plan; differentiable in xs. */
  private runLayer(l: number, xs: tf.Tensor2D, plan: DispatchPlan): tf.Tensor2D {
    const g = this.g();
    const D = shape3(this.layers[l])[1];
    const rows = plan.tokenOfRow.length;
    if (xs.rank !== 2 || xs.shape[0] !== rows || xs.shape[1] !== D) throw new Error(`ExpertParallel: xs must be [${rows}, ${D}], got [${xs.shape}]`);
    if (plan.numExperts !== this.numExperts) throw new Error(`ExpertParallel: plan has ${plan.numExperts} experts, the group ${this.numExperts}`);
    // Keep activations only under a gradient tape (an eval forward never runs backward).
    const save = (tf.engine() as unknown as { state: { gradientDepth: number } }).state.gradientDepth > 0;
    const call = this.nextCall++;
    const ex = planExchange(plan, this.slots, this.comm, 4 * D);
    const peers = Array.from({ length: this.epSize }, (_, r) => this.comm.mode === 'flat' ? [] : this.nodePeers(r));
    const reduce = this.comm.mode === 'hierarchical'; // dxs reduced per (token, node) on the way home
    const op = tf.customGrad(((x: tf.Tensor) => {
      const data = x.dataSync() as Float32Array; // sync point: rows leave for the workers
      if (this.comm.mode === 'hierarchical') checkTokenRows(data, plan.tokenOfRow, D);
      const off = prepareForward(this.bufs, ex, D, peers);
      const copy = new Float64Array(this.epSize);
      const before = this.clock.busySoFar(g.timing);
      const t0 = performance.now();
      resetCounters(g);
      const buffers = this.bufs.take();
      for (let r = 0; r < this.epSize; r++) g.send(r, { op: 'fwd', layer: l, call, save, buffers, timeoutMs: g.timeoutMs });
      const ys = streamForward(g, this.bufs, ex, off, data, D, copy, `forward of layer ${l}`);
      g.collect(this.ranks(), `forward of layer ${l}`);
      this.clock.addCall('fwd', ex.traffic, copy, g.timing, before, performance.now() - t0);
      if (save) this.savedForwards++;
      return {
        value: tf.tensor2d(ys, [rows, D]),
        gradFunc: (dy: tf.Tensor) => {
          const gb = this.g();
          if (!save) throw new Error('ExpertParallel: backward of a forward run outside a gradient tape');
          const dyData = dy.dataSync() as Float32Array; // sync point: output gradients leave for the workers
          const copyB = new Float64Array(this.epSize);
          const beforeB = this.clock.busySoFar(gb.timing);
          const t1 = performance.now();
          resetCounters(gb);
          const bb = this.bufs.take();
          for (let r = 0; r < this.epSize; r++) gb.send(r, { op: 'bwd', layer: l, call, chunks: ex.chunks.length, buffers: bb, timeoutMs: gb.timeoutMs, reduce });
          const dxs = streamBackward(gb, this.bufs, ex, off, dyData, D, copyB, `backward of layer ${l}`, reduce);
          gb.collect(this.ranks(), `backward of layer ${l}`);
          this.clock.addCall('bwd', ex.traffic, copyB, gb.timing, beforeB, performance.now() - t1);
          this.backwards++;
          this.replicaGrads = 'partial';
          return tf.tensor2d(dxs, [rows, D]);
        },
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    return op(xs) as tf.Tensor2D;
  }

  private ranks(): number[] {
    return Array.from({ length: this.epSize }, (_, r) => r);
  }

  /** Ranks on r's node other than r. */
  private nodePeers(r: number): number[] {
    const { nodes } = this.comm;
    return this.ranks().filter((p) => p !== r && nodeOf(p, this.epSize, nodes) === nodeOf(r, this.epSize, nodes));
  }

  /**
   * Brings replicated experts' gradients together. Each replica accumulates the gradient of its own rows
   * ('partial'); the sum over replicas (in replica order) goes to the primary and the others are zeroed
   * ('primary': later backward passes keep adding partials without double counting), or, before a step,
   * to every replica ('all'), so replicas take identical updates and stay identical.
   */
  private reduceReplicas(forStep: boolean): void {
    if (this.replicaGrads === 'all' || (this.replicaGrads === 'primary' && !forStep)) return;
    if (this.placement.expertToRanks.every((r) => r.length === 1)) { this.replicaGrads = 'all'; return; }
    const g = this.g();
    for (let l = 0; l < this.layers.length; l++) {
      const got = g.command(() => ({ op: 'getGrads', layer: l }), 'gradient gather') as ExpertArrays[][];
      const sum = sumReplicas(got, this.placement, this.slots); // with 'primary', the others hold zeros or new partials
      const zero = (a: ExpertArrays): ExpertArrays => ({ w1: new Float32Array(a.w1.length), w2: new Float32Array(a.w2.length), w3: a.w3 ? new Float32Array(a.w3.length) : null });
      g.command((r) => ({
        op: 'setGrads', layer: l,
        grads: this.slots[r].map((s) => {
          const total = sum.get(s.expert);
          return !total ? null : forStep || s.replica === 0 ? total : zero(total);
        }),
      }), 'gradient scatter');
    }
    this.replicaGrads = forStep ? 'all' : 'primary';
  }

  /** Σ ‖g‖² over all experts' accumulated gradients (each replicated expert once), for global-norm clipping. */
  globalGradNormSq(): number {
    this.reduceReplicas(false);
    return (this.g().command(() => ({ op: 'normSq' }), 'gradient norm') as number[]).reduce((a, b) => a + b, 0);
  }

  /** g ← s·g on every rank (the trainer's clipping factor). */
  scaleGrads(s: number): void {
    if (!Number.isFinite(s) || s < 0) throw new Error(`ExpertParallel.scaleGrads: factor must be a finite number ≥ 0, got ${s}`);
    this.g().command(() => ({ op: 'scale', s }), 'gradient scale');
  }

  /** g_e ← s_e·g_e for every expert e of layer l, on each of its replicas (s: [E] factors ≥ 0). */
  scaleExpertGrads(l: number, s: ArrayLike<number>): void {
    this.checkLayer(l, 'scaleExpertGrads');
    if (s.length !== this.numExperts) throw new Error(`ExpertParallel.scaleExpertGrads: need ${this.numExperts} factors, got ${s.length}`);
    const f = Array.from(s);
    f.forEach((x, e) => { if (!Number.isFinite(x) || x < 0) throw new Error(`ExpertParallel.scaleExpertGrads: factor of expert ${e} must be a finite number ≥ 0, got ${x}`); });
    this.g().command(() => ({ op: 'scaleExperts', layer: l, s: f }), 'expert gradient scale');
  }

  /** Per expert of layer l, over its accumulated gradients of w1, w2, w3 (replicas summed): ‖g_e‖₂ and mean |g_e|. */
  expertGradStats(l: number): { norm: number[]; absMean: number[] } {
    this.checkLayer(l, 'expertGradStats');
    this.reduceReplicas(false); // the primary replica holds each expert's whole gradient
    const got = this.g().command(() => ({ op: 'gradStats', layer: l }), 'expert gradient statistics') as { sumSq: number; sumAbs: number; size: number }[][];
    const norm = new Array<number>(this.numExperts).fill(0);
    const absMean = new Array<number>(this.numExperts).fill(0);
    this.slots.forEach((slots, r) => slots.forEach((sl, i) => {
      if (sl.replica !== 0) return;
      const st = got[r][i];
      norm[sl.expert] = Math.sqrt(st.sumSq);
      absMean[sl.expert] = st.sumAbs / st.size;
    }));
    return { norm, absMean };
  }

  /**
   * Expert `to` of layer l (every replica) ← expert `from`'s current weights + z·ρ·rms per matrix (z: unit
   * normals per slice, the caller's, so the noise equals a main-thread copy's); optimizer state untouched.
   */
  copyExpert(l: number, from: number, to: number, z: ExpertArrays, rho: number): void {
    this.checkLayer(l, 'copyExpert');
    for (const e of [from, to]) if (!Number.isInteger(e) || e < 0 || e >= this.numExperts) throw new Error(`ExpertParallel.copyExpert: expert ${e} outside 0..${this.numExperts - 1}`);
    if (!(Number.isFinite(rho) && rho >= 0)) throw new Error(`ExpertParallel.copyExpert: rho must be a finite number ≥ 0, got ${rho}`);
    const g = this.g();
    const src = this.placement.expertToRanks[from][0];
    g.send(src, { op: 'getExpert', layer: l, expert: from });
    const w = g.collect([src], 'expert copy (get)')[0] as ExpertArrays;
    const dst = [...new Set(this.placement.expertToRanks[to])];
    for (const r of dst) g.send(r, { op: 'setExpert', layer: l, expert: to, w, noise: z, rho });
    g.collect(dst, 'expert copy (set)');
  }

  private checkLayer(l: number, who: string): void {
    if (!Number.isInteger(l) || l < 0 || l >= this.layers.length) throw new Error(`ExpertParallel.${who}: layer ${l} outside 0..${this.layers.length - 1}`);
  }

  /**
   * One AdamW step on every rank with the gradients summed since the last step; then zeroes them. Experts in
   * frozen[l] (per layer) are held: weights and moments unchanged (sparse accumulation).
   */
  step(lr: number, frozen?: number[][]): void {
    if (!Number.isFinite(lr) || lr < 0) throw new Error(`ExpertParallel.step: lr must be a finite number ≥ 0, got ${lr}`);
    if (this.savedForwards > 0 && this.backwards === 0) {
      throw new Error('ExpertParallel.step: no backward pass reached the experts since the last step (does xs depend on a differentiated variable?)');
    }
    this.reduceReplicas(true);
    const g = this.g();
    g.command(() => ({ op: 'step', lr, frozen }), 'optimizer step');
    this.replicaGrads = 'all'; // all zero
    this.clock.addIdle(g.timing);
    this.savedForwards = 0;
    this.backwards = 0;
  }

  /** Accumulated expert gradients of layer l, stacked like the weights ([E, D, H], [E, H, D]). */
  async getGrads(l = 0): Promise<ExpertArrays> {
    this.reduceReplicas(false);
    return this.gather('getGrads', l);
  }

  /** Current expert weights of layer l, stacked [E, D, H] / [E, H, D] (for checkpoints). */
  async getWeights(l = 0): Promise<ExpertArrays> {
    return this.gather('getWeights', l);
  }

  private gather(op: 'getGrads' | 'getWeights', l: number): ExpertArrays {
    const got = this.g().command(() => ({ op, layer: l }), op) as ExpertArrays[][];
    return gatherStacked(got, this.slots, shape3(this.layers[l]));
  }

  /** Replaces layer l's expert weights (stacked arrays) on every replica. */
  async setWeights(w: ExpertArrays, l = 0): Promise<void> {
    const shape = shape3(this.layers[l]);
    this.g().command((r) => ({ op: 'setWeights', layer: l, experts: splitStacked(w, shape, this.slots[r].map((s) => s.expert)) }), 'setWeights');
  }

  /** AdamW step count and moments, stacked per layer like the weights. */
  async getOptimizerState(): Promise<ExpertOptimizerState> {
    const got = this.g().command(() => ({ op: 'getOpt' }), 'getOptimizerState') as AdamWState[];
    return stackedOptState(got, this.slots, this.layers.map(shape3));
  }

  /** Restores getOptimizerState()'s output on every rank (replicas get their expert's moments). */
  async setOptimizerState(s: ExpertOptimizerState): Promise<void> {
    const shapes = this.layers.map(shape3);
    this.g().command((r) => ({ op: 'setOpt', state: splitOptState(s, this.slots[r], shapes) }), 'setOptimizerState');
  }

  /** Per-rank compute / comm / idle ms and bytes since the last take (for metrics.jsonl's `ep`). */
  takeTimings(): EpRankTiming[] {
    return this.clock.take(this.g().timing);
  }

  /** Bytes moved by phase (intra / inter node), wall time in calls and overlap since the last take. */
  takeTraffic(): EpTraffic {
    return this.clock.takeTraffic();
  }

  /** [E] rank of each expert (primary replica): expertToGroup for the device-group aux loss. */
  expertToRank(): number[] {
    return expertToRank(this.placement);
  }

  /** Test hook: rank's next forward or backward throws, exits its thread, or hangs. */
  injectFault(rank: number, kind: FaultKind, on: 'fwd' | 'bwd' = 'fwd'): void {
    const g = this.g();
    g.send(rank, { op: 'fault', kind, on });
    g.collect([rank], 'fault injection');
  }

  /** Floats of activations the ranks keep for pending backward passes (summed over ranks). */
  keptActivationFloats(): number {
    return (this.g().command(() => ({ op: 'kept' }), 'kept activations') as number[]).reduce((a, b) => a + b, 0);
  }

  /** Worker threads still running. */
  aliveWorkers(): number {
    return this.group?.alive() ?? 0;
  }

  /** Ends every worker thread (also after a failure); the layer weights on the main thread are untouched. */
  async dispose(): Promise<void> {
    await this.group?.dispose();
  }
}

/** [E, D, H] of a layer's stacked up projection. */
function shape3(w: ExpertWeights): [number, number, number] {
  const [E, D, H] = w.w1.shape;
  return [E!, D!, H!];
}
