"""The rest of torch.nn.functional: activations, softmax, one_hot, mse_loss, where, concat, stack, split.

Thin wrappers over Tensor methods and ops, with PyTorch's names and argument checks.
"""
import warnings

import numpy as np

from .. import backend, ops
from ..ops_extra import Concat, GeluErf, Stack
from ..tensor import Tensor, same_kind, scalar
from . import core
from .core import _check_tensor, _ids


def _legacy_reduction(size_average, reduce, reduction, owner):
    """PyTorch's deprecated size_average/reduce arguments, mapped to reduction as PyTorch maps them."""
    if size_average is None and reduce is None:
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"{owner}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        return reduction
    warnings.warn(f"{owner}: size_average and reduce are deprecated; use reduction='mean', 'sum' or 'none'",
                  stacklevel=3)
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    return "none" if not reduce else "mean" if size_average else "sum"


def relu(x):
    """max(x, 0), elementwise."""
    _check_tensor(x, "x", "relu")
    return x.relu()


def tanh(x):
    """Hyperbolic tangent, elementwise (integers give float32)."""
    _check_tensor(x, "x", "tanh")
    return x.tanh()


def sigmoid(x):
    """1 / (1 + exp(-x)), elementwise (integers give float32)."""
    _check_tensor(x, "x", "sigmoid")
    return x.sigmoid()


def _along(x, dim, axis, name, dtype):
    """The axis of F.softmax / F.log_softmax: `dim` or `axis`; neither is PyTorch's implicit choice (warned)."""
    _check_tensor(x, "input", name)
    if dim is not None and axis is not None:
        raise TypeError(f"{name}(): give dim or axis, not both")
    dim = axis if dim is None else dim
    x = x if dtype is None else x.to(dtype)
    return x, (_implicit_dim(name, x.ndim, stacklevel=4) if dim is None else dim)


def softmax(input, dim=None, _stacklevel=3, dtype=None, *, axis=None):
    """exp(x) / sum(exp(x)) along `dim` (or `axis`), stable for large logits. As PyTorch, with no dim the
    axis is its old implicit choice (0 for 0-, 1- and 3-d inputs, else 1), with its warning: pass dim."""
    x, dim = _along(input, dim, axis, "softmax", dtype)
    return x.softmax(dim)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None, *, axis=None):
    """x - logsumexp(x) along `dim` (or `axis`), stable; no dim: PyTorch's implicit choice, warned."""
    x, dim = _along(input, dim, axis, "log_softmax", dtype)
    return x.log_softmax(dim)


def one_hot(ids, num_classes=-1):
    """int64 (*ids.shape, num_classes) with a 1 at each id (num_classes -1: the largest id + 1), as PyTorch."""
    _check_tensor(ids, "ids", "one_hot")
    if ids.dtype.kind not in "iu":
        raise TypeError(f"one_hot: ids must be integers, got dtype {ids.dtype}")
    xp = backend.get_array_module(ids.data)
    lo = int(ids.data.min()) if ids.numel() else 0
    n = (int(ids.data.max()) + 1 if ids.numel() else 0) if num_classes == -1 else num_classes
    if lo < 0 or ids.numel() and int(ids.data.max()) >= n:
        raise ValueError(f"one_hot: ids must be in [0, {n}), got ids from {lo} to {int(ids.data.max())}")
    return Tensor._make((ids.data[..., None] == xp.arange(n)).astype(np.int64), ids.device)


def mse_loss(x, y, reduction="mean"):
    """Squared differences of same-shape x and y: their mean, their sum, or each ('none')."""
    _check_tensor(x, "input", "mse_loss")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"mse_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if getattr(y, "shape", ()) not in ((), x.shape):               # a Tensor or an array; scalars broadcast
        raise ValueError(f"mse_loss: input of shape {x.shape} and target of shape {tuple(y.shape)} differ "
                         "(broadcasting them would average the wrong pairs)")
    d = x - y
    sq = d * d
    return sq if reduction == "none" else sq.mean() if reduction == "mean" else sq.sum()


