/**
 * Export to Hugging Face: a trained moe_llama checkpoint as a Mixtral checkpoint (config.json, model.safetensors,
 * tokenizer.json) that `transformers` loads with MixtralForCausalLM. Mixtral is our model exactly when:
 *   RMSNorm (ε 1e-5) → causal attention with rotate-half RoPE (θ 10000, no biases, no GQA) → RMSNorm → MoE FFN in
 *   every block, SwiGLU experts y = W2·(silu(W1·x) ⊙ W3·x), router softmax over E logits x·Wg, top-k, weights
 *   renormalized over the k (= softmax over the k picked logits), no shared experts, untied LM head.
 * Everything else is refused with the field that breaks the mapping. Mixtral is dropless: a model trained with a
 * capacity factor computes every token there (a warning says so).
 * Weights: ours multiply from the right (x·W, W [in, out]); Hugging Face's Linear stores [out, in], so each matrix is
 * transposed. Experts are written per expert (`experts.{e}.w1.weight` …), the layout of Mixtral's released
 * checkpoints, which transformers 4 loads as is and transformers 5 fuses on load.
 */
import type { Config } from '../config/schema.ts';

/** A tensor as plain data: row-major elements and shape. */
export interface PlainTensor {
  data: Float32Array;
  shape: number[];
}

/** Why a config cannot be exported as Mixtral (empty: it can). */
export function mixtralMismatches(cfg: Config): string[] {
  const why: string[] = [];
  const need = (ok: boolean, field: string, value: unknown, want: string) => {
    if (!ok) why.push(`${field} = ${JSON.stringify(value)}: Mixtral needs ${want}`);
  };
  need(cfg.model_type === 'moe_llama', 'model_type', cfg.model_type, 'moe_llama (a language model)');
  need(cfg.positions === 'rotary', 'positions', cfg.positions, 'rotary (RoPE)');
  need(cfg.activation === 'swiglu', 'activation', cfg.activation, 'swiglu experts');
  need(cfg.moe_every === 1, 'moe_every', cfg.moe_every, '1 (an MoE FFN in every block)');
  need(cfg.shared_experts === 0, 'shared_experts', cfg.shared_experts, '0 (Mixtral has no shared experts)');
  const r = cfg.router;
  need(r.type === 'topk' || r.type === 'noisy_topk', 'router.type', r.type, 'topk (noisy_topk routes as topk-softmax at inference)');
  if (r.type === 'topk') {
    need(r.scoring === 'softmax', 'router.scoring', r.scoring, 'softmax');
    need(r.order === 'topk-softmax' || r.renormalize, 'router.order / router.renormalize', `${r.order}, renormalize ${r.renormalize}`,
      'order topk-softmax, or softmax-topk with renormalize: true (Mixtral renormalizes the k weights)');
  }
  return why;
}

/** Fields transformers validates as floats: JSON has one number type, so an integral value must be written "0.0". */
const FLOAT_FIELDS = ['rms_norm_eps', 'rope_theta', 'attention_dropout', 'router_jitter_noise', 'router_aux_loss_coef'];

/** config.json text with FLOAT_FIELDS always carrying a decimal point (transformers 5 rejects `"router_jitter_noise": 0`). */
export function configJsonText(config: Record<string, unknown>): string {
  const lines = JSON.stringify(config, null, 2).split('\n');
  return lines.map((line) => line.replace(/^(\s*"(\w+)": )(-?\d+)(,?)$/, (m, head: string, key: string, n: string, comma: string) =>
    (FLOAT_FIELDS.includes(key) ? `${head}${n}.0${comma}` : m))).join('\n') + '\n';
}

