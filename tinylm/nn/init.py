"""nn.init: in-place initialisers, as torch.nn.init: `nn.init.normal_(module.weight, mean=0.0, std=0.02)`.

The fan-based ones scale by a weight's fan-in and fan-out and the gain of a nonlinearity:

    fan_in  = size(1) * receptive field,  fan_out = size(0) * receptive field
              (receptive field = the product of the sizes after the first two; a Linear weight
              (out, in) has fan_in = in, fan_out = out)
    xavier_uniform_   U(-a, a),  a = gain sqrt(6 / (fan_in + fan_out))
    xavier_normal_    N(0, std), std = gain sqrt(2 / (fan_in + fan_out))
    kaiming_uniform_  U(-b, b),  b = gain sqrt(3 / fan)     fan = fan_in or fan_out (mode)
    kaiming_normal_   N(0, std), std = gain / sqrt(fan)     gain = calculate_gain(nonlinearity, a)
    trunc_normal_     N(mean, std) restricted to [a, b] (a and b are values, not numbers of stds)
    orthogonal_       a (semi-)orthogonal matrix from the QR decomposition of a normal draw, times gain


Each function overwrites `tensor.data` in place (the array object stays the same, so a
`state_dict()` taken earlier sees the new values), keeps its shape, dtype and device, draws
from the device's generator (reproducible after `tl.manual_seed`), records no graph, counts
as an in-place change (backward refuses graphs that used the old values), and returns the tensor.

Leaves out: sparse_, dirac_, eye_ (and the deprecated names without the underscore).
Reference: the torch.nn.init documentation (formulas, defaults, gains); Glorot & Bengio 2010,
He et al. 2015, Saxe et al. 2013.
"""
import math

import numpy as np

from .. import backend
from ..tensor import Tensor


