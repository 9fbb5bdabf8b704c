"""PyTorch-porting names: what teaching code written for torch calls, beyond the core.

Attaches to Tensor, when the package is imported (as DeZero's `setup_variable` does), the
methods a GPT does not need: `//`, `%`, the in-place operators and item assignment (outside the
graph), `&`, `|`, `^`, `~`, `any`, `all`, `clamp`, `log10`, `gather`, `topk`, `chunk`, `unbind`,
and `max`/`min` with a `dim`, `sort`, `kthvalue`, `median`, which return (values, indices) as
torch.return_types do; `argsort`, `cumsum`, `cumprod`, `flip`, `roll`, `t`, `index_select`,
`repeat`, `tile`, `bmm`, `outer`, `norm`, `logsumexp`, and the in-place `copy_`, `zero_`,
`fill_`, `normal_`, `uniform_`, `masked_fill_`, `clamp_`, `add_`, ... Then the function forms
(`tl.sum(x, 1)` for `x.sum(1)`), `pow`, `einsum`, `allclose`, `equal`, `histogram`, the dtype
names (`bfloat16` only as a name), and stand-ins for `torch.cuda`, `torch.amp`, `autocast` and
`compile` on a machine without mixed precision or a compiler.

Reference: the PyTorch API (names, defaults, return types).
"""
import builtins
import math
import warnings
from collections import namedtuple

import numpy as np

from . import backend, engine, ops, ops_extra

from .engine import is_grad_enabled
from .ops_extra import Abs, BroadcastTo, Relu, Remainder, Sigmoid, Var
from .tensor import Tensor, _axis, _index, _operands, floats, same_kind, scalar

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
    the loss, `step(opt)` is `opt.step()`, so nanoGPT's training step ports unchanged. With
    enabled=True it warns and disables itself, as PyTorch's does without CUDA."""

    def __init__(self, *args, enabled=True, **kwargs):     # PyTorch's device, init_scale, ... are ignored
        if enabled:
            warnings.warn("GradScaler is enabled, but CUDA is not available. Disabling." if not backend.gpu_available()
                          else "GradScaler is enabled, but tinylm has no mixed precision. Disabling.", stacklevel=2)

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
    """`tl.amp.GradScaler` / `tl.cuda.amp.GradScaler` (disabled) and `autocast` (a no-op): no mixed precision here."""

    GradScaler = _GradScaler
    autocast = None                                            # set below, once autocast is defined


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

    @staticmethod
    def manual_seed(seed):
        """Seed the GPUs' generators (as tl.manual_seed draws for them); ignored without a GPU, as PyTorch."""
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, builtins.bool) or seed < 0:
            raise ValueError(f"cuda.manual_seed: seed must be a non-negative int, got {seed!r}")
        for i in range(cuda.device_count()):
            state = np.random.SeedSequence([int(seed), 1 + i]).generate_state(1)[0]
            backend._generators[f"cuda:{i}"] = backend.Generator(f"cuda:{i}", state)

    manual_seed_all = manual_seed

    @staticmethod
    def is_bf16_supported(including_emulation=True):
        """False: tinylm has no bfloat16 (see tl.bfloat16)."""
        return False

    @staticmethod
    def synchronize(device=None):
        """Wait for the GPU's queued work (CuPy); nothing to wait for on the CPU."""
        if backend.gpu_available():
            backend.array_module("gpu").cuda.Device().synchronize()


METHOD_FORMS = ("sum", "mean", "max", "min", "argmax", "argmin", "exp", "log", "sqrt", "tanh", "sigmoid",
                "softmax", "log_softmax", "abs", "clamp", "reshape", "flatten", "unsqueeze", "squeeze",
                "transpose", "permute", "matmul", "topk", "gather", "unbind", "chunk", "split", "var", "std",
                "masked_fill", "numel", "all", "any", "sort", "argsort", "kthvalue", "median", "cumsum", "cumprod",
                "flip", "roll", "t", "index_select", "tile", "bmm", "outer", "logsumexp", "norm")