def where(cond, a, b):
    """Elementwise `a` where `cond` else `b`; a and b may be tensors or scalars (floats give float32)."""
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else cond if isinstance(cond, Tensor) else None
    device = like.device if like is not None else "cpu"
    c = cond.data if isinstance(cond, Tensor) else backend.to_device(np.asarray(cond), device)
    if c.dtype != bool:
        raise TypeError(f"where: cond must be boolean, got dtype {c.dtype}")
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):  # two scalars: a tensor on cond's device
        dtype = backend.DEFAULT_DTYPE if isinstance(a, float) or isinstance(b, float) else None
        xp = backend.get_array_module(c)
        return Tensor._make(xp.where(c, xp.asarray(a, dtype=dtype), xp.asarray(b, dtype=dtype)), device)
    a, b = same_kind(a, b)
    return ops.Where.apply(c, a if isinstance(a, Tensor) else scalar(a), b if isinstance(b, Tensor) else scalar(b))


def masked_fill(x, mask, value):
    """`value` where `mask` is true, else x."""
    return x.masked_fill(mask, value)


def _check_tensors(xs, fn):
    if isinstance(xs, Tensor):
        raise TypeError(f"{fn}: expected a list of tensors, got one Tensor; write {fn}([a, b])")
    if not xs:
        raise ValueError(f"{fn}: needs at least one tensor")
    for x in xs:
        _check_tensor(x, "every input", fn)


def concat(xs, axis=0, *, dim=None):
    """Join tensors along an existing axis (PyTorch: `dim`)."""
    axis = axis if dim is None else dim
    _check_tensors(xs, "concat")
    xs = list(same_kind(*xs))
    ref = xs[0].shape
    if not -len(ref) <= axis < len(ref):
        raise ValueError(f"concat: axis {axis} is out of range for tensors of shape {ref}")
    for x in xs[1:]:
        if x.ndim != len(ref) or any(a != b for i, (a, b) in enumerate(zip(x.shape, ref)) if i != axis % len(ref)):
            raise ValueError(f"concat: shapes {ref} and {x.shape} differ outside axis {axis}")
    return Concat.apply(*xs, axis=axis)


cat = concat


def stack(xs, axis=0, *, dim=None):
    """Join same-shape tensors along a new axis (PyTorch: `dim`)."""
    axis = axis if dim is None else dim
    _check_tensors(xs, "stack")
    xs = list(same_kind(*xs))
    for x in xs[1:]:
        if x.shape != xs[0].shape:
            raise ValueError(f"stack: shapes {xs[0].shape} and {x.shape} differ")
    return Stack.apply(*xs, axis=axis)


