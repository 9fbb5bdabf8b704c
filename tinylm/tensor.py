"""Tensor: an n-dimensional array on a device that records the ops applied to it.

A Tensor holds `data` (a NumPy, CuPy or strict array), `device`, `grad`, `requires_grad`, and
its place in the graph (`_ctx`, the Function that made it). Its methods are short calls into
tinylm/ops.py: the logic of each op lives in its Function, once. PyTorch's names work beside
NumPy's (`dim=`/`keepdim=` or `axis=`/`keepdims=`). What a GPT does not need is attached by
tinylm/compat.py when tinylm is imported: comparisons, printing, Python's protocols (len, iter,
bool, float), `//`, `%`, in-place operators, item assignment, gather, topk, var, ...

Reference: teenygrad `tensor.py` (one-line methods over a small op set), torch.Tensor (names).
"""
import math

import numpy as np

from . import backend, engine, ops


class Tensor:
    """An n-dimensional array on a device that records the ops applied to it.

    Attributes: `data` (the NumPy/CuPy array), `grad` (an array of the same shape, or None),
    `requires_grad`, `device` ('cpu', 'cuda:N' or 'strict'), `shape`, `dtype`, `ndim`.
    """

    __slots__ = ("data", "grad", "requires_grad", "device", "_ctx", "_idx", "name", "_retain", "_vc",
                 "__weakref__")
    __array_ufunc__ = None  # `numpy_array + tensor` defers to Tensor.__radd__
    __array_priority__ = 1000

    def __init__(self, data, device=None, dtype=None, requires_grad=False):
        if isinstance(data, Tensor):
            data = data.data
        device = backend.parse_device(device) if device is not None else backend.device_of(data)
        if isinstance(data, (list, tuple, int, float, bool, np.number, np.bool_)):
            as_float = isinstance(data, (list, tuple))           # torch.Tensor([1, 2]) is float32 too
            data = np.asarray(data)
            if dtype is None and (data.dtype.kind == "f" or as_float):
                dtype = backend.DEFAULT_DTYPE  # Python floats become float32, not float64
        data = backend.to_device(data, device)
        if dtype is not None and data.dtype != np.dtype(dtype):
            data = data.astype(dtype)
        self.data, self.device, self.grad, self._ctx, self._idx, self.name = data, device, None, None, 0, None
        self._retain = False
        self._vc = [0]  # counts in-place changes, shared by views, so backward can refuse data changed under it
        if requires_grad and data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {data.dtype}")
        self.requires_grad = bool(requires_grad)

    @classmethod
    def _make(cls, data, device):
        t = object.__new__(cls)
        t.data, t.device, t.grad, t._ctx, t._idx, t.name, t.requires_grad = data, device, None, None, 0, None, False
        t._retain, t._vc = False, [0]
        return t

    # ------------------------------------------------------------------ properties
    shape = property(lambda self: tuple(self.data.shape), doc="The shape, a tuple of ints.")
    dtype = property(lambda self: self.data.dtype, doc="The NumPy dtype of the data.")
    ndim = property(lambda self: self.data.ndim, doc="The number of axes.")
    grad_fn = property(lambda self: self._ctx, doc="The Function that made this tensor (None for leaves).")
    is_leaf = property(lambda self: self._ctx is None, doc="True for tensors no recorded op made.")
    T = property(lambda self: self.permute(*reversed(range(self.ndim))), doc="All axes reversed.")

    def numel(self):
        """The number of elements."""
        return int(self.data.size)

    # ------------------------------------------------------------------ conversions
    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return backend.to_numpy(self.data).reshape(()).item()

    def numpy(self):
        """A NumPy copy of the data (copied from the device when needed)."""
        return np.array(backend.to_numpy(self.data), copy=True)

    def tolist(self):
        """The data as nested Python lists."""
        return backend.to_numpy(self.data).tolist()

    def to(self, *args, device=None, dtype=None):
        """This tensor on `device` and/or as `dtype`: `x.to("gpu")`, `x.to(tl.float64)`, `x.to("cpu", tl.float32)`.

        Self when nothing changes. A leaf moved to another device stays a leaf (with its
        requires_grad and grad); a tensor made by ops stays in the graph (gradients flow back).
        """
        for a in args:
            d, t = (a.device, a.dtype) if isinstance(a, Tensor) else _device_or_dtype(a)   # to(other): its both
            device, dtype = d or device, t if t is not None else dtype
        x = self
        if dtype is not None and x.dtype != np.dtype(dtype):
            x = x.astype(dtype)
        device = backend.parse_device(device) if device is not None else x.device
        if device == x.device:
            return x
        if x._ctx is not None:
            y = ops.ToDevice.apply(x, device=device)
            y.device = device
            return y
        t = Tensor(backend.to_device(x.data, device), device=device, requires_grad=x.requires_grad)
        if x.grad is not None:
            t.grad = backend.to_device(engine.raw_grad(x.grad), device)
        return t

    def cpu(self):
        """This tensor on the CPU (NumPy)."""
        return self.to("cpu")

    def detach(self):
        """A tensor sharing the data (and its change count), cut from the graph."""
        t = Tensor._make(self.data, self.device)
        t._vc = self._vc
        return t

    @property
    def _version(self):
        """How many in-place changes this tensor's memory has had (shared with its views)."""
        return self._vc[0]

    @_version.setter
    def _version(self, value):
        self._vc[0] = value

    def requires_grad_(self, flag=True):
        """Set requires_grad in place (leaves only) and return self."""
        if flag and self.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {self.dtype}")
        self.requires_grad = flag
        return self

    def zero_grad(self):
        """Drop the accumulated gradient (grad = None)."""
        self.grad = None

    def retain_grad(self):
        """Keep this non-leaf tensor's gradient in `.grad` at the next backward() (leaves always do)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        self._retain = True
        return self

    def astype(self, dtype):
        """A copy cast to `dtype` (differentiable between float dtypes)."""
        return ops.Cast.apply(self, dtype=np.dtype(dtype))

    def float(self):
        """As float32 (differentiable); self when it already is, as in PyTorch."""
        return self.to(np.float32)

    def double(self):
        """As float64 (differentiable), e.g. for gradient checks; self when it already is."""
        return self.to(np.float64)

    def clone(self):
        """A copy of the data that stays in the graph."""
        return ops.Cast.apply(self, dtype=self.dtype)

    def backward(self, grad=None, retain_graph=False, *, gradient=None):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`, walking the graph in reverse.

        `grad` (PyTorch: `gradient`) is the upstream gradient, an array or Tensor of self's shape;
        a one-element output may omit it. Without `retain_graph`, saved arrays are freed.
        """
        if gradient is not None and grad is not None:
            raise TypeError("backward(): give grad or gradient (PyTorch's name), not both")
        engine.backward(self, gradient if gradient is not None else grad, retain_graph)

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other):
        return ops.Add.apply(*_operands(self, other))

    def __radd__(self, other):
        return ops.Add.apply(*reversed(_operands(self, other)))

    def __sub__(self, other):
        return ops.Sub.apply(*_operands(self, other))

    def __rsub__(self, other):
        return ops.Sub.apply(*reversed(_operands(self, other)))

    def __mul__(self, other):
        return ops.Mul.apply(*_operands(self, other))

    def __rmul__(self, other):
        return ops.Mul.apply(*reversed(_operands(self, other)))

    def __truediv__(self, other):
        return ops.Div.apply(*_operands(self, other, true_divide=True))

    def __rtruediv__(self, other):
        return ops.Div.apply(*reversed(_operands(self, other, true_divide=True)))

    def __neg__(self):
        return ops.Neg.apply(self)

    def __pow__(self, exponent):
        """x ** exponent for a scalar exponent."""
        if isinstance(exponent, Tensor) or not isinstance(exponent, (int, float, np.number)):
            raise TypeError(f"pow supports a scalar exponent only, got {type(exponent).__name__}")
        if self.dtype.kind != "f":
            if isinstance(exponent, (int, np.integer)) and exponent >= 0:   # ints stay ints, as PyTorch
                return Tensor._make(self.data ** int(exponent), self.device)
            return floats(self) ** exponent
        return ops.Pow.apply(self, exponent=float(exponent))

    def __matmul__(self, other):
        """Matrix product, batched over leading axes (NumPy's matmul rules)."""
        return ops.MatMul.apply(*_operands(self, other, scalar_ok=False))

    def __rmatmul__(self, other):
        return ops.MatMul.apply(*reversed(_operands(self, other, scalar_ok=False)))

    pow, matmul = __pow__, __matmul__

    def __getitem__(self, index):
        return ops.GetItem.apply(self, index=_index(index, self))

    # ------------------------------------------------------------------ reductions
    def sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Sum over `axis` (None: all; int or tuple)."""
        return ops.Sum.apply(self, axis=_axis(axis, self.ndim, "sum", dim, many=True),
                             keepdims=bool(keepdims if keepdim is None else keepdim))

    def mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Mean over `axis` (None: all; int or tuple); integer and boolean tensors give float32."""
        return ops.Mean.apply(floats(self), axis=_axis(axis, self.ndim, "mean", dim, many=True),
                              keepdims=bool(keepdims if keepdim is None else keepdim))

    def max(self, axis=None, keepdims=False):
        """Maximum over `axis`; the gradient is shared equally among ties."""
        return ops.Max.apply(self, axis=_axis(axis, self.ndim, "max", many=True), keepdims=bool(keepdims))

    def min(self, axis=None, keepdims=False):
        """Minimum over `axis` (as -max(-x) for floats)."""
        if self.dtype.kind != "f":                             # no gradient; and -x would wrap unsigned ints
            return Tensor._make(self.data.min(axis=_axis(axis, self.ndim, "min", many=True), keepdims=keepdims),
                                self.device)
        return -((-self).max(axis=axis, keepdims=keepdims))

    # ------------------------------------------------------------------ shapes
    def reshape(self, *shape):
        """The same data in a new shape (one axis may be -1)."""
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return ops.Reshape.apply(self, shape=tuple(int(s) for s in shape))

    view = reshape

    def permute(self, *axes):
        """Reorder axes: `x.permute(0, 2, 1, 3)`."""
        axes = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        nd = self.ndim
        axes = tuple(a + nd if a < 0 else a for a in axes)
        if len(axes) != nd or len(set(axes)) != nd or (nd and not 0 <= min(axes) <= max(axes) < nd):
            raise ValueError(f"permute: {axes} is not a permutation of the {nd} axes of shape {self.shape}")
        return ops.Permute.apply(self, axes=axes)

    def transpose(self, dim0=-2, dim1=-1):
        """Swap two axes, as PyTorch: `x.transpose(1, 2)`; with no arguments, the last two."""
        axes = list(range(self.ndim))
        dim0, dim1 = _axis(dim0, self.ndim, "transpose"), _axis(dim1, self.ndim, "transpose")
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return self.permute(*axes)

    def split(self, split_size_or_sections, axis=0, *, dim=None):
        """Pieces of `split_size` (an int) or of the given sizes (a list) along `axis` (the first by
        default), as torch.split; always a tuple."""
        axis = _axis(axis if dim is None else dim, self.ndim, "split")
        out = ops.Split.apply(self, bounds=ops.split_bounds(split_size_or_sections, self.shape, axis), axis=axis)
        return out if isinstance(out, tuple) else (out,)

    # ------------------------------------------------------------------ elementwise
    def exp(self):
        """e ** x, elementwise."""
        return ops.Exp.apply(floats(self))

    def log(self):
        """Natural logarithm, elementwise."""
        return ops.Log.apply(floats(self))

    def sqrt(self):
        """Square root, elementwise."""
        return ops.Sqrt.apply(floats(self))

    def tanh(self):
        """Hyperbolic tangent, elementwise."""
        return ops.Tanh.apply(floats(self))

    def gelu(self):
        """GPT-2's GELU, tanh form."""
        return ops.Gelu.apply(floats(self))

    def softmax(self, axis=-1, *, dim=None):
        """exp(x) / sum(exp(x)) along `axis` (stable)."""
        return ops.Softmax.apply(floats(self), axis=_axis(axis if dim is None else dim, self.ndim, "softmax"))

    def log_softmax(self, axis=-1, *, dim=None):
        """x - logsumexp(x) along `axis` (stable)."""
        return ops.LogSoftmax.apply(floats(self), axis=_axis(axis if dim is None else dim, self.ndim, "log_softmax"))

    def masked_fill(self, mask, value):
        """Where `mask` (bool, broadcastable) is true, `value`; elsewhere self (its dtype kept)."""
        value = scalar(value)
        if self.dtype.kind == "b":
            value = bool(value)
        elif self.dtype.kind in "iu":
            value = int(value)                                 # an integer tensor stays integer, as PyTorch
        return ops.Where.apply(_mask(mask, self), value, self)