# ---------------------------------------------------------------------------- sorting, scans, shapes
def _sort_keys(x, descending):
    """Keys whose stable ascending order is x's order (nan ranks as the largest, as PyTorch)."""
    xp = backend.get_array_module(x)
    if x.dtype.kind == "b":
        x = x.astype(np.int8)
    elif x.dtype.kind == "u":
        x = x.astype(np.int64)
    if not descending:
        return x
    keys = -x
    return xp.where(xp.isnan(x), -xp.inf, keys) if x.dtype.kind == "f" else keys


def _argsort(self, dim=-1, descending=False, stable=False, *, axis=None):
    """Indices (int64) that sort x along `dim` (the last by default), as PyTorch's argsort; always stable here."""
    axis = _axis(axis, self.ndim, "argsort", dim)
    if self.ndim == 0:
        return Tensor._make(backend.get_array_module(self.data).zeros((), dtype=np.int64), self.device)
    order = backend.argsort_stable(_sort_keys(self.data, descending), axis=axis)
    return Tensor._make(order.astype(np.int64, copy=False), self.device)


def _sort(self, dim=-1, descending=False, stable=False, *, axis=None):
    """(values, indices) sorted along `dim` (the last by default), as torch.sort; the gradient of the
    values goes back to the elements they came from."""
    if self.ndim == 0:
        return ValuesIndices(self * 1, _argsort(self))
    axis = _axis(axis, self.ndim, "sort", dim)
    idx = _argsort(self, axis, descending)
    return ValuesIndices(self.gather(axis, idx), idx)


def _kth(self, rank, axis, keepdim):
    """(values, indices) of the element of 0-based `rank` in ascending order along `axis`."""
    idx = _argsort(self, axis)[(slice(None),) * axis + (slice(rank, rank + 1),)]
    values = self.gather(axis, idx)
    return ValuesIndices(values, idx) if keepdim else ValuesIndices(values.squeeze(axis), idx.squeeze(axis))


def _kthvalue(self, k, dim=-1, keepdim=False, *, axis=None):
    """(values, indices) of the k-th smallest element along `dim` (k from 1), as torch.kthvalue."""
    axis = _axis(axis, builtins.max(self.ndim, 1), "kthvalue", dim)
    x = self if self.ndim else self.reshape(1)
    n = x.shape[axis]
    if isinstance(k, builtins.bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"kthvalue: k must be an int in [1, {n}] (the k-th smallest, counted from 1), got {k!r}")
    out = _kth(x, int(k) - 1, axis, keepdim)
    return out if self.ndim else ValuesIndices(out.values.reshape(()), out.indices.reshape(()))