def split(x, split_size_or_sections, axis=0, *, dim=None):
    """Cut into pieces of `split_size` (an int) or of the given sizes (a list) along `axis` (the first
    by default), as torch.split."""
    _check_tensor(x, "x", "split")
    return x.split(split_size_or_sections, axis if dim is None else dim)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """PyTorch's F.nll_loss, composed of differentiable ops (see NLLLoss)."""
    if not isinstance(input, Tensor) or input.ndim < 1 or input.dtype.kind != "f":
        raise TypeError(f"nll_loss: input must be a float Tensor of log-probabilities (N, C), got "
                        f"{getattr(input, 'shape', type(input).__name__)}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"nll_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    t = _ids(target, input, "nll_loss", "target", "input")
    if input.ndim == 1:                                        # unbatched (C,) with a () target
        logp, want = input, ()
    else:
        perm = (0, *range(2, input.ndim), 1)                   # class axis last: (N, d1, ..., C)
        logp, want = input.permute(*perm) if input.ndim > 2 else input, (input.shape[0], *input.shape[2:])
    C = logp.shape[-1]
    if tuple(t.shape) != want:
        raise ValueError(f"nll_loss: target of shape {tuple(t.shape)} does not fit input of shape {input.shape} "
                         f"(expected {want}: PyTorch's layout, classes on axis 1)")
    w = None if weight is None else (weight.data if isinstance(weight, Tensor)
                                     else backend.to_device(np.asarray(weight), input.device))
    if w is not None and tuple(w.shape) != (C,):
        raise ValueError(f"nll_loss: weight of shape {tuple(w.shape)} for {C} classes (expected ({C},))")
    return _weighted_nll(logp, t, w, ignore_index, reduction, 0.0, "nll_loss")


def _weighted_nll(logp, t, w, ignore_index, reduction, eps, fn):
    """-sum_c coef_c logp_c per target, for class-last log-probabilities logp (..., C) and ids t (...):
    coef = (1 - eps) w[t] at the target plus eps / C w_c everywhere (label smoothing), 0 where t is
    ignored; 'mean' divides by the sum of the target weights (nan when every target is ignored)."""
    C = logp.shape[-1]
    xp = backend.get_array_module(t)
    valid = t != ignore_index
    safe = xp.where(valid, t, 0)
    if safe.size and (int(safe.min()) < 0 or int(safe.max()) >= C):
        bad = int(safe.min()) if int(safe.min()) < 0 else int(safe.max())
        raise ValueError(f"{fn}: target {bad} is out of bounds for {C} classes")
    wc = xp.ones(C, dtype=logp.dtype) if w is None else w.astype(logp.dtype)
    picked_w = xp.where(valid, wc[safe], 0).astype(logp.dtype)             # w[t], 0 where ignored
    coef = (safe[..., None] == xp.arange(C)) * ((1.0 - eps) * picked_w)[..., None]
    if eps:
        coef = coef + (eps / C) * wc * valid[..., None]                    # (..., C)
    losses = -(logp * Tensor._make(coef.astype(logp.dtype), logp.device)).sum(axis=-1)   # (N, d1, ...)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    total = float(picked_w.sum())
    return losses.sum() * (1.0 / total) if total else losses.sum() * float("nan")


def gelu(input, approximate="none"):
    """PyTorch's F.gelu: the exact form x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) by default, the tanh form
    (GPT-2's, ops.Gelu) with approximate='tanh'. tinylm's GPT calls functional.core.gelu, the tanh form."""
    _check_tensor(input, "input", "gelu")
    if approximate == "tanh":
        return ops.Gelu.apply(input)
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GeluErf.apply(input if input.dtype.kind == "f" else input.float())


def _implicit_dim(name, ndim, stacklevel=3):
    """PyTorch's old rule for Softmax(dim=None): axis 0 for 0-, 1- and 3-d inputs, else 1 (with its warning)."""
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include "
                  "dim=X as an argument.", stacklevel=stacklevel)
    return 0 if ndim in (0, 1, 3) else 1


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False, *, training=True, return_weights=False):
    """PyTorch's F.scaled_dot_product_attention: as functional.core's (which the GPT calls), except that
    `is_causal` with fewer queries than keys aligns the mask to the first key (query i sees keys 0..i,
    PyTorch's top-left rule), where the core aligns it to the last (a KV cache's rule)."""
    if enable_gqa:
        raise ValueError("scaled_dot_product_attention: enable_gqa (grouped-query attention) is not supported")
    t_q, t_k = query.shape[-2], key.shape[-2]
    if is_causal and t_q != t_k:
        if attn_mask is not None:
            raise ValueError("scaled_dot_product_attention: give attn_mask or is_causal=True, not both")
        xp = backend.get_array_module(query.data)
        attn_mask, is_causal = xp.tril(xp.ones((t_q, t_k), dtype=bool)), False
    return core.scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale,
                                             training=training, return_weights=return_weights)


