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
import functools
import inspect
import math
import time
import weakref
from collections import namedtuple

import numpy as np

from . import backend

# ----------------------------------------------------------------------------- grad mode
_grad_enabled = True


def is_grad_enabled():
    """True unless inside `no_grad()`."""
    return _grad_enabled


class _GradMode:
    """Sets grad mode inside a `with` block or a decorated function (None: leaves it as it is).

    Re-entrant: each entry keeps its own previous mode, so recursion and nesting restore it.
    """

    def __init__(self, enabled):
        self.enabled = enabled
        self._prev = []

    def __enter__(self):
        global _grad_enabled
        self._prev.append(_grad_enabled)
        if self.enabled is not None:
            _grad_enabled = self.enabled

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev.pop()

    def __call__(self, fn):
        enabled = self.enabled
        if inspect.isgeneratorfunction(fn):                    # the mode holds while the body runs
            @functools.wraps(fn)
            def generator(*args, **kwargs):
                it = fn(*args, **kwargs)
                while True:
                    with _GradMode(enabled):
                        try:
                            item = next(it)
                        except StopIteration as stop:
                            return stop.value
                    yield item
            return generator

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _GradMode(enabled):
                return fn(*args, **kwargs)
        return wrapper


def no_grad(fn=None):
    """Context manager and decorator: ops inside record no graph (eval, generation).

    `with no_grad():`, `@no_grad()` and `@no_grad` all work, as in PyTorch.
    """
    return _GradMode(False)(fn) if callable(fn) else _GradMode(False)


def enable_grad(fn=None):
    """Context manager and decorator: turn graph recording back on inside `no_grad()`."""
    return _GradMode(True)(fn) if callable(fn) else _GradMode(True)


def inference_mode(mode=True):
    """PyTorch's stricter no_grad; here no_grad itself. `inference_mode(False)` changes nothing."""
    if callable(mode):
        return no_grad(mode)
    return _GradMode(False if mode else None)


class set_grad_enabled:
    """Turn graph recording on or off: as a call (`set_grad_enabled(False)`) it stays so; as
    `with set_grad_enabled(training):` the old mode comes back at the end of the block; as a
    decorator `@set_grad_enabled(False)` it holds while the function runs."""

    def __init__(self, mode):
        global _grad_enabled
        self.mode = bool(mode)
        self.prev, _grad_enabled = _grad_enabled, self.mode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.prev

    def __call__(self, fn):
        global _grad_enabled
        _grad_enabled = self.prev                              # a decorator changes nothing until called
        return _GradMode(self.mode)(fn)


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


# ----------------------------------------------------------------------------- post-backward hooks
class _HookHandle:
    """What register_post_backward_hook returns: `handle.remove()` unregisters the hook."""

    def __init__(self, fn):
        self.fn = fn

    def remove(self):
        if self.fn in _post_backward_hooks:
            _post_backward_hooks.remove(self.fn)


_post_backward_hooks = []   # fn() called after every completed backward() walk (DistributedDataParallel)


def register_post_backward_hook(fn):
    """Call `fn()` after every completed `backward()`; returns a handle whose `remove()` undoes it."""
    if not callable(fn):
        raise TypeError(f"register_post_backward_hook needs a callable, got {type(fn).__name__}")
    _post_backward_hooks.append(fn)
    return _HookHandle(fn)


def _run_post_backward_hooks():
    for fn in list(_post_backward_hooks):
        fn()


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


def _is_view(a):
    """True when array `a` is a view of another array's memory (NumPy, CuPy, strict)."""
    a = getattr(a, "_a", a)                                    # a strict array's NumPy array
    return getattr(a, "base", None) is not None


