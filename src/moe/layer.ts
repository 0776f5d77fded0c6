/**
 * The MoE layer, Megatron-Core's seams in order:
 *   route (router/) → plan (capacity.ts, plan.ts) → dispatcher.run(executor) (dispatch/: dispatch → experts
 *   (executors.ts) → combine) → + shared experts → { y, aux, stats }
 * Aux losses come back raw, by name; the trainer weights and sums them in one place.
 */
import * as tf from '@tensorflow/tfjs';
import { applyCapacity, type CapacityPolicy, type CapacityResult } from './capacity.ts';
import { planExpertChoice, planTokenChoice, type DispatchPlan } from './plan.ts';
import { DISPATCHER_BY_NAME, paddedRows, resolveDispatcher, type DispatcherChoice } from './dispatch/index.ts';
import { localExperts, recomputedExperts, type ExpertExecutor } from './executors.ts';
import { createExperts, ffn, initVariable, type Activation, type ExpertWeights } from './experts.ts';
import { switchLoss, klUniformLoss, cvSquaredLoss, loadVarianceLoss, zLoss, sequenceAuxLoss, groupAuxLoss } from '../losses/index.ts';
import { GLOBAL_AUX, globalBatchAux, type GlobalAuxName, type GlobalBalanceStats } from '../losses/global_batch.ts';
import { takeAlongRows } from '../ops/take_along_rows.ts';
import { Rng } from '../rng.ts';
import { gumbelNoise } from '../router/gumbel.ts';
import { route, type RouterConfig } from '../router/route.ts';
import { SINKHORN_MAX_ITERATIONS, SINKHORN_TOLERANCE } from '../router/sinkhorn.ts';
import { sinkhornLogHost, topKRowsHost } from '../router/sinkhorn_host.ts';
import type { Routing, TokenChoiceRouting } from '../router/types.ts';

export type AuxLossName = 'switch' | 'kl' | 'cv2' | 'variance' | 'z' | 'sequence' | 'group';
export const AUX_LOSSES: readonly AuxLossName[] = ['switch', 'kl', 'cv2', 'variance', 'z', 'sequence', 'group'];

export interface MoEConfig {
  /** model width D. */
  dim: number;
  /** hidden size H of each routed expert. */
  hidden: number;
  /** routed experts E. */
  numExperts: number;
  /** experts per token k (for expert choice: average experts per token). */
  topK: number;
  activation: Activation;
  router: RouterConfig;
  /** capacity factor; null with policy 'dropless'. */
  capacityFactor: number | null;
  capacityPolicy: CapacityPolicy;
  /** shared experts, always active, each of hidden size H (fused into one FFN of width shared·H). */
  sharedExperts: number;
  /** aux losses to compute and return. */
  auxLosses: AuxLossName[];
  /** tokens per sequence, for the sequence-level aux loss. */
  seqLen?: number;
  /** expert → device group, for the group-level aux loss. */
  expertToGroup?: number[];
  /** scale of the down projections' init std (GPT-2 uses 1/√(2·layers)). */
  downScale?: number;
  /** drop expert FFN activations in the forward pass and recompute them in the backward pass. */
  recompute?: boolean;
  /** token movement: gather | onehot | padded (src/moe/dispatch/); 'auto' (default) = fastest on the backend. */
  dispatcher?: DispatcherChoice;
}

/** Routing decisions read to the host ahead of the step (WebGPU forbids dataSync): see MoELayer.readRouting. */
export interface HostRouting {
  /** [T·k] chosen experts (token choice) or [E·C] chosen tokens (expert choice). */
  indices: Int32Array;
  /** [T·E] probabilities; only read when the capacity policy ranks by them. */
  probs: Float32Array | null;
}

export interface MoEStats {
  /** [E] assignments each expert computed (after capacity). */
  load: Int32Array;
  /** [E] assignments the router chose per expert (before capacity). */
  routed: Int32Array;
  /** [E] assignments dropped (or rerouted away) per chosen expert. */
  droppedPerExpert: Int32Array;
  /** assignments dropped in total. */
  dropped: number;
  rerouted: number;
  capacity: number | null;
  /** T·k for token choice, E·C for expert choice. */
  assignments: number;
  numTokens: number;
  /** [E] mean router probability P_i (differentiable). */
  meanProbs: tf.Tensor1D;
  /** mean router entropy −Σ_i p_i log p_i over tokens (nats). */
  entropy: tf.Scalar;
}

