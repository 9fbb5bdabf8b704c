"""The layers of a GPT: Linear, Embedding, LayerNorm, Dropout and the MLP block.

Each layer holds its Parameters, initialised as PyTorch does (Linear: uniform(+-1/sqrt(in));
Embedding: normal(0, 1); LayerNorm: ones and zeros) from the device's generator, and calls
one function of tinylm/functional.py in `forward`. GPT-2's attribute names (`c_fc`, `c_proj`)
make a GPT-2 checkpoint map across key for key.

Glossary for shape comments: B batch, T time, C channels (n_embd).
Reference: torch.nn (names and semantics), nanoGPT `model.py` (the MLP).
"""
import math

import numpy as np

from .. import backend
from ..functional import core as F
from ..tensor import Tensor
from .module import Module, Parameter


def _positive_int(value, name, owner):
    """`value` as an int if it is an int >= 1; otherwise a TypeError/ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{owner}: {name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value}")
    return int(value)


def _probability(value, name, owner):
    """`value` as a float if 0 <= value < 1 (F.dropout keeps at least some units); otherwise an error."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: {name} must be a number, got {type(value).__name__} {value!r}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}: {name} must be in [0, 1), got {value}")
    return float(value)


def _const(shape, value, device, dtype=None):
    """A Parameter filled with `value` (float32 unless `dtype`)."""
    xp = backend.array_module(device)
    return Parameter(xp.full(shape, value, dtype=np.dtype(dtype or backend.DEFAULT_DTYPE)))


def _normal(shape, std, device, dtype=None):
    """A Parameter of normal(0, std) draws from the device's generator."""
    dtype = np.dtype(dtype or backend.DEFAULT_DTYPE)
    return Parameter(backend.get_generator(device).normal(shape, dtype) * dtype.type(std))


def _uniform(shape, bound, device, dtype=None):
    """A Parameter of uniform(-bound, bound) draws from the device's generator."""
    draws = backend.get_generator(device).uniform(shape, np.dtype(dtype or backend.DEFAULT_DTYPE))  # in [0, 1)
    draws *= 2 * bound
    draws -= bound
    return Parameter(draws)


class Linear(Module):
    """y = x @ weight.T + bias; weight (out, in) as PyTorch, uniform(+-1/sqrt(in)) at first."""

    def __init__(self, in_features, out_features, bias=True, device="cpu", dtype=None):
        in_features = _positive_int(in_features, "in_features", "Linear")
        out_features = _positive_int(out_features, "out_features", "Linear")
        bound = 1.0 / math.sqrt(in_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = _uniform((out_features, in_features), bound, device, dtype)   # (out, in)
        self.bias = _uniform((out_features,), bound, device, dtype) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)                 # (..., in) -> (..., out)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A table of `num_embeddings` vectors of size `embedding_dim`; the `padding_idx` row gets no gradient."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, device="cpu", dtype=None):
        num_embeddings = _positive_int(num_embeddings, "num_embeddings", "Embedding")
        embedding_dim = _positive_int(embedding_dim, "embedding_dim", "Embedding")
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)):
                raise TypeError(f"Embedding: padding_idx must be an int or None, got {type(padding_idx).__name__}")
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx must be in [{-num_embeddings}, {num_embeddings}), "
                                 f"got {padding_idx}")
            padding_idx = int(padding_idx) % num_embeddings  # -1 means the last row, as in torch
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.weight = _normal((num_embeddings, embedding_dim), 1.0, device, dtype)   # (V, C)
        if padding_idx is not None:
            self.weight.data[padding_idx] = 0

    def forward(self, idx):
        if not isinstance(idx, (Tensor, list, tuple, np.ndarray)):  # a raw device array (CuPy, strict)
            idx = Tensor._make(idx, backend.device_of(idx))
        return F.embedding(idx, self.weight, padding_idx=self.padding_idx)  # (*idx.shape, C)

    def extra_repr(self):
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class LayerNorm(Module):
    """Normalise the last axis, then scale (weight, ones) and shift (bias, zeros).

    As torch: `normalized_shape` is the size C of the last axis (an int, or a 1-element tuple or
    list); `elementwise_affine=False` leaves out weight and bias, `bias=False` the bias only.
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device="cpu", dtype=None):
        if isinstance(normalized_shape, (tuple, list)):
            if len(normalized_shape) != 1:  # torch also normalises over several trailing axes; tinylm does not
                raise ValueError("LayerNorm normalises the last axis only: normalized_shape must be an int or a "
                                 f"1-element tuple, got {tuple(normalized_shape)}")
            normalized_shape = normalized_shape[0]
        C = _positive_int(normalized_shape, "normalized_shape", "LayerNorm")
        if not eps >= 0:
            raise ValueError(f"LayerNorm: eps must be >= 0, got {eps}")
        self.normalized_shape, self.eps, self.elementwise_affine = (C,), eps, elementwise_affine
        self.weight = _const((C,), 1.0, device, dtype) if elementwise_affine else None
        self.bias = _const((C,), 0.0, device, dtype) if elementwise_affine and bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self):
        dropped = ", bias=False" if self.elementwise_affine and self.bias is None else ""
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}{dropped}"


class Dropout(Module):
    """Zero elements with probability p while training (inverted dropout); identity in eval()."""

    def __init__(self, p=0.5):
        self.p = _probability(p, "p", "Dropout")

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"




class MLP(Module):
    """The feed-forward block: Linear C -> 4C, GELU, Linear 4C -> C, dropout (GPT-2's c_fc, c_proj)."""

    def __init__(self, n_embd, dropout=0.0, bias=True, device="cpu"):
        self.c_fc = Linear(n_embd, 4 * n_embd, bias=bias, device=device)
        self.c_proj = Linear(4 * n_embd, n_embd, bias=bias, device=device)
        self.dropout = Dropout(dropout)

    def forward(self, x):
        x = self.c_fc(x)                                           # (B, T, 4C)
        x = F.gelu(x)                                              # GPT-2's tanh form
        x = self.c_proj(x)                                         # (B, T, C)
        return self.dropout(x)
