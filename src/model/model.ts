/**
 * The models Switchyard trains, built on MoELayer:
 * - moe_llama: decoder-only LM (LLaMA style: RMSNorm, RoPE or learned positions, causal attention,
 *   MoE FFN in every `moe_every`-th block, dense FFN elsewhere) — the seeds' "replace the LLaMA FFN with MoE";
 * - moe_mlp: seed 000's experiment, MoE layers on random vectors with an MSE target.
 * Parameters live in one name → variable map (the checkpoint's tensor names).
 */
import * as tf from '@tensorflow/tfjs';
import { denseHidden, type Config } from '../config/schema.ts';
import { ffn, initVariable, type Activation } from '../moe/experts.ts';
import { MoELayer, type AuxLossName, type ForwardContext, type HostRouting, type MoEConfig, type MoEOutput } from '../moe/layer.ts';
import { gatherRows } from '../ops/gather_rows.ts';
import { crossEntropy } from '../ops/cross_entropy.ts';
import type { Rng } from '../rng.ts';
import type { RouterConfig } from '../router/route.ts';
import { causalMask, causalSelfAttention, rmsNorm, ropeTables } from './blocks.ts';

export { crossEntropy };

/** The layer's router config from the run config's `router` section. */
export function routerFromConfig(cfg: Config): RouterConfig {
  const r = cfg.router;
  switch (r.type) {
    case 'topk': return { type: 'topk', scoring: r.scoring, order: r.order, renormalize: r.renormalize };
    case 'noisy_topk': return { type: 'noisy_topk' };
    case 'gumbel': return { type: 'gumbel', renormalize: r.renormalize || undefined };
    case 'expert_choice': return { type: 'expert_choice', capacityFactor: cfg.capacity_factor ?? 1 };
    case 'sinkhorn': return { type: 'sinkhorn', iterations: r.sinkhorn_iterations, scoring: r.scoring, renormalize: r.renormalize };
    case 'group_limited': return { type: 'group_limited', numGroups: r.num_groups, topkGroups: r.topk_groups, scoring: r.scoring, groupScore: r.group_score, renormalize: r.renormalize };
  }
}

/** Expert → device group for the group-level aux loss: router groups if configured, else expert-parallel ranks. */
export function expertGroups(cfg: Config): number[] {
  const E = cfg.expert_num * cfg.fine_grained;
  const groups = cfg.router.num_groups > 1 ? cfg.router.num_groups : cfg.parallel.ep_size;
  return Array.from({ length: E }, (_, i) => Math.floor(i / (E / groups)));
}

/**
 * The active aux losses and their weights, by name: the configured balance loss (when use_load_balance and its
 * weight > 0) and the z-loss (weight > 0). The layers compute exactly these; the step adds Σ weight · aux.
 */
export function auxLossWeights(cfg: Config): Partial<Record<AuxLossName, number>> {
  const w: Partial<Record<AuxLossName, number>> = {};
  if (cfg.use_load_balance && cfg.aux_loss.type !== 'none' && cfg.aux_loss.weight > 0) w[cfg.aux_loss.type] = cfg.aux_loss.weight;
  if (cfg.z_loss_weight > 0) w.z = cfg.z_loss_weight;
  return w;
}

/** The MoE layer config of one block (fine-grained experts applied). */
export function moeConfigFromConfig(cfg: Config): MoEConfig {
  const m = cfg.fine_grained;
  const aux = Object.keys(auxLossWeights(cfg)) as AuxLossName[];
  const ec = cfg.router.type === 'expert_choice';
  return {
    dim: cfg.dim, hidden: cfg.expert_hidden / m, numExperts: cfg.expert_num * m, topK: cfg.top_k * m,
    activation: cfg.activation as Activation, router: routerFromConfig(cfg),
    capacityFactor: ec || cfg.drop_policy === 'dropless' ? null : cfg.capacity_factor,
    capacityPolicy: ec ? 'dropless' : cfg.drop_policy,
    sharedExperts: cfg.shared_experts, auxLosses: aux,
    seqLen: cfg.model_type === 'moe_llama' ? cfg.seq_len : undefined,
    expertToGroup: aux.includes('group') ? expertGroups(cfg) : undefined,
    downScale: 1 / Math.sqrt(2 * cfg.layers),
    recompute: cfg.recompute,
    dispatcher: cfg.dispatcher,
  };
}

/** Per-layer forward context: the trainer's step context plus global-batch balance statistics. */
export type LayerContext = (layer: number) => ForwardContext;

/** What the forward pass asks for before each MoE layer: that layer's routing decisions on the host. */
export interface RoutingRequest {
  layer: MoELayer;
  /** the layer's input [T, D]. */
  x: tf.Tensor2D;
  ctx: ForwardContext;
}

/**
 * A forward pass written once as a generator: it yields before each MoE layer and takes the layer's host
 * routing back (or undefined: the layer reads its own decisions synchronously). forwardLM / forwardMlp
 * drive it synchronously, forwardLMAsync / forwardMlpAsync with `await data()` reads (what WebGPU allows).
 */
