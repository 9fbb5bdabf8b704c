"""The rest of torch.nn.functional: activations, softmax, one_hot, mse_loss, where, concat, stack, split.

Thin wrappers over Tensor methods and ops, with PyTorch's names and argument checks.
"""
import numpy as np

from .. import backend, ops
from ..ops_extra import Concat, Stack
from ..tensor import Tensor, same_kind, scalar
from .core import _check_tensor, _ids


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


def softmax(x, axis=-1, *, dim=None):
    """exp(x) / sum(exp(x)) along `axis` (PyTorch: `dim`), stable for large logits."""
    _check_tensor(x, "x", "softmax")
    return x.softmax(axis, dim=dim)


def log_softmax(x, axis=-1, *, dim=None):
    """x - logsumexp(x) along `axis` (PyTorch: `dim`), stable for large logits."""
    _check_tensor(x, "x", "log_softmax")
    return x.log_softmax(axis, dim=dim)


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
    xp = backend.get_array_module(t)
    valid = t != ignore_index
    safe = xp.where(valid, t, 0)
    if safe.size and (int(safe.min()) < 0 or int(safe.max()) >= C):
        bad = int(safe.min()) if int(safe.min()) < 0 else int(safe.max())
        raise ValueError(f"nll_loss: target {bad} is out of bounds for {C} classes")
    w = xp.ones(C, dtype=input.dtype) if weight is None else (weight.data if isinstance(weight, Tensor)
                                                               else backend.to_device(np.asarray(weight), input.device))
    if tuple(w.shape) != (C,):
        raise ValueError(f"nll_loss: weight of shape {tuple(w.shape)} for {C} classes (expected ({C},))")
    w = w.astype(input.dtype)
    picked_w = xp.where(valid, w[safe], 0).astype(input.dtype)            # weight of each target, 0 if ignored
    mask = (safe[..., None] == xp.arange(C)) * picked_w[..., None]        # (..., C): the weight at the target
    losses = -(logp * Tensor._make(mask.astype(input.dtype), input.device)).sum(axis=-1)   # (N, d1, ...)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    total = float(picked_w.sum())
    return losses.sum() * (1.0 / total) if total else losses.sum() * float("nan")