class Function:
    """One differentiable op. Subclasses write `forward(*arrays)` and `backward(*grads)` side by side.

    `forward` gets raw arrays for Tensor arguments and other arguments as they are (Python
    scalars, None, index tuples); it returns an array or a tuple of arrays. `backward` gets one
    gradient array per output and returns one gradient per argument (None for arguments that
    need none). Keyword arguments of `apply` go to `__init__`.
    """

    view_of = None  # the index of the argument whose memory the output may view (reshape, slices, ...)

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
        try:
            ys = fn.forward(*raw) if prof is None else prof.run(cls.__name__, 0, fn.forward, *raw)
        except ValueError as e:
            if "broadcast" not in str(e) or str(e).startswith(cls.__name__):
                raise
            shapes = " and ".join(str(tuple(a.shape)) for a in raw if hasattr(a, "shape"))
            raise ValueError(f"{cls.__name__}: shapes {shapes} do not broadcast together") from None
        multi = type(ys) is tuple
        if multi:
            outs = tuple(Tensor._make(np.asarray(y) if isinstance(y, np.generic) else y, device) for y in ys)
        else:
            outs = (Tensor._make(np.asarray(ys) if isinstance(ys, np.generic) else ys, device),)
        if cls.view_of is not None and isinstance(args[cls.view_of], Tensor):
            src = args[cls.view_of]
            for o in outs:                                     # a view shares its source's change count
                if _is_view(o.data):
                    o._vc = src._vc
        if needs_grad and _grad_enabled:
            fn.args = args
            fn.versions = [a._vc[0] if isinstance(a, Tensor) else None for a in args]
            fn.outs = [(weakref.ref(o), o._vc[0]) for o in outs]
            fn.n_out = len(outs)
            fn.out_meta = [(o.data.shape, o.data.dtype) for o in outs]
            for i, o in enumerate(outs):
                if o.data.dtype.kind != "f":
                    continue  # integer and boolean outputs carry no gradient
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
ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])  # x.max(dim=...), as torch.return_types.max


