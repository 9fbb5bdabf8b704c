"""tinylm: a minimal, fast language-model framework on NumPy (CPU) and CuPy (GPU).

    import tinylm as tl
    x = tl.randn(3, 4, requires_grad=True)
    (x.tanh() @ x.T).sum().backward()
    x.grad.shape  # (3, 4)

The public API: Tensor and its factories, no_grad, manual_seed, device helpers, gradcheck,
and the submodules `functional` (as F), `nn`, `optim`, `tokenizers`, `data`, `train`.
"""
import builtins

import numpy as np

from . import backend, ops, functional
from . import functional as F
from . import optim, data, checkpoint, nn, sampling, safetensors, tokenizers, train
from .model import GPT, GPTConfig, PRESETS
from .sampling import sample_next
from .tokenizers import CharTokenizer, BPETokenizer
from .autograd import (Tensor, Function, no_grad, enable_grad, is_grad_enabled, set_grad_enabled, inference_mode,
                       sum_to, OPS)
from .functional import cat, concat, stack, where
from .backend import manual_seed, gpu_available, get_array_module, parse_device
from .gradcheck import gradcheck, GradcheckError

__version__ = "0.1.0"


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new leaf Tensor from a list, scalar or array; Python floats become float32."""
    if isinstance(data, Tensor):
        data = data.data
    return Tensor(data, device=device, dtype=dtype, requires_grad=requires_grad)


def from_numpy(array, device=None, requires_grad=False):
    """A Tensor holding a NumPy array (shared on cpu, copied to another device); dtype kept."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    return Tensor(array, device=device or "cpu", requires_grad=requires_grad)


def _shape(shape, size=None):
    """A shape from `f(2, 3)`, `f((2, 3))` or PyTorch's `f(size=(2, 3))`."""
    if size is not None:
        if shape:
            raise TypeError("give the shape positionally or as size=, not both")
        shape = (size,)
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)
    if not all(isinstance(n, (int, np.integer)) and not isinstance(n, builtins.bool) and n >= 0 for n in shape):
        raise ValueError(f"a shape must be non-negative ints, got {shape}")
    return shape


def _factory(make, shape, dtype, device, requires_grad, size=None):
    device = backend.parse_device(device)
    data = make(backend.array_module(device), _shape(shape, size), np.dtype(dtype or backend.DEFAULT_DTYPE))
    return Tensor(data, device=device, requires_grad=requires_grad)


def zeros(*shape, size=None, dtype=None, device="cpu", requires_grad=False):
    """A tensor of zeros: `zeros(2, 3)`, `zeros((2, 3))` or `zeros(size=(2, 3))`; float32 unless `dtype`."""
    return _factory(lambda xp, s, d: xp.zeros(s, dtype=d), shape, dtype, device, requires_grad, size)


def ones(*shape, size=None, dtype=None, device="cpu", requires_grad=False):
    """A tensor of ones; float32 unless `dtype`."""
    return _factory(lambda xp, s, d: xp.ones(s, dtype=d), shape, dtype, device, requires_grad, size)


def full(shape=None, value=None, dtype=None, device="cpu", requires_grad=False, *, size=None, fill_value=None):
    """A tensor of `shape` filled with `value`: bool for a bool, int64 for an int, else float32 (as PyTorch)."""
    value = value if fill_value is None else fill_value
    if value is None:
        raise TypeError("full(shape, value): the fill value is missing")
    if dtype is None:
        dtype = np.bool_ if isinstance(value, builtins.bool) else np.int64 if isinstance(value, int) else None
    return _factory(lambda xp, s, d: xp.full(s, value, dtype=d), () if shape is None else (shape,), dtype, device,
                    requires_grad, size)


def randn(*shape, size=None, dtype=None, device="cpu", requires_grad=False):
    """Standard normal samples from the device's generator (seeded by `manual_seed`)."""
    device = backend.parse_device(device)
    data = backend.get_generator(device).normal(_shape(shape, size), np.dtype(dtype or backend.DEFAULT_DTYPE))
    return Tensor(data, device=device, requires_grad=requires_grad)


def rand(*shape, size=None, dtype=None, device="cpu", requires_grad=False):
    """Uniform [0, 1) samples from the device's generator."""
    device = backend.parse_device(device)
    data = backend.get_generator(device).uniform(_shape(shape, size), np.dtype(dtype or backend.DEFAULT_DTYPE))
    return Tensor(data, device=device, requires_grad=requires_grad)


