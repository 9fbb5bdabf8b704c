"""The same GPT in PyTorch (nanoGPT's architecture), for side-by-side benchmarks only.

Parameter names match tinylm's (`wte`, `wpe`, `h.0.attn.c_attn`, ...), so tinylm's initial
weights copy across by name and the first losses can be compared. Needs the `bench` extra.
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_head, self.dropout = c.n_head, c.dropout
        self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.c_proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.resid_dropout = nn.Dropout(c.dropout)

    def forward(self, x, cache=None):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)   # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if cache is not None:  # generation: append to this layer's cache
            if cache[0] is not None:
                k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
            cache[0], cache[1] = k, v
        causal = cache is None or T > 1
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = nn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias)
        self.c_proj = nn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)
        self.gelu = nn.GELU(approximate="tanh")
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.attn = CausalSelfAttention(c)
        self.ln_2 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.mlp = MLP(c)

    def forward(self, x, cache=None):
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))


class TorchGPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.block_size, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.h = nn.ModuleList([Block(c) for _ in range(c.n_layer)])
        self.ln_f = nn.LayerNorm(c.n_embd, bias=c.bias)

    def forward(self, idx, targets=None, caches=None, pos0=0):
        B, T = idx.shape
        pos = torch.arange(pos0, pos0 + T, dtype=torch.long)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for i, block in enumerate(self.h):
            x = block(x, None if caches is None else caches[i])
        x = self.ln_f(x)
        logits = F.linear(x, self.wte.weight)  # tied head
        loss = None if targets is None else F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, use_cache=True):
        """Greedy decoding (the timing is what matters), with or without a KV cache."""
        if not use_cache:
            for _ in range(max_new_tokens):
                ctx = idx[:, -self.config.block_size:]
                logits, _ = self(ctx)
                idx = torch.cat([idx, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
            return idx
        caches = [[None, None] for _ in self.h]
        logits, _ = self(idx, caches=caches)
        pos = idx.shape[1]
        for _ in range(max_new_tokens):
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            idx = torch.cat([idx, nxt], dim=1)
            logits, _ = self(nxt, caches=caches, pos0=pos)
            pos += 1
        return idx


def from_tinylm(model):
    """A TorchGPT with a tinylm GPT's config and weights (copied by parameter name)."""
    tm = TorchGPT(model.config)
    with torch.no_grad():
        own = dict(tm.named_parameters())
        for name, p in model.named_parameters():
            own[name].copy_(torch.from_numpy(np.ascontiguousarray(p.numpy())))
    return tm


def configure_adamw(model, lr, weight_decay, betas=(0.9, 0.95)):
    """nanoGPT's AdamW: decay on ndim >= 2 parameters only."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, foreach=True)


def seconds_per(fn, sync=None):
    """Decorator-free helper: time one call of fn (with an optional device sync)."""
    import time
    if sync:
        sync()
    t0 = time.perf_counter()
    fn()
    if sync:
        sync()
    return time.perf_counter() - t0


__all__ = ["TorchGPT", "from_tinylm", "configure_adamw", "seconds_per", "math"]
