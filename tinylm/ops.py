"""The differentiable ops of the GPT's path: one Function each, forward and backward side by side.

Every op works on raw arrays through `xp = get_array_module(x)`, so the same code runs on NumPy,
CuPy and the strict device; `sum_to` undoes broadcasting. Softmax, log-softmax, cross-entropy,
layer-norm, GELU, linear and attention are fused, and each keeps its plain formula beside it as
`reference` (the tests check fused == reference, values and gradients).

Glossary for shape comments: B batch, T time, C channels, V vocab, N rows (B*T).
Reference: DeZero `functions.py`, Chainer `functions/`, the PyTorch docs for semantics.
"""
import functools
import math
import numbers

from . import engine
from .engine import Function, register, sum_to
from .backend import get_array_module, scatter_add, add_rows, get_generator, device_of, to_device, array_module


def _shape(x):
    return x.shape if hasattr(x, "shape") else None


# ============================================================================ arithmetic
@register
class Add(Function):
    def forward(self, a, b):
        self.sa, self.sb = _shape(a), _shape(b)
        return a + b

    def backward(self, g):
        return (sum_to(g, self.sa) if self.sa is not None else None,
                sum_to(g, self.sb) if self.sb is not None else None)


@register
class Sub(Function):
    def forward(self, a, b):
        self.sa, self.sb = _shape(a), _shape(b)
        return a - b

    def backward(self, g):
        return (sum_to(g, self.sa) if self.sa is not None else None,
                sum_to(-g, self.sb) if self.sb is not None else None)


@register
class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        a, b = self.a, self.b
        return (sum_to(g * b, a.shape) if hasattr(a, "shape") else None,
                sum_to(g * a, b.shape) if hasattr(b, "shape") else None)


@register
class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        a, b = self.a, self.b
        ga = g / b
        return (sum_to(ga, a.shape) if hasattr(a, "shape") else None,
                sum_to(-ga * a / b, b.shape) if hasattr(b, "shape") else None)


@register
class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


@register
class Pow(Function):
    """x ** p for a scalar exponent p."""

    def __init__(self, exponent):
        self.exponent = exponent

    def forward(self, x):
        self.x = x
        return _power(x, self.exponent)

    def backward(self, g):
        p = self.exponent
        if p == 0:
            return g * 0                                       # not 0 * x ** -1, which is nan at x = 0
        return g * (p * _power(self.x, p - 1))


def _power(x, p):
    """x ** p, by multiplication for p = 1..4: NumPy's power with a float exponent is many times slower."""
    if p in (1.0, 2.0, 3.0, 4.0):
        y = x * x if p >= 2 else x.copy()
        return y * y if p == 4 else y * x if p == 3 else y
    return x ** p


@register
class MatMul(Function):
    """a @ b for 1-D, 2-D and batched (broadcast) operands, as numpy.matmul."""

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: both operands need at least one axis, got shapes {tuple(a.shape)} "
                             f"and {tuple(b.shape)}")
        k_a, k_b = a.shape[-1], b.shape[-2] if b.ndim > 1 else b.shape[0]
        if k_a != k_b:
            raise ValueError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} are not aligned "
                             f"({k_a} != {k_b})")
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        a, b = self.a, self.b
        xp = get_array_module(g)
        a2 = a[None, :] if a.ndim == 1 else a                  # (..., M, K)
        b2 = b[:, None] if b.ndim == 1 else b                  # (..., K, P)
        if a.ndim == 1 and b.ndim == 1:
            g2 = g.reshape(1, 1)
        elif a.ndim == 1:
            g2 = xp.expand_dims(g, -2)
        elif b.ndim == 1:
            g2 = xp.expand_dims(g, -1)
        else:
            g2 = g                                             # (..., M, P)
        ga = sum_to(g2 @ xp.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        gb = sum_to(xp.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape)
        return ga, gb


@register
class Linear(Function):
    """x @ weight.T + bias with weight (out, in), as PyTorch; leading axes folded into one matmul."""

    def forward(self, x, weight, bias):
        if x.shape[-1] != weight.shape[1]:
            raise ValueError(f"linear: input of shape {tuple(x.shape)} does not fit weight of shape "
                             f"{tuple(weight.shape)} (expected last axis {weight.shape[1]})")
        self.x, self.weight, self.has_bias = x, weight, bias is not None
        y = x.reshape(-1, x.shape[-1]) @ weight.T              # (N, in) @ (in, out) -> (N, out)
        if bias is not None:
            y += bias
        return y.reshape(*x.shape[:-1], weight.shape[0])       # (..., out)

    def backward(self, g):
        x, w = self.x, self.weight
        g2 = g.reshape(-1, w.shape[0])                         # (N, out)
        gx = (g2 @ w).reshape(x.shape)                         # (..., in)
        gw = g2.T @ x.reshape(-1, w.shape[1])                  # (out, in)
        gb = g2.sum(axis=0) if self.has_bias else None
        return gx, gw, gb

    @staticmethod
    def reference(x, weight, bias):
        """The plain formula: x @ weight.T + bias."""
        y = x @ weight.T
        return y if bias is None else y + bias


@register
class ToDevice(Function):
    """A move to another device (`device`); the gradient moves back."""

    def __init__(self, device):
        self.device = device

    def forward(self, x):
        self.src = device_of(x)
        return to_device(x, self.device)

    def backward(self, g):
        return to_device(g, self.src)


@register
class Cast(Function):
    """A dtype change; the gradient is cast back."""

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, g):
        return g.astype(self.in_dtype)


