"""The autograd engine: Tensor, Function, backward(), no_grad(), sum_to().

Owns the graph. Calling a Function on Tensors runs its `forward` on raw arrays and records
the Function as the outputs' creator (define-by-run, as in Chainer and DeZero). `backward()`
walks the recorded Functions in reverse topological order, found iteratively so graphs
thousands of ops deep work, and hands each Function's `backward` the output gradients as raw
arrays. Gradients are arrays, not Tensors: no higher-order gradients, which keeps it simple
and fast. Each gradient edge is checked for its input's shape and dtype; leaves accumulate
out of place, so gradients never alias; saved arrays are freed once a Function's backward has
run, unless `retain_graph=True`.

Leaves out: the ops themselves (tinylm/ops.py), devices (tinylm/backend.py).
Reference: DeZero steps 1-60, micrograd's `Value`, PyTorch's `torch.autograd` semantics.
"""
import contextlib
import time

import numpy as np

from . import backend

# ----------------------------------------------------------------------------- grad mode
_grad_enabled = True


def is_grad_enabled():
    """True unless inside `no_grad()`."""
    return _grad_enabled


class _GradMode(contextlib.ContextDecorator):
    def __init__(self, enabled):
        self.enabled = enabled

    def __enter__(self):
        global _grad_enabled
        self.prev, _grad_enabled = _grad_enabled, self.enabled

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.prev


def no_grad():
    """Context manager and decorator: ops inside record no graph (eval, generation)."""
    return _GradMode(False)


def enable_grad():
    """Context manager and decorator: turn graph recording back on inside `no_grad()`."""
    return _GradMode(True)


# ----------------------------------------------------------------------------- profiling
_profiler = None


