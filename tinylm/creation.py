"""Creating tensors: from data (`tensor`, `from_numpy`), filled (`zeros`, `ones`, `full`, `arange`,
`linspace`, the `*_like` forms, `tril`, `triu`) and random (`randn`, `rand`, `randint`,
`multinomial`, `Generator`), as PyTorch's factories. Floats are float32 unless a dtype is given;
random numbers come from the device's generator (seeded by `manual_seed`) or a private one.

Reference: torch's creation ops (names, arguments, dtypes).
"""
import builtins

import numpy as np

from . import backend
from .sampling import draw_from_weights
from .tensor import Tensor


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new leaf Tensor from a list, scalar, array or Tensor, always a copy (`from_numpy` shares);
    Python floats become float32."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, (list, tuple)):                        # dtypes inferred, as torch.tensor (not torch.Tensor)
        data = np.asarray(data)
        dtype = backend.DEFAULT_DTYPE if dtype is None and data.dtype.kind == "f" else dtype
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


def empty(*shape, size=None, dtype=None, device="cpu", requires_grad=False):
    """torch.empty's shape and arguments; filled with zeros here, so no result depends on leftover memory."""
    return zeros(*shape, size=size, dtype=dtype, device=device, requires_grad=requires_grad)


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
        ids = draw_from_weights(w.astype(np.float64), num_samples, gen)  # (B, n)
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


def randperm(n, *, generator=None, dtype=None, device="cpu", requires_grad=False):
    """A random permutation of 0..n-1 (int64 unless `dtype`), from the device's generator or `generator`,
    as PyTorch's randperm (whose numbers differ for the same seed)."""
    if isinstance(n, builtins.bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"randperm: n must be a non-negative int, got {n!r}")
    device = backend.parse_device(device)
    keys = _gen(generator, device).uniform((int(n),), np.float64)
    perm = backend.argsort_stable(keys).astype(np.dtype(dtype or np.int64))
    return Tensor(perm, device=device, requires_grad=requires_grad)
