"""tinylm: a minimal, fast language-model framework on NumPy (CPU) and CuPy (GPU).

    import tinylm as tl
    x = tl.randn(3, 4, requires_grad=True)
    (x.tanh() @ x.T).sum().backward()
    x.grad.shape  # (3, 4)

The public API: Tensor and its factories, no_grad, manual_seed, device helpers, gradcheck,
and the submodules `functional` (as F), `nn`, `optim`, `tokenizers`, `data`, `train`.
"""
import builtins
from collections import namedtuple

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
from . import cuda_kernels  # outer ring: fused CuPy kernels, off unless TINYLM_FUSED=1
from .cuda_kernels import use_fused_kernels

__version__ = "0.1.0"


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new leaf Tensor from a list, scalar, array or Tensor, always a copy (`from_numpy` shares);
    Python floats become float32."""
    if isinstance(data, Tensor):
        data = data.data
    t = Tensor(data, device=device, dtype=dtype, requires_grad=requires_grad)
    if t.data is data or t.device == "cpu" and isinstance(data, np.ndarray) and np.shares_memory(t.data, data):
        t.data = t.data.copy()
    return t


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
    if not builtins.all(isinstance(n, (int, np.integer)) and not isinstance(n, builtins.bool) and n >= 0 for n in shape):
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


class Generator(backend.Generator):
    """A private random generator, as PyTorch's: `g = tl.Generator().manual_seed(42)`, then
    `tl.randn(3, generator=g)`, `tl.multinomial(p, 1, generator=g)`. Its numbers differ from
    PyTorch's for the same seed (a different algorithm), and from another device's."""

    def __init__(self, device="cpu"):
        super().__init__(device, backend.initial_seed())

    def manual_seed(self, seed):
        """Reseed; returns self, so `tl.Generator().manual_seed(42)` reads as in PyTorch."""
        super().__init__(self.device, int(seed))
        return self


def _gen(generator, device):
    if generator is None:
        return backend.get_generator(device)
    if generator.device != device:
        raise ValueError(f"a generator on '{generator.device}' cannot draw for device '{device}'")
    return generator


def randn(*shape, size=None, dtype=None, device="cpu", requires_grad=False, generator=None):
    """Standard normal samples from the device's generator (seeded by `manual_seed`) or `generator`."""
    device = backend.parse_device(device)
    data = _gen(generator, device).normal(_shape(shape, size), np.dtype(dtype or backend.DEFAULT_DTYPE))
    return Tensor(data, device=device, requires_grad=requires_grad)