engine.TENSOR = Tensor


# ---------------------------------------------------------------------------- argument helpers
def scalar(x):
    """A Python/NumPy scalar as a Python number, so it never upcasts float32 (NumPy 2 rules)."""
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x)
    return x


def floats(x):
    """x itself, or as float32 when it holds integers or booleans (PyTorch gives float32 there, NumPy float64)."""
    return x if x.dtype.kind == "f" else x.astype(backend.DEFAULT_DTYPE)


def same_kind(*xs):
    """Integer tensors mixed with floats (tensors or Python floats) take the float dtype (float32 for
    a Python float), as PyTorch promotes; NumPy would make float64 of int64 and float32."""
    kinds = [x.dtype for x in xs if isinstance(x, Tensor) and x.dtype.kind == "f"]
    if not kinds and not any(isinstance(x, float) for x in xs):
        return xs
    target = np.result_type(*kinds) if kinds else backend.DEFAULT_DTYPE
    return tuple(x.astype(target) if isinstance(x, Tensor) and x.dtype.kind != "f" else x for x in xs)


def _operands(a, b, scalar_ok=True, true_divide=False):
    """Tensor `a` and the other operand `b` of an arithmetic op, with PyTorch's dtype rule: an
    integer or boolean side takes the float side's dtype (float32 + int stays float32, where
    NumPy would give float64), and integers divided give float32."""
    if a.data.dtype.kind == "f" and (type(b) is float or type(b) is Tensor and b.data.dtype == a.data.dtype):
        return a, b                                            # the common case, quickly
    if scalar_ok and isinstance(b, (int, float, bool, np.number, np.bool_)):
        b = scalar(b)
    elif isinstance(b, (list, tuple)) or (isinstance(b, np.ndarray) and a.device == "cpu"):
        b = Tensor(np.asarray(b, dtype=a.dtype if a.dtype.kind == "f" else None), device=a.device)
    elif isinstance(b, np.ndarray):
        raise ValueError(f"a NumPy array (shape {b.shape}) was mixed with a tensor on '{a.device}'; "
                         f"make it a tensor with tinylm.tensor(array, device='{a.device}')")
    elif not isinstance(b, Tensor):
        raise TypeError(f"unsupported operand of type {type(b).__name__} for a Tensor op")
    if isinstance(b, Tensor) and a.dtype.kind == b.dtype.kind == "f" and a.dtype != b.dtype \
            and (a.ndim == 0) != (b.ndim == 0):               # PyTorch: a 0-d tensor does not set the dtype
        return (a.astype(b.dtype), b) if a.ndim == 0 else (a, b.astype(a.dtype))
    fa = a.dtype.kind == "f"
    fb = b.dtype.kind == "f" if isinstance(b, Tensor) else isinstance(b, float)
    if fa and not fb and isinstance(b, Tensor):
        b = b.astype(a.dtype)
    elif fb and not fa:
        a = a.astype(b.dtype if isinstance(b, Tensor) else backend.DEFAULT_DTYPE)
    elif true_divide and not fa:                              # int / int
        a = a.astype(backend.DEFAULT_DTYPE)
        if isinstance(b, Tensor):
            b = b.astype(backend.DEFAULT_DTYPE)
    return a, b