/** Mixtral's config.json for our config and vocabulary. */
export function mixtralConfig(cfg: Config, vocab: number): Record<string, unknown> {
  const m = cfg.fine_grained;
  return {
    architectures: ['MixtralForCausalLM'],
    model_type: 'mixtral',
    vocab_size: vocab,
    hidden_size: cfg.dim,
    intermediate_size: cfg.expert_hidden / m,
    num_hidden_layers: cfg.layers,
    num_attention_heads: cfg.heads,
    num_key_value_heads: cfg.heads,
    head_dim: cfg.dim / cfg.heads,
    hidden_act: 'silu',
    max_position_embeddings: Math.max(cfg.seq_len, 4096),
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    sliding_window: null,
    attention_dropout: 0,
    num_local_experts: cfg.expert_num * m,
    num_experts_per_tok: cfg.top_k * m,
    router_jitter_noise: 0,
    output_router_logits: false,
    router_aux_loss_coef: cfg.aux_loss.type === 'switch' ? cfg.aux_loss.weight : 0,
    tie_word_embeddings: false,
    use_cache: true,
    bos_token_id: null,
    eos_token_id: null,
    pad_token_id: null,
    torch_dtype: 'float32',
  };
}

/** Mᵀ of a row-major [rows, cols] block starting at `offset` of `src`. */
function transposed(src: Float32Array, rows: number, cols: number, offset = 0): PlainTensor {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = src[offset + i * cols + j];
  return { data: out, shape: [cols, rows] };
}

/** Our checkpoint tensors (names as in model.safetensors) → Mixtral's tensor names and layouts (header). */
export function mixtralTensors(cfg: Config, params: Record<string, PlainTensor>): Record<string, PlainTensor> {
  const get = (name: string): PlainTensor => {
    const t = params[name];
    if (!t) throw new Error(`export hf: the checkpoint has no tensor '${name}'`);
    return t;
  };
  const D = cfg.dim;
  const out: Record<string, PlainTensor> = {};
  out['model.embed_tokens.weight'] = get('tok_emb');
  for (let i = 0; i < cfg.layers; i++) {
    const pre = `blocks.${i}`, hf = `model.layers.${i}`;
    out[`${hf}.input_layernorm.weight`] = get(`${pre}.attn_norm`);
    out[`${hf}.post_attention_layernorm.weight`] = get(`${pre}.ffn_norm`);
    for (const [ours, theirs] of [['wq', 'q_proj'], ['wk', 'k_proj'], ['wv', 'v_proj'], ['wo', 'o_proj']]) {
      out[`${hf}.self_attn.${theirs}.weight`] = transposed(get(`${pre}.attn.${ours}`).data, D, D);
    }
    const gate = get(`${pre}.moe.gate`); // [D, E]
    const E = gate.shape[1];
    out[`${hf}.block_sparse_moe.gate.weight`] = transposed(gate.data, D, E);
    const w1 = get(`${pre}.moe.experts.w1`), w2 = get(`${pre}.moe.experts.w2`), w3 = get(`${pre}.moe.experts.w3`);
    const H = w1.shape[2];
    for (let e = 0; e < E; e++) {
      const x = `${hf}.block_sparse_moe.experts.${e}`;
      out[`${x}.w1.weight`] = transposed(w1.data, D, H, e * D * H); // [H, D]
      out[`${x}.w3.weight`] = transposed(w3.data, D, H, e * D * H);
      out[`${x}.w2.weight`] = transposed(w2.data, H, D, e * H * D); // [D, H]
    }
  }
  out['model.norm.weight'] = get('norm_f');
  out['lm_head.weight'] = transposed(get('lm_head').data, D, get('lm_head').shape[1]);
  return out;
}

/** GPT-2's reversible byte → printable character map (the ByteLevel pre-tokenizer's alphabet). */
export function byteToUnicode(): string[] {
  const keep = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(keep(b) ? b : 256 + n++));
  return out;
}

/** tokenizer.json (Hugging Face tokenizers) for the byte tokenizer: id = byte, a ByteLevel BPE with no merges. */
export function byteTokenizerJson(): Record<string, unknown> {
  const chars = byteToUnicode();
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false,
      vocab: Object.fromEntries(chars.map((c, b) => [c, b])), merges: [],
    },
  };
}