export interface MoEOutput {
  y: tf.Tensor2D;
  aux: Partial<Record<AuxLossName, tf.Scalar>>;
  stats: MoEStats;
  routing: Routing;
}

export interface ForwardContext {
  training: boolean;
  /** noise source for noisy / Gumbel routers. */
  rng?: Rng;
  /** Gumbel temperature τ for this step. */
  tau?: number;
  /** noise multiplier for noisy top-k (annealing). */
  noiseScale?: number;
  /** under gradient accumulation: this layer's balance statistics over the whole step (global-batch balancing). */
  globalStats?: GlobalBalanceStats;
  /** routing read ahead with `await layer.readRouting(x, ctx)`: plan() uses it instead of a dataSync. */
  hostRouting?: HostRouting;
  /** aux losses left out: the caller forms them with auxLosses(routing, stats) once statistics over every data-parallel rank are known. */
  deferAux?: boolean;
}

/** Mean entropy of the rows of probs: (1/T) Σ_t −Σ_i p log p. */
export function routerEntropy(probs: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.mean(tf.sum(tf.mul(probs, tf.log(tf.add(probs, 1e-12))), 1))) as tf.Scalar);
}

/** Validates the layer config, naming the bad field. */
export function checkMoEConfig(c: MoEConfig): void {
  const posInt = (v: number, name: string) => {
    if (!Number.isInteger(v) || v < 1) throw new Error(`MoELayer: ${name} must be a positive integer, got ${v}`);
  };
  posInt(c.dim, 'dim'); posInt(c.hidden, 'hidden'); posInt(c.numExperts, 'numExperts'); posInt(c.topK, 'topK');
  if (c.topK > c.numExperts) throw new Error(`MoELayer: topK = ${c.topK} exceeds numExperts = ${c.numExperts}`);
  if (!Number.isInteger(c.sharedExperts) || c.sharedExperts < 0) throw new Error(`MoELayer: sharedExperts must be an integer ≥ 0, got ${c.sharedExperts}`);
  if (c.capacityPolicy !== 'dropless' && !(c.capacityFactor !== null && c.capacityFactor > 0)) {
    throw new Error(`MoELayer: capacityFactor must be > 0 with policy '${c.capacityPolicy}', got ${c.capacityFactor}`);
  }
  for (const a of c.auxLosses) if (!AUX_LOSSES.includes(a)) throw new Error(`MoELayer: unknown aux loss '${a}', expected one of ${AUX_LOSSES.join(', ')}`);
  if (c.auxLosses.includes('group') && !c.expertToGroup) throw new Error(`MoELayer: aux loss 'group' needs expertToGroup`);
  if (c.auxLosses.includes('sequence') && !c.seqLen) throw new Error(`MoELayer: aux loss 'sequence' needs seqLen`);
}

/** Fine-grained experts (DeepSeekMoE): split each expert into m, so E·m experts of hidden H/m, k·m active. */
export function fineGrained<T extends Pick<MoEConfig, 'numExperts' | 'topK' | 'hidden'>>(c: T, m: number): T {
  if (!Number.isInteger(m) || m < 1 || c.hidden % m !== 0) throw new Error(`fineGrained: m must be a positive divisor of hidden = ${c.hidden}, got ${m}`);
  return { ...c, numExperts: c.numExperts * m, topK: c.topK * m, hidden: c.hidden / m };
}

export type { ExpertExecutor } from './executors.ts';

export class MoELayer {
  readonly config: MoEConfig;
  /** [D, E] router (gate) weights. */
  readonly gate: tf.Variable;
  /** [D, E] noise weights for noisy top-k. */
  readonly noiseGate: tf.Variable | null;
  readonly experts: ExpertWeights;
  readonly shared: ExpertWeights | null;
  /** [E] selection bias for aux-loss-free balancing (not trained by gradients; a controller updates it). */
  readonly expertBias: tf.Variable;
  /** [E] added to the router logits (load-aware gate adjustment); zeros unless a controller sets it. */
  readonly logitAdjust: tf.Variable;
  /** the capacity factor in force (a dynamic-capacity controller may change it between steps). */
  capacityFactor: number | null;
  /** null: experts run here, on `experts` (local, or recomputed with config.recompute); expert parallelism sets one. */
  executor: ExpertExecutor | null = null;