# ============================================================================ reductions
class _Reduce(Function):
    """A reduction over `axis` (None: all axes; else a sorted tuple), keeping the axes when `keepdims`."""

    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims


def _expand(g, in_shape, axis, keepdims):
    """Reshape a reduced gradient so it broadcasts against the input again."""
    if axis is None:
        return g.reshape((1,) * len(in_shape))
    if not keepdims:
        shape = list(in_shape)
        for a in axis:
            shape[a] = 1
        g = g.reshape(shape)
    return g


@register
class Sum(_Reduce):
    def forward(self, x):
        self.in_shape = x.shape
        return x.sum(axis=self.axis, keepdims=self.keepdims)

    def backward(self, g):
        xp = get_array_module(g)
        return xp.broadcast_to(_expand(g, self.in_shape, self.axis, self.keepdims), self.in_shape)


@register
class Mean(_Reduce):
    def forward(self, x):
        self.in_shape = x.shape
        self.n = x.size if self.axis is None else math.prod(x.shape[a] for a in self.axis)
        return x.mean(axis=self.axis, keepdims=self.keepdims)

    def backward(self, g):
        xp = get_array_module(g)
        return xp.broadcast_to(_expand(g, self.in_shape, self.axis, self.keepdims) / self.n, self.in_shape)


@register
class Max(_Reduce):
    """Maximum over axes; ties share the gradient equally."""

    def forward(self, x):
        y = x.max(axis=self.axis, keepdims=True)
        self.mask = x == y
        if self.keepdims:
            return y
        return y.reshape(()) if self.axis is None else y.squeeze(axis=self.axis)

    def backward(self, g):
        mask = self.mask
        count = mask.sum(axis=self.axis, keepdims=True)
        g = _expand(g, mask.shape, self.axis, self.keepdims)
        return (g * mask / count).astype(g.dtype)


# ============================================================================ shape ops
@register
class Reshape(Function):
    """x in a new shape (a view where NumPy can); the gradient takes x's shape back."""

    view_of = 0  # the output may be a view of x: it shares x's change count

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape shape {tuple(x.shape)} ({x.size} elements) "
                             f"into {self.shape}") from None

    def backward(self, g):
        return g.reshape(self.in_shape)


@register
class Permute(Function):
    """x with its axes reordered (a view); the gradient goes through
    the inverse permutation."""

    view_of = 0  # the output may be a view of x: it shares x's change count

    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, g):
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return g.transpose(inverse)


def _is_advanced(index):
    parts = index if isinstance(index, tuple) else (index,)
    return any(hasattr(i, "shape") and i.ndim > 0 or isinstance(i, (list,)) for i in parts)


@register
class GetItem(Function):
    """x[index] for slices, integers, None, Ellipsis and integer/boolean arrays.

    Backward scatters the gradient back; repeated indices accumulate (scatter-add).
    """

    view_of = 0  # the output may be a view of x: it shares x's change count

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.in_shape, self.in_dtype = x.shape, x.dtype
        try:
            return x[self.index]
        except IndexError as e:  # IndexError stays IndexError: `for row in x` stops on it
            if "only integers" in str(e):
                raise TypeError(f"bad index {self.index!r} for shape {tuple(x.shape)}: {e}") from None
            raise IndexError(f"index out of range for shape {tuple(x.shape)}: {e}") from None

    def backward(self, g):
        xp = get_array_module(g)
        gx = xp.zeros(self.in_shape, dtype=self.in_dtype)
        if _is_advanced(self.index):
            scatter_add(gx, self.index, g)
        else:
            gx[self.index] = g
        return gx


