"""PyTorch-porting names: what teaching code written for torch calls, beyond the core.

Attaches to Tensor, when the package is imported (as DeZero's `setup_variable` does), the
methods a GPT does not need: `//`, `%`, the in-place operators and item assignment (outside the
graph), `&`, `|`, `^`, `~`, `any`, `all`, `clamp`, `log10`, `gather`, `topk`, `chunk`, `unbind`,
and `max`/`min` with a `dim`, which return (values, indices) as torch.return_types do. Then the
function forms (`tl.sum(x, 1)` for `x.sum(1)`), `allclose`, `equal`, `histogram`, the dtype
names, and stand-ins for `torch.cuda` and `torch.amp` on a machine without mixed precision.

Reference: the PyTorch API (names, defaults, return types).
"""
import builtins
import math
from collections import namedtuple

import numpy as np

from . import backend, engine, ops

from .engine import is_grad_enabled
from .ops_extra import Abs, BroadcastTo, Relu, Remainder, Sigmoid, Var
from .tensor import Tensor, _axis, _index, _operands, floats, scalar

ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])   # as torch.return_types.max
Histogram = namedtuple("histogram", ["hist", "bin_edges"])           # as torch.return_types.histogram


# ---------------------------------------------------------------------------- Tensor methods
class _TensorMethods:
    """Tensor methods outside the GPT's path, attached to Tensor below: comparisons (boolean masks,
    outside the graph), Python's protocols (len, iter, bool, float, int, index, format), NumPy's
    (np.asarray), printing, and PyTorch's extras."""

    def size(self, dim=None, *, axis=None):
        """The shape (PyTorch's name), or the length of axis `dim`."""
        dim = _axis(axis, self.ndim, "size", dim)
        return self.shape if dim is None else self.shape[dim]

    def dim(self):
        """The number of axes (PyTorch's name for ndim)."""
        return self.data.ndim

    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else scalar(other)
        return Tensor._make(op(self.data, other), self.device)


    __lt__ = lambda self, o: self._compare(o, lambda a, b: a < b)
    __le__ = lambda self, o: self._compare(o, lambda a, b: a <= b)
    __gt__ = lambda self, o: self._compare(o, lambda a, b: a > b)
    __ge__ = lambda self, o: self._compare(o, lambda a, b: a >= b)
    __eq__ = lambda self, o: self._compare(o, lambda a, b: a == b)   # elementwise, as PyTorch and NumPy
    __ne__ = lambda self, o: self._compare(o, lambda a, b: a != b)
    __hash__ = object.__hash__  # by identity, so tensors can key dicts (optimiser state)

    def __len__(self):
        if not self.ndim:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        if not self.ndim:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __bool__(self):
        if self.numel() != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous; "
                             "use .any() or .all()")
        return builtins.bool(self.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype.kind not in "iu":
            raise TypeError(f"only integer tensors can be used as an index, got dtype {self.dtype}")
        return int(self.item())

    def __format__(self, spec):
        return format(self.item(), spec) if self.ndim == 0 or self.numel() == 1 and spec else format(str(self), spec)

    def __array__(self, dtype=None, copy=None):
        """np.asarray(tensor) for a CPU tensor; other devices refuse, as CuPy does (use .numpy())."""
        if self.device != "cpu":
            raise TypeError(f"a tensor on '{self.device}' is not converted to NumPy implicitly; use .numpy()")
        out = self.data if dtype is None else self.data.astype(dtype, copy=False)
        return out.copy() if copy and out is self.data else out

    def relu(self):
        """max(x, 0), elementwise."""
        return Relu.apply(self)

    def sigmoid(self):
        """1 / (1 + exp(-x)), elementwise."""
        return Sigmoid.apply(floats(self))

    def __repr__(self):
        """As PyTorch prints: 4 decimals, up to 1000 elements in full, the device unless the CPU, the
        dtype unless float32, int64 or bool."""
        host = backend.to_numpy(self.data)
        finite = host[np.isfinite(host)] if host.dtype.kind == "f" else host
        whole = host.dtype.kind != "f" or builtins.bool(np.all(finite == np.round(finite)))   # 1., 2. as PyTorch
        if whole and host.dtype.kind == "f":        # but PyTorch's scientific form past 1e8 or a range of 1000
            nz = np.abs(finite[finite != 0])
            whole = not (nz.size and (nz.max() > 1e8 or nz.max() > 1000 * nz.min()))
        body = np.array2string(host, separator=", ", prefix="tensor(", threshold=1000, precision=4,
                               floatmode="maxprec" if whole else "fixed", suppress_small=whole)
        extra = f", size={self.shape}" if self.numel() == 0 and self.ndim > 1 else ""
        extra += "" if self.device == "cpu" else f", device='{self.device}'"
        extra += "" if self.dtype in (np.float32, np.int64, np.bool_) else f", dtype={self.dtype}"
        extra += f", grad_fn=<{self._ctx.name}>" if self._ctx is not None and not getattr(self._ctx, "freed", False) \
            else (", requires_grad=True" if self.requires_grad else "")
        return f"tensor({body}{extra})"

    def long(self):
        """An int64 copy (no gradient), e.g. token ids."""
        return Tensor._make(self.data.astype(np.int64), self.device)

    def int(self):
        """An int32 copy (no gradient)."""
        return Tensor._make(self.data.astype(np.int32), self.device)

    def bool(self):
        """A boolean copy (no gradient): nonzero -> True."""
        return Tensor._make(self.data.astype(bool), self.device)

    def __rpow__(self, base):
        """base ** x for a positive scalar base, as exp(x log(base))."""
        if isinstance(base, (bool, np.bool_)) or not isinstance(base, (int, float, np.number)) or base <= 0:
            raise ValueError(f"base ** tensor needs a positive scalar base, got {base!r}")
        if self.dtype.kind != "f" and isinstance(base, (int, np.integer)):
            return Tensor._make(int(base) ** self.data, self.device)      # 2 ** int tensor: ints, as PyTorch
        return (floats(self) * math.log(base)).exp()

    def __abs__(self):
        """|x|, elementwise."""
        return Abs.apply(self)

    def var(self, axis=None, unbiased=None, keepdims=False, *, correction=1, dim=None, keepdim=None):
        """Variance over `axis`, unbiased by default (PyTorch's order: `x.var(1, False)` is the
        biased one); `correction=0` is biased too."""
        if isinstance(axis, builtins.bool):                             # x.var(False): PyTorch's var(unbiased)
            axis, unbiased = None, axis
        if unbiased is not None:
            correction = 1 if unbiased else 0
        return Var.apply(floats(self), axis=_axis(axis, self.ndim, "var", dim, many=True),
                             keepdims=builtins.bool(keepdims if keepdim is None else keepdim), correction=correction)

    def std(self, axis=None, unbiased=None, keepdims=False, *, correction=1, dim=None, keepdim=None):
        """Standard deviation: the square root of var() (unbiased by default, as PyTorch);
        the gradient of a constant's std is 0, as PyTorch's."""
        v = self.var(axis, unbiased, keepdims, correction=correction, dim=dim, keepdim=keepdim)
        return ops.Sqrt.apply(v, zero_at_zero=True)

    def argmax(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Indices of the maxima (no gradient)."""
        return self._arg("argmax", axis, keepdims, dim, keepdim)

    def argmin(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Indices of the minima (no gradient)."""
        return self._arg("argmin", axis, keepdims, dim, keepdim)

    def _arg(self, fn, axis, keepdims, dim, keepdim):
        axis = _axis(axis, self.ndim, fn, dim)
        out = getattr(self.data, fn)(axis=axis)
        if keepdims if keepdim is None else keepdim:           # the reduced axis (all of them for None) kept as 1
            out = out.reshape((1,) * self.ndim if axis is None else out.shape[:axis] + (1,) + out.shape[axis:])
        return Tensor._make(out, self.device)

    def flatten(self, start_dim=0, end_dim=-1):
        """Axes start_dim..end_dim merged into one (all of them by default): a differentiable reshape."""
        if not self.ndim:
            return self.reshape(1)
        a, b = _axis(start_dim, self.ndim, "flatten"), _axis(end_dim, self.ndim, "flatten")
        if a > b:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} (shape {self.shape})")
        return self.reshape(self.shape[:a] + (-1,) + self.shape[b + 1:])

    def unsqueeze(self, dim=None, *, axis=None):
        """A new axis of length 1 at `dim` (-1: last)."""
        dim = _axis(axis, self.ndim + 1, "unsqueeze", dim)
        if dim is None:
            raise TypeError("unsqueeze: give the axis, unsqueeze(dim)")
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None, *, axis=None):
        """Drop axes of length 1 (all of them, or `dim` if it has length 1)."""
        dim = _axis(axis, self.ndim, "squeeze", dim)
        drop = {d for d in (range(self.ndim) if dim is None else [dim]) if self.shape[d] == 1}
        return self.reshape(tuple(n for d, n in enumerate(self.shape) if d not in drop))

    def expand(self, *sizes):
        """A broadcast view to `sizes` (-1 keeps an axis); the gradient sums back."""
        sizes = tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes
        lead = len(sizes) - self.ndim
        if lead < 0:
            raise ValueError(f"expand: {sizes} has fewer axes than shape {self.shape}")
        shape = tuple(n if n != -1 else self.shape[i - lead] for i, n in enumerate(sizes))
        return BroadcastTo.apply(self, shape=shape)