def _axis(axis, ndim, fn, dim=None, many=False):
    """PyTorch's `dim` or NumPy's `axis` (not both), checked and made non-negative. None passes;
    one int gives an int; with `many`, an int or a sequence gives a sorted tuple (None for a 0-d tensor)."""
    if dim is not None:
        if axis is not None:
            raise TypeError(f"{fn}(): give axis or dim, not both")
        axis = dim
    if axis is None:
        return None
    items = tuple(axis) if many and isinstance(axis, (list, tuple)) else (axis,)
    n = max(ndim, 1)
    for a in items:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"{fn}: an axis must be an int, got {type(a).__name__}")
        if not -n <= a < n:
            raise ValueError(f"{fn}: axis {a} is out of range for a tensor with {ndim} axes")
    if not many:
        return int(items[0]) % n
    return tuple(sorted(int(a) % n for a in items)) if ndim else None


def _device_or_dtype(arg):
    """Tensor.to's positional argument: (device, None) or (None, dtype)."""
    if isinstance(arg, str):
        try:
            return backend.parse_device(arg), None
        except ValueError:
            pass
    if arg is not None and not isinstance(arg, (bool, int, float)):
        try:
            return None, np.dtype(arg)
        except TypeError:
            pass
    raise ValueError(f"to(): {arg!r} is neither a device ('cpu', 'gpu', 'strict', ...) nor a dtype (tl.float32, ...)")


