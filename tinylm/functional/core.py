"""The functions the GPT calls: linear, embedding, layer_norm, dropout, gelu, cross_entropy, attention.

Owns argument checking and PyTorch-style signatures: F.linear, F.softmax, F.cross_entropy,
F.scaled_dot_product_attention, ... Each function is a thin wrapper over one op (or a few),
so its gradient is the op's. Errors name the offending shapes, dtypes and devices.

Leaves out: layers with parameters (tinylm/nn.py).
Reference: torch.nn.functional (names and semantics), nanoGPT's CausalSelfAttention.
"""
import math

import numpy as np

from .. import backend, ops
from ..tensor import Tensor


def _check_tensor(x, name, fn):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: {name} must be a Tensor, got {type(x).__name__}")


def _ids(ids, like, fn, what, other):
    """Integer ids (a Tensor, an array or a list) as an array on `like`'s device, or an error naming them."""
    if isinstance(ids, Tensor) and ids.device != like.device:
        raise ValueError(f"{fn}: {what} on '{ids.device}', {other} on '{like.device}'")
    arr = ids.data if isinstance(ids, Tensor) else backend.to_device(
        ids if hasattr(ids, "dtype") else np.asarray(ids), like.device)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{fn}: {what} must be integers, got dtype {arr.dtype}")
    return arr


def gelu(x, approximate="tanh"):
    """GPT-2's GELU (tanh form), elementwise; PyTorch's `approximate="tanh"` is the only form here."""
    if approximate != "tanh":
        raise ValueError(f"gelu: only the tanh approximation (GPT-2's) is implemented, got approximate={approximate!r}")
    return ops.Gelu.apply(x)


def linear(x, weight, bias=None):
    """x @ weight.T + bias; x (..., in), weight (out, in), bias (out,) -> (..., out)."""
    _check_tensor(x, "input", "linear")
    if x.dtype != weight.dtype:
        raise TypeError(f"linear: input of dtype {x.dtype} with a weight of dtype {weight.dtype}; "
                        f"cast one (x.float(), x.double(), or module.to(dtype))")
    if bias is not None and (weight.ndim != 2 or bias.shape != weight.shape[:1]):
        raise ValueError(f"linear: bias of shape {bias.shape} does not fit weight of shape {weight.shape} "
                         f"(expected ({weight.shape[0]},))")
    return ops.Linear.apply(x, weight, bias)


def embedding(idx, weight, padding_idx=None):
    """Rows of `weight` (V, C) at integer ids `idx` (any shape) -> (*idx.shape, C)."""
    _check_tensor(weight, "weight", "embedding")
    ids = _ids(idx, weight, "embedding", "ids", "weight")
    if ids.size:
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= weight.shape[0]:
            raise ValueError(f"embedding: id {lo if lo < 0 else hi} is outside [0, {weight.shape[0]})")
    return ops.Embedding.apply(ids, weight, padding_idx=padding_idx)


def layer_norm(x, weight=None, bias=None, eps=1e-5, *torch_eps):
    """Normalise over the last axis, then scale by `weight` and shift by `bias` (both (C,)).

    PyTorch's order works too, `layer_norm(x, normalized_shape, weight, bias, eps)`, for
    normalized_shape = the last axis (x.shape[-1:], an int, a tuple or a list).
    """
    _check_tensor(x, "x", "layer_norm")
    if isinstance(weight, (int, tuple, list)):                 # PyTorch's order: shift the arguments
        shape = (weight,) if isinstance(weight, int) else tuple(weight)
        if shape != x.shape[-1:]:
            raise ValueError(f"layer_norm: normalized_shape {shape} must be the last axis of input {x.shape} "
                             "(tinylm normalises over the last axis only)")
        # PyTorch's (x, shape, weight, bias, eps) arrived as (x, weight=shape, bias=weight, eps=bias, eps);
        # a number in the bias slot is an eps given by keyword
        weight, bias, eps = bias, (eps if eps is None or isinstance(eps, Tensor) else None), \
            (torch_eps[0] if torch_eps else eps if isinstance(eps, (int, float)) else 1e-5)
    c = x.shape[-1]
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.shape != (c,):
            raise ValueError(f"layer_norm: {name} of shape {p.shape} does not fit input of shape {x.shape}")
    return ops.LayerNorm.apply(x, weight, bias, eps=eps)