  constructor(config: MoEConfig, rng: Rng) {
    checkMoEConfig(config);
    this.config = config;
    const { dim: D, hidden: H, numExperts: E, activation, sharedExperts } = config;
    this.gate = initVariable(rng, [D, E], 0.02);
    // Shazeer et al. init W_noise at zero: noise std starts at softplus(0) = ln 2.
    this.noiseGate = config.router.type === 'noisy_topk' ? tf.tidy(() => tf.variable(tf.zeros([D, E]))) : null;
    this.experts = createExperts(rng, E, D, H, activation, config.downScale ?? 1);
    this.shared = sharedExperts > 0 ? createExperts(rng, 1, D, H * sharedExperts, activation, config.downScale ?? 1) : null;
    // tidy: a variable shares its initial tensor's data, which would outlive dispose() otherwise
    this.expertBias = tf.tidy(() => tf.variable(tf.zeros([E]), false));
    this.logitAdjust = tf.tidy(() => tf.variable(tf.zeros([E]), false));
    this.capacityFactor = config.capacityFactor;
  }

  /** Trainable variables by checkpoint name (relative to the layer's prefix). */
  namedVariables(): Record<string, tf.Variable> {
    const out: Record<string, tf.Variable> = { gate: this.gate, 'experts.w1': this.experts.w1, 'experts.w2': this.experts.w2 };
    if (this.experts.w3) out['experts.w3'] = this.experts.w3;
    if (this.noiseGate) out.noise_gate = this.noiseGate;
    if (this.shared) {
      out['shared.w1'] = this.shared.w1;
      out['shared.w2'] = this.shared.w2;
      if (this.shared.w3) out['shared.w3'] = this.shared.w3;
    }
    return out;
  }

  /** Trainable variables of this layer. */
  variables(): tf.Variable[] {
    return Object.values(this.namedVariables());
  }

  /** Router logits [T, E] = x · W_gate + the gate adjustment. */
  gateLogits(x: tf.Tensor2D): tf.Tensor2D {
    return tf.add(tf.matMul(x, this.gate), this.logitAdjust) as tf.Tensor2D;
  }

  /** Router step: logits = x · W_gate, then the configured router. */
  route(x: tf.Tensor2D, ctx: ForwardContext): Routing {
    const logits = this.gateLogits(x);
    const T = logits.shape[0];
    const type = this.config.router.type;
    const noisy = type === 'noisy_topk' && ctx.training;
    const gumbel = type === 'gumbel' && ctx.training;
    if ((noisy || gumbel) && !ctx.rng) throw new Error(`MoELayer: router '${type}' needs ctx.rng for its noise in training`);
    // Sinkhorn's selection was made on the host from the routing read (readRouting): no device loop on the tape.
    const selected = type === 'sinkhorn' && ctx.training && ctx.hostRouting ? tf.tensor2d(ctx.hostRouting.indices, [T, this.config.topK], 'int32') : undefined;
    try {
      return this.routeWith(x, logits, ctx, noisy, gumbel, selected);
    } finally {
      selected?.dispose();
    }
  }

  /** The configured router on logits, with the layer's bias, noise and temperature. */
  private routeWith(x: tf.Tensor2D, logits: tf.Tensor2D, ctx: ForwardContext, noisy: boolean, gumbel: boolean, selected: tf.Tensor2D | undefined): Routing {
    const [T, E] = logits.shape;
    return route(this.config.router, logits, {
      k: this.config.topK,
      training: ctx.training,
      bias: this.expertBias as tf.Tensor as tf.Tensor1D,
      noiseLogits: this.noiseGate ? (tf.matMul(x, this.noiseGate) as tf.Tensor2D) : undefined,
      noise: noisy ? tf.randomNormal([T, E], 0, 1, 'float32', ctx.rng!.seed()) as tf.Tensor2D : undefined,
      noiseScale: ctx.noiseScale,
      gumbel: gumbel ? gumbelNoise([T, E], ctx.rng!) : undefined,
      tau: ctx.tau,
      selected,
    });
  }

