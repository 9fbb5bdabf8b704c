"""tinylm: a minimal, fast language-model framework on NumPy (CPU) and CuPy (GPU).

    import tinylm as tl
    x = tl.randn(3, 4, requires_grad=True)
    (x.tanh() @ x.T).sum().backward()
    x.grad.shape  # (3, 4)

The public API: Tensor and its factories, no_grad, manual_seed, device helpers, gradcheck,
and the submodules `functional` (as F), `nn`, `optim`, `tokenizers`, `data`, `train`.
"""
import numpy as np

from . import backend, ops, functional
from . import functional as F
from . import optim, data, checkpoint, nn, sampling, safetensors, tokenizers, train
from .model import GPT, GPTConfig, PRESETS
from .sampling import sample_next
from .tokenizers import CharTokenizer, BPETokenizer
from .autograd import Tensor, Function, no_grad, enable_grad, is_grad_enabled, sum_to, OPS
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


def _shape(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


def _factory(make, shape, dtype, device, requires_grad):
    device = backend.parse_device(device)
    data = make(backend.array_module(device), _shape(shape), np.dtype(dtype or backend.DEFAULT_DTYPE))
    return Tensor(data, device=device, requires_grad=requires_grad)


def zeros(*shape, dtype=None, device="cpu", requires_grad=False):
    """A tensor of zeros: `zeros(2, 3)` or `zeros((2, 3))`; float32 unless `dtype`."""
    return _factory(lambda xp, s, d: xp.zeros(s, dtype=d), shape, dtype, device, requires_grad)


def ones(*shape, dtype=None, device="cpu", requires_grad=False):
    """A tensor of ones; float32 unless `dtype`."""
    return _factory(lambda xp, s, d: xp.ones(s, dtype=d), shape, dtype, device, requires_grad)


def full(shape, value, dtype=None, device="cpu", requires_grad=False):
    """A tensor of `shape` filled with `value`."""
    return _factory(lambda xp, s, d: xp.full(s, value, dtype=d), (shape,), dtype, device, requires_grad)


def randn(*shape, dtype=None, device="cpu", requires_grad=False):
    """Standard normal samples from the device's generator (seeded by `manual_seed`)."""
    device = backend.parse_device(device)
    data = backend.get_generator(device).normal(_shape(shape), np.dtype(dtype or backend.DEFAULT_DTYPE))
    return Tensor(data, device=device, requires_grad=requires_grad)


def rand(*shape, dtype=None, device="cpu", requires_grad=False):
    """Uniform [0, 1) samples from the device's generator."""
    device = backend.parse_device(device)
    data = backend.get_generator(device).uniform(_shape(shape), np.dtype(dtype or backend.DEFAULT_DTYPE))
    return Tensor(data, device=device, requires_grad=requires_grad)


def randint(low, high, shape, device="cpu"):
    """Integers in [low, high) (int64) from the device's generator."""
    device = backend.parse_device(device)
    return Tensor(backend.get_generator(device).integers(low, high, _shape((shape,))), device=device)


def arange(start, stop=None, step=1, dtype=None, device="cpu"):
    """Evenly spaced values in [start, stop), int64 for integer arguments."""
    if stop is None:
        start, stop = 0, start
    xp = backend.array_module(device)
    return Tensor(xp.arange(start, stop, step, dtype=dtype), device=device)


def zeros_like(t, dtype=None, requires_grad=False):
    """Zeros with `t`'s shape, dtype and device."""
    return zeros(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    """Ones with `t`'s shape, dtype and device."""
    return ones(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


float32, float64, int64, bool_ = np.float32, np.float64, np.int64, np.bool_

__all__ = [
    "Tensor", "Function", "tensor", "from_numpy", "zeros", "ones", "full", "randn", "rand", "randint",
    "arange", "zeros_like", "ones_like", "no_grad", "enable_grad", "is_grad_enabled", "manual_seed",
    "gpu_available", "get_array_module", "parse_device", "sum_to", "gradcheck", "GradcheckError",
    "F", "functional", "backend", "optim", "data", "checkpoint", "nn", "train",
    "sampling", "safetensors", "tokenizers", "GPT", "GPTConfig", "PRESETS", "sample_next", "CharTokenizer",
    "BPETokenizer", "float32", "float64", "int64",
]