def randint(*args, size=None, device="cpu"):
    """Integers in [low, high) (int64) from the device's generator, as PyTorch:
    `randint(low, high, shape)`, `randint(high, shape)`, or either with `size=shape`."""
    if size is not None:
        args = args + (size,)
    if len(args) == 2:
        args = (0,) + args
    if len(args) != 3 or not all(isinstance(a, (int, np.integer)) for a in args[:2]):
        raise TypeError(f"randint(low, high, shape) or randint(high, shape), got {args}")
    low, high, shape = args
    if low >= high:
        raise ValueError(f"randint: need low < high, got low {low} and high {high}")
    device = backend.parse_device(device)
    return Tensor(backend.get_generator(device).integers(low, high, _shape((shape,))), device=device)


def arange(start, stop=None, step=1, dtype=None, device="cpu"):
    """Evenly spaced values in [start, stop): int64 for integer arguments, else float32 (not float64)."""
    if stop is None:
        start, stop = 0, start
    if dtype is None and not all(isinstance(a, (int, np.integer)) for a in (start, stop, step)):
        dtype = backend.DEFAULT_DTYPE
    xp = backend.array_module(device)
    return Tensor(xp.arange(start, stop, step, dtype=dtype), device=device)


def zeros_like(t, dtype=None, requires_grad=False):
    """Zeros with `t`'s shape, dtype and device."""
    return zeros(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    """Ones with `t`'s shape, dtype and device."""
    return ones(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def full_like(t, value, dtype=None, requires_grad=False):
    """`value` everywhere, with `t`'s shape, dtype and device."""
    return full(t.shape, value, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def randn_like(t, dtype=None, requires_grad=False):
    """Standard normal samples with `t`'s shape, dtype and device."""
    return randn(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def rand_like(t, dtype=None, requires_grad=False):
    """Uniform [0, 1) samples with `t`'s shape, dtype and device."""
    return rand(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def tril(t, diagonal=0):
    """The lower triangle of the last two axes (the rest zero), e.g. a causal mask: `tril(ones(T, T))`."""
    return _triangle(t, diagonal, "tril")


def triu(t, diagonal=0):
    """The upper triangle of the last two axes (the rest zero), e.g. `triu(full((T, T), -inf), 1)`."""
    return _triangle(t, diagonal, "triu")


def _triangle(t, diagonal, fn):
    if not isinstance(t, Tensor) or t.ndim < 2:
        raise ValueError(f"{fn}: needs a Tensor with at least 2 axes, got "
                         f"{t.shape if isinstance(t, Tensor) else type(t).__name__}")
    keep = backend.get_array_module(t.data).tri(*t.shape[-2:], k=diagonal if fn == "tril" else diagonal - 1, dtype=bool)
    if fn == "triu":
        keep = ~keep
    return t.masked_fill(Tensor._make(~keep, t.device), 0)      # a fill, not a product: -inf * 0 would be nan


def save(state_dict, path):
    """Write a model's state_dict ({name: array or Tensor}) to `path`: one .npz, atomically, no pickle.

    `tl.save(model.state_dict(), "model.npz")`; `tinylm.checkpoint.save_checkpoint` saves a whole
    run (optimizer, config, tokenizer, step). Returns the path.
    """
    from .checkpoint import save_checkpoint
    if not isinstance(state_dict, dict):
        raise TypeError(f"save: expected a state_dict (a dict of arrays), got {type(state_dict).__name__}")
    return save_checkpoint(path, {k: v.data if isinstance(v, Tensor) else v for k, v in state_dict.items()})


def load(path, device="cpu"):
    """The state_dict written by `save`, as {name: array} on `device`, read without pickle:
    `model.load_state_dict(tl.load("model.npz"))`."""
    from .checkpoint import load_checkpoint
    return {k: backend.to_device(v, device) for k, v in load_checkpoint(path).model.items()}


float32, float64, int32, int64, bool_ = np.float32, np.float64, np.int32, np.int64, np.bool_
long, bool = int64, bool_   # PyTorch's names (tl.bool shadows the builtin only inside this module's namespace)

__all__ = [
    "Tensor", "Function", "tensor", "from_numpy", "zeros", "ones", "full", "randn", "rand", "randint",
    "arange", "zeros_like", "ones_like", "full_like", "randn_like", "rand_like", "tril", "triu",
    "cat", "concat", "stack", "where", "save", "load", "no_grad", "enable_grad", "is_grad_enabled", "set_grad_enabled",
    "inference_mode", "manual_seed",
    "gpu_available", "get_array_module", "parse_device", "sum_to", "gradcheck", "GradcheckError",
    "F", "functional", "backend", "optim", "data", "checkpoint", "nn", "train",
    "sampling", "safetensors", "tokenizers", "GPT", "GPTConfig", "PRESETS", "sample_next", "CharTokenizer",
    "BPETokenizer", "float32", "float64", "int32", "int64", "long", "bool_", "bool",
]
