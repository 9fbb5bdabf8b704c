"""Attention and the transformer block: KVCache, MultiHeadAttention, CausalSelfAttention, Block.

MultiHeadAttention projects x to queries, keys and values at once (`c_attn`), splits the heads,
calls F.scaled_dot_product_attention (the one attention implementation, a fused op) and merges
the heads back through `c_proj`. During generation a `KVCache` keeps each layer's keys and
values, so each new token attends to the past without recomputing it. Inference caches hold
raw arrays outside the graph: use them under `no_grad()`.

Glossary for shape comments: B batch, T time (new tokens), S time (all keys, cache included),
C channels (n_embd), nh heads, hs head size (C // nh).
Reference: nanoGPT `model.py` (CausalSelfAttention, Block), Hugging Face GPT-2 (names).
"""
import numpy as np

from .. import backend
from ..functional import core as F
from .layers import LayerNorm, Linear, Dropout, MLP, _positive_int, _probability
from .module import Module


class KVCache:
    """Keys and values of the tokens seen so far, per layer: k[i], v[i] (B, nh, max_len, hs) each.

    `length` tokens are filled; each attention layer appends its new keys and values, then
    `advance(T)` (called by the model after all layers) moves `length` on.
    """

    def __init__(self, n_layer, batch, n_head, max_len, head_size, device="cpu", dtype=None):
        xp = backend.array_module(device)
        shape = (batch, n_head, max_len, head_size)                # (B, nh, max_len, hs)
        dtype = np.dtype(dtype or backend.DEFAULT_DTYPE)
        self.k = [xp.zeros(shape, dtype=dtype) for _ in range(n_layer)]
        self.v = [xp.zeros(shape, dtype=dtype) for _ in range(n_layer)]
        self.max_len, self.length = max_len, 0

    def update(self, layer, k, v):
        """Store new k, v (B, nh, T, hs) of `layer` after the cached ones; all of them -> (B, nh, S, hs)."""
        t0, t1 = self.length, self.length + k.shape[2]
        if t1 > self.max_len:
            raise ValueError(f"KVCache: {t1} tokens do not fit a cache of {self.max_len}")
        self.k[layer][:, :, t0:t1] = k
        self.v[layer][:, :, t0:t1] = v
        return self.k[layer][:, :, :t1], self.v[layer][:, :, :t1]  # (B, nh, S, hs)

    def advance(self, n):
        """Mark n more tokens as stored (after every layer has seen them)."""
        self.length += n

    def reset(self):
        """Forget every token (the arrays are kept for reuse)."""
        self.length = 0


class MultiHeadAttention(Module):
    """Self-attention over nh heads at once: fused QKV projection `c_attn`, output projection `c_proj`.

    Self-attention only: queries, keys and values are all projected from the one input x, so
    `forward(x, *, attn_mask=None, kv_cache=None, layer=0, return_weights=False)` takes x alone
    and the rest by keyword (not torch's `mha(query, key, value)`). `causal=True` masks the
    future (CausalSelfAttention); attn_mask is boolean, True where allowed, broadcastable to
    (B, nh, T, S).
    """

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True, causal=False, device="cpu"):
        n_embd = _positive_int(n_embd, "n_embd", type(self).__name__)
        n_head = _positive_int(n_head, "n_head", type(self).__name__)
        dropout = _probability(dropout, "dropout", type(self).__name__)
        if n_embd % n_head:
            raise ValueError(f"n_embd {n_embd} is not divisible by n_head {n_head}")
        self.n_embd, self.n_head, self.causal, self.dropout_p = n_embd, n_head, causal, dropout
        self.c_attn = Linear(n_embd, 3 * n_embd, bias=bias, device=device)   # W^Q, W^K, W^V stacked
        self.c_proj = Linear(n_embd, n_embd, bias=bias, device=device)       # W^O
        self.resid_dropout = Dropout(dropout)

    def forward(self, x, *more, attn_mask=None, kv_cache=None, layer=0, return_weights=False):
        if more:  # e.g. torch's mha(query, key, value): say so, rather than fail later on a "mask" or "cache"
            raise TypeError(f"{type(self).__name__} is self-attention: forward(x) takes one input x (B, T, C) "
                            f"for queries, keys and values, got {1 + len(more)} positional arguments; pass "
                            "attn_mask, kv_cache, layer and return_weights by keyword")
        qkv = self.c_attn(x)                                       # (B, T, 3C)
        if kv_cache is not None and qkv.requires_grad:  # recorded for backward, but the cache would cut the graph
            raise RuntimeError("a KVCache is for inference: call the model under tinylm.no_grad()")
        y = F.causal_self_attention(qkv, self.n_head, self.dropout_p, self.training, causal=self.causal,
                                    kv_cache=kv_cache, layer=layer, attn_mask=attn_mask,
                                    return_weights=return_weights)  # (B, T, C)
        if return_weights:
            y, weights = y                                         # weights (B, nh, T, S)
        y = self.resid_dropout(self.c_proj(y))                     # (B, T, C)
        return (y, weights) if return_weights else y

    def extra_repr(self):
        return f"n_embd={self.n_embd}, n_head={self.n_head}, causal={self.causal}"


class CausalSelfAttention(MultiHeadAttention):
    """MultiHeadAttention that masks the future (GPT's attention)."""

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True, device="cpu"):
        super().__init__(n_embd, n_head, dropout=dropout, bias=bias, causal=True, device=device)


class Block(Module):
    """A pre-LN transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True, device="cpu"):
        self.ln_1 = LayerNorm(n_embd, bias=bias, device=device)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout=dropout, bias=bias, device=device)
        self.ln_2 = LayerNorm(n_embd, bias=bias, device=device)
        self.mlp = MLP(n_embd, dropout=dropout, bias=bias, device=device)

    def forward(self, x, *, kv_cache=None, layer=0):
        x = x + self.attn(self.ln_1(x), kv_cache=kv_cache, layer=layer)  # (B, T, C)
        x = x + self.mlp(self.ln_2(x))                                    # (B, T, C)
        return x