type ForwardSteps = Generator<RoutingRequest, ModelOutput, HostRouting | undefined>;

/**
 * The routing decisions of `layer` on x, read back with `await data()`. Router noise is drawn from
 * ctx.rng here and drawn again, identically, when the layer's forward routes on the tape: the stream's
 * state is put back after the read.
 */
export async function readLayerRouting(req: RoutingRequest): Promise<HostRouting> {
  const saved = req.ctx.rng?.getState();
  const host = await req.layer.readRouting(req.x, req.ctx);
  if (saved) req.ctx.rng!.setState(saved);
  return host;
}

/** Runs a forward generator to its end; each layer reads its own routing (a synchronous read). */
function runSync(steps: ForwardSteps): ModelOutput {
  let r = steps.next();
  while (!r.done) r = steps.next(undefined);
  return r.value;
}

/** Runs a forward generator to its end, reading each MoE layer's routing with `await data()`. */
async function runAsync(steps: ForwardSteps): Promise<ModelOutput> {
  let r = steps.next();
  while (!r.done) r = steps.next(await readLayerRouting(r.value));
  return r.value;
}

export interface ModelOutput {
  /** task loss: cross-entropy (moe_llama, nats/token) or MSE (moe_mlp). */
  loss: tf.Scalar;
  /** [T, V] logits (moe_llama) or [T, D] outputs (moe_mlp). */
  output: tf.Tensor2D;
  /** per MoE layer. */
  moe: MoEOutput[];
}

export class MoEModel {
  readonly cfg: Config;
  readonly vocab: number;
  readonly params: Record<string, tf.Variable> = {};
  readonly moeLayers: MoELayer[] = [];
  /** checkpoint-name prefix of each MoE layer's parameters (e.g. "blocks.2.moe."), in moeLayers order. */
  readonly moePrefixes: string[] = [];
  /** block index → MoE layer (or null for a dense block). */
  private readonly blockMoe: (MoELayer | null)[] = [];
  private rope: { cos: tf.Tensor2D; sin: tf.Tensor2D } | null = null;
  private mask: tf.Tensor2D | null = null;

  constructor(cfg: Config, vocab: number, rng: Rng) {
    this.cfg = cfg;
    this.vocab = vocab;
    const { dim: D, layers } = cfg;
    const p = this.params;
    const lm = cfg.model_type === 'moe_llama';
    // norm gains made in a tidy: a variable shares its initial tensor's data, and that tensor would outlive dispose()
    const ones = (n: number) => tf.tidy(() => tf.variable(tf.ones([n])));
    if (lm) {
      p.tok_emb = initVariable(rng, [vocab, D], 0.02);
      if (cfg.positions === 'learned') p.pos_emb = initVariable(rng, [cfg.seq_len, D], 0.02);
    }
    const moeCfg = moeConfigFromConfig(cfg);
    for (let i = 0; i < layers; i++) {
      const pre = lm ? `blocks.${i}` : `layers.${i}`;
      if (lm) {
        p[`${pre}.attn_norm`] = ones(D);
        for (const w of ['wq', 'wk', 'wv']) p[`${pre}.attn.${w}`] = initVariable(rng, [D, D], 0.02);
        p[`${pre}.attn.wo`] = initVariable(rng, [D, D], 0.02 / Math.sqrt(2 * layers));
        p[`${pre}.ffn_norm`] = ones(D);
      }
      if (!lm || i % cfg.moe_every === 0) {
        const layer = new MoELayer(moeCfg, rng);
        for (const [n, v] of Object.entries(layer.namedVariables())) p[`${pre}.moe.${n}`] = v;
        this.moeLayers.push(layer);
        this.moePrefixes.push(`${pre}.moe.`);
        this.blockMoe.push(layer);
      } else {
        const H = denseHidden(cfg);
        p[`${pre}.ffn.w1`] = initVariable(rng, [D, H], 0.02);
        p[`${pre}.ffn.w2`] = initVariable(rng, [H, D], 0.02 / Math.sqrt(2 * layers));
        if (cfg.activation === 'swiglu') p[`${pre}.ffn.w3`] = initVariable(rng, [D, H], 0.02);
        this.blockMoe.push(null);
      }
    }
    if (lm) {
      p.norm_f = ones(D);
      p.lm_head = initVariable(rng, [D, vocab], 0.02);
    }
  }

  /** Non-trainable per-layer state a checkpoint must carry (aux-free bias, gate adjustment). */
  buffers(): Record<string, tf.Variable> {
    const out: Record<string, tf.Variable> = {};
    this.moeLayers.forEach((l, i) => {
      out[`moe.${i}.expert_bias`] = l.expertBias;
      out[`moe.${i}.logit_adjust`] = l.logitAdjust;
    });
    return out;
  }

  variables(): tf.Variable[] {
    return Object.values(this.params);
  }