def _int_divisor(b, a):
    """The divisor b of `a // b` or `a % b` as an array or scalar; with integers on both sides a zero
    raises, as in PyTorch (NumPy gives 0 and a warning)."""
    d = b.data if isinstance(b, Tensor) else b
    kind = d.dtype.kind if hasattr(d, "dtype") else "i" if isinstance(d, int) else "f"
    a_kind = a.dtype.kind if isinstance(a, Tensor) else "i" if isinstance(a, int) else "f"
    if kind in "iub" and a_kind in "iub" and builtins.bool((d == 0).any() if hasattr(d, "any") else d == 0):
        raise ZeroDivisionError("integer division or modulo by zero")
    return d


def _floordiv(self, other):
    """Floor division (no gradient), as PyTorch's //; dtypes follow the arithmetic rule."""
    a, b = _operands(self, other)
    return Tensor._make(a.data // _int_divisor(b, a), self.device)


def _rfloordiv(self, other):
    b, a = _operands(self, other)
    return Tensor._make((a.data if isinstance(a, Tensor) else a) // _int_divisor(b, a), self.device)


def _mod(self, other):
    """Remainder, as PyTorch's %: x - floor(x / y) y, with the sign of y."""
    a, b = _operands(self, other)
    if a.dtype.kind != "f":
        return Tensor._make(a.data % _int_divisor(b, a), self.device)
    return Remainder.apply(a, b)


def _rmod(self, other):
    b, a = _operands(self, other)
    if b.dtype.kind != "f":
        return Tensor._make((a.data if isinstance(a, Tensor) else a) % _int_divisor(b, a), self.device)
    return Remainder.apply(a, b)


def _write_operand(self, value, what):
    """The value of an in-place write, as an array or scalar on this tensor's device; refused in the graph."""
    if is_grad_enabled() and (self.requires_grad or isinstance(value, Tensor) and value.requires_grad):
        raise RuntimeError(f"{what} on a tensor in the graph would corrupt its gradients; inside "
                           "`with tl.no_grad():` it is fine (a manual update step); elsewhere build a new "
                           "tensor (x = x + y, F.where, masked_fill)")
    if isinstance(value, Tensor):
        if value.device != self.device:
            raise ValueError(f"{what}: tensor on '{self.device}', value on '{value.device}'")
        return value.data
    if isinstance(value, np.ndarray) and self.device != "cpu":
        raise ValueError(f"{what}: a NumPy array (shape {value.shape}) with a tensor on '{self.device}'; "
                         "make it a tensor on that device")
    return scalar(value)


def _inplace(ufunc, symbol):
    def method(self, other):
        other = _write_operand(self, other, f"in-place '{symbol}'")
        getattr(backend.get_array_module(self.data), ufunc)(self.data, other, out=self.data)
        self._version += 1
        return self
    method.__name__ = f"__i{ufunc}__"
    return method


def _setitem(self, index, value):
    """x[index] = value, in place (outside the graph): `losses[k] = loss.item()`, `N[i, j] += 1`."""
    value = _write_operand(self, value, "item assignment")
    self.data[_index(index, self)] = value
    self._version += 1


def _logic(symbol, op):
    def method(self, other):
        if self.dtype.kind not in "biu":
            raise TypeError(f"'{symbol}' needs boolean or integer tensors, got dtype {self.dtype}")
        return self._compare(other, op)
    return method


def _invert(self):
    if self.dtype.kind not in "biu":
        raise TypeError(f"'~' needs a boolean or integer tensor, got dtype {self.dtype}")
    return Tensor._make(~self.data, self.device)


def _truth(name):
    def method(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis = _axis(axis, self.ndim, name, dim, many=True)
        keepdims = builtins.bool(keepdims if keepdim is None else keepdim)
        return Tensor._make(getattr(self.data, name)(axis=axis, keepdims=keepdims), self.device)
    method.__name__ = name
    method.__doc__ = f"True where {name} elements along `axis` are nonzero (no gradient)."
    return method


def _clamp(self, min=None, max=None):
    """x limited to [min, max] (either may be None); no gradient where it was clipped."""
    x = self
    if min is not None:
        x = x.masked_fill(x < min, min)
    if max is not None:
        x = x.masked_fill(x > max, max)
    return x


def _log10(self):
    """Base-10 logarithm, elementwise: log(x) / ln 10 (within float32 rounding of NumPy's log10)."""
    return floats(self).log() * (1.0 / math.log(10.0))


def _extreme(name):
    core = getattr(Tensor, name)

    def method(self, *args, dim=None, keepdim=None, axis=None, keepdims=None):
        """NumPy's form `x.max()`, `x.max(axis=1, keepdims=True)`: the values; PyTorch's form with a dim,
        `x.max(1)` or `x.max(dim=1, keepdim=True)`: (values, indices), as torch.return_types.max."""
        if args and dim is not None:
            raise TypeError(f"{name}(): give the dim once")
        if args and isinstance(args[0], Tensor):
            raise TypeError(f"x.{name}(other) for tensors: write tl.maximum / tl.minimum or tl.{name}(x, other)")
        if args or dim is not None:                            # PyTorch's form
            if axis is not None:
                raise TypeError(f"{name}(): give axis or dim, not both")
            keep = (args[1] if len(args) > 1 else False) if keepdim is None else keepdim
            return _with_indices(self, args[0] if args else dim, keep, name)
        return core(self, axis, builtins.bool(keepdims or keepdim))
    method.__name__ = name
    return method


def _with_indices(self, dim, keepdim, name):
    """(values, indices) along `dim`: the values gathered at the indices, so the gradient goes to
    that one element (PyTorch's rule), not shared among ties."""
    axis = _axis(dim, self.ndim, name)
    idx = getattr(self, "arg" + name)(dim=axis, keepdim=True)   # (..., 1, ...)
    values = self.gather(axis, idx)                        # GetItem's backward scatters to that element
    if not keepdim:
        values, idx = values.squeeze(axis), idx.squeeze(axis)
    return ValuesIndices(values, idx)


def _gather(self, dim=None, index=None, *, axis=None):
    """out[i][j] = x[i][index[i][j]] along `dim` (PyTorch's gather); the gradient scatters back."""
    axis = _axis(axis, self.ndim, "gather", dim)
    idx = index.data if isinstance(index, Tensor) else backend.to_device(np.asarray(index), self.device)
    if idx.ndim != self.ndim or idx.dtype.kind not in "iu":
        raise ValueError(f"gather: index must be integers with {self.ndim} axes, got {tuple(idx.shape)} "
                         f"of dtype {idx.dtype}")
    if idx.size and not (0 <= int(idx.min()) and int(idx.max()) < self.shape[axis]):
        raise IndexError(f"gather: index out of range [0, {self.shape[axis]}) along dim {axis}")
    xp = backend.get_array_module(self.data)
    full = tuple(idx if a == axis else xp.arange(n).reshape((-1,) + (1,) * (self.ndim - a - 1))
                 for a, n in enumerate(idx.shape))
    return self[full]


def _topk(self, k, dim=None, largest=True, sorted=True, *, axis=None):
    """(values, indices) of the k largest (or smallest) along `dim` (the last by default), largest
    first (PyTorch's topk)."""
    axis = _axis(axis, self.ndim, "topk", dim if dim is not None or axis is not None else -1)
    if isinstance(k, builtins.bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= self.shape[axis]:
        raise ValueError(f"topk: k must be an int in [0, {self.shape[axis]}], got {k!r}")
    xp = backend.get_array_module(self.data)
    keys = -self.data if largest else self.data
    if largest and self.dtype.kind == "f":
        keys = xp.where(xp.isnan(self.data), -xp.inf, keys)   # nan ranks first, as PyTorch
    order = backend.argsort_stable(keys, axis=axis)
    idx = order[(slice(None),) * axis + (slice(0, k),)]
    indices = Tensor._make(idx.astype(np.int64, copy=False), self.device)
    return ValuesIndices(self.gather(axis, indices), indices)


def _chunk(self, chunks, dim=None, *, axis=None):
    """`chunks` pieces along `dim`, each ceil(n / chunks) long (the last may be shorter), as PyTorch."""
    axis = _axis(axis, self.ndim, "chunk", dim if dim is not None or axis is not None else 0)
    if isinstance(chunks, builtins.bool) or not isinstance(chunks, (int, np.integer)) or chunks < 1:
        raise ValueError(f"chunk: chunks must be a positive int, got {chunks!r}")
    return self.split(builtins.max(-(-self.shape[axis] // chunks), 1), axis)


def _unbind(self, dim=None, *, axis=None):
    """The slices along `dim` (the first by default), as a tuple (each one axis fewer)."""
    axis = _axis(axis, self.ndim, "unbind", dim if dim is not None or axis is not None else 0)
    return tuple(self[(slice(None),) * axis + (i,)] for i in range(self.shape[axis]))


def _eq(self, other):
    """Elementwise equality as a boolean tensor (outside the graph): the same as `==`."""
    return self == other


def _contiguous(self):
    """Self: tinylm's ops take any memory layout (PyTorch's name, for ported code)."""
    return self


def _half(self):
    """As float16 (differentiable); self when it already is."""
    return self.to(np.float16)


def _values_only(self):
    raise AttributeError("a tensor has no .values or .indices: NumPy's form x.max(axis=1) returns the values "
                         "only; write x.max(1) or x.max(dim=1) for PyTorch's (values, indices)")


for _name, _method in vars(_TensorMethods).items():
    if _name not in ("__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__hash__"):
        setattr(Tensor, _name, _method)
Tensor.abs = Tensor.__abs__
for _name, _method in {
        "__floordiv__": _floordiv, "__rfloordiv__": _rfloordiv, "__mod__": _mod, "__rmod__": _rmod,
        "__iadd__": _inplace("add", "+="), "__isub__": _inplace("subtract", "-="),
        "__imul__": _inplace("multiply", "*="), "__itruediv__": _inplace("divide", "/="),
        "__setitem__": _setitem, "__and__": _logic("&", lambda a, b: a & b),
        "__or__": _logic("|", lambda a, b: a | b), "__xor__": _logic("^", lambda a, b: a ^ b),
        "__invert__": _invert, "__contains__": lambda self, value: builtins.bool((self == value).any()),
        "any": _truth("any"), "all": _truth("all"), "clamp": _clamp, "clip": _clamp, "log10": _log10,
        "max": _extreme("max"), "min": _extreme("min"), "gather": _gather, "topk": _topk, "chunk": _chunk,
        "unbind": _unbind, "values": property(_values_only), "indices": property(_values_only),
        "eq": _eq, "nelement": Tensor.numel, "contiguous": _contiguous, "half": _half}.items():
    setattr(Tensor, _name, _method)


# ---------------------------------------------------------------------------- function forms
def _method(name):
    def fn(input, *args, **kwargs):
        if not isinstance(input, Tensor):
            raise TypeError(f"tl.{name}: expected a Tensor, got {type(input).__name__}")
        return getattr(input, name)(*args, **kwargs)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"`tl.{name}(x, ...)` is `x.{name}(...)` (PyTorch's function form)."
    return fn


sum = _method("sum")
mean = _method("mean")
argmax = _method("argmax")
argmin = _method("argmin")
exp = _method("exp")
log = _method("log")
sqrt = _method("sqrt")
tanh = _method("tanh")
sigmoid = _method("sigmoid")
softmax = _method("softmax")
log_softmax = _method("log_softmax")
abs = _method("abs")
clamp = _method("clamp")
reshape = _method("reshape")
flatten = _method("flatten")
unsqueeze = _method("unsqueeze")
squeeze = _method("squeeze")
transpose = _method("transpose")
permute = _method("permute")
matmul = _method("matmul")
topk = _method("topk")
gather = _method("gather")
unbind = _method("unbind")
chunk = _method("chunk")
split = _method("split")
var = _method("var")
std = _method("std")
masked_fill = _method("masked_fill")
numel = _method("numel")
all = _method("all")
any = _method("any")


def _extreme_form(name):
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
    wins = (a > b) if name == "max" else (a < b)
    loses = (a < b) if name == "max" else (a > b)
    a, b = (floats(a), floats(b)) if a.dtype.kind != "f" or b.dtype.kind != "f" else (a, b)
    return ops.Where.apply(wins.data, a, ops.Where.apply(loses.data, b, a * 0.5 + b * 0.5))


max, min = _extreme_form("max"), _extreme_form("min")


def allclose(a, b, rtol=1e-5, atol=1e-8, equal_nan=False):
    """True when every element of a is close to b's (NumPy's and PyTorch's rule), on any device."""
    a = a.data if isinstance(a, Tensor) else a
    b = b.data if isinstance(b, Tensor) else b
    return builtins.bool(backend.get_array_module(a).allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(a, b):
    """True when a and b have the same shape and elements."""
    return a.shape == b.shape and builtins.bool((a == b).all())


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


# ---------------------------------------------------------------------------- grad modes
def inference_mode(mode=True):
    """PyTorch's stricter no_grad; here no_grad itself. `inference_mode(False)` changes nothing."""
    if callable(mode):
        return engine.no_grad(mode)
    return engine._GradMode(False if mode else None)


class set_grad_enabled:
    """Turn graph recording on or off: as a call (`set_grad_enabled(False)`) it stays so; as
    `with set_grad_enabled(training):` the old mode comes back at the end of the block; as a
    decorator `@set_grad_enabled(False)` it holds while the function runs."""

    def __init__(self, mode):
        self.mode = builtins.bool(mode)
        self.prev, engine._grad_enabled = engine._grad_enabled, self.mode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        engine._grad_enabled = self.prev

    def __call__(self, fn):
        engine._grad_enabled = self.prev                       # a decorator changes nothing until called
        return engine._GradMode(self.mode)(fn)


# ---------------------------------------------------------------------------- dtypes, cuda, amp
float16 = half = np.float16
float32, float64, int32, int64, bool_ = np.float32, np.float64, np.int32, np.int64, np.bool_
long, bool = int64, bool_   # PyTorch's names (tl.bool shadows the builtin only inside this module's namespace)


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
        return backend.gpu_available()

    @staticmethod
    def device_count():
        """The number of CUDA GPUs CuPy sees (0 without CuPy)."""
        if not backend.gpu_available():
            return 0
        return int(backend.array_module("gpu").cuda.runtime.getDeviceCount())


METHOD_FORMS = ("sum", "mean", "max", "min", "argmax", "argmin", "exp", "log", "sqrt", "tanh", "sigmoid",
                "softmax", "log_softmax", "abs", "clamp", "reshape", "flatten", "unsqueeze", "squeeze",
                "transpose", "permute", "matmul", "topk", "gather", "unbind", "chunk", "split", "var", "std",
                "masked_fill", "numel", "all", "any")
