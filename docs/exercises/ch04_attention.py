"""Chapter 4 exercises, solved.

1. Derive softmax's backward. With y = softmax(x) over the last axis, dy_i/dx_j = y_i (δ_ij - y_j),
   so for an upstream gradient g:  dL/dx = y * (g - sum_j g_j y_j).  Compare with `F.softmax`.
2. Compute multi-head causal self-attention one head at a time, in NumPy, from the weights of
   an `nn.CausalSelfAttention`, and compare with the layer (which does every head at once).
"""
import math

import numpy as np

import tinylm as tl
import tinylm.functional as F
from tinylm import nn


def softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def softmax_backward(y, g):
    return y * (g - (g * y).sum(-1, keepdims=True))


def heads_one_at_a_time(attn, x):
    """x (B, T, C) -> (B, T, C), with a Python loop over the heads."""
    B, T, C = x.shape
    nh = attn.n_head
    hs = C // nh                                              # d_k = hs: each head has C / nh channels
    W, b = attn.c_attn.weight.numpy(), attn.c_attn.bias.numpy()   # (3C, C), (3C,)
    q, k, v = np.split(x @ W.T + b, 3, axis=-1)               # 3 x (B, T, C)
    mask = np.triu(np.full((T, T), -np.inf), k=1)
    outs = []
    for h in range(nh):
        cols = slice(h * hs, (h + 1) * hs)                    # head h owns channels h*hs .. (h+1)*hs - 1
        att = softmax(q[..., cols] @ k[..., cols].transpose(0, 2, 1) / math.sqrt(hs) + mask)   # (B, T, T)
        outs.append(att @ v[..., cols])                       # (B, T, hs)
    y = np.concatenate(outs, axis=-1)                         # (B, T, C): concat the heads
    return y @ attn.c_proj.weight.numpy().T + attn.c_proj.bias.numpy()


def check():
    rng = np.random.default_rng(0)
    x = tl.tensor(rng.standard_normal((3, 7)), dtype=tl.float64, requires_grad=True)
    g = rng.standard_normal((3, 7))
    y = F.softmax(x, axis=-1)
    y.backward(g)
    assert np.allclose(softmax_backward(y.numpy(), g), x.grad, atol=1e-12)
    assert not np.allclose(x.grad, 0)

    tl.manual_seed(0)
    attn = nn.CausalSelfAttention(n_embd=12, n_head=3).to(tl.float64)
    xs = tl.randn(2, 5, 12, dtype=tl.float64)
    assert np.allclose(heads_one_at_a_time(attn, xs.numpy()), attn(xs).numpy(), atol=1e-12)


if __name__ == "__main__":
    check()
    print("ch04_attention: all checks passed")