def _init_target(tensor, fn, floating=False):
    """Check that `nn.init.<fn>` was given a Tensor (of a floating dtype when it draws random numbers)."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"init.{fn}: expected a Tensor or Parameter, got {type(tensor).__name__}")
    if floating and tensor.dtype.kind != "f":
        raise TypeError(f"init.{fn}: needs a floating-point tensor, got dtype {tensor.dtype}")
    return tensor


def normal_(tensor, mean=0.0, std=1.0):
    """Fill with draws from normal(mean, std)."""
    _init_target(tensor, "normal_", floating=True)
    if not std >= 0:
        raise ValueError(f"init.normal_: std must be >= 0, got {std}")
    draws = backend.get_generator(tensor.device).normal(tensor.shape, tensor.dtype)
    draws *= std
    draws += mean
    return _fill(tensor, draws)


def uniform_(tensor, a=0.0, b=1.0):
    """Fill with draws from uniform(a, b)."""
    _init_target(tensor, "uniform_", floating=True)
    if not a <= b:
        raise ValueError(f"init.uniform_: needs a <= b, got a={a}, b={b}")
    draws = backend.get_generator(tensor.device).uniform(tensor.shape, tensor.dtype)  # in [0, 1)
    draws *= b - a
    draws += a
    return _fill(tensor, draws)


def constant_(tensor, val):
    """Fill with the value `val`."""
    _init_target(tensor, "constant_")
    return _fill(tensor, val)


def zeros_(tensor):
    """Fill with zeros."""
    return constant_(tensor, 0)


def ones_(tensor):
    """Fill with ones."""
    return constant_(tensor, 1)


def _floats(tensor, fn):
    return _init_target(tensor, fn, floating=True)


def _generator(tensor, generator):
    if generator is None:
        return backend.get_generator(tensor.device)
    if not isinstance(generator, backend.Generator) or generator.device != tensor.device:
        raise ValueError(f"init: generator must be a tinylm Generator on '{tensor.device}', got {generator!r}")
    return generator


def _fill(tensor, draws):
    tensor.data[...] = draws
    tensor._version += 1                                       # backward refuses graphs that used the old values
    return tensor


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity, as PyTorch's: 1 for linear/conv/sigmoid, 5/3 for tanh,
    sqrt(2) for relu, sqrt(2 / (1 + slope^2)) for leaky_relu (slope `param`, 0.01 by default), 3/4 for selu."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
    if nonlinearity in linear or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _fans(tensor, fn):
    if tensor.ndim < 2:
        raise ValueError(f"init.{fn}: fan in and fan out can not be computed for a tensor with fewer than 2 "
                         f"dimensions, got shape {tensor.shape}")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _uniform(tensor, bound, generator):
    draws = _generator(tensor, generator).uniform(tensor.shape, tensor.dtype)   # [0, 1)
    draws *= 2 * bound
    draws -= bound
    return _fill(tensor, draws)


def _normal(tensor, std, generator, mean=0.0):
    draws = _generator(tensor, generator).normal(tensor.shape, tensor.dtype)
    draws *= std
    draws += mean
    return _fill(tensor, draws)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Glorot uniform: U(-a, a), a = gain sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(_floats(tensor, "xavier_uniform_"), "xavier_uniform_")
    return _uniform(tensor, gain * math.sqrt(6.0 / (fan_in + fan_out)), generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """Glorot normal: N(0, std), std = gain sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(_floats(tensor, "xavier_normal_"), "xavier_normal_")
    return _normal(tensor, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def _kaiming_std(tensor, a, mode, nonlinearity, fn):
    _floats(tensor, fn)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init.{fn}: mode {mode!r} not supported, please use one of 'fan_in', 'fan_out'")
    fan_in, fan_out = _fans(tensor, fn)
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        raise ValueError(f"init.{fn}: cannot initialise a tensor with a zero-sized fan (shape {tensor.shape})")
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He uniform: U(-b, b), b = gain sqrt(3 / fan); gain from `nonlinearity` (leaky_relu with slope a)."""
    return _uniform(tensor, math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_uniform_"),
                    generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He normal: N(0, std), std = gain / sqrt(fan)."""
    return _normal(tensor, _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_normal_"), generator)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """N(mean, std) restricted to [a, b]: draws outside are drawn again until every value lies inside.

    a and b are bounds on the values (PyTorch's meaning), so the default [-2, 2] with std 0.02 is
    no truncation at all; ValueError where [a, b] holds less than 1e-6 of the probability.
    """
    _floats(tensor, "trunc_normal_")
    if not std > 0 or not a < b:
        raise ValueError(f"init.trunc_normal_: needs std > 0 and a < b, got std={std}, a={a}, b={b}")
    cdf = lambda x: 0.5 * (1 + math.erf((x - mean) / (std * math.sqrt(2))))
    if cdf(b) - cdf(a) < 1e-6:
        raise ValueError(f"init.trunc_normal_: [a, b] = [{a}, {b}] holds almost none of N({mean}, {std}^2); "
                         "a and b are values, not numbers of standard deviations")
    gen = _generator(tensor, generator)
    xp = backend.get_array_module(tensor.data)
    out = gen.normal(tensor.shape, tensor.dtype) * tensor.dtype.type(std) + tensor.dtype.type(mean)
    bad = (out < a) | (out > b)
    while bool(bad.any()):                                     # the expected number of rounds is small
        fresh = gen.normal(tensor.shape, tensor.dtype) * tensor.dtype.type(std) + tensor.dtype.type(mean)
        out = xp.where(bad, fresh, out)
        bad = (out < a) | (out > b)
    return _fill(tensor, out)


def orthogonal_(tensor, gain=1.0, generator=None):
    """A (semi-)orthogonal matrix times gain: rows orthonormal if rows <= columns, else columns;
    a tensor of more than two axes is seen as (size(0), the rest flattened)."""
    _floats(tensor, "orthogonal_")
    if tensor.ndim < 2:
        raise ValueError(f"init.orthogonal_: only tensors with 2 or more dimensions are supported, got shape "
                         f"{tensor.shape}")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    a = backend.to_numpy(_generator(tensor, generator).normal((rows, cols), np.float64))
    if rows < cols:
        a = a.T
    q, r = np.linalg.qr(a)                                     # on the host in float64: exact enough for any dtype
    q *= np.sign(np.diag(r))                                   # a unique Q (as PyTorch): R's diagonal made positive
    if rows < cols:
        q = q.T
    return _fill(tensor, backend.to_device((gain * q).reshape(tensor.shape).astype(tensor.dtype), tensor.device))


__all__ = ["calculate_gain", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
           "trunc_normal_", "orthogonal_"]