class profile:
    """Context manager timing every op's forward and backward by op type: `with profile() as p: ...`.

    `p.stats` maps op name -> [forward calls, forward seconds, backward calls, backward seconds];
    `p.table()` formats it, slowest first. On a GPU pass `sync` (e.g. a device synchronize) so
    each time covers the kernels, not just their launch.
    """

    def __init__(self, sync=None):
        self.stats, self.sync = {}, sync or (lambda: None)

    def __enter__(self):
        global _profiler
        self.prev, _profiler = _profiler, self
        return self

    def __exit__(self, *exc):
        global _profiler
        _profiler = self.prev

    def run(self, name, backward, f, *args):
        """Call f(*args), adding its time to op `name`'s forward (backward=0) or backward (1) row."""
        self.sync()
        t0 = time.perf_counter()
        out = f(*args)
        self.sync()
        row = self.stats.setdefault(name, [0, 0.0, 0, 0.0])
        row[2 * backward] += 1
        row[2 * backward + 1] += time.perf_counter() - t0
        return out

    def table(self, steps=1):
        """Per-step milliseconds by op, forward and backward, slowest total first."""
        rows = sorted(self.stats.items(), key=lambda kv: -(kv[1][1] + kv[1][3]))
        total = sum(r[1] + r[3] for _, r in rows) or 1.0
        lines = [f"{'op':<14}{'calls':>7}{'fwd ms':>10}{'bwd ms':>10}{'share':>8}"]
        for name, (nf, tf, nb, tb) in rows:
            lines.append(f"{name:<14}{nf // steps:>7}{1e3 * tf / steps:>10.2f}{1e3 * tb / steps:>10.2f}"
                         f"{100 * (tf + tb) / total:>7.1f}%")
        lines.append(f"{'total':<14}{'':>7}{1e3 * sum(r[1] for _, r in rows) / steps:>10.2f}"
                     f"{1e3 * sum(r[3] for _, r in rows) / steps:>10.2f}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- helpers
def sum_to(grad, shape):
    """Undo broadcasting: sum `grad` down to `shape` (leading axes and size-1 axes)."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _scalar(x):
    """Normalise a Python/NumPy scalar constant so it never upcasts float32 (NumPy 2 rules)."""
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x)
    return x


# ----------------------------------------------------------------------------- Function
OPS = {}


def register(cls):
    """Class decorator: record a differentiable op in `OPS` (every one must have a gradient test)."""
    OPS[cls.__name__.lower()] = cls
    return cls


class Function:
    """One differentiable op. Subclasses write `forward(*arrays)` and `backward(*grads)` side by side.

    `forward` gets raw arrays for Tensor arguments and other arguments as they are (Python
    scalars, None, index tuples); it returns an array or a tuple of arrays. `backward` gets one
    gradient array per output and returns one gradient per argument (None for arguments that
    need none). Keyword arguments of `apply` go to `__init__`.
    """

    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)

    @classmethod
    def apply(cls, *args, **kwargs):
        fn = cls(**kwargs)
        device, needs_grad, raw = None, False, []
        for a in args:
            if isinstance(a, Tensor):
                if device is None:
                    device = a.device
                elif a.device != device:
                    raise ValueError(f"{cls.__name__}: expected all tensors on the same device, "
                                     f"got '{device}' and '{a.device}'; move one with .to(device)")
                needs_grad = needs_grad or a.requires_grad
                raw.append(a.data)
            else:
                raw.append(a)
        prof = _profiler
        ys = fn.forward(*raw) if prof is None else prof.run(cls.__name__, 0, fn.forward, *raw)
        multi = type(ys) is tuple
        if multi:
            outs = tuple(Tensor._make(np.asarray(y) if isinstance(y, np.generic) else y, device) for y in ys)
        else:
            outs = (Tensor._make(np.asarray(ys) if isinstance(ys, np.generic) else ys, device),)
        if needs_grad and _grad_enabled:
            fn.args = args
            fn.n_out = len(outs)
            fn.out_meta = [(o.data.shape, o.data.dtype) for o in outs]
            for i, o in enumerate(outs):
                o.requires_grad = True
                o._ctx = fn
                o._idx = i
        return outs if multi else outs[0]

    def forward(self, *xs):
        """Compute the output array(s) from raw arrays; save what backward needs on self."""
        raise NotImplementedError

    def backward(self, *gys):
        """Gradients for each argument (None where none is needed) from the output gradients."""
        raise NotImplementedError

    def release(self):
        """Drop everything saved for backward (called after backward unless retain_graph)."""
        n_out, out_meta = self.n_out, self.out_meta
        self.__dict__.clear()
        self.n_out, self.out_meta, self.freed = n_out, out_meta, True

    @property
    def name(self):
        return type(self).__name__


# ----------------------------------------------------------------------------- Tensor
class Tensor:
    """An n-dimensional array on a device that records the ops applied to it.

    Attributes: `data` (the NumPy/CuPy array), `grad` (an array of the same shape, or None),
    `requires_grad`, `device` ('cpu', 'cuda:N' or 'strict'), `shape`, `dtype`, `ndim`, `size`.
    """

    __slots__ = ("data", "grad", "requires_grad", "device", "_ctx", "_idx", "name", "__weakref__")
    __array_ufunc__ = None  # `numpy_array + tensor` defers to Tensor.__radd__
    __array_priority__ = 1000

    def __init__(self, data, device=None, dtype=None, requires_grad=False):
        if isinstance(data, Tensor):
            data = data.data
        device = backend.parse_device(device) if device is not None else backend.device_of(data)
        if isinstance(data, (list, tuple, int, float, bool, np.number, np.bool_)):
            data = np.asarray(data)
            if dtype is None and data.dtype.kind == "f":
                dtype = backend.DEFAULT_DTYPE  # Python floats become float32, not float64
        data = backend.to_device(data, device)
        if dtype is not None and data.dtype != np.dtype(dtype):
            data = data.astype(dtype)
        self.data = data
        self.device = device
        self.grad = None
        self._ctx = None
        self._idx = 0
        self.name = None
        if requires_grad and data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {data.dtype}")
        self.requires_grad = bool(requires_grad)

    @classmethod
    def _make(cls, data, device):
        t = object.__new__(cls)
        t.data, t.device, t.grad, t._ctx, t._idx, t.name, t.requires_grad = data, device, None, None, 0, None, False
        return t

    # ------------------------------------------------------------------ properties
    shape = property(lambda self: tuple(self.data.shape), doc="The shape, a tuple of ints.")
    dtype = property(lambda self: self.data.dtype, doc="The NumPy dtype of the data.")
    ndim = property(lambda self: self.data.ndim, doc="The number of axes.")
    size = property(lambda self: int(self.data.size), doc="The number of elements.")
    grad_fn = property(lambda self: self._ctx, doc="The Function that made this tensor (None for leaves).")
    is_leaf = property(lambda self: self._ctx is None, doc="True for tensors no recorded op made.")

    @property
    def T(self):
        """All axes reversed (the transpose of a matrix)."""
        return self.permute(*reversed(range(self.ndim)))

    def __len__(self):
        return self.shape[0] if self.ndim else 0

    def __repr__(self):
        body = np.array2string(backend.to_numpy(self.data), separator=", ", prefix="tensor(", threshold=60)
        extra = f", grad_fn=<{self._ctx.name}>" if self._ctx is not None and not getattr(self._ctx, "freed", False) else (
            ", requires_grad=True" if self.requires_grad else "")
        return f"tensor({body}, device='{self.device}', dtype={self.dtype}{extra})"

    # ------------------------------------------------------------------ conversions
    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return backend.to_numpy(self.data).reshape(()).item()

    def numpy(self):
        """A NumPy copy of the data (copied from the device when needed)."""
        return np.array(backend.to_numpy(self.data), copy=True)

    def tolist(self):
        """The data as nested Python lists."""
        return backend.to_numpy(self.data).tolist()

    def to(self, device):
        """This tensor on `device` (self if already there); a leaf stays a leaf."""
        device = backend.parse_device(device)
        if device == self.device:
            return self
        t = Tensor(backend.to_device(self.data, device), device=device, requires_grad=self.requires_grad)
        if self.grad is not None:
            t.grad = backend.to_device(self.grad, device)
        return t

    def cpu(self):
        """This tensor on the CPU (NumPy)."""
        return self.to("cpu")

    def detach(self):
        """A tensor sharing the data, cut from the graph."""
        return Tensor._make(self.data, self.device)

    def requires_grad_(self, flag=True):
        """Set requires_grad in place (leaves only) and return self."""
        if flag and self.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {self.dtype}")
        self.requires_grad = flag
        return self

    def zero_grad(self):
        """Drop the accumulated gradient (grad = None)."""
        self.grad = None

    def astype(self, dtype):
        """A copy cast to `dtype` (differentiable between float dtypes)."""
        return ops.Cast.apply(self, dtype=np.dtype(dtype))

    def float(self):
        """A float32 copy (differentiable)."""
        return self.astype(np.float32)

    def double(self):
        """A float64 copy (differentiable), e.g. for gradient checks."""
        return self.astype(np.float64)

    # ------------------------------------------------------------------ backward
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`, walking the graph in reverse.

        `grad` is the upstream gradient (an array or Tensor of self's shape); a one-element
        output may omit it (seeded with 1). Without `retain_graph`, saved arrays are freed.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (was it made under no_grad()?)")
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.size != 1:
                raise ValueError(f"backward() on a non-scalar tensor of shape {self.shape} needs a gradient "
                                 "argument of the same shape")
            grad = xp.ones(self.data.shape, dtype=self.dtype)
        else:
            if isinstance(grad, Tensor):
                if grad.device != self.device:
                    raise ValueError(f"backward(): gradient on '{grad.device}', tensor on '{self.device}'")
                grad = grad.data
            if backend.device_of(grad) != self.device:
                raise ValueError(f"backward(): gradient on '{backend.device_of(grad)}', tensor on '{self.device}'")
            if tuple(grad.shape) != self.shape:
                raise ValueError(f"backward(): gradient shape {tuple(grad.shape)} != tensor shape {self.shape}")
            grad = grad.astype(self.dtype, copy=False)
        if self._ctx is None:  # a leaf
            _accumulate(self, grad)
            return
        order = _topological_order(self._ctx)
        pending = {id(self._ctx): [None] * self._ctx.n_out}
        pending[id(self._ctx)][self._idx] = grad
        for fn in order:
            gys = pending.pop(id(fn), None)
            if gys is None:
                continue
            if getattr(fn, "freed", False):
                raise RuntimeError(f"backward() through {fn.name} a second time: its saved arrays were freed; "
                                   "call backward(retain_graph=True) the first time")
            gys = [g if g is not None else xp.zeros(s, dtype=d) for g, (s, d) in zip(gys, fn.out_meta)]
            fn.retained = retain_graph  # an op may reuse its saved buffers when the graph is not kept
            prof = _profiler
            gxs = fn.backward(*gys) if prof is None else prof.run(fn.name, 1, fn.backward, *gys)
            if not isinstance(gxs, tuple):
                gxs = (gxs,)
            args = fn.args
            if len(gxs) != len(args):
                raise RuntimeError(f"{fn.name}.backward returned {len(gxs)} gradients for {len(args)} inputs")
            for x, gx in zip(args, gxs):
                if not isinstance(x, Tensor) or not x.requires_grad or gx is None:
                    continue
                if isinstance(gx, np.generic):  # NumPy turns 0-d results into scalars
                    gx = np.asarray(gx)
                if tuple(gx.shape) != x.shape or gx.dtype != x.dtype:
                    raise RuntimeError(f"{fn.name}.backward gave a gradient of shape {tuple(gx.shape)} and dtype "
                                       f"{gx.dtype} for an input of shape {x.shape} and dtype {x.dtype}")
                if x._ctx is None:
                    _accumulate(x, gx)
                else:
                    slot = pending.setdefault(id(x._ctx), [None] * x._ctx.n_out)
                    prev = slot[x._idx]
                    slot[x._idx] = gx if prev is None else prev + gx  # out of place: gx may be shared
            if not retain_graph:
                fn.release()

    # ------------------------------------------------------------------ operators
    def __add__(self, other):
        return ops.Add.apply(self, _const(other, self))

    def __radd__(self, other):
        return ops.Add.apply(_const(other, self), self)

    def __sub__(self, other):
        return ops.Sub.apply(self, _const(other, self))

    def __rsub__(self, other):
        return ops.Sub.apply(_const(other, self), self)

    def __mul__(self, other):
        return ops.Mul.apply(self, _const(other, self))

    def __rmul__(self, other):
        return ops.Mul.apply(_const(other, self), self)

    def __truediv__(self, other):
        return ops.Div.apply(self, _const(other, self))

    def __rtruediv__(self, other):
        return ops.Div.apply(_const(other, self), self)

    def __neg__(self):
        return ops.Neg.apply(self)

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor) or not isinstance(exponent, (int, float, np.number)):
            raise TypeError(f"pow supports a scalar exponent only, got {type(exponent).__name__}")
        return ops.Pow.apply(self, exponent=float(exponent))

    def __matmul__(self, other):
        return ops.MatMul.apply(self, _const(other, self, scalar_ok=False))

    def __rmatmul__(self, other):
        return ops.MatMul.apply(_const(other, self, scalar_ok=False), self)

    def __getitem__(self, index):
        return ops.GetItem.apply(self, index=_index(index, self))

    # comparisons give boolean tensors outside the graph (masks)
    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else _scalar(other)
        return Tensor._make(op(self.data, other), self.device)

    __lt__ = lambda self, o: self._compare(o, lambda a, b: a < b)
    __le__ = lambda self, o: self._compare(o, lambda a, b: a <= b)
    __gt__ = lambda self, o: self._compare(o, lambda a, b: a > b)
    __ge__ = lambda self, o: self._compare(o, lambda a, b: a >= b)
    def eq(self, other):
        """Elementwise equality as a boolean tensor (outside the graph)."""
        return self._compare(other, lambda a, b: a == b)
    __hash__ = object.__hash__

    # ------------------------------------------------------------------ methods
    def sum(self, axis=None, keepdims=False):
        """Sum over `axis` (None: all; int or tuple)."""
        return ops.Sum.apply(self, axis=_axes(axis, self.ndim), keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        """Mean over `axis` (None: all; int or tuple)."""
        return ops.Mean.apply(self, axis=_axes(axis, self.ndim), keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        """Maximum over `axis`; the gradient is shared equally among ties."""
        return ops.Max.apply(self, axis=_axes(axis, self.ndim), keepdims=keepdims)

    def var(self, axis=None, keepdims=False, correction=1):
        """Variance over `axis` with `correction` (1: unbiased, as PyTorch; 0: biased)."""
        return ops.Var.apply(self, axis=_axes(axis, self.ndim), keepdims=keepdims, correction=correction)

    def argmax(self, axis=None):
        """Indices of the maxima (no gradient)."""
        return Tensor._make(self.data.argmax(axis=axis), self.device)

    def reshape(self, *shape):
        """The same data in a new shape (one axis may be -1)."""
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return ops.Reshape.apply(self, shape=tuple(int(s) for s in shape))

    view = reshape

    def flatten(self):
        """The data as one axis (a differentiable reshape)."""
        return self.reshape(-1)

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
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return self.permute(*axes)

    def exp(self):
        """e ** x, elementwise."""
        return ops.Exp.apply(self)

    def log(self):
        """Natural logarithm, elementwise."""
        return ops.Log.apply(self)

    def sqrt(self):
        """Square root, elementwise."""
        return ops.Sqrt.apply(self)

    def tanh(self):
        """Hyperbolic tangent, elementwise."""
        return ops.Tanh.apply(self)

    def relu(self):
        """max(x, 0), elementwise."""
        return ops.Relu.apply(self)

    def gelu(self):
        """GPT-2's GELU, tanh form."""
        return ops.Gelu.apply(self)

    def softmax(self, axis=-1):
        """exp(x) / sum(exp(x)) along `axis` (stable)."""
        return ops.Softmax.apply(self, axis=axis)

    def log_softmax(self, axis=-1):
        """x - logsumexp(x) along `axis` (stable)."""
        return ops.LogSoftmax.apply(self, axis=axis)

    def masked_fill(self, mask, value):
        """Where `mask` (bool, broadcastable) is true, `value`; elsewhere self."""
        return ops.Where.apply(_mask(mask, self), _scalar(value), self)

    def split(self, split_size_or_sections, axis=-1):
        """Pieces of `split_size` (int) or of the given sizes (list) along `axis`, as torch.split."""
        from .functional import split
        return split(self, split_size_or_sections, axis)


def _const(x, like, scalar_ok=True):
    """Prepare the other operand of a binary op: Tensors pass, scalars stay scalars."""
    if isinstance(x, Tensor):
        return x
    if scalar_ok and isinstance(x, (int, float, bool, np.number, np.bool_)):
        return _scalar(x)
    if isinstance(x, (list, tuple)) or (isinstance(x, np.ndarray) and like.device == "cpu"):
        return Tensor(x, device=like.device, dtype=like.dtype if np.asarray(x).dtype.kind == "f" else None)
    if isinstance(x, np.ndarray):
        raise ValueError(f"a NumPy array (shape {x.shape}) was mixed with a tensor on '{like.device}'; "
                         f"make it a tensor with tinylm.tensor(array, device='{like.device}')")
    raise TypeError(f"unsupported operand of type {type(x).__name__} for a Tensor op")


def _mask(mask, like):
    """A boolean mask as an array on `like`'s device (a Tensor, a device array, or on cpu a list)."""
    if isinstance(mask, Tensor):
        if mask.device != like.device:
            raise ValueError(f"mask on '{mask.device}', tensor on '{like.device}'")
        return mask.data
    if not isinstance(mask, (list, tuple, np.ndarray)):
        if backend.device_of(mask) != like.device:
            raise ValueError(f"mask on '{backend.device_of(mask)}', tensor on '{like.device}'")
        return mask
    if like.device != "cpu":
        raise ValueError(f"a host mask was given for a tensor on '{like.device}'; make it a tensor on that device")
    return np.asarray(mask)


def _axes(axis, ndim):
    if axis is None:
        return None
    if isinstance(axis, (list, tuple)):
        axes = tuple(int(a) for a in axis)
    else:
        axes = (int(axis),)
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} axes")
    return tuple(sorted(a % ndim for a in axes)) if ndim else None


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


def _accumulate(leaf, grad):
    """Leaves accumulate out of place; the first gradient is copied so no two leaves share one."""
    leaf.grad = grad.copy() if leaf.grad is None else leaf.grad + grad


def _topological_order(root):
    """Functions reachable from `root`, each before every Function that made its inputs.

    Iterative depth-first post-order (no recursion, so deep graphs work), then reversed.
    """
    order, expanded, stack = [], set(), [(root, False)]
    while stack:
        fn, done = stack.pop()
        if done:
            order.append(fn)
            continue
        if id(fn) in expanded:
            continue
        expanded.add(id(fn))
        stack.append((fn, True))
        for x in getattr(fn, "args", ()):
            if isinstance(x, Tensor) and x._ctx is not None and id(x._ctx) not in expanded:
                stack.append((x._ctx, False))
    order.reverse()
    return order


from . import ops  # noqa: E402  (ops needs Tensor and Function defined first)