def split_bounds(split_size_or_sections, shape, axis):
    """Where torch.split cuts axis `axis` of `shape`: into pieces of one size (an int; the last may be
    shorter), or of the given sizes (a list)."""
    n = shape[axis]
    if isinstance(split_size_or_sections, numbers.Integral) and not isinstance(split_size_or_sections, bool):
        size = int(split_size_or_sections)
        if size <= 0:
            raise ValueError(f"split: size must be positive, got {size}")
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
    else:
        sizes = list(split_size_or_sections)
        if any(size < 0 for size in sizes) or sum(sizes) != n:
            raise ValueError(f"split: sizes {sizes} must be non-negative and add up to {n} "
                             f"(axis {axis} of shape {tuple(shape)})")
    return [sum(sizes[:i + 1]) for i in range(len(sizes) - 1)]


@register
class Split(Function):
    """Cut a tensor into pieces along an axis at `bounds` (several outputs)."""

    view_of = 0  # the output may be a view of x: it shares x's change count

    def __init__(self, bounds, axis):
        self.bounds, self.axis = bounds, axis

    def forward(self, x):
        xp = get_array_module(x)
        return tuple(xp.split(x, self.bounds, axis=self.axis))

    def backward(self, *gs):
        xp = get_array_module(gs[0])
        return xp.concatenate(gs, axis=self.axis)


# ============================================================================ elementwise
@register
class Exp(Function):
    """e ** x; the gradient is the output itself, g * y."""

    def forward(self, x):
        xp = get_array_module(x)
        self.y = xp.exp(x)
        return self.y

    def backward(self, g):
        return g * self.y


@register
class Log(Function):
    def forward(self, x):
        xp = get_array_module(x)
        self.x = x
        return xp.log(x)

    def backward(self, g):
        return g / self.x


@register
class Sqrt(Function):
    def __init__(self, zero_at_zero=False):
        self.zero_at_zero = zero_at_zero  # std of a constant: gradient 0, not 0 * inf

    def forward(self, x):
        xp = get_array_module(x)
        self.y = xp.sqrt(x)
        return self.y

    def backward(self, g):
        y = self.y
        if self.zero_at_zero:
            xp = get_array_module(y)
            zero = y == 0
            return xp.where(zero, 0, g * 0.5 / xp.where(zero, 1, y))
        return g * 0.5 / y


@register
class Tanh(Function):
    """tanh(x); the gradient is g (1 - y^2), from the output
    saved in forward."""

    def forward(self, x):
        xp = get_array_module(x)
        self.y = xp.tanh(x)
        return self.y

    def backward(self, g):
        return g * (1.0 - self.y * self.y)


_GELU_K = math.sqrt(2.0 / math.pi)


