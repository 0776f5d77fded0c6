"""PyTorch reference: one training step of a LLaMA-style MoE language model, timed.

The model a PyTorch user would write for the same job (eager, fp32, no fused kernels):
token embedding -> L x [RMSNorm -> causal attention with RoPE -> residual,
RMSNorm -> MoE (softmax router, top-k, dropless sort-based dispatch, SwiGLU experts,
Switch aux loss a*E*sum f_i P_i + z-loss) -> residual] -> RMSNorm -> LM head -> cross-entropy,
AdamW with global-norm clipping at 1.0. Works with torch 1.13 (CPU) and torch 2.x (CUDA).

  python3 bench/torch/moe_lm.py --device cpu --layers 4 --dim 128 --heads 4 --experts 8 \
      --topk 2 --expert-hidden 256 --vocab 256 --batch 8 --seq 128
prints: params, ms/step (median of --steps timed steps after --warmup), tokens/s.
"""
import argparse, math, statistics, time
import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
p.add_argument('--layers', type=int, default=4); p.add_argument('--dim', type=int, default=128)
p.add_argument('--heads', type=int, default=4); p.add_argument('--experts', type=int, default=8)
p.add_argument('--topk', type=int, default=2); p.add_argument('--expert-hidden', type=int, default=256)
p.add_argument('--vocab', type=int, default=256); p.add_argument('--batch', type=int, default=8)
p.add_argument('--seq', type=int, default=128); p.add_argument('--steps', type=int, default=10)
p.add_argument('--warmup', type=int, default=3); p.add_argument('--threads', type=int, default=0)
p.add_argument('--tf32', action='store_true')
a = p.parse_args()
if a.threads: torch.set_num_threads(a.threads)
if a.device == 'cuda':
    torch.backends.cuda.matmul.allow_tf32 = a.tf32; torch.backends.cudnn.allow_tf32 = a.tf32
torch.manual_seed(0)
dev = torch.device(a.device)


class RMSNorm(nn.Module):
    def __init__(s, d):
        super().__init__(); s.w = nn.Parameter(torch.ones(d))
    def forward(s, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * s.w


def rope(x, cos, sin):  # x [B, h, T, hd]
    x1, x2 = x[..., ::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), -1).flatten(-2)


class Attention(nn.Module):
    def __init__(s, d, h):
        super().__init__(); s.h = h; s.qkv = nn.Linear(d, 3 * d, bias=False); s.o = nn.Linear(d, d, bias=False)
    def forward(s, x, cos, sin, mask):
        B, T, D = x.shape; hd = D // s.h
        q, k, v = s.qkv(x).view(B, T, 3, s.h, hd).permute(2, 0, 3, 1, 4)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        att = att.masked_fill(mask, float('-inf')).softmax(-1)
        return s.o((att @ v).transpose(1, 2).reshape(B, T, D))


class MoE(nn.Module):
    def __init__(s, d, E, H, k):
        super().__init__(); s.E, s.k = E, k
        s.gate = nn.Linear(d, E, bias=False)
        s.w1 = nn.Parameter(torch.randn(E, d, H) * 0.02); s.w3 = nn.Parameter(torch.randn(E, d, H) * 0.02)
        s.w2 = nn.Parameter(torch.randn(E, H, d) * 0.02)
    def forward(s, x):
        B, T, D = x.shape; x = x.reshape(-1, D); N = x.shape[0]
        logits = s.gate(x); probs = logits.softmax(-1)
        val, idx = probs.topk(s.k, -1)
        flat = idx.reshape(-1); tok = torch.arange(N, device=x.device).repeat_interleave(s.k)
        order = torch.argsort(flat, stable=True); tok_s = tok[order]; w = val.reshape(-1)[order]
        counts = torch.bincount(flat, minlength=s.E)
        xs = x[tok_s]; outs = []; off = 0
        for e, n in enumerate(counts.tolist()):
            xe = xs[off:off + n]; off += n
            outs.append((F.silu(xe @ s.w1[e]) * (xe @ s.w3[e])) @ s.w2[e])
        y = torch.zeros_like(x).index_add_(0, tok_s, torch.cat(outs) * w[:, None])
        f = counts.float() / (N * s.k); P = probs.mean(0)
        aux = 0.01 * s.E * (f * P).sum() + 1e-3 * torch.logsumexp(logits, -1).pow(2).mean()
        return y.reshape(B, T, D), aux


class Block(nn.Module):
    def __init__(s):
        super().__init__(); s.n1 = RMSNorm(a.dim); s.att = Attention(a.dim, a.heads)
        s.n2 = RMSNorm(a.dim); s.moe = MoE(a.dim, a.experts, a.expert_hidden, a.topk)
    def forward(s, x, cos, sin, mask):
        x = x + s.att(s.n1(x), cos, sin, mask); y, aux = s.moe(s.n2(x)); return x + y, aux


class LM(nn.Module):
    def __init__(s):
        super().__init__(); s.emb = nn.Embedding(a.vocab, a.dim); s.blocks = nn.ModuleList(Block() for _ in range(a.layers))
        s.norm = RMSNorm(a.dim); s.head = nn.Linear(a.dim, a.vocab, bias=False)
        hd = a.dim // a.heads; inv = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        ang = torch.arange(a.seq).float()[:, None] * inv[None]
        s.register_buffer('cos', ang.cos()); s.register_buffer('sin', ang.sin())
        s.register_buffer('mask', torch.triu(torch.ones(a.seq, a.seq, dtype=torch.bool), 1))
    def forward(s, ids, tgt):
        x = s.emb(ids); aux = 0.0
        for b in s.blocks:
            x, al = b(x, s.cos, s.sin, s.mask); aux = aux + al
        logits = s.head(s.norm(x))
        return F.cross_entropy(logits.reshape(-1, a.vocab), tgt.reshape(-1)) + aux


model = LM().to(dev)
opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.95), weight_decay=0.1)
ids = torch.randint(0, a.vocab, (a.batch, a.seq + 1), device=dev)
def sync():
    if dev.type == 'cuda': torch.cuda.synchronize()
def step():
    opt.zero_grad(set_to_none=True)
    loss = model(ids[:, :-1], ids[:, 1:]); loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); return loss
for _ in range(a.warmup): step()
times = []
for _ in range(a.steps):
    sync(); t = time.perf_counter(); step(); sync(); times.append(time.perf_counter() - t)
ms = statistics.median(times) * 1000
nparams = sum(q.numel() for q in model.parameters())
print(f"torch {torch.__version__} {a.device} threads={torch.get_num_threads()} tf32={a.tf32} params={nparams} "
      f"L={a.layers} D={a.dim} E={a.experts} k={a.topk} H={a.expert_hidden} B={a.batch} T={a.seq}: "
      f"{ms:.1f} ms/step, {a.batch * a.seq / (ms / 1000):.0f} tokens/s")