def _class_last(x):
    """(N, C, d1, ...) -> (N, d1, ..., C): the class axis last, as the fused op and the sums want it."""
    return x.permute(0, *range(2, x.ndim), 1) if x.ndim > 2 else x


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):
    """PyTorch's F.cross_entropy: log_softmax over the class axis (axis 1; axis 0 for an unbatched (C,)
    input), then the negative log-likelihood of the targets.

    input (C,), (N, C) or (N, C, d1, ...); target: class ids of shape (), (N,) or (N, d1, ...), or class
    probabilities of the input's shape. `weight` (C,) weighs each class ('mean' then divides by the sum of
    the target weights); `ignore_index` skips those ids; `label_smoothing` e mixes the target with the
    uniform distribution: (1 - e) target + e / C. A (B, T, C) input with (B, T) targets (the GPT's
    layout) raises: PyTorch's layout is (B, C, T), and when C == T it is the one taken.
    """
    _check_tensor(input, "input", "cross_entropy")
    if input.ndim < 1 or input.dtype.kind != "f":
        raise TypeError(f"cross_entropy: input must be floats with a class axis, got shape {input.shape} "
                        f"and dtype {input.dtype}")
    reduction = _legacy_reduction(size_average, reduce, reduction, "cross_entropy")
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    cax = 0 if input.ndim == 1 else 1
    C = input.shape[cax]
    w = None
    if weight is not None:
        w = weight.data if isinstance(weight, Tensor) else backend.to_device(np.asarray(weight), input.device)
        if tuple(w.shape) != (C,):
            raise ValueError(f"cross_entropy: weight of shape {tuple(w.shape)} for {C} classes (expected ({C},))")
        w = w.astype(input.dtype)
    if isinstance(target, Tensor) and target.dtype.kind == "f":
        return _soft_cross_entropy(input, target, w, reduction, eps)
    t = _ids(target, input, "cross_entropy", "target", "input")
    want = () if input.ndim == 1 else (input.shape[0], *input.shape[2:])
    if tuple(t.shape) != want:
        hint = ""
        if input.ndim >= 3 and tuple(t.shape) == input.shape[:-1]:
            hint = (f"; this looks like the (B, T, C) layout, with classes last, but PyTorch's (and tinylm's) "
                    f"F.cross_entropy takes classes on axis 1: flatten to logits.view(-1, {input.shape[-1]}) and "
                    f"targets.view(-1), or pass logits.transpose(1, 2)")
        raise ValueError(f"cross_entropy: target of shape {tuple(t.shape)} does not fit input of shape {input.shape} "
                         f"(expected {want}: input (N, C, d1, ...) with target (N, d1, ...), classes on axis 1)"
                         + hint)
    if w is None and not eps:                                  # the fused op: fast, and the GPT's own path
        flat = _class_last(input) if input.ndim > 1 else input.reshape(1, C)
        loss = ops.CrossEntropy.apply(flat.reshape(-1, C), t.reshape(-1), ignore_index=ignore_index,
                                      reduction=reduction)
        if reduction == "mean" and not bool((t != ignore_index).any()):
            return loss * float("nan")                         # every target ignored: 0 / 0, as PyTorch
        return loss.reshape(t.shape) if reduction == "none" else loss
    logp = _class_last(input.log_softmax(cax))                 # (..., C)
    return _weighted_nll(logp, t, w, ignore_index, reduction, eps, "cross_entropy")


def _soft_cross_entropy(input, target, w, reduction, eps):
    """cross_entropy with class-probability targets of the input's shape: -sum_c w_c p_c log q_c."""
    if target.shape != input.shape:
        raise ValueError(f"cross_entropy: class-probability target of shape {target.shape} must have the "
                         f"input's shape {input.shape}")
    cax = 0 if input.ndim == 1 else 1
    C = input.shape[cax]
    p = target if not eps else target * (1.0 - eps) + eps / C
    prod = input.log_softmax(cax) * p.to(input.dtype)
    if w is not None:
        prod = prod * Tensor._make(w.reshape((C,) + (1,) * (input.ndim - cax - 1)), input.device)
    losses = -prod.sum(axis=cax)
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.mean()