def _mask(mask, like):
    """A boolean mask as an array on `like`'s device (a Tensor, a device array, or on cpu a list)."""
    if isinstance(mask, Tensor):
        if mask.device != like.device:
            raise ValueError(f"mask on '{mask.device}', tensor on '{like.device}'")
        mask = mask.data
    elif isinstance(mask, (list, tuple, np.ndarray)):
        if like.device != "cpu":
            raise ValueError(f"a host mask was given for a tensor on '{like.device}'; make it a tensor on that device")
        mask = np.asarray(mask)
    elif not hasattr(mask, "dtype"):
        raise TypeError(f"a mask must be a boolean tensor or array, got {type(mask).__name__}")
    elif backend.device_of(mask) != like.device:
        raise ValueError(f"mask on '{backend.device_of(mask)}', tensor on '{like.device}'")
    if mask.dtype != bool:
        raise TypeError(f"a mask must be boolean, got dtype {mask.dtype} (compare first, e.g. x == 0)")
    return mask


def _index(index, like):
    """Tensors inside an index become arrays on the tensor's device."""
    def one(i):
        if isinstance(i, Tensor):
            if i.device != like.device:
                raise ValueError(f"index tensor on '{i.device}', indexed tensor on '{like.device}'")
            return i.data
        if isinstance(i, list) or (isinstance(i, np.ndarray) and like.device != "cpu"):
            return backend.to_device(np.asarray(i), like.device)
        return i
    return tuple(one(i) for i in index) if isinstance(index, tuple) else one(index)
