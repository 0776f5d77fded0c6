"""An independent Mixtral forward pass in NumPy (float64), written from the semantics of Hugging Face's
MixtralForCausalLM: token embedding; per layer input RMSNorm, causal multi-head attention with rotate-half RoPE,
residual, post-attention RMSNorm, sparse MoE block (softmax router, top-k, weights renormalized over the k,
experts w2(silu(w1 x) * w3 x)), residual; final RMSNorm; LM head.

Usage: mixtral_numpy.py EXPORT_DIR PROMPTS_JSON  ->  prints {"logits": [[...] per prompt], "tokenizer_ok": bool}
PROMPTS_JSON is a list of token-id lists. Reads config.json and model.safetensors (parsed here: 8-byte length,
JSON header, little-endian data) and, when present, checks tokenizer.json maps every byte to its id.
"""
import json
import struct
import sys

import numpy as np


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        assert meta["dtype"] == "F32", (name, meta["dtype"])
        begin, end = meta["data_offsets"]
        arr = np.frombuffer(data[8 + n + begin : 8 + n + end], dtype="<f4").reshape(meta["shape"])
        out[name] = arr.astype(np.float64)
    return out


def rms_norm(x, weight, eps):
    return weight * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def rope(x, theta):
    # x [heads, L, head_dim]; inv_freq_j = theta^(-2j/d), cos/sin over [freqs, freqs]
    d = x.shape[-1]
    inv_freq = 1.0 / theta ** (np.arange(0, d, 2, dtype=np.float64) / d)
    freqs = np.outer(np.arange(x.shape[1], dtype=np.float64), inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)
    return x * np.cos(emb) + rotate_half(x) * np.sin(emb)


def softmax(x, axis=-1):
    z = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def silu(x):
    return x / (1.0 + np.exp(-x))


def forward(cfg, w, ids):
    D, H = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = cfg.get("head_dim") or D // H
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
    E, k = cfg["num_local_experts"], cfg["num_experts_per_tok"]
    L = len(ids)
    h = w["model.embed_tokens.weight"][np.array(ids)]
    mask = np.triu(np.full((L, L), -np.inf), 1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = rms_norm(h, w[p + "input_layernorm.weight"], eps)
        q, kk, v = (x @ w[p + f"self_attn.{n}_proj.weight"].T for n in "qkv")
        q, kk, v = (t.reshape(L, H, hd).transpose(1, 0, 2) for t in (q, kk, v))
        q, kk = rope(q, theta), rope(kk, theta)
        att = softmax(q @ kk.transpose(0, 2, 1) / np.sqrt(hd) + mask)
        o = (att @ v).transpose(1, 0, 2).reshape(L, H * hd)
        h = h + o @ w[p + "self_attn.o_proj.weight"].T
        x = rms_norm(h, w[p + "post_attention_layernorm.weight"], eps)
        probs = softmax(x @ w[p + "block_sparse_moe.gate.weight"].T)
        y = np.zeros_like(x)
        for t in range(L):
            top = np.argsort(-probs[t], kind="stable")[:k]
            weights = probs[t, top] / probs[t, top].sum()
            for e, g in zip(top, weights):
                ex = p + f"block_sparse_moe.experts.{e}."
                a = silu(w[ex + "w1.weight"] @ x[t]) * (w[ex + "w3.weight"] @ x[t])
                y[t] += g * (w[ex + "w2.weight"] @ a)
        h = h + y
    h = rms_norm(h, w["model.norm.weight"], eps)
    return h @ w["lm_head.weight"].T


def bytes_to_unicode():
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    out, n = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + n)
            n += 1
    return out


def main():
    folder, prompts_file = sys.argv[1], sys.argv[2]
    with open(f"{folder}/config.json") as f:
        cfg = json.load(f)
    assert cfg["model_type"] == "mixtral" and cfg["architectures"] == ["MixtralForCausalLM"]
    w = load_safetensors(f"{folder}/model.safetensors")
    with open(prompts_file) as f:
        prompts = json.load(f)
    logits = [forward(cfg, w, ids).tolist() for ids in prompts]
    tokenizer_ok = None
    try:
        with open(f"{folder}/tokenizer.json") as f:
            tok = json.load(f)
        vocab = tok["model"]["vocab"]
        tokenizer_ok = tok["pre_tokenizer"]["type"] == "ByteLevel" and all(vocab[c] == b for b, c in bytes_to_unicode().items())
    except FileNotFoundError:
        pass
    print(json.dumps({"logits": logits, "tokenizer_ok": tokenizer_ok}))


if __name__ == "__main__":
    main()
