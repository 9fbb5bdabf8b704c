"""The autograd engine: Function, the graph, the backward walk, grad modes, sum_to.

Calling a Function on Tensors runs `forward` on raw arrays and records the Function as the
outputs' creator (define-by-run). `backward(tensor)` walks the Functions in reverse topological
order, found iteratively, and hands each `backward` its output gradients as raw arrays (no
higher-order gradients). Gradient edges are checked; leaves accumulate out of place; saved
arrays are freed after use. The engine never imports Tensor: tinylm/tensor.py registers it.

Reference: DeZero steps 1-60, micrograd's `Value`, PyTorch's `torch.autograd` semantics.
"""
import functools
import inspect
import weakref

import numpy as np

from . import backend

TENSOR = None     # the Tensor class, set by tinylm/tensor.py: outputs are made as Tensors
OP_HOOK = None    # None, or f(name, is_backward, fn, *args) -> fn(*args): the profiler sets it
_post_backward_hooks = []

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


# ----------------------------------------------------------------------------- Function
def sum_to(grad, shape):
    """Undo broadcasting: sum `grad` down to `shape` (leading axes and size-1 axes)."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


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
    need none). An op's settings (an axis, an eps) are its constructor's arguments: keyword
    arguments of `apply` go to `__init__`.
    """

    view_of = None  # the index of the argument whose memory the output may view (reshape, slices, ...)

    @classmethod
    def apply(cls, *args, **settings):
        fn = cls(**settings)
        T = TENSOR
        device, needs_grad, raw = None, False, []
        for a in args:
            if isinstance(a, T):
                if device is None:
                    device = a.device
                elif a.device != device:
                    raise ValueError(f"{cls.__name__}: expected all tensors on the same device, "
                                     f"got '{device}' and '{a.device}'; move one with .to(device)")
                needs_grad = needs_grad or a.requires_grad
                raw.append(a.data)
            else:
                raw.append(a)
        try:
            ys = fn.forward(*raw) if OP_HOOK is None else OP_HOOK(cls.__name__, 0, fn.forward, *raw)
        except ValueError as e:
            if "broadcast" not in str(e) or str(e).startswith(cls.__name__):
                raise
            shapes = " and ".join(str(tuple(a.shape)) for a in raw if hasattr(a, "shape"))
            raise ValueError(f"{cls.__name__}: shapes {shapes} do not broadcast together") from None
        multi = type(ys) is tuple
        outs = tuple(T._make(np.asarray(y) if isinstance(y, np.generic) else y, device)
                     for y in (ys if multi else (ys,)))
        if cls.view_of is not None and isinstance(args[cls.view_of], T):
            src = args[cls.view_of]
            for o in outs:                                     # a view shares its source's change count
                if _is_view(o.data):
                    o._vc = src._vc
        if needs_grad and _grad_enabled:
            fn.args = args
            fn.versions = [a._vc[0] if isinstance(a, T) else None for a in args]
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


# ----------------------------------------------------------------------------- the backward walk
def register_post_backward_hook(hook):
    """Call `hook()` after every completed backward() walk (DistributedDataParallel averages
    gradients there). Returns a handle whose `remove()` takes the hook out again."""
    _post_backward_hooks.append(hook)
    return _Handle(hook)


class _Handle:
    def __init__(self, hook):
        self.hook = hook

    def remove(self):
        if self.hook in _post_backward_hooks:
            _post_backward_hooks.remove(self.hook)


def backward(root, grad=None, retain_graph=False):
    """Accumulate d(root)/d(leaf) into every leaf's `.grad`: Tensor.backward's walk."""
    if not root.requires_grad:
        raise RuntimeError("backward() on a tensor that does not require grad (was it made under no_grad()?)")
    xp = backend.get_array_module(root.data)
    grad = _seed(root, grad, xp)
    if root._ctx is None or root._retain:  # a leaf, or a tensor that keeps its gradient
        _accumulate(root, grad)
    if root._ctx is not None:
        _walk(root, grad, retain_graph, xp)
    for hook in list(_post_backward_hooks):
        hook()