  /**
   * Routes without recording gradients and reads the decisions to the host asynchronously (the only way on
   * WebGPU); pass the result as ctx.hostRouting to forward(), which then routes again on the tape (same
   * decisions: routing is deterministic given x and the noise) and plans without a sync.
   */
  async readRouting(x: tf.Tensor2D, ctx: ForwardContext): Promise<HostRouting> {
    if (this.config.router.type === 'sinkhorn' && ctx.training) return this.readSinkhornRouting(x);
    const routing = tf.tidy(() => this.route(x, ctx) as unknown as tf.TensorContainer) as unknown as Routing;
    const needProbs = routing.kind === 'token-choice' && (this.config.capacityPolicy === 'drop-probability' || this.config.capacityPolicy === 'reroute');
    const idx = routing.kind === 'token-choice' ? routing.indices : routing.tokenIndices;
    const [indices, probs] = await Promise.all([idx.data() as Promise<Int32Array>, needProbs ? (routing.probs.data() as Promise<Float32Array>) : null]);
    tf.dispose(routing as unknown as tf.TensorContainer);
    return { indices, probs };
  }

  /** Sinkhorn in training: the logits read back, the balanced selection made on the host (sinkhorn_host.ts). */
  private async readSinkhornRouting(x: tf.Tensor2D): Promise<HostRouting> {
    const { numExperts: E, topK: k } = this.config;
    const router = this.config.router as Extract<RouterConfig, { type: 'sinkhorn' }>;
    const needProbs = this.config.capacityPolicy === 'drop-probability' || this.config.capacityPolicy === 'reroute';
    const logits = tf.tidy(() => this.gateLogits(x));
    const probs = needProbs ? tf.softmax(logits) : null;
    const [l, p] = await Promise.all([logits.data() as Promise<Float32Array>, probs ? (probs.data() as Promise<Float32Array>) : null]);
    tf.dispose(probs ? [logits, probs] : [logits]);
    const T = l.length / E;
    const logP = sinkhornLogHost(l, T, E, router.iterations ?? SINKHORN_MAX_ITERATIONS, SINKHORN_TOLERANCE);
    return { indices: topKRowsHost(logP, T, E, k), probs: p };
  }

  /** Capacity + routing map (a host sync on the [T, k] decisions unless ctx.hostRouting has them). */
  plan(routing: Routing, host?: HostRouting, padded = false): { plan: DispatchPlan; weights: tf.Tensor; cap: CapacityResult | null } {
    const { numExperts: E, topK: k } = this.config;
    if (routing.kind === 'expert-choice') {
      const T = routing.probs.shape[0];
      return { plan: planExpertChoice(host?.indices ?? (routing.tokenIndices.dataSync() as Int32Array), T, E), weights: routing.weights, cap: null };
    }
    const T = routing.indices.shape[0];
    const needProbs = this.config.capacityPolicy === 'drop-probability' || this.config.capacityPolicy === 'reroute';
    const chosen = host?.indices ?? (routing.indices.dataSync() as Int32Array);
    const cap = applyCapacity(
      {
        indices: chosen,
        // probs only rank assignments for two policies: the others skip the [T, E] read
        probs: host?.probs ?? (needProbs || !host ? (routing.probs.dataSync() as Float32Array) : new Float32Array(T * E)),
        numTokens: T, topK: k, numExperts: E,
      },
      this.config.capacityPolicy, this.capacityFactor ?? 1,
    );
    const padTo = this.config.capacityPolicy === 'pad' ? cap.capacity! : padded ? paddedRows(cap.received, null) : undefined;
    const plan = planTokenChoice(cap.indices, cap.keep, T, k, E, padTo);
    // Rerouted assignments carry the router probability of their new expert.
    const weights = cap.rerouted > 0 ? reroutedWeights(routing, chosen, cap.indices, T, k) : routing.weights;
    return { plan, weights, cap };
  }

  /** y = Σ_k w · expert(x) (+ shared(x)), aux losses by name, and load statistics. */
  forward(x: tf.Tensor2D, ctx: ForwardContext): MoEOutput {
    const routing = this.route(x, ctx);
    const executor = this.expertExecutor();
    const d = DISPATCHER_BY_NAME[resolveDispatcher(this.config.dispatcher, tf.getBackend(), routing.kind === 'token-choice', !executor.blocks)];
    const { plan, weights, cap } = this.plan(routing, ctx.hostRouting, d.paddedBlocks);
    let y = d.run(x, weights, plan, executor); // [T, D]
    if (this.shared) {
      const s = this.shared;
      y = tf.add(y, ffn(x, s.w1.squeeze([0]) as tf.Tensor2D, s.w2.squeeze([0]) as tf.Tensor2D, s.w3 ? (s.w3.squeeze([0]) as tf.Tensor2D) : null, this.config.activation)) as tf.Tensor2D;
    }
    return { y, aux: ctx.deferAux ? {} : this.auxLosses(routing, ctx.globalStats), stats: this.stats(routing, plan, cap, ctx.hostRouting), routing };
  }