@register
class Gelu(Function):
    """GPT-2's GELU: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).

    Computed as x / (1 + exp(-2u)), the same function (0.5 (1 + tanh(u)) = sigmoid(2u)), in
    fewer passes, and with exp, which NumPy runs about twice as fast as tanh on float32
    (docs/design.md, Speed).
    """

    def forward(self, x):
        xp = get_array_module(x)
        self.in_shape = x.shape
        x = x.reshape(-1)                      # 1-D, so in-place steps never meet NumPy scalars
        d = x * x
        d *= -2.0 * _GELU_K * 0.044715
        d -= 2.0 * _GELU_K
        d *= x                                 # -2u
        xp.minimum(d, 88.0, out=d)             # exp(88) is finite in float32; beyond, y is 0 anyway
        xp.exp(d, out=d)
        d += 1.0                               # d = 1 + exp(-2u) = 1 / s
        y = x / d                              # y = x * s
        self.x, self.d, self.y = x, d, y
        return y.reshape(self.in_shape)

    def backward(self, g):
        xp = get_array_module(g)
        x, d, y = self.x, self.d, self.y
        # dy/dx = s (1 + 2 k x (1 - s)(1 + 3c x^2)) = s + y (1 - s)(2k + 6kc x^2), since y = x s
        s = xp.divide(1.0, d)                  # s = sigmoid(2u)
        a = x * x
        xp.minimum(a, 400.0, out=a)            # |x| > 20: the term is 0 anyway, and x^2 / exp(88) is not
        a *= 6.0 * _GELU_K * 0.044715
        a += 2.0 * _GELU_K
        a *= y
        a *= 1.0 - s
        a += s
        a *= g.reshape(-1)
        return a.reshape(self.in_shape)

    @staticmethod
    def reference(x):
        """The plain formula: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
        return 0.5 * x * (1.0 + ((x + 0.044715 * x * x * x) * _GELU_K).tanh())


class _Axis(Function):
    """An op along one axis, its setting."""

    def __init__(self, axis):
        self.axis = axis


@register
class Softmax(_Axis):
    def forward(self, x):
        xp = get_array_module(x)
        y = x - x.max(axis=self.axis, keepdims=True)
        xp.exp(y, out=y)
        y /= y.sum(axis=self.axis, keepdims=True)
        self.y = y
        return y

    def backward(self, g):
        y = self.y
        gx = g * y
        gx -= y * gx.sum(axis=self.axis, keepdims=True)
        return gx

    @staticmethod
    def reference(x, axis):
        """The plain formula: exp(x - max) / sum(exp(x - max))."""
        e = (x - x.max(axis=axis, keepdims=True)).exp()
        return e / e.sum(axis=axis, keepdims=True)


@register
class LogSoftmax(_Axis):
    def forward(self, x):
        xp = get_array_module(x)
        y = x - x.max(axis=self.axis, keepdims=True)
        y -= xp.log(xp.exp(y).sum(axis=self.axis, keepdims=True))
        self.y = y
        return y

    def backward(self, g):
        xp = get_array_module(g)
        return g - xp.exp(self.y) * g.sum(axis=self.axis, keepdims=True)

    @staticmethod
    def reference(x, axis):
        """The plain formula: (x - max) - log(sum(exp(x - max)))."""
        z = x - x.max(axis=axis, keepdims=True)
        return z - z.exp().sum(axis=axis, keepdims=True).log()


@register
class LayerNorm(Function):
    """(x - mean) / sqrt(var + eps) * weight + bias over the last axis (weight, bias optional).

    Row reductions of products use einsum, which sums without a temporary array.
    """

    def __init__(self, eps):
        self.eps = eps

    def forward(self, x, weight, bias):
        xp = get_array_module(x)
        shape, c = x.shape, x.shape[-1]
        x = x.reshape(-1, c)                                   # (N, C)
        mu = x.sum(axis=-1, keepdims=True)                     # sum * (1/C): .mean() costs a Python wrapper
        mu *= 1.0 / c
        xc = x - mu
        var = xp.einsum("ij,ij->i", xc, xc)[:, None]           # (N, 1) sum of squares
        var *= 1.0 / c
        var += self.eps
        rstd = xp.sqrt(var, out=var)
        rstd = xp.divide(1.0, rstd, out=rstd)                  # (N, 1)
        xhat = xc
        xhat *= rstd
        self.xhat, self.rstd, self.weight, self.in_shape = xhat, rstd, weight, shape
        self.has_bias = bias is not None
        y = xhat * weight if weight is not None else xhat.copy()
        if bias is not None:
            y += bias
        return y.reshape(shape)

    def backward(self, g):
        xp = get_array_module(g)
        xhat, rstd, w = self.xhat, self.rstd, self.weight
        g = g.reshape(xhat.shape)                              # (N, C)
        gw = (g * xhat).sum(axis=0) if w is not None else None
        gb = g.sum(axis=0) if self.has_bias else None
        gxhat = g * w if w is not None else g
        # dx = rstd * (gxhat - mean(gxhat) - xhat * mean(gxhat * xhat))
        inv_c = 1.0 / xhat.shape[-1]
        b = xp.einsum("ij,ij->i", gxhat, xhat)[:, None]        # (N, 1)
        b *= inv_c
        a = gxhat.sum(axis=-1, keepdims=True)                  # (N, 1)
        a *= inv_c
        gx = xhat * b
        gx += a
        gx = xp.subtract(gxhat, gx, out=gx)
        gx *= rstd
        return gx.reshape(self.in_shape), gw, gb

    @staticmethod
    def reference(x, weight, bias, eps):
        """The plain formula: (x - mean) / sqrt(var + eps) * weight + bias over the last axis."""
        xc = x - x.mean(axis=-1, keepdims=True)
        y = xc / ((xc * xc).mean(axis=-1, keepdims=True) + eps).sqrt()
        y = y if weight is None else y * weight
        return y if bias is None else y + bias


@register
class Embedding(Function):
    """weight[idx]: a gather; backward scatter-adds rows (repeated ids accumulate)."""

    def __init__(self, padding_idx=None):
        self.padding_idx = padding_idx

    def forward(self, idx, weight):
        self.idx, self.wshape, self.wdtype = idx, weight.shape, weight.dtype
        return weight[idx]                                     # (*idx.shape, C)

    def backward(self, g):
        xp = get_array_module(g)
        gw = xp.zeros(self.wshape, dtype=self.wdtype)
        add_rows(gw, self.idx.reshape(-1), g.reshape(-1, self.wshape[1]))
        if self.padding_idx is not None:
            gw[self.padding_idx] = 0
        return None, gw


def dropout_mask(x, p):
    """x's shape and dtype: 0 with probability p, else 1 / (1 - p), from x's device's generator."""
    keep = get_generator(device_of(x)).uniform(x.shape, dtype=x.dtype) >= p
    return (keep * (1.0 / (1.0 - p))).astype(x.dtype, copy=False)