  /** Number of trainable parameters. */
  numParams(): number {
    return this.variables().reduce((s, v) => s + v.size, 0);
  }

  /** LM forward on token ids [B·L] → logits [B·L, V] and cross-entropy against targets (synchronous reads). */
  forwardLM(inputs: Int32Array, targets: Int32Array, B: number, L: number, ctx: LayerContext): ModelOutput {
    return runSync(this.lmSteps(inputs, targets, B, L, ctx));
  }

  /** forwardLM with each MoE layer's routing read by `await data()`: the one forward pass every backend trains with. */
  forwardLMAsync(inputs: Int32Array, targets: Int32Array, B: number, L: number, ctx: LayerContext): Promise<ModelOutput> {
    return runAsync(this.lmSteps(inputs, targets, B, L, ctx));
  }

  /** moe_mlp forward: x [T, D] through the MoE layers in turn; MSE against targets (synchronous reads). */
  forwardMlp(x: tf.Tensor2D, target: tf.Tensor2D, ctx: LayerContext): ModelOutput {
    return runSync(this.mlpSteps(x, target, ctx));
  }

  /** forwardMlp with each MoE layer's routing read by `await data()`. */
  forwardMlpAsync(x: tf.Tensor2D, target: tf.Tensor2D, ctx: LayerContext): Promise<ModelOutput> {
    return runAsync(this.mlpSteps(x, target, ctx));
  }

  private *lmSteps(inputs: Int32Array, targets: Int32Array, B: number, L: number, ctx: LayerContext): ForwardSteps {
    const { heads } = this.cfg;
    const p = this.params as Record<string, tf.Tensor>;
    if (!this.mask || this.mask.shape[0] !== L) this.prepare(L);
    let h = gatherRows(p.tok_emb as tf.Tensor2D, tf.tensor1d(inputs, 'int32')); // [B·L, D]
    if (p.pos_emb) h = tf.add(h, tf.tile(p.pos_emb, [B, 1])) as tf.Tensor2D;
    const moe: MoEOutput[] = [];
    for (const [i, layer] of this.blockMoe.entries()) {
      const pre = `blocks.${i}`;
      const a = causalSelfAttention(rmsNorm(h, p[`${pre}.attn_norm`] as tf.Tensor1D),
        { wq: p[`${pre}.attn.wq`] as tf.Tensor2D, wk: p[`${pre}.attn.wk`] as tf.Tensor2D, wv: p[`${pre}.attn.wv`] as tf.Tensor2D, wo: p[`${pre}.attn.wo`] as tf.Tensor2D },
        B, L, heads, this.rope, this.mask!);
      h = tf.add(h, a) as tf.Tensor2D;
      const x = rmsNorm(h, p[`${pre}.ffn_norm`] as tf.Tensor1D);
      let f: tf.Tensor2D;
      if (layer) {
        const c = ctx(moe.length);
        const host = yield { layer, x, ctx: c };
        const out = layer.forward(x, host ? { ...c, hostRouting: host } : c);
        moe.push(out);
        f = out.y;
      } else {
        f = ffn(x, p[`${pre}.ffn.w1`] as tf.Tensor2D, p[`${pre}.ffn.w2`] as tf.Tensor2D, (p[`${pre}.ffn.w3`] as tf.Tensor2D) ?? null, this.cfg.activation as Activation);
      }
      h = tf.add(h, f) as tf.Tensor2D;
    }
    const logits = tf.matMul(rmsNorm(h, p.norm_f as tf.Tensor1D), p.lm_head) as tf.Tensor2D; // [B·L, V]
    return { loss: crossEntropy(logits, targets), output: logits, moe };
  }

  private *mlpSteps(x: tf.Tensor2D, target: tf.Tensor2D, ctx: LayerContext): ForwardSteps {
    let h = x;
    const moe: MoEOutput[] = [];
    for (const [i, layer] of this.moeLayers.entries()) {
      const c = ctx(i);
      const host = yield { layer, x: h, ctx: c };
      const out = layer.forward(h, host ? { ...c, hostRouting: host } : c);
      moe.push(out);
      h = out.y;
    }
    return { loss: tf.losses.meanSquaredError(target, h) as tf.Scalar, output: h, moe };
  }

  private prepare(L: number): void {
    this.rope?.cos.dispose();
    this.rope?.sin.dispose();
    this.mask?.dispose();
    // kept: prepare may run inside a caller's tidy or gradient scope, and these outlive it
    const rope = this.cfg.positions === 'rotary' ? ropeTables(L, this.cfg.dim / this.cfg.heads) : null;
    this.rope = rope ? { cos: tf.keep(rope.cos), sin: tf.keep(rope.sin) } : null;
    this.mask = tf.keep(causalMask(L));
  }

  dispose(): void {
    for (const v of this.variables()) v.dispose();
    for (const l of this.moeLayers) { l.expertBias.dispose(); l.logitAdjust.dispose(); }
    this.rope?.cos.dispose();
    this.rope?.sin.dispose();
    this.mask?.dispose();
  }
}