  /** Where this layer's routed experts run: the executor set from outside, else local (recomputed if configured). */
  expertExecutor(): ExpertExecutor {
    if (this.executor) return this.executor;
    return this.config.recompute ? recomputedExperts(this.experts, this.config.activation) : localExperts(this.experts, this.config.activation);
  }

  /**
   * The configured aux losses on the router's own choices (before capacity, as Megatron-Core does).
   * With `global` (gradient accumulation) the count-based losses use the whole step's statistics and the
   * per-token ones (z, sequence, variance) are weighted by this micro-batch's token share.
   */
  auxLosses(routing: Routing, global?: GlobalBalanceStats): Partial<Record<AuxLossName, tf.Scalar>> {
    const { numExperts: E, auxLosses, seqLen, expertToGroup } = this.config;
    const out: Partial<Record<AuxLossName, tf.Scalar>> = {};
    for (const name of auxLosses) {
      if (global && GLOBAL_AUX.includes(name)) {
        out[name] = globalBatchAux(name as GlobalAuxName, tf.mean(routing.probs, 0) as tf.Tensor1D, global, expertToGroup);
        continue;
      }
      if (name === 'z') { out.z = zLoss(routing.logits); continue; }
      if (name === 'kl') { out.kl = klUniformLoss(routing.probs); continue; }
      if (routing.kind !== 'token-choice') continue; // count-based losses need token-choice indices
      const { probs, indices } = routing;
      switch (name) {
        case 'switch': out.switch = switchLoss(probs, indices, E); break;
        case 'cv2': out.cv2 = cvSquaredLoss(probs, indices, E); break;
        case 'variance': out.variance = loadVarianceLoss(probs, indices, E); break;
        case 'sequence': out.sequence = sequenceAuxLoss(probs, indices, E, seqLen!); break;
        case 'group': out.group = groupAuxLoss(probs, indices, expertToGroup!); break;
      }
    }
    if (global) for (const k of Object.keys(out) as AuxLossName[]) if (!GLOBAL_AUX.includes(k)) out[k] = tf.mul(out[k]!, global.tokenShare) as tf.Scalar;
    return out;
  }

  private stats(routing: Routing, plan: DispatchPlan, cap: CapacityResult | null, host?: HostRouting): MoEStats {
    const E = this.config.numExperts;
    const T = routing.probs.shape[0];
    let load: Int32Array;
    let routed: Int32Array;
    let droppedPerExpert: Int32Array = new Int32Array(E);
    if (cap) {
      load = cap.received;
      droppedPerExpert = cap.dropped;
      routed = cap.routed;
    } else {
      load = Int32Array.from(plan.tokensPerExpert);
      routed = Int32Array.from(plan.tokensPerExpert);
    }
    const kept = load.reduce((a, b) => a + b, 0);
    return {
      load, routed, droppedPerExpert,
      dropped: plan.numAssignments - kept,
      rerouted: cap?.rerouted ?? 0,
      capacity: cap?.capacity ?? (routing.kind === 'expert-choice' ? plan.tokensPerExpert[0] : null),
      assignments: plan.numAssignments,
      numTokens: T,
      meanProbs: tf.mean(routing.probs, 0) as tf.Tensor1D,
      entropy: routerEntropy(routing.probs),
    };
  }

  dispose(): void {
    for (const v of [...this.variables(), this.expertBias, this.logitAdjust]) v.dispose();
  }
}

/** Weights after rerouting: the router's probability of each (possibly new) expert, as chosen weights are. */
function reroutedWeights(routing: TokenChoiceRouting, chosen: Int32Array, newIndices: Int32Array, T: number, k: number): tf.Tensor2D {
  const idx = tf.tensor2d(newIndices, [T, k], 'int32');
  // the moved mask is a routing decision: built on the host, so the tape holds no comparison (which has no gradient)
  const moved = tf.tensor2d(Uint8Array.from(newIndices, (e, a) => (e !== chosen[a] ? 1 : 0)), [T, k], 'bool'); // [T, k]
  return tf.where(moved, takeAlongRows(routing.probs, idx), routing.weights) as tf.Tensor2D;
}
