"""Chapter 8 exercises, solved.

1. Implement top-k yourself: keep each row's k largest logits (ties: the lower index first),
   set the rest to -inf. Compare with `sampling.top_k_filter`.
2. Implement top-p (nucleus) yourself: keep the most likely tokens while the probability mass
   ranked above a token is below p. Compare with `sampling.top_p_filter`.
3. One cached attention step by hand: feed a prompt through an attention layer with a
   `KVCache`, then the next token alone; compute that token's output yourself from its query
   and the cached keys and values, and compare with recomputing the whole sequence.
"""
import math

import numpy as np

import tinylm as tl
from tinylm import nn
from tinylm.sampling import top_k_filter, top_p_filter


def top_k(logits, k):
    out = np.full_like(logits, -np.inf)
    for b, row in enumerate(logits):
        keep = sorted(range(len(row)), key=lambda i: (-row[i], i))[:k]   # largest first, lower index on ties
        out[b, keep] = row[keep]
    return out


def top_p(logits, p):
    out = np.full_like(logits, -np.inf)
    for b, row in enumerate(logits):
        probs = np.exp(row - row.max())
        probs /= probs.sum()
        mass = 0.0
        for i in sorted(range(len(row)), key=lambda i: (-row[i], i)):
            if mass >= p:
                break
            out[b, i] = row[i]
            mass += probs[i]
    return out


@tl.no_grad()
def cached_step(attn, x):
    """x (1, T, C): the output at position T-1, from the cache, by hand and by the layer."""
    B, T, C = x.shape
    nh, hs = attn.n_head, C // attn.n_head
    cache = nn.KVCache(n_layer=1, batch=B, n_head=nh, max_len=T, head_size=hs, dtype=x.dtype)
    attn(x[:, :T - 1], kv_cache=cache, layer=0)              # the prompt: fills keys and values 0..T-2
    cache.advance(T - 1)
    by_layer = attn(x[:, T - 1:], kv_cache=cache, layer=0)   # the new token alone: (B, 1, C)
    cache.advance(1)
    W, b = attn.c_attn.weight.numpy(), attn.c_attn.bias.numpy()
    q = (x.numpy()[:, -1] @ W.T + b)[:, :C].reshape(B, nh, 1, hs)     # only the new query
    K, V = cache.k[0][:, :, :T], cache.v[0][:, :, :T]         # (B, nh, T, hs): every key and value
    s = q @ K.transpose(0, 1, 3, 2) / math.sqrt(hs)           # (B, nh, 1, T): no mask needed, all are past
    a = np.exp(s - s.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    y = (a @ V).transpose(0, 2, 1, 3).reshape(B, 1, C)        # concat the heads
    by_hand = y @ attn.c_proj.weight.numpy().T + attn.c_proj.bias.numpy()
    return by_hand, by_layer.numpy()


def check():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 9)).astype(np.float32)
    logits[0, 3] = logits[0, 5] = logits[0].max() + 1        # a tie at the top
    for k in (1, 2, 5, 9):
        assert np.array_equal(top_k(logits, k), top_k_filter(logits, k)), k
    for p in (0.1, 0.5, 0.9, 0.99):
        assert np.array_equal(top_p(logits, p), top_p_filter(logits, p)), p

    tl.manual_seed(0)
    attn = nn.CausalSelfAttention(n_embd=16, n_head=4).to(tl.float64)
    attn.eval()
    x = tl.randn(1, 6, 16, dtype=tl.float64)
    by_hand, by_layer = cached_step(attn, x)
    with tl.no_grad():
        full = attn(x).numpy()[:, -1:]                        # recompute all 6 positions
    assert np.allclose(by_hand, full, atol=1e-12) and np.allclose(by_layer, full, atol=1e-12)


if __name__ == "__main__":
    check()
    print("ch08_sampling: all checks passed")