def _median(self, dim=None, keepdim=False, *, axis=None):
    """torch.median: with no dim, the lower median of all elements (the ((n-1)//2)-th smallest, not the mean
    of the two middle ones); with a dim, (values, indices) along it."""
    if dim is None and axis is None:
        if self.numel() == 0:
            raise ValueError("median: the tensor is empty")
        return _kth(self.reshape(-1), (self.numel() - 1) // 2, 0, False).values
    axis = _axis(axis, builtins.max(self.ndim, 1), "median", dim)
    x = self if self.ndim else self.reshape(1)
    out = _kth(x, (x.shape[axis] - 1) // 2, axis, keepdim)
    return out if self.ndim else ValuesIndices(out.values.reshape(()), out.indices.reshape(()))


def _scan(op, name):
    def method(self, dim=None, *, dtype=None, axis=None):
        if dim is None and axis is None:
            raise TypeError(f"{name}(): the dim is required, as in PyTorch: x.{name}(0)")
        x = self if dtype is None else self.to(dtype)
        ax = _axis(axis, builtins.max(x.ndim, 1), name, dim)
        if x.ndim == 0:
            return x * 1
        if x.dtype.kind != "f":                                # integers and bools: int64, no gradient
            xp = backend.get_array_module(x.data)
            return Tensor._make(getattr(xp, name)(x.data.astype(np.int64), axis=ax), x.device)
        return op.apply(x, axis=ax)
    method.__name__ = name
    method.__doc__ = f"Running {name[3:]}s along `dim` (PyTorch's {name}); integers give int64."
    return method


def _dims(dims, ndim, fn):
    dims = dims if isinstance(dims, (tuple, list)) else (dims,)
    return sorted({_axis(d, builtins.max(ndim, 1), fn) for d in dims})


def _flip(self, *dims):
    """The elements in reverse order along each of `dims` (PyTorch's flip: `x.flip(0)`, `x.flip([0, 1])`)."""
    dims = _dims(dims[0] if len(dims) == 1 else dims, self.ndim, "flip")
    if self.ndim == 0:
        return self * 1
    return self[tuple(slice(None, None, -1) if a in dims else slice(None) for a in range(self.ndim))]


def _roll(self, shifts, dims=None):
    """Shift the elements along `dims` by `shifts`, wrapping around (PyTorch's roll); with no dims, over
    the flattened tensor, its shape kept."""
    if dims is None:
        if isinstance(shifts, (tuple, list)) and len(shifts) != 1:
            raise ValueError(f"roll: {len(shifts)} shifts need as many dims")
        s = shifts[0] if isinstance(shifts, (tuple, list)) else shifts
        return _roll(self.reshape(-1), s, 0).reshape(self.shape)
    shifts = tuple(shifts) if isinstance(shifts, (tuple, list)) else (shifts,)
    dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
    if len(shifts) != len(dims):
        raise ValueError(f"roll: shifts {shifts} and dims {dims} differ in length")
    out = self
    for s, d in zip(shifts, dims):
        a = _axis(d, self.ndim, "roll")
        n = self.shape[a]
        if n:
            out = out[(slice(None),) * a + (backend.to_device((np.arange(n) - int(s)) % n, self.device),)]
    return out


def _t(self):
    """The transpose of a matrix; a 0-d or 1-d tensor as it is (PyTorch's t())."""
    if self.ndim > 2:
        raise ValueError(f"t() expects a tensor with <= 2 dims, got shape {self.shape}; use transpose(a, b) or mT")
    return self.transpose(0, 1) if self.ndim == 2 else self


def _index_select(self, dim, index):
    """The slices at the 1-D integer `index` along `dim` (PyTorch's index_select); repeats are allowed
    and their gradients add up."""
    axis = _axis(dim, self.ndim, "index_select")
    idx = index.data if isinstance(index, Tensor) else backend.to_device(np.asarray(index), self.device)
    if idx.ndim > 1 or idx.dtype.kind not in "iu":
        raise ValueError(f"index_select: index must be a 1-D integer tensor, got shape {tuple(idx.shape)} "
                         f"of dtype {idx.dtype}")
    n = self.shape[axis]
    if idx.size and not (-n <= int(idx.min()) and int(idx.max()) < n):
        raise IndexError(f"index_select: index out of range [0, {n}) along dim {axis}")
    return self[(slice(None),) * axis + (idx.reshape(-1),)]


def _repeat(self, *sizes):
    """The tensor tiled `sizes` times along each axis (PyTorch's repeat; NumPy's tile): (2, 3).repeat(2, 1)
    is (4, 3). Extra leading sizes add axes. Built from reshape and expand, so the gradient sums back."""
    sizes = tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes
    if len(sizes) < self.ndim:
        raise ValueError(f"repeat: {len(sizes)} sizes for a tensor of {self.ndim} dims (give at least {self.ndim})")
    if not builtins.all(isinstance(s, (int, np.integer)) and not isinstance(s, builtins.bool) and s >= 0
                        for s in sizes):
        raise ValueError(f"repeat: sizes must be non-negative ints, got {sizes}")
    shape = (1,) * (len(sizes) - self.ndim) + self.shape
    inter = tuple(v for n in shape for v in (1, n))
    wide = tuple(v for r, n in zip(sizes, shape) for v in (int(r), n))
    return self.reshape(inter).expand(*wide).reshape(tuple(r * n for r, n in zip(sizes, shape)))


def _tile(self, *dims):
    """PyTorch's tile: repeat with missing leading sizes taken as 1 (`x.tile(2)` on a matrix tiles its columns)."""
    dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
    return _repeat(self, *((1,) * (self.ndim - len(dims)) + tuple(dims)))


def _bmm(self, mat2):
    """Batched matrix product of (B, n, m) and (B, m, p) -> (B, n, p), shapes checked as PyTorch's bmm."""
    if not isinstance(mat2, Tensor) or self.ndim != 3 or mat2.ndim != 3 or self.shape[0] != mat2.shape[0] \
            or self.shape[2] != mat2.shape[1]:
        raise ValueError(f"bmm: expected (B, n, m) and (B, m, p), got {self.shape} and "
                         f"{getattr(mat2, 'shape', type(mat2).__name__)}")
    return self @ mat2


def _outer(self, vec2):
    """The outer product of two 1-D tensors: out[i, j] = x[i] * y[j] (PyTorch's outer, ger)."""
    if not isinstance(vec2, Tensor) or self.ndim != 1 or vec2.ndim != 1:
        raise ValueError(f"outer: expected two 1-D tensors, got {self.shape} and "
                         f"{getattr(vec2, 'shape', type(vec2).__name__)}")
    return self.reshape(-1, 1) * vec2.reshape(1, -1)


# ---------------------------------------------------------------------------- in-place methods
def _fill_with(self, data):
    """Write `data` (an array or scalar) into self, in place, and count the change."""
    xp = backend.get_array_module(self.data)
    if hasattr(data, "shape") and tuple(data.shape) != self.shape:
        data = xp.broadcast_to(data, self.shape)
    self.data[...] = data
    self._version += 1
    return self


def _copy_(self, src, non_blocking=False):
    """Copy src's values into self (broadcast to self's shape, cast to self's dtype), in place."""
    value = _write_operand(self, src, "copy_")
    if hasattr(value, "shape"):
        try:
            np.broadcast_shapes(tuple(value.shape), self.shape)
        except ValueError:
            raise ValueError(f"copy_: source of shape {tuple(value.shape)} does not broadcast to {self.shape}") \
                from None
    return _fill_with(self, value)


def _zero_(self):
    """Set every element to 0, in place."""
    _write_operand(self, 0, "zero_")
    return _fill_with(self, 0)


def _fill_(self, value):
    """Set every element to `value` (a number or a 0-d tensor), in place."""
    return _fill_with(self, _write_operand(self, value, "fill_"))


def _random_(kind):
    def method(self, a=0.0, b=1.0, *, generator=None):
        _write_operand(self, 0, f"{kind}_")
        if self.dtype.kind != "f":
            raise TypeError(f"{kind}_: needs a floating-point tensor, got dtype {self.dtype}")
        if generator is not None and generator.device != self.device:
            raise ValueError(f"{kind}_: a generator on '{generator.device}' for a tensor on '{self.device}'")
        gen = generator or backend.get_generator(self.device)
        if kind == "normal":
            draw = gen.normal(self.shape, self.dtype) * float(b) + float(a)
        else:
            draw = gen.uniform(self.shape, self.dtype) * (float(b) - float(a)) + float(a)
        return _fill_with(self, draw.astype(self.dtype, copy=False))
    method.__name__ = kind + "_"
    method.__doc__ = ("Fill with normal samples of mean `a` and std `b` (PyTorch's normal_(mean, std)), in place."
                      if kind == "normal" else "Fill with uniform samples in [a, b) (PyTorch's uniform_(from, to)), in place.")
    return method


def _masked_fill_(self, mask, value):
    """`value` where `mask` is true, in place (outside the graph)."""
    value = _write_operand(self, value, "masked_fill_")
    return _fill_with(self, self.masked_fill(mask, value).data)


def _clamp_(self, min=None, max=None):
    """Limit to [min, max] in place (outside the graph)."""
    _write_operand(self, 0, "clamp_")
    return _fill_with(self, _clamp(self.detach(), min, max).data)


def _arith_(ufunc, name):
    def method(self, other, *, alpha=None):
        value = _write_operand(self, other, name)
        if alpha is not None:
            value = value * scalar(alpha)
        getattr(backend.get_array_module(self.data), ufunc)(self.data, value, out=self.data, casting="unsafe")
        self._version += 1
        return self
    method.__name__ = name
    method.__doc__ = f"self {ufunc} other (times alpha for add_/sub_), in place (outside the graph)."
    return method


for _name, _fn in {
        "sort": _sort, "argsort": _argsort, "kthvalue": _kthvalue, "median": _median,
        "cumsum": _scan(ops_extra.Cumsum, "cumsum"), "cumprod": _scan(ops_extra.Cumprod, "cumprod"),
        "flip": _flip, "roll": _roll, "t": _t, "index_select": _index_select, "repeat": _repeat, "tile": _tile,
        "bmm": _bmm, "outer": _outer, "ger": _outer, "copy_": _copy_, "zero_": _zero_, "fill_": _fill_,
        "normal_": _random_("normal"), "uniform_": _random_("uniform"), "masked_fill_": _masked_fill_,
        "clamp_": _clamp_, "clip_": _clamp_, "add_": _arith_("add", "add_"), "sub_": _arith_("subtract", "sub_"),
        "mul_": _arith_("multiply", "mul_"), "div_": _arith_("divide", "div_")}.items():
    setattr(Tensor, _name, _fn)


# ---------------------------------------------------------------------------- small PyTorch conveniences
def _norm(self, p="fro", dim=None, keepdim=False):
    """The 2-norm (p=2 or 'fro') of all elements or along `dim`; p=1 the sum of |x| (PyTorch's norm)."""
    axis = _axis(None, self.ndim, "norm", dim, many=True)
    if p in (2, 2.0, "fro"):
        return ops.Sqrt.apply(floats(self * self).sum(axis, keepdim), zero_at_zero=True)
    if p in (1, 1.0):
        return abs(floats(self)).sum(axis, keepdim)
    raise ValueError(f"norm: only p=2 ('fro') and p=1 are supported, got p={p!r}")


def _logsumexp(self, dim, keepdim=False):
    """log(sum(exp(x))) along `dim`, stable (the maximum taken out first), as PyTorch's logsumexp."""
    axis = _axis(None, self.ndim, "logsumexp", dim, many=True)
    x = floats(self)
    m = x.detach().amax(axis if axis is not None else (), keepdim=True)
    m = m.masked_fill(~(abs(m) < float("inf")), 0.0)         # an all -inf row stays -inf, not nan
    out = (x - m).exp().sum(axis, keepdims=True).log() + m
    return out if keepdim else out.reshape(tuple(n for i, n in enumerate(out.shape) if i not in (axis or ())))


def _amax(name):
    def method(self, dim=(), keepdim=False):
        axis = _axis(None, self.ndim, name, dim if dim != () else None, many=True)
        return getattr(self, name[1:])(axis=axis, keepdims=builtins.bool(keepdim))   # NumPy's form: values only
    method.__name__ = name
    method.__doc__ = f"The {name[1:]}imum over `dim` (all axes by default), values only, as PyTorch's {name}."
    return method


def _type_as(self, other):
    """Self cast to `other`'s dtype (PyTorch's type_as)."""
    return self.to(other.dtype)


def _new(fill):
    def method(self, *size, dtype=None, device=None, requires_grad=False):
        """A new tensor of `size`, filled, with this tensor's dtype and device unless given (PyTorch's new_*)."""
        shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else size
        value = fill if fill is not None else shape[-1]
        shape = shape if fill is not None else shape[:-1]
        xp = backend.array_module(device or self.device)
        data = xp.full(shape, value, dtype=np.dtype(dtype or self.dtype))
        return Tensor(data, device=device or self.device, requires_grad=requires_grad)
    return method


def _new_tensor(self, data, dtype=None, device=None, requires_grad=False):
    """A new tensor from `data`, with this tensor's dtype and device unless given."""
    return Tensor(data.data if isinstance(data, Tensor) else np.asarray(data), device=device or self.device,
                  dtype=dtype or self.dtype, requires_grad=requires_grad)


def _new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
    """A new tensor of `size` filled with `fill_value`, with this tensor's dtype and device unless given."""
    return _new(fill_value)(self, size, dtype=dtype, device=device, requires_grad=requires_grad)


for _name, _fn in {"norm": _norm, "logsumexp": _logsumexp, "amax": _amax("amax"), "amin": _amax("amin"),
                   "type_as": _type_as,
                   "mT": property(lambda self: self.transpose(-2, -1), doc="The last two axes swapped."),
                   "new_zeros": _new(0), "new_ones": _new(1), "new_full": _new_full, "new_tensor": _new_tensor}.items():
    setattr(Tensor, _name, _fn)


# ---------------------------------------------------------------------------- more function forms
sort = _method("sort")
argsort = _method("argsort")
kthvalue = _method("kthvalue")
median = _method("median")
cumsum = _method("cumsum")
cumprod = _method("cumprod")
flip = _method("flip")
roll = _method("roll")
t = _method("t")
logsumexp = _method("logsumexp")
norm = _method("norm")
index_select = _method("index_select")
tile = _method("tile")
bmm = _method("bmm")
outer = _method("outer")


def pow(input, exponent):
    """torch.pow: input ** exponent for a tensor and a number (either way round), or two tensors (then
    as exp(exponent * log(input)), for positive input only)."""
    if isinstance(input, Tensor) and isinstance(exponent, Tensor):
        if not builtins.bool((input > 0).all()):
            raise ValueError("pow(tensor, tensor): tinylm computes it as exp(exponent * log(input)), so every "
                             "input element must be positive; for a number exponent pass the number")
        return (exponent * floats(input).log()).exp()
    if isinstance(input, Tensor):
        return input ** exponent
    if isinstance(exponent, Tensor):
        return exponent.__rpow__(input)
    raise TypeError(f"pow: expected a Tensor argument, got {type(input).__name__} and {type(exponent).__name__}")


def einsum(equation, *operands):
    """torch.einsum: `einsum('ij,jk->ik', a, b)` or `einsum('ij,jk->ik', [a, b])`; '...' and the implicit
    output (no '->') as NumPy and PyTorch read them. One op, whose gradient is einsum again."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands or not builtins.all(isinstance(x, Tensor) for x in operands):
        raise TypeError(f"einsum({equation!r}, ...): the operands must be tensors")
    return ops_extra.Einsum.apply(*same_kind(*operands), equation=equation)


# ---------------------------------------------------------------------------- compile, autocast, bfloat16
_WARNED = set()


def _warn_once(key, message):
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, stacklevel=3)


def compile(model=None, *args, **kwargs):
    """torch.compile: tinylm has no compiler, so the model (or function) comes back unchanged, with one
    warning per process. `@tl.compile` and `@tl.compile(mode=...)` work as decorators."""
    if model is None:
        return lambda m: compile(m, *args, **kwargs)
    _warn_once("compile", "tinylm.compile: tinylm has no compiler; the model runs as it is (eager)")
    return model


class autocast:
    """torch.autocast / torch.amp.autocast / torch.cuda.amp.autocast, as a context manager or decorator
    that changes nothing: tinylm has no mixed precision, so the ops inside run in their tensors' dtypes
    (float32), where PyTorch would run some in float16/bfloat16. Warns once when enabled."""

    def __init__(self, device_type="cuda", dtype=None, enabled=True, cache_enabled=None):
        if isinstance(device_type, builtins.bool):               # torch.cuda.amp.autocast(enabled, dtype, ...)
            device_type, enabled = "cuda", device_type
        if not isinstance(device_type, str):
            raise TypeError(f"autocast: device_type must be a string such as 'cuda' or 'cpu', got {device_type!r}")
        self.device_type, self.fast_dtype, self.enabled = device_type, dtype, builtins.bool(enabled)
        if self.enabled:
            _warn_once("autocast", "autocast: tinylm has no mixed precision; the ops run in float32 "
                                   "(PyTorch would use float16/bfloat16 inside autocast)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __call__(self, fn):
        return fn


class _Bfloat16:
    """torch.bfloat16's name: it may be named and compared (nanoGPT builds a dict of dtypes), but any use
    as a dtype raises: NumPy has no bfloat16, and tinylm computes in float16, float32 or float64."""

    def __repr__(self):
        return "tinylm.bfloat16 (unsupported)"

    @property
    def dtype(self):                                       # np.dtype(x), .astype(x), .to(x) reach this
        raise ValueError("bfloat16 is not supported: NumPy has no bfloat16 arithmetic, so tinylm computes in "
                        "float32 (or float16, float64); use tl.float32")


bfloat16 = _Bfloat16()
amp.autocast = cuda.amp.autocast = autocast
