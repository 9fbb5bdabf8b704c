"""The ops the GPT does not need: one Function each, forward and backward side by side, as in ops.py.

Concat, Stack, Relu, Sigmoid, Abs, Var, BroadcastTo (Tensor.expand) and Remainder (%): what
PyTorch code calls beyond the GPT's path. They are registered like the core's ops, and each has
its float64 gradient case in tests/test_ops.py.
"""
import builtins
import math

from .backend import get_array_module
from .engine import Function, register, sum_to
from .ops import Reshape, _Axis, _expand, _shape


@register
class Remainder(Function):
    """a % b as PyTorch's (the sign of b): exact values; d/da = 1, d/db = -floor(a / b)."""

    def forward(self, a, b):
        self.sa, self.sb = getattr(a, "shape", None), getattr(b, "shape", None)
        self.q = a // b
        return get_array_module(self.q).remainder(a, b)

    def backward(self, g):
        return (sum_to(g, self.sa) if self.sa is not None else None,
                sum_to(-g * self.q, self.sb) if self.sb is not None else None)


@register
class BroadcastTo(Reshape):
    """A read-only broadcast view of x with `shape` (Tensor.expand); the gradient sums back."""

    def forward(self, x):
        self.in_shape = x.shape
        return get_array_module(x).broadcast_to(x, self.shape)

    def backward(self, g):
        return sum_to(g, self.in_shape)


@register
class Var(Function):
    """Variance with `correction` (Bessel's when 1)."""

    def __init__(self, axis, keepdims, correction):
        self.axis, self.keepdims, self.correction = axis, keepdims, correction

    def forward(self, x):
        n = x.size if self.axis is None else math.prod(x.shape[a] for a in self.axis)
        self.denom = n - self.correction
        if self.denom <= 0:
            raise ValueError(f"var: {n} elements with correction {self.correction} leave no degrees of freedom")
        self.xc = x - x.mean(axis=self.axis, keepdims=True)
        return (self.xc * self.xc).sum(axis=self.axis, keepdims=self.keepdims) / self.denom

    def backward(self, g):
        g = _expand(g, self.xc.shape, self.axis, self.keepdims)
        return g * self.xc * (2.0 / self.denom)


@register
class Abs(Function):
    """|x|; the gradient is sign(x) (0 at 0, as PyTorch)."""

    def forward(self, x):
        self.x = x
        return builtins.abs(x)

    def backward(self, g):
        return g * get_array_module(g).sign(self.x)


@register
class Concat(_Axis):
    """Join tensors along an existing axis."""

    def forward(self, *xs):
        xp = get_array_module(xs[0])
        self.sizes = [x.shape[self.axis] for x in xs]
        return xp.concatenate(xs, axis=self.axis)

    def backward(self, g):
        xp = get_array_module(g)
        bounds = [sum(self.sizes[:i + 1]) for i in range(len(self.sizes) - 1)]
        return tuple(xp.split(g, bounds, axis=self.axis))


@register
class Stack(_Axis):
    """Join tensors along a new axis."""

    def forward(self, *xs):
        xp = get_array_module(xs[0])
        self.n = len(xs)
        return xp.stack(xs, axis=self.axis)

    def backward(self, g):
        xp = get_array_module(g)
        return tuple(xp.take(g, i, axis=self.axis) for i in range(self.n))


@register
class Relu(Function):
    def forward(self, x):
        xp = get_array_module(x)
        self.mask = x > 0
        return xp.maximum(x, 0)

    def backward(self, g):
        return g * self.mask


@register
class Sigmoid(Function):
    """1 / (1 + exp(-x)), from e = exp(-|x|), which never overflows: 1 / (1 + e) for x >= 0,
    e / (1 + e) for x < 0 (no cancellation, so tiny values keep their digits)."""

    def forward(self, x):
        xp = get_array_module(x)
        e = xp.exp(-abs(x))
        y = xp.where(x >= 0, 1.0, e)
        y /= 1.0 + e
        y = y.astype(x.dtype, copy=False)
        self.y = y
        return y

    def backward(self, g):
        y = self.y
        return g * y * (1.0 - y)