@register
class Dropout(Function):
    """Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout)."""

    def __init__(self, p):
        self.p = p

    def forward(self, x):
        self.mask = dropout_mask(x, self.p)
        return x * self.mask

    def backward(self, g):
        return g * self.mask


@register
class Where(Function):
    """where(cond, a, b): a where cond is true, else b (a and b tensors or scalars)."""

    def forward(self, cond, a, b):
        xp = get_array_module(cond)
        self.cond, self.sa, self.sb = cond, _shape(a), _shape(b)
        return xp.where(cond, a, b)

    def backward(self, g):
        xp = get_array_module(g)
        zero = g.dtype.type(0)
        ga = sum_to(xp.where(self.cond, g, zero), self.sa) if self.sa is not None else None
        gb = sum_to(xp.where(self.cond, zero, g), self.sb) if self.sb is not None else None
        return None, ga, gb


@functools.lru_cache(maxsize=8)   # training uses one shape; generation without a KV cache a few
def causal_mask(t_q, t_k, device, additive=False):
    """(t_q, t_k) mask where query i may see key j <= i + t_k - t_q (aligned to the end, for KV caches).

    Boolean (True = allowed), or with `additive=True` float32 0 / -inf to add to scores. The
    latest few are cached; do not write into one (on the CPU they are read-only).
    """
    xp = array_module(device)
    m = xp.tril(xp.ones((t_q, t_k), dtype=bool), k=t_k - t_q)
    if additive:
        m = xp.where(m, xp.float32(0), xp.float32(-xp.inf)).astype(xp.float32)
    if hasattr(m, "flags") and hasattr(m, "setflags"):
        m.setflags(write=False)
    return m


def _attend(q, k, v, mask, scale, dropout_p):
    """softmax(q k^T * scale + mask) v with dropout on the weights.

    Returns (out, weights, dropout mask, q * scale); the scale is applied to q, the smaller
    array, and the scaled q is what backward needs for k's gradient.
    """
    xp = get_array_module(q)
    qs = q * scale                                             # (B, nh, T, hs)
    att = qs @ xp.swapaxes(k, -1, -2)                          # (B, nh, T, S)
    if mask is not None:
        att += mask
    m = att.max(axis=-1, keepdims=True)
    if mask is not None:                                       # a row masked everywhere attends to nothing:
        m[m == -xp.inf] = 0.0                                  # weights 0 (PyTorch's rule), not nan
    att -= m
    xp.exp(att, out=att)
    s = att.sum(axis=-1, keepdims=True)
    if mask is not None:
        s[s == 0] = 1.0
    att *= 1.0 / s                                             # softmax weights
    drop = None
    if dropout_p > 0.0:
        drop = dropout_mask(att, dropout_p)
    return (att * drop if drop is not None else att) @ v, att, drop, qs   # (B, nh, T, hs)


def _attend_backward(g, qs, k, v, att, drop, scale):
    """Gradients of _attend's output for q, k, v (softmax backward written out)."""
    xp = get_array_module(g)
    used = att * drop if drop is not None else att
    gv = xp.swapaxes(used, -1, -2) @ g                         # (B, nh, S, hs)
    ga = g @ xp.swapaxes(v, -1, -2)                            # (B, nh, T, S)
    if drop is not None:
        ga *= drop
    # softmax backward: att * (ga - sum(ga * att)); the row sums by einsum, without a temporary
    ga -= xp.einsum("...ts,...ts->...t", ga, att)[..., None]
    ga *= att
    gq = ga @ k                                                # (B, nh, T, hs)
    gq *= scale
    gk = xp.swapaxes(ga, -1, -2) @ qs                          # (B, nh, S, hs): the scale rides on qs
    return gq, gk, gv