def dropout(x, p=0.5, training=True):
    """Zero elements with probability `p` (scaling the rest by 1/(1-p)) when training."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    return ops.Dropout.apply(x, p=float(p))


def cross_entropy(logits, targets, ignore_index=-100, reduction="mean"):
    """Fused log-softmax + NLL. logits (N, V) or (..., V); targets (N,) or (...) integer ids."""
    _check_tensor(logits, "logits", "cross_entropy")
    if logits.ndim < 1 or logits.dtype.kind != "f":
        raise TypeError(f"cross_entropy: logits must be floats with a class axis, got shape {logits.shape} "
                        f"and dtype {logits.dtype}")
    t = _ids(targets, logits, "cross_entropy", "targets", "logits")
    if tuple(t.shape) != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: targets of shape {tuple(t.shape)} do not fit logits of shape "
                         f"{logits.shape} (expected {logits.shape[:-1]})")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    v = logits.shape[-1]
    flat = logits if logits.ndim == 2 else logits.reshape(-1, v)   # (N, V)
    loss = ops.CrossEntropy.apply(flat, t.reshape(-1), ignore_index=ignore_index, reduction=reduction)
    return loss.reshape(t.shape) if reduction == "none" else loss


# ---------------------------------------------------------------------------- attention
causal_mask = ops.causal_mask


def causal_self_attention(qkv, n_head, dropout_p=0.0, training=True, causal=True, kv_cache=None, layer=0, *,
                          attn_mask=None, return_weights=False):
    """Multi-head self-attention from packed qkv (B, T, 3C) to merged heads (B, T, C): the heads split,
    scaled_dot_product_attention (with `attn_mask`, `return_weights` as there), the heads merged. With
    a `kv_cache` (generation, under no_grad), the new keys and values join layer `layer`'s."""
    _check_tensor(qkv, "qkv", "causal_self_attention")
    if qkv.ndim != 3 or qkv.shape[-1] % (3 * n_head):
        raise ValueError(f"causal_self_attention: qkv of shape {qkv.shape} is not (B, T, 3C) with C "
                         f"divisible by n_head={n_head}")
    B, T, C3 = qkv.shape
    if kv_cache is not None:     # generation records no graph: the heads split on the arrays, one token at a time
        x = qkv.data.reshape(B, T, 3, n_head, C3 // 3 // n_head).transpose(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)
        q, k, v = (Tensor._make(a, qkv.device) for a in (x[0], *kv_cache.update(layer, x[1], x[2])))  # k, v with the past
    else:
        heads = qkv.reshape(B, T, 3, n_head, C3 // 3 // n_head).permute(2, 0, 3, 1, 4)   # (3, B, nh, T, hs)
        q, k, v = (t.reshape(t.shape[1:]) for t in heads.split(1))                        # (B, nh, T, hs) each
    y = scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, causal, training=training,
                                     return_weights=return_weights)
    y, weights = y if return_weights else (y, None)
    if kv_cache is not None:
        y = Tensor._make(y.data.transpose(0, 2, 1, 3).reshape(B, T, C3 // 3), qkv.device)   # (B, T, C)
    else:
        y = y.transpose(1, 2).reshape(B, T, C3 // 3)                                  # (B, T, C)
    return (y, weights) if return_weights else y


def scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, *,
                                 training=True, return_weights=False):
    """softmax(q @ k^T / sqrt(d_k) + mask) @ v for all heads at once.

    q (B, nh, T, hs), k and v (B, nh, S, hs) -> (B, nh, T, hs). `attn_mask` is a boolean
    tensor/array broadcastable to (B, nh, T, S), True where attention is allowed (PyTorch's
    rule). `is_causal` masks the future (query i sees keys up to i + S - T). With
    `return_weights=True` returns (out, weights) with weights (B, nh, T, S), e.g. to plot, from
    the fused op's plain formula (`ops.Attention.reference`).
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        _check_tensor(t, name, "scaled_dot_product_attention")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: shapes q {q.shape}, k {k.shape}, v {v.shape} do not fit")
    t_q, t_k = q.shape[-2], k.shape[-2]
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1), got {dropout_p}")
    if is_causal and t_q > t_k:
        raise ValueError(f"scaled_dot_product_attention: causal with more queries ({t_q}) than keys ({t_k})")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    mask = attn_mask.data if isinstance(attn_mask, Tensor) else attn_mask
    add = causal_mask(t_q, t_k, q.device, additive=True) if is_causal and t_q > 1 else None
    if mask is not None:
        xp = backend.get_array_module(mask)
        user = xp.where(mask, np.float32(0), np.float32(-np.inf)) if mask.dtype == bool else mask
        user = user.astype(q.dtype, copy=False)
        add = user if add is None else add + user
    if add is not None and add.dtype != q.dtype:
        add = add.astype(q.dtype)
    p = float(dropout_p) if training else 0.0
    if return_weights:                                     # composed of simpler ops, so the weights are there
        return ops.Attention.reference(q, k, v, add, scale, p)
    return ops.Attention.apply(q, k, v, add, scale=scale, dropout_p=p)   # (B, nh, T, hs)
