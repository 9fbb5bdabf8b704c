"""The ops the GPT does not need: one Function each, forward and backward side by side, as in ops.py.

Concat, Stack, Relu, Sigmoid, Abs, Var, BroadcastTo (Tensor.expand), Remainder (%), GeluErf
(PyTorch's default, exact GELU), Cumsum, Cumprod and Einsum: what PyTorch code calls beyond the
GPT's path. They are registered like the core's ops, and each has its float64 gradient case in
tests/test_ops.py.
"""
import builtins
import math

from . import backend
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


# ---------------------------------------------------------------------------- the exact GELU
# erfc(z) for z >= 0 as t exp(-z^2 + P(t)), t = 1 / (1 + z/2): the Chebyshev fit published in
# Numerical Recipes (section 6.2, "erfcc"), fractional error below 1.2e-7 for every z >= 0. It is
# evaluated in float64, and erf(-z) = -erf(z), erfc(-z) = 2 - erfc(z) give the negative side.
_ERFC_P = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398,
           1.48851587, -0.82215223, 0.17087277)
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def erfc_nonneg(z):
    """erfc(z) for an array of z >= 0 (float64 in, float64 out), fractional error below 1.2e-7."""
    xp = get_array_module(z)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = xp.zeros_like(t) + _ERFC_P[-1]
    for c in reversed(_ERFC_P[:-1]):                           # Horner: P(t) = c0 + t (c1 + t (c2 + ...))
        poly *= t
        poly += c
    return t * xp.exp(poly - z * z)


def phi_cdf(x):
    """The standard normal CDF Phi(x) = 0.5 erfc(-x / sqrt 2), float64, relatively accurate in both tails:
    cupyx.scipy.special.erfc on CuPy, the fit above elsewhere."""
    xp = get_array_module(x)
    if backend._is_cupy(x):
        from cupyx.scipy.special import erfc
        return 0.5 * erfc(-x * _SQRT_HALF)
    tail = 0.5 * erfc_nonneg(abs(x) * _SQRT_HALF)             # Phi(-|x|), small and relatively exact
    return xp.where(x < 0, tail, 1.0 - tail)


@register
class GeluErf(Function):
    """PyTorch's default GELU, x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), to float32 rounding; the
    gradient is Phi(x) + x phi(x), phi the normal density. GPT-2's tanh form is ops.Gelu."""

    def forward(self, x):
        xp = get_array_module(x)
        x64 = x.astype(xp.float64)
        self.x, self.cdf = x64, phi_cdf(x64)
        return (x64 * self.cdf).astype(x.dtype)

    def backward(self, g):
        xp = get_array_module(g)
        x = self.x
        d = self.cdf + x * xp.exp(-0.5 * x * x) * _INV_SQRT_2PI
        return (g * d).astype(g.dtype)


# ---------------------------------------------------------------------------- scans and einsum
@register
class Cumsum(_Axis):
    """Running sums along an axis; the gradient is the running sum of g from the other end."""

    def forward(self, x):
        return get_array_module(x).cumsum(x, axis=self.axis)

    def backward(self, g):
        xp = get_array_module(g)
        return xp.flip(xp.cumsum(xp.flip(g, self.axis), axis=self.axis), self.axis)


@register
class Cumprod(_Axis):
    """Running products along an axis. Gradient: sum_{j>=i} g_j y_j / x_i where no x is 0; where one
    is, each term's product is formed without x_i (exact, quadratic in the axis length)."""

    def forward(self, x):
        xp = get_array_module(x)
        self.x, self.y = x, xp.cumprod(x, axis=self.axis)
        return self.y

    def backward(self, g):
        xp = get_array_module(g)
        x, y, ax = self.x, self.y, self.axis
        if not builtins.bool((x == 0).any()):
            gy = g * y
            return xp.flip(xp.cumsum(xp.flip(gy, ax), axis=ax), ax) / x
        x, g = xp.moveaxis(x, ax, -1), xp.moveaxis(g, ax, -1)
        n = x.shape[-1]
        out = xp.zeros_like(x)
        for i in range(n):                                     # d y_j / d x_i = prod_{k<=j, k!=i} x_k
            others = x.copy()
            others[..., i] = 1.0
            out[..., i] = (g[..., i:] * xp.cumprod(others, axis=-1)[..., i:]).sum(axis=-1)
        return xp.moveaxis(out, -1, ax)


def parse_einsum(equation, shapes):
    """An einsum equation as (input subscripts, output subscript), explicit, '...' spelled out with
    letters that are not used, and the output inferred (letters seen once, sorted) when absent."""
    eq = equation.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"einsum: equation {equation!r} names {len(ins)} operands, got {len(shapes)}")
    free = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in eq]
    n_ell = builtins.max([len(s) - len(sub.replace("...", "")) for sub, s in zip(ins, shapes) if "..." in sub],
                         default=0)
    ell = "".join(free[:n_ell])
    subs = []
    for sub, s in zip(ins, shapes):
        if "..." in sub:
            k = len(s) - len(sub.replace("...", ""))
            sub = sub.replace("...", ell[n_ell - k:] if k else "")
        if not sub.isalpha() and sub or len(sub) != len(s):
            raise ValueError(f"einsum: subscripts {sub!r} do not fit an operand of shape {tuple(s)} "
                             f"in {equation!r}")
        subs.append(sub)
    if not arrow:
        letters = "".join(subs)
        out = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ell))
    else:
        out = out.replace("...", ell)
    if not builtins.all(c in "".join(subs) for c in out) or len(set(out)) != len(out):
        raise ValueError(f"einsum: output {out!r} of {equation!r} names a letter no operand has, or twice")
    return subs, out


@register
class Einsum(Function):
    """xp.einsum over an equation (parsed by parse_einsum); the gradient of each operand is one more
    einsum of g with the other operands, then spread over letters only that operand has (sums) and
    put on the diagonal of letters it repeats (traces)."""

    def __init__(self, equation):
        self.equation = equation

    def forward(self, *xs):
        xp = get_array_module(xs[0])
        self.subs, self.out = parse_einsum(self.equation, [x.shape for x in xs])
        self.xs = xs
        return xp.einsum(",".join(self.subs) + "->" + self.out, *xs)

    def backward(self, g):
        xp = get_array_module(g)
        grads = []
        for i, (sub, x) in enumerate(zip(self.subs, self.xs)):
            others = [(s, y) for j, (s, y) in enumerate(zip(self.subs, self.xs)) if j != i]
            seen = self.out + "".join(s for s, _ in others)
            uniq = "".join(dict.fromkeys(c for c in sub if c in seen))     # letters the gradient carries
            gu = xp.einsum(",".join([self.out] + [s for s, _ in others]) + "->" + uniq, g, *[y for _, y in others])
            size = {c: n for c, n in zip(sub, x.shape)}
            full = "".join(dict.fromkeys(sub))                             # every letter of x, once
            gu = gu.reshape(gu.shape + (1,) * (len(full) - len(uniq)))
            order = uniq + "".join(c for c in full if c not in uniq)
            gu = xp.broadcast_to(gu, tuple(size[c] for c in order))        # letters x alone has: each gets g
            if len(full) == len(sub):
                grads.append(xp.ascontiguousarray(xp.transpose(gu, [order.index(c) for c in sub])))
                continue
            gx = xp.zeros(x.shape, dtype=g.dtype)                          # repeated letters: the diagonal
            grid = [xp.arange(size[c]).reshape((-1,) + (1,) * (len(order) - k - 1)) for k, c in enumerate(order)]
            gx[tuple(grid[order.index(c)] for c in sub)] = gu
            grads.append(gx)
        return tuple(grads)