@register
class Attention(Function):
    """Fused softmax(q k^T * scale + mask) v, dropout on the weights; q (B, nh, T, hs), k, v (B, nh, S, hs).

    `mask` is None or an additive float array broadcastable to (T, S) (0 where allowed,
    -inf where not). One op instead of five (matmul, scale, mask, softmax, matmul): fewer
    passes over the (B, nh, T, S) scores and nothing kept but the weights.
    """

    def __init__(self, scale, dropout_p):
        self.scale, self.dropout_p = scale, dropout_p

    def forward(self, q, k, v, mask):
        out, self.att, self.drop, self.qs = _attend(q, k, v, mask, self.scale, self.dropout_p)
        self.k, self.v, self.q_shape = k, v, q.shape
        return out

    def backward(self, g):
        gq, gk, gv = _attend_backward(g, self.qs, self.k, self.v, self.att, self.drop, self.scale)
        return sum_to(gq, self.q_shape), sum_to(gk, self.k.shape), sum_to(gv, self.v.shape), None

    @staticmethod
    def reference(q, k, v, mask, scale, dropout_p=0.0):
        """The plain formula, composed: (out, weights), weights = softmax(q k^T * scale + mask);
        a query that may see no key gets weights 0, as in the fused op."""
        att = (q @ k.transpose(-2, -1)) * scale                           # (B, nh, T, S)
        if mask is not None:
            att = att + engine.TENSOR._make(mask, q.device)
        dead = (att.data == -get_array_module(att.data).inf).all(axis=-1, keepdims=True)  # (B, nh, T, 1)
        weights = Softmax.apply(att.masked_fill(dead, 0.0), axis=att.ndim - 1).masked_fill(dead, 0.0)
        used = Dropout.apply(weights, p=dropout_p) if dropout_p > 0.0 else weights
        return used @ v, weights                                           # (B, nh, T, hs), (B, nh, T, S)


@register
class CrossEntropy(Function):
    """Fused log-softmax + negative log-likelihood over (N, V) logits and (N,) integer targets.

    Backward is softmax minus 1 at the targets, scaled: no one-hot is ever built.
    """

    def __init__(self, ignore_index, reduction):
        self.ignore_index, self.reduction = ignore_index, reduction

    def forward(self, logits, targets):
        xp = get_array_module(logits)
        n, v = logits.shape
        valid = targets != self.ignore_index
        safe = xp.where(valid, targets, 0)
        if n:
            lo, hi = int(safe.min()), int(safe.max())
            if lo < 0 or hi >= v:
                bad = lo if lo < 0 else hi
                raise ValueError(f"cross_entropy: target id {bad} is outside the vocabulary [0, {v})")
        m = logits.max(axis=1, keepdims=True)
        z = logits - m                                         # (N, V)
        p = xp.exp(z)
        s = p.sum(axis=1, keepdims=True)
        p /= s                                                 # softmax, kept for backward
        rows = xp.arange(n)
        nll = xp.log(s[:, 0]) - z[rows, safe]                  # (N,)
        nll *= valid
        self.p, self.safe, self.valid = p, safe, valid
        if self.reduction == "none":
            return nll
        total = nll.sum()
        if self.reduction == "sum":
            return total
        self.count = int(valid.sum())
        return total / max(self.count, 1)

    def backward(self, g):
        xp = get_array_module(g)
        p, safe, valid = self.p, self.safe, self.valid
        gx = p.copy() if self.retained else p                  # reuse softmax's buffer when we may
        gx[xp.arange(len(safe)), safe] -= 1.0
        if self.reduction == "none":
            scale = (g * valid)[:, None]
        elif self.reduction == "sum":
            scale = (g * valid)[:, None]
        else:
            scale = (g / max(self.count, 1)) * valid[:, None]
        gx *= scale.astype(gx.dtype, copy=False)
        return gx, None

    @staticmethod
    def reference(logits, targets, ignore_index, reduction):
        """The plain formula: -log_softmax(logits)[row, target], then the mean over the targets kept."""
        xp = get_array_module(targets)
        kept = targets != ignore_index
        keep = engine.TENSOR._make(kept.astype(logits.dtype), logits.device)
        nll = -LogSoftmax.reference(logits, 1)[xp.arange(len(targets)), xp.where(kept, targets, 0)] * keep
        if reduction == "none":
            return nll
        return nll.sum() if reduction == "sum" else nll.sum() / max(int(kept.sum()), 1)