def _seed(root, grad, xp):
    """The upstream gradient as an array of root's shape, dtype and device (ones for a scalar)."""
    if grad is None:
        if root.data.size != 1:
            raise ValueError(f"backward() on a non-scalar tensor of shape {root.shape} needs a gradient "
                             "argument of the same shape")
        return xp.ones(root.data.shape, dtype=root.dtype)
    if isinstance(grad, TENSOR):
        grad = grad.data
    if backend.device_of(grad) != root.device:
        raise ValueError(f"backward(): gradient on '{backend.device_of(grad)}', tensor on '{root.device}'")
    if tuple(grad.shape) != root.shape:
        raise ValueError(f"backward(): gradient shape {tuple(grad.shape)} != tensor shape {root.shape}")
    return grad.astype(root.dtype, copy=False)


def _walk(root, grad, retain_graph, xp):
    """Hand each Function its output gradients, in reverse topological order from root."""
    pending = {id(root._ctx): [None] * root._ctx.n_out}
    pending[id(root._ctx)][root._idx] = grad
    for fn in _topological_order(root._ctx):
        gys = pending.pop(id(fn), None)
        if gys is None:
            continue
        if getattr(fn, "freed", False):
            raise RuntimeError(f"backward() through {fn.name} a second time: its saved arrays were freed; "
                               "call backward(retain_graph=True) the first time")
        _check_versions(fn)
        gys = [g if g is not None else xp.zeros(s, dtype=d) for g, (s, d) in zip(gys, fn.out_meta)]
        fn.retained = retain_graph  # an op may reuse its saved buffers when the graph is not kept
        gxs = fn.backward(*gys) if OP_HOOK is None else OP_HOOK(fn.name, 1, fn.backward, *gys)
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        if len(gxs) != len(fn.args):
            raise RuntimeError(f"{fn.name}.backward returned {len(gxs)} gradients for {len(fn.args)} inputs")
        for x, gx in zip(fn.args, gxs):
            if not isinstance(x, TENSOR) or not x.requires_grad or gx is None:
                continue
            gx = _checked(fn, x, gx)
            if x._ctx is None or x._retain:
                _accumulate(x, gx)
            if x._ctx is not None:
                slot = pending.setdefault(id(x._ctx), [None] * x._ctx.n_out)
                prev = slot[x._idx]
                slot[x._idx] = gx if prev is None else prev + gx  # out of place: gx may be shared
        if not retain_graph:
            fn.release()


def _checked(fn, x, gx):
    """The gradient `fn` gave for input `x`, refused unless it has x's shape and dtype."""
    if isinstance(gx, np.generic):                             # NumPy turns 0-d results into scalars
        gx = np.asarray(gx)
    if gx.dtype != x.dtype and tuple(gx.shape) == x.shape and x.dtype.kind == "f" and any(
            d != x.dtype for _, d in fn.out_meta):
        gx = gx.astype(x.dtype)  # the op promoted (float32 + float64): the input's dtype back
    if tuple(gx.shape) != x.shape or gx.dtype != x.dtype:
        raise RuntimeError(f"{fn.name}.backward gave a gradient of shape {tuple(gx.shape)} and dtype "
                           f"{gx.dtype} for an input of shape {x.shape} and dtype {x.dtype}")
    return gx


def _check_versions(fn):
    """Refuse to differentiate through a Function whose inputs or outputs were changed in place since."""
    changed = [x for x, v in zip(fn.args, fn.versions) if v is not None and x._vc[0] != v]
    changed += [o for o, v in ((r(), v) for r, v in fn.outs) if o is not None and o._vc[0] != v]
    if changed:
        raise RuntimeError(f"backward through {fn.name}: a tensor of shape {changed[0].shape} it used was changed "
                           "in place afterwards (+=, -=, ... or nn.init), so its gradient would be wrong; "
                           "change a copy, or make the change before building the graph")


def raw_grad(g):
    """A gradient as an array (a Tensor someone assigned to .grad gives its data)."""
    return g.data if isinstance(g, TENSOR) else g


def _accumulate(leaf, grad):
    """Leaves accumulate out of place; the first gradient is copied so no two leaves share one."""
    leaf.grad = grad.copy() if leaf.grad is None else raw_grad(leaf.grad) + grad


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
            if isinstance(x, TENSOR) and x._ctx is not None and id(x._ctx) not in expanded:
                stack.append((x._ctx, False))
    order.reverse()
    return order