def rand(*shape, size=None, dtype=None, device="cpu", requires_grad=False, generator=None):
    """Uniform [0, 1) samples from the device's generator or `generator`."""
    device = backend.parse_device(device)
    data = _gen(generator, device).uniform(_shape(shape, size), np.dtype(dtype or backend.DEFAULT_DTYPE))
    return Tensor(data, device=device, requires_grad=requires_grad)


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """Draw `num_samples` ids per row from the weights `input` (V,) or (B, V) (need not sum to 1),
    as PyTorch's multinomial: int64 (num_samples,) or (B, num_samples). Without replacement an id
    is drawn at most once per row (the Gumbel top-k trick)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"multinomial: input must be a Tensor of weights, got {type(input).__name__}")
    if input.ndim not in (1, 2):
        raise ValueError(f"multinomial: input must be (V,) or (B, V), got {input.shape}")
    w = input.data if input.ndim == 2 else input.data[None]            # (B, V)
    xp = backend.get_array_module(w)
    if not builtins.bool(((w >= 0) & xp.isfinite(w)).all()) or not builtins.bool((w.sum(axis=-1) > 0).all()):
        raise ValueError("multinomial: weights must be finite, non-negative and not all zero in a row")
    if isinstance(num_samples, builtins.bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"multinomial: num_samples must be a positive int, got {num_samples!r}")
    if not replacement and num_samples > w.shape[-1]:
        raise ValueError(f"multinomial: {num_samples} samples without replacement from {w.shape[-1]} ids")
    gen = _gen(generator, input.device)
    B, V = w.shape
    if replacement:                                                     # inverse CDF, one uniform per draw
        cdf = xp.cumsum(w.astype(np.float64), axis=-1)                  # (B, V)
        u = (1.0 - gen.uniform((B, num_samples), dtype=np.float64)) * cdf[:, -1:]   # (B, n) in (0, total]
        ids = (cdf[:, None, :] < u[:, :, None]).sum(axis=-1)           # (B, n): first id whose cdf reaches u
        ids = xp.minimum(ids, V - 1)
    else:                                                               # largest log(w) + Gumbel noise
        u = xp.clip(gen.uniform((B, V), dtype=np.float64), 1e-300, 1.0 - 2.0 ** -53)   # in (0, 1)
        keys = xp.full((B, V), -xp.inf)                                 # weight 0: never drawn
        keys[w > 0] = xp.log(w[w > 0].astype(np.float64))
        keys -= xp.log(-xp.log(u))                                      # + Gumbel noise
        ids = backend.argsort_stable(-keys)[:, :num_samples]
    ids = ids.astype(np.int64)
    return Tensor._make(ids if input.ndim == 2 else ids[0], input.device)


def randint(*args, size=None, device="cpu", generator=None):
    """Integers in [low, high) (int64) from the device's generator, as PyTorch:
    `randint(low, high, shape)`, `randint(high, shape)`, or either with `size=shape`."""
    if size is not None:
        args = args + (size,)
    if len(args) == 2:
        args = (0,) + args
    if len(args) != 3 or not builtins.all(isinstance(a, (int, np.integer)) for a in args[:2]):
        raise TypeError(f"randint(low, high, shape) or randint(high, shape), got {args}")
    low, high, shape = args
    if low >= high:
        raise ValueError(f"randint: need low < high, got low {low} and high {high}")
    device = backend.parse_device(device)
    return Tensor(_gen(generator, device).integers(low, high, _shape((shape,))), device=device)


def arange(start, stop=None, step=1, dtype=None, device="cpu"):
    """Evenly spaced values in [start, stop): int64 for integer arguments, else float32 (not float64)."""
    if stop is None:
        start, stop = 0, start
    if dtype is None and not builtins.all(isinstance(a, (int, np.integer)) for a in (start, stop, step)):
        dtype = backend.DEFAULT_DTYPE
    xp = backend.array_module(device)
    return Tensor(xp.arange(start, stop, step, dtype=dtype), device=device)


def linspace(start, end, steps, dtype=None, device="cpu"):
    """`steps` evenly spaced values from start to end, both included (float32 unless `dtype`)."""
    xp = backend.array_module(device)
    return Tensor(xp.linspace(start, end, steps, dtype=np.dtype(dtype or backend.DEFAULT_DTYPE)), device=device)


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


def save(obj, path):
    """Write `obj` to `path` as one .npz (arrays) with JSON (the rest), atomically, never pickle.

    `obj` is a state_dict, or a nest of dicts, lists, arrays, Tensors, numbers and strings, as
    nanoGPT's `torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), ...})`.
    Returns the path. (`tinylm.checkpoint.save_checkpoint` is the training loop's richer format.)
    """
    from .checkpoint import save_checkpoint
    obj = _host_tree(obj)
    if isinstance(obj, dict) and builtins.all(isinstance(k, str) and hasattr(v, "shape") and not isinstance(v, np.generic)
                                     for k, v in obj.items()):
        return save_checkpoint(path, obj)                      # a state_dict: arrays by name
    if not isinstance(obj, (dict, list, tuple)):
        raise TypeError(f"save: expected a state_dict or a dict/list of them, got {type(obj).__name__}")
    return save_checkpoint(path, {}, extra={"object": obj})


def load(path, device="cpu", map_location=None):
    """What `save` wrote, with its arrays on `device` (PyTorch's `map_location` too), read without pickle:
    `model.load_state_dict(tl.load("model.npz"))`."""
    from .checkpoint import load_checkpoint
    ck = load_checkpoint(path)
    device = map_location or device
    return _device_tree(ck.extra["object"] if "object" in ck.extra and not ck.model else dict(ck.model), device)


def _host_tree(obj):
    if isinstance(obj, Tensor):
        return obj.data
    if isinstance(obj, dict):
        return {k: _host_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_host_tree(v) for v in obj]
    return obj


def _device_tree(obj, device):
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        return backend.to_device(obj, device)
    if isinstance(obj, dict):
        return {k: _device_tree(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_device_tree(v, device) for v in obj]
    return obj


# ---------------------------------------------------------------------------- PyTorch's function forms
def _method_form(name):
    def fn(input, *args, **kwargs):
        if not isinstance(input, Tensor):
            raise TypeError(f"tl.{name}: expected a Tensor, got {type(input).__name__}")
        return getattr(input, name)(*args, **kwargs)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"`tl.{name}(x, ...)` is `x.{name}(...)` (PyTorch's function form)."
    return fn


_METHOD_FORMS = ("sum", "mean", "max", "min", "argmax", "argmin", "exp", "log", "sqrt", "tanh", "sigmoid",
                 "softmax", "log_softmax", "abs", "clamp", "reshape", "flatten", "unsqueeze", "squeeze",
                 "transpose", "permute", "matmul", "topk", "gather", "unbind", "chunk", "split", "var", "std",
                 "masked_fill", "numel", "all", "any")
for _name in _METHOD_FORMS:
    globals()[_name] = _method_form(_name)
del _name


def _reduce_with_indices(name):
    def fn(input, dim=None, keepdim=False, *, axis=None):
        if dim is not None and axis is not None:
            raise TypeError(f"tl.{name}: give dim or axis, not both")
        dim = axis if dim is None else dim
        if isinstance(dim, Tensor):                            # tl.max(a, b): elementwise, as PyTorch
            return _elementwise_extreme(input, dim, name)
        m = getattr(input, name)
        return m() if dim is None else m(dim=dim, keepdim=keepdim)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"`tl.{name}(x)`: the {name}imum; `tl.{name}(x, dim)`: (values, indices) along dim; "
                  f"`tl.{name}(a, b)`: elementwise; as PyTorch's torch.{name}.")
    return fn


def _elementwise_extreme(a, b, name):
    """maximum/minimum of a and b: nan wins (PyTorch's rule) and a tie splits the gradient in half."""
    xp = backend.get_array_module(a.data)
    wins = (a.data > b.data) if name == "max" else (a.data < b.data)
    share = wins + 0.5 * (a.data == b.data)                    # a's share of the gradient
    share = Tensor._make(share.astype(a.dtype if a.dtype.kind == "f" else backend.DEFAULT_DTYPE), a.device)
    out = a * share + b * (1.0 - share)
    out.data = (xp.maximum if name == "max" else xp.minimum)(a.data, b.data).astype(out.dtype, copy=False)
    return out


max, min = _reduce_with_indices("max"), _reduce_with_indices("min")


def allclose(a, b, rtol=1e-5, atol=1e-8, equal_nan=False):
    """True when every element of a is close to b's (NumPy's and PyTorch's rule), on any device."""
    a = a.data if isinstance(a, Tensor) else a
    b = b.data if isinstance(b, Tensor) else b
    return builtins.bool(backend.get_array_module(a).allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


def histogram(input, bins=100, *, range=None, weight=None, density=False):
    """(hist, bin_edges) of `input`'s values, as PyTorch's torch.histogram: `bins` equal bins from the
    smallest value to the largest (or over `range=(lo, hi)`), or the edges given as a 1-D tensor;
    `density=True` scales the counts to integrate to 1. Outside the graph; float inputs keep their
    dtype, others give float32. `input` may also be an array, such as a `.grad`."""
    data = input.data if isinstance(input, Tensor) else input
    device = input.device if isinstance(input, Tensor) else backend.device_of(data)
    xp = backend.get_array_module(data)
    bins = bins.data if isinstance(bins, Tensor) else bins
    weight = weight.data if isinstance(weight, Tensor) else weight
    if range is not None:
        range = tuple(builtins.float(r) for r in range)
    hist, edges = xp.histogram(data.ravel(), bins=bins, range=range, density=density,
                               weights=None if weight is None else weight.ravel())
    dtype = data.dtype if data.dtype.kind == "f" else np.dtype(backend.DEFAULT_DTYPE)
    return Histogram(Tensor._make(hist.astype(dtype), device), Tensor._make(edges.astype(dtype), device))


Histogram = namedtuple("histogram", ["hist", "bin_edges"])   # as torch.return_types.histogram


def equal(a, b):
    """True when a and b have the same shape and elements."""
    return a.shape == b.shape and builtins.bool((a == b).all())


class _GradScaler:
    """PyTorch's mixed-precision loss scaler, disabled (tinylm trains in float32): `scale(loss)` is
    the loss, `step(opt)` is `opt.step()`, so nanoGPT's training step ports unchanged."""

    def __init__(self, *args, enabled=True, **kwargs):     # PyTorch's device, init_scale, ... are ignored
        if enabled:
            raise NotImplementedError("GradScaler: tinylm has no mixed-precision training; pass enabled=False "
                                      "(nanoGPT: dtype 'float32')")

    def is_enabled(self):
        """False: scaling is off."""
        return False

    def get_scale(self):
        """1.0: the loss is not scaled."""
        return 1.0

    def state_dict(self):
        """{}: nothing to save."""
        return {}

    def load_state_dict(self, state):
        """Nothing to load."""

    def scale(self, loss):
        """The loss itself."""
        return loss

    def unscale_(self, optimizer):
        """Nothing to unscale."""

    def step(self, optimizer, *args, **kwargs):
        """optimizer.step()."""
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale=None):
        """Nothing to update."""


class amp:
    """`tl.amp.GradScaler` / `tl.cuda.amp.GradScaler`: only `enabled=False` (no mixed precision here)."""

    GradScaler = _GradScaler


class cuda:
    """PyTorch's `torch.cuda.is_available()` and `device_count()`, so ported scripts pick their device."""

    amp = amp

    @staticmethod
    def is_available():
        """True when CuPy and a CUDA GPU are usable (tinylm.gpu_available())."""
        return gpu_available()

    @staticmethod
    def device_count():
        """The number of CUDA GPUs CuPy sees (0 without CuPy)."""
        if not gpu_available():
            return 0
        return int(backend.array_module("gpu").cuda.runtime.getDeviceCount())


float16 = half = np.float16
float32, float64, int32, int64, bool_ = np.float32, np.float64, np.int32, np.int64, np.bool_
long, bool = int64, bool_   # PyTorch's names (tl.bool shadows the builtin only inside this module's namespace)

__all__ = [
    "Tensor", "Function", "tensor", "from_numpy", "zeros", "ones", "full", "randn", "rand", "randint",
    "arange", "zeros_like", "ones_like", "full_like", "randn_like", "rand_like", "tril", "triu",
    "cat", "concat", "stack", "where", "save", "load", "Generator", "multinomial", "linspace", "allclose", "histogram",
    "equal", "cuda", "amp", "float16", "half", *_METHOD_FORMS, "no_grad", "enable_grad", "is_grad_enabled", "set_grad_enabled",
    "inference_mode", "manual_seed",
    "gpu_available", "get_array_module", "parse_device", "sum_to", "gradcheck", "GradcheckError",
    "F", "functional", "backend", "optim", "data", "checkpoint", "nn", "train",
    "sampling", "safetensors", "tokenizers", "GPT", "GPTConfig", "PRESETS", "sample_next", "CharTokenizer",
    "BPETokenizer", "float32", "float64", "int32", "int64", "long", "bool_", "bool",
]