class Tensor:
    """An n-dimensional array on a device that records the ops applied to it.

    Attributes: `data` (the NumPy/CuPy array), `grad` (an array of the same shape, or None),
    `requires_grad`, `device` ('cpu', 'cuda:N' or 'strict'), `shape`, `dtype`, `ndim`.
    PyTorch's names work too: `size()`, `numel()`, `dim()`, and `dim=`/`keepdim=` wherever an
    axis is taken (NumPy's `axis=`/`keepdims=` are the same thing).
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

    @property
    def T(self):
        """All axes reversed (the transpose of a matrix)."""
        return self.permute(*reversed(range(self.ndim)))

    def size(self, dim=None, *, axis=None):
        """The shape (PyTorch's name), or the length of axis `dim`."""
        dim = _alias(dim, axis)
        return self.shape if dim is None else self.shape[_one_axis(dim, self.ndim, "size")]

    def numel(self):
        """The number of elements."""
        return int(self.data.size)

    nelement = numel

    def dim(self):
        """The number of axes (PyTorch's name for ndim)."""
        return self.data.ndim

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
        return bool(self.item())

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

    def __contains__(self, value):
        return bool((self == value).any())

    def __repr__(self):
        """As PyTorch prints: 4 decimals, up to 1000 elements in full, the device unless the CPU, the
        dtype unless float32, int64 or bool."""
        host = backend.to_numpy(self.data)
        finite = host[np.isfinite(host)] if host.dtype.kind == "f" else host
        whole = host.dtype.kind != "f" or bool(np.all(finite == np.round(finite)))   # 1., 2. as PyTorch
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
            t.grad = backend.to_device(_raw_grad(x.grad), device)
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

    def half(self):
        """As float16 (differentiable); self when it already is."""
        return self.to(np.float16)

    def long(self):
        """An int64 copy (no gradient), e.g. token ids."""
        return Tensor._make(self.data.astype(np.int64), self.device)

    def int(self):
        """An int32 copy (no gradient)."""
        return Tensor._make(self.data.astype(np.int32), self.device)

    def bool(self):
        """A boolean copy (no gradient): nonzero -> True."""
        return Tensor._make(self.data.astype(bool), self.device)

    def clone(self):
        """A copy of the data that stays in the graph."""
        return ops.Cast.apply(self, dtype=self.dtype)

    def contiguous(self):
        """Self: tinylm's ops take any memory layout (PyTorch's name, for ported code)."""
        return self

    # ------------------------------------------------------------------ backward
    def backward(self, grad=None, retain_graph=False, *, gradient=None):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`, walking the graph in reverse.

        `grad` is the upstream gradient (an array or Tensor of self's shape); a one-element
        output may omit it (seeded with 1). Without `retain_graph`, saved arrays are freed.
        """
        if gradient is not None and grad is not None:
            raise TypeError("backward(): give grad or gradient (PyTorch's name), not both")
        grad = gradient if gradient is not None else grad      # PyTorch's name for it
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (was it made under no_grad()?)")
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
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
        if self._ctx is None or self._retain:  # a leaf, or a tensor that keeps its gradient
            _accumulate(self, grad)
        if self._ctx is None:
            _run_post_backward_hooks()
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
            _check_versions(fn)
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
                if gx.dtype != x.dtype and tuple(gx.shape) == x.shape and x.dtype.kind == "f" and any(
                        d != x.dtype for _, d in fn.out_meta):
                    gx = gx.astype(x.dtype)  # the op promoted (float32 + float64): the input's dtype back
                if tuple(gx.shape) != x.shape or gx.dtype != x.dtype:
                    raise RuntimeError(f"{fn.name}.backward gave a gradient of shape {tuple(gx.shape)} and dtype "
                                       f"{gx.dtype} for an input of shape {x.shape} and dtype {x.dtype}")
                if x._ctx is None or x._retain:
                    _accumulate(x, gx)
                if x._ctx is not None:
                    slot = pending.setdefault(id(x._ctx), [None] * x._ctx.n_out)
                    prev = slot[x._idx]
                    slot[x._idx] = gx if prev is None else prev + gx  # out of place: gx may be shared
            if not retain_graph:
                fn.release()
        _run_post_backward_hooks()

    # ------------------------------------------------------------------ operators
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
            return _floats(self) ** exponent
        return ops.Pow.apply(self, exponent=float(exponent))

    pow = __pow__

    def __rpow__(self, base):
        """base ** x for a positive scalar base, as exp(x log(base))."""
        if isinstance(base, (bool, np.bool_)) or not isinstance(base, (int, float, np.number)) or base <= 0:
            raise ValueError(f"base ** tensor needs a positive scalar base, got {base!r}")
        if self.dtype.kind != "f" and isinstance(base, (int, np.integer)):
            return Tensor._make(int(base) ** self.data, self.device)      # 2 ** int tensor: ints, as PyTorch
        return (_floats(self) * math.log(base)).exp()

    def __abs__(self):
        """|x|, elementwise."""
        return ops.Abs.apply(self)

    abs = __abs__

    # in place, as in PyTorch's manual SGD step `with no_grad(): p -= lr * p.grad`
    def _write_operand(self, value, what):
        """The value of an in-place write, as an array or scalar on this tensor's device; refused in the graph."""
        if _grad_enabled and (self.requires_grad or isinstance(value, Tensor) and value.requires_grad):
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
        return _scalar(value)

    def _inplace(self, other, ufunc, symbol):
        other = self._write_operand(other, f"in-place '{symbol}'")
        getattr(backend.get_array_module(self.data), ufunc)(self.data, other, out=self.data)
        self._version += 1
        return self

    def __iadd__(self, other):
        return self._inplace(other, "add", "+=")

    def __isub__(self, other):
        return self._inplace(other, "subtract", "-=")

    def __imul__(self, other):
        return self._inplace(other, "multiply", "*=")

    def __itruediv__(self, other):
        return self._inplace(other, "divide", "/=")

    def __matmul__(self, other):
        """Matrix product, batched over leading axes (NumPy's matmul rules)."""
        return ops.MatMul.apply(*_operands(self, other, scalar_ok=False))

    matmul = __matmul__

    def __rmatmul__(self, other):
        return ops.MatMul.apply(*reversed(_operands(self, other, scalar_ok=False)))

    def __getitem__(self, index):
        return ops.GetItem.apply(self, index=_index(index, self))

    def __setitem__(self, index, value):
        """x[index] = value, in place (outside the graph): `losses[k] = loss.item()`, `N[i, j] += 1`."""
        value = self._write_operand(value, "item assignment")
        self.data[_index(index, self)] = value
        self._version += 1

    def __floordiv__(self, other):
        """Floor division (no gradient), as PyTorch's //; dtypes follow the arithmetic rule."""
        a, b = _operands(self, other)
        return Tensor._make(a.data // _int_divisor(b, a), self.device)

    def __rfloordiv__(self, other):
        b, a = _operands(self, other)
        return Tensor._make((a.data if isinstance(a, Tensor) else a) // _int_divisor(b, a), self.device)

    def __mod__(self, other):
        """Remainder, as PyTorch's %: x - floor(x / y) y; for a float x its gradient is 1 (y a constant)."""
        a, b = _operands(self, other)
        if a.dtype.kind != "f":
            return Tensor._make(a.data % _int_divisor(b, a), self.device)
        bd = b.data if isinstance(b, Tensor) else b
        xp = backend.get_array_module(a.data)
        out = a - Tensor._make(a.data // bd, self.device) * b   # the graph: d/da = 1, d/db = -floor(a / b)
        out.data = xp.remainder(a.data, bd)                    # the values: exact (a - q b loses digits)
        return out

    def __rmod__(self, other):
        b, a = _operands(self, other)
        if b.dtype.kind == "f":                                # a number % x: x's gradient is -floor(a / x)
            xp = backend.get_array_module(b.data)
            out = (Tensor._make(a // b.data, self.device) * b) * -1.0 + a
            out.data = xp.remainder(a, b.data)
            return out
        return Tensor._make((a.data if isinstance(a, Tensor) else a) % _int_divisor(b, a), self.device)

    # comparisons give boolean tensors outside the graph (masks)
    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else _scalar(other)
        return Tensor._make(op(self.data, other), self.device)

    __lt__ = lambda self, o: self._compare(o, lambda a, b: a < b)
    __le__ = lambda self, o: self._compare(o, lambda a, b: a <= b)
    __gt__ = lambda self, o: self._compare(o, lambda a, b: a > b)
    __ge__ = lambda self, o: self._compare(o, lambda a, b: a >= b)
    __eq__ = lambda self, o: self._compare(o, lambda a, b: a == b)   # elementwise, as PyTorch and NumPy
    __ne__ = lambda self, o: self._compare(o, lambda a, b: a != b)
    __hash__ = object.__hash__  # by identity, so tensors can key dicts (optimiser state); compare with `is`

    def eq(self, other):
        """Elementwise equality as a boolean tensor (outside the graph): the same as `==`."""
        return self == other

    # logic on boolean (or integer) tensors, outside the graph: masks
    def _logic(self, other, op, symbol):
        if self.dtype.kind not in "biu":
            raise TypeError(f"'{symbol}' needs boolean or integer tensors, got dtype {self.dtype}")
        return self._compare(other, op)

    __and__ = lambda self, o: self._logic(o, lambda a, b: a & b, "&")
    __or__ = lambda self, o: self._logic(o, lambda a, b: a | b, "|")
    __xor__ = lambda self, o: self._logic(o, lambda a, b: a ^ b, "^")

    def __invert__(self):
        if self.dtype.kind not in "biu":
            raise TypeError(f"'~' needs a boolean or integer tensor, got dtype {self.dtype}")
        return Tensor._make(~self.data, self.device)

    def any(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """True where any element along `axis` is nonzero (no gradient)."""
        axis, keepdims = _dims(axis, dim, keepdims, keepdim, self.ndim, "any")
        return Tensor._make(self.data.any(axis=axis, keepdims=keepdims), self.device)

    def all(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """True where every element along `axis` is nonzero (no gradient)."""
        axis, keepdims = _dims(axis, dim, keepdims, keepdim, self.ndim, "all")
        return Tensor._make(self.data.all(axis=axis, keepdims=keepdims), self.device)

    # ------------------------------------------------------------------ methods
    def sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Sum over `axis` (None: all; int or tuple)."""
        axis, keepdims = _dims(axis, dim, keepdims, keepdim, self.ndim, "sum")
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Mean over `axis` (None: all; int or tuple); integer and boolean tensors give float32."""
        axis, keepdims = _dims(axis, dim, keepdims, keepdim, self.ndim, "mean")
        x = self if self.dtype.kind == "f" else self.astype(backend.DEFAULT_DTYPE)
        return ops.Mean.apply(x, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Maximum over `axis`; the gradient is shared equally among ties.

        PyTorch's form `x.max(dim=1)` returns (values, indices), as PyTorch does.
        """
        if dim is not None:
            return self._with_indices(dim, keepdim, self.argmax)
        axis, keepdims = _dims(axis, None, keepdims, keepdim, self.ndim, "max")
        return ops.Max.apply(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Minimum over `axis` (as -max(-x) for floats); `x.min(dim=1)` returns (values, indices), as PyTorch."""
        if dim is not None:
            return self._with_indices(dim, keepdim, self.argmin)
        if self.dtype.kind != "f":                             # no gradient; and -x would wrap unsigned ints
            axis, keepdims = _dims(axis, None, keepdims, keepdim, self.ndim, "min")
            return Tensor._make(self.data.min(axis=axis, keepdims=keepdims), self.device)
        return -((-self).max(axis, keepdims, keepdim=keepdim))

    def _values_only(self):
        raise AttributeError("a tensor has no .values or .indices: x.max(1) returns the values only (NumPy's rule "
                             "for a positional axis); write x.max(dim=1) for PyTorch's (values, indices)")

    values = indices = property(_values_only, doc="Refused with a hint: PyTorch's `x.max(1).values` is `x.max(dim=1).values`.")

    def _with_indices(self, dim, keepdim, indices):
        """(values, indices) along `dim`: the values gathered at the indices, so the gradient goes to
        that one element (PyTorch's rule), not shared among ties."""
        keepdim = bool(keepdim)
        axis = _one_axis(dim, self.ndim, "max/min")
        idx = indices(dim=axis, keepdim=True)                  # (..., 1, ...)
        values = self.gather(axis, idx)                        # GetItem's backward scatters to that element
        if not keepdim:
            values, idx = values.squeeze(axis), idx.squeeze(axis)
        return ValuesIndices(values, idx)

    def var(self, axis=None, unbiased=None, keepdims=False, *, correction=1, dim=None, keepdim=None):
        """Variance over `axis`, unbiased by default (PyTorch's order: `x.var(1, False)` is the
        biased one); `correction=0` is biased too."""
        if isinstance(axis, bool):                             # x.var(False): PyTorch's var(unbiased)
            axis, unbiased = None, axis
        axis, keepdims = _dims(axis, dim, keepdims, keepdim, self.ndim, "var")
        if unbiased is not None:
            correction = 1 if unbiased else 0
        return ops.Var.apply(_floats(self), axis=axis, keepdims=keepdims, correction=correction)

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
        axis = _one_axis(axis if dim is None else dim, self.ndim, fn)
        keepdims = bool(keepdims if keepdim is None else keepdim)
        out = getattr(self.data, fn)(axis=axis)
        if keepdims:                                           # the reduced axis (all of them for None) kept as 1
            out = out.reshape((1,) * self.ndim if axis is None else out.shape[:axis] + (1,) + out.shape[axis:])
        return Tensor._make(out, self.device)

    def reshape(self, *shape):
        """The same data in a new shape (one axis may be -1)."""
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return ops.Reshape.apply(self, shape=tuple(int(s) for s in shape))

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        """Axes start_dim..end_dim merged into one (all of them by default): a differentiable reshape."""
        if not self.ndim:
            return self.reshape(1)
        a, b = _one_axis(start_dim, self.ndim, "flatten"), _one_axis(end_dim, self.ndim, "flatten")
        if a > b:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} (shape {self.shape})")
        return self.reshape(self.shape[:a] + (-1,) + self.shape[b + 1:])

    def unsqueeze(self, dim=None, *, axis=None):
        """A new axis of length 1 at `dim` (-1: last)."""
        dim = _alias(dim, axis)
        if dim is None:
            raise TypeError("unsqueeze: give the axis, unsqueeze(dim)")
        if not -self.ndim - 1 <= dim <= self.ndim:
            raise ValueError(f"unsqueeze: dim {dim} is out of range for a tensor with {self.ndim} axes")
        dim = dim % (self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None, *, axis=None):
        """Drop axes of length 1 (all of them, or `dim` if it has length 1)."""
        dim = _alias(dim, axis)
        dims = range(self.ndim) if dim is None else [_one_axis(dim, self.ndim, "squeeze")]
        drop = {d for d in dims if self.shape[d] == 1}
        return self.reshape(tuple(n for d, n in enumerate(self.shape) if d not in drop))

    def expand(self, *sizes):
        """A broadcast view to `sizes` (-1 keeps an axis); the gradient sums back."""
        sizes = tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes
        lead = len(sizes) - self.ndim
        if lead < 0:
            raise ValueError(f"expand: {sizes} has fewer axes than shape {self.shape}")
        shape = tuple(n if n != -1 else self.shape[i - lead] for i, n in enumerate(sizes))
        return ops.BroadcastTo.apply(self, shape=shape)

    def unbind(self, dim=None, *, axis=None):
        """The slices along `dim` (the first by default), as a tuple (each one axis fewer)."""
        dim = _alias(dim, axis, 0)
        axis = _one_axis(dim, self.ndim, "unbind")
        return tuple(self[(slice(None),) * axis + (i,)] for i in range(self.shape[axis]))

    def gather(self, dim=None, index=None, *, axis=None):
        """out[i][j] = x[i][index[i][j]] along `dim` (PyTorch's gather); the gradient scatters back."""
        dim = _alias(dim, axis)
        axis = _one_axis(dim, self.ndim, "gather")
        idx = index.data if isinstance(index, Tensor) else backend.to_device(np.asarray(index), self.device)
        if idx.ndim != self.ndim or idx.dtype.kind not in "iu":
            raise ValueError(f"gather: index must be integers with {self.ndim} axes, got {tuple(idx.shape)} "
                             f"of dtype {idx.dtype}")
        if idx.size and not (0 <= int(idx.min()) and int(idx.max()) < self.shape[axis]):
            raise IndexError(f"gather: index out of range [0, {self.shape[axis]}) along dim {dim}")
        xp = backend.get_array_module(self.data)
        full = tuple(idx if a == axis else xp.arange(n).reshape((-1,) + (1,) * (self.ndim - a - 1))
                     for a, n in enumerate(idx.shape))
        return self[full]

    def topk(self, k, dim=None, largest=True, sorted=True, *, axis=None):
        """(values, indices) of the k largest (or smallest) along `dim` (the last by default), largest
        first (PyTorch's topk)."""
        dim = _alias(dim, axis, -1)
        axis = _one_axis(dim, self.ndim, "topk")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= self.shape[axis]:
            raise ValueError(f"topk: k must be an int in [0, {self.shape[axis]}], got {k!r}")
        xp = backend.get_array_module(self.data)
        keys = -self.data if largest else self.data
        if largest and self.dtype.kind == "f":
            keys = xp.where(xp.isnan(self.data), -xp.inf, keys)   # nan ranks first, as PyTorch
        order = backend.argsort_stable(keys, axis=axis)
        idx = order[(slice(None),) * axis + (slice(0, k),)]
        indices = Tensor._make(idx.astype(np.int64, copy=False), self.device)
        return ValuesIndices(self.gather(axis, indices), indices)

    def chunk(self, chunks, dim=None, *, axis=None):
        """`chunks` pieces along `dim`, each ceil(n / chunks) long (the last may be shorter), as PyTorch."""
        dim = _alias(dim, axis, 0)
        if isinstance(chunks, bool) or not isinstance(chunks, (int, np.integer)) or chunks < 1:
            raise ValueError(f"chunk: chunks must be a positive int, got {chunks!r}")
        n = self.shape[_one_axis(dim, self.ndim, "chunk")]
        return self.split(max(-(-n // chunks), 1), dim)

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
        dim0, dim1 = _one_axis(dim0, self.ndim, "transpose"), _one_axis(dim1, self.ndim, "transpose")
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return self.permute(*axes)

    def exp(self):
        """e ** x, elementwise."""
        return ops.Exp.apply(_floats(self))

    def log(self):
        """Natural logarithm, elementwise."""
        return ops.Log.apply(_floats(self))

    def log10(self):
        """Base-10 logarithm, elementwise (e.g. to plot update-to-data ratios)."""
        y = _floats(self).log() * (1.0 / math.log(10.0))     # the graph: d/dx = 1 / (x ln 10)
        y.data = backend.get_array_module(y.data).log10(_floats(self).data)   # the values: exact at 10 ** k
        return y

    def sqrt(self):
        """Square root, elementwise."""
        return ops.Sqrt.apply(_floats(self))

    def tanh(self):
        """Hyperbolic tangent, elementwise."""
        return ops.Tanh.apply(_floats(self))

    def relu(self):
        """max(x, 0), elementwise."""
        return ops.Relu.apply(self)

    def sigmoid(self):
        """1 / (1 + exp(-x)), elementwise."""
        return ops.Sigmoid.apply(_floats(self))

    def clamp(self, min=None, max=None):
        """x limited to [min, max] (either may be None); no gradient where it was clipped."""
        x = self
        if min is not None:
            x = x.masked_fill(x < min, min)
        if max is not None:
            x = x.masked_fill(x > max, max)
        return x

    clip = clamp

    def gelu(self):
        """GPT-2's GELU, tanh form."""
        return ops.Gelu.apply(_floats(self))

    def softmax(self, axis=-1, *, dim=None):
        """exp(x) / sum(exp(x)) along `axis` (stable)."""
        return ops.Softmax.apply(_floats(self), axis=_one_axis(axis if dim is None else dim, self.ndim, "softmax"))

    def log_softmax(self, axis=-1, *, dim=None):
        """x - logsumexp(x) along `axis` (stable)."""
        return ops.LogSoftmax.apply(_floats(self), axis=_one_axis(axis if dim is None else dim, self.ndim, "log_softmax"))

    def masked_fill(self, mask, value):
        """Where `mask` (bool, broadcastable) is true, `value`; elsewhere self (its dtype kept)."""
        value = _scalar(value)
        if self.dtype.kind == "b":
            value = bool(value)
        elif self.dtype.kind in "iu":
            value = int(value)                                 # an integer tensor stays integer, as PyTorch
        return ops.Where.apply(_mask(mask, self), value, self)

    def split(self, split_size_or_sections, axis=0, *, dim=None):
        """Pieces of `split_size` (int) or of the given sizes (list) along `axis` (the first by default), as torch.split."""
        from .functional import split
        return split(self, split_size_or_sections, axis if dim is None else dim)


def _int_divisor(b, a):
    """The divisor b of `a // b` or `a % b` as an array or scalar; with integers on both sides a zero
    raises, as in PyTorch (NumPy gives 0 and a warning)."""
    d = b.data if isinstance(b, Tensor) else b
    kind = d.dtype.kind if hasattr(d, "dtype") else "i" if isinstance(d, int) else "f"
    a_kind = a.dtype.kind if isinstance(a, Tensor) else "i" if isinstance(a, int) else "f"
    if kind in "iub" and a_kind in "iub" and bool((d == 0).any() if hasattr(d, "any") else d == 0):
        raise ZeroDivisionError("integer division or modulo by zero")
    return d


def _alias(dim, axis, default=None):
    """PyTorch's `dim` or NumPy's `axis` (not both), else `default`."""
    if dim is not None and axis is not None:
        raise TypeError("give dim or axis, not both")
    return dim if dim is not None else axis if axis is not None else default


def _floats(x):
    """x itself, or as float32 when it holds integers or booleans (PyTorch gives float32 there, NumPy float64)."""
    return x if x.dtype.kind == "f" else x.astype(backend.DEFAULT_DTYPE)


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


def _dims(axis, dim, keepdims, keepdim, ndim, fn):
    """A reduction's axes from NumPy's (axis, keepdims) or PyTorch's (dim, keepdim) names."""
    if dim is not None:
        if axis is not None:
            raise TypeError(f"{fn}(): give axis or dim, not both")
        axis = dim
    return _axes(axis, ndim), bool(keepdims if keepdim is None else keepdim)


def _one_axis(axis, ndim, fn):
    """One axis, checked and made non-negative (None passes)."""
    if axis is None:
        return None
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{fn}: an axis must be an int, got {type(axis).__name__}")
    if not -max(ndim, 1) <= axis < max(ndim, 1):
        raise ValueError(f"{fn}: axis {axis} is out of range for a tensor with {ndim} axes")
    return int(axis) % max(ndim, 1)



def _operands(a, b, scalar_ok=True, true_divide=False):
    """Tensor `a` and the other operand `b` of an arithmetic op, with PyTorch's dtype rule: an
    integer or boolean side takes the float side's dtype (float32 + int stays float32, where
    NumPy would give float64), and integers divided give float32."""
    if a.data.dtype.kind == "f" and (type(b) is float or type(b) is Tensor and b.data.dtype == a.data.dtype):
        return a, b                                            # the common case, quickly
    b = _const(b, a, scalar_ok)
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


def _const(x, like, scalar_ok=True):
    """Prepare the other operand of a binary op: Tensors pass, scalars stay scalars."""
    if isinstance(x, Tensor):
        return x
    if scalar_ok and isinstance(x, (int, float, bool, np.number, np.bool_)):
        return _scalar(x)
    if isinstance(x, (list, tuple)) or (isinstance(x, np.ndarray) and like.device == "cpu"):
        return Tensor(x, device=like.device, dtype=like.dtype if like.dtype.kind == "f" else None)
    if isinstance(x, np.ndarray):
        raise ValueError(f"a NumPy array (shape {x.shape}) was mixed with a tensor on '{like.device}'; "
                         f"make it a tensor with tinylm.tensor(array, device='{like.device}')")
    raise TypeError(f"unsupported operand of type {type(x).__name__} for a Tensor op")


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


def _check_versions(fn):
    """Refuse to differentiate through a Function whose inputs or outputs were changed in place since."""
    changed = [x for x, v in zip(fn.args, fn.versions) if v is not None and x._vc[0] != v]
    changed += [o for o, v in ((r(), v) for r, v in fn.outs) if o is not None and o._vc[0] != v]
    if changed:
        raise RuntimeError(f"backward through {fn.name}: a tensor of shape {changed[0].shape} it used was changed "
                           "in place afterwards (+=, -=, ... or nn.init), so its gradient would be wrong; "
                           "change a copy, or make the change before building the graph")


def _raw_grad(g):
    """A gradient as an array (a Tensor someone assigned to .grad gives its data)."""
    return g.data if isinstance(g, Tensor) else g


def _accumulate(leaf, grad):
    """Leaves accumulate out of place; the first gradient is copied so no two leaves share one."""
    leaf.grad = grad.copy() if leaf.grad is None else _raw_grad(leaf.grad) + grad


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
