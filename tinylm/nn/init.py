"""nn.init: in-place initialisers, as torch.nn.init: `nn.init.normal_(module.weight, mean=0.0, std=0.02)`.

Each function overwrites `tensor.data` in place (the array object stays the same, so a
`state_dict()` taken earlier sees the new values), keeps its shape, dtype and device, draws
from the device's generator (reproducible after `tl.manual_seed`), records no graph, counts
as an in-place change (backward refuses graphs that used the old values), and returns the tensor.

Reference: torch.nn.init.
"""
from .. import backend
from ..tensor import Tensor


def _init_target(tensor, fn, floating=False):
    """Check that `nn.init.<fn>` was given a Tensor (of a floating dtype when it draws random numbers)."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"init.{fn}: expected a Tensor or Parameter, got {type(tensor).__name__}")
    if floating and tensor.dtype.kind != "f":
        raise TypeError(f"init.{fn}: needs a floating-point tensor, got dtype {tensor.dtype}")


def normal_(tensor, mean=0.0, std=1.0):
    """Fill with draws from normal(mean, std)."""
    _init_target(tensor, "normal_", floating=True)
    if not std >= 0:
        raise ValueError(f"init.normal_: std must be >= 0, got {std}")
    draws = backend.get_generator(tensor.device).normal(tensor.shape, tensor.dtype)
    draws *= std
    draws += mean
    tensor.data[...] = draws
    tensor._version += 1                                   # backward refuses graphs that used the old values
    return tensor


def uniform_(tensor, a=0.0, b=1.0):
    """Fill with draws from uniform(a, b)."""
    _init_target(tensor, "uniform_", floating=True)
    if not a <= b:
        raise ValueError(f"init.uniform_: needs a <= b, got a={a}, b={b}")
    draws = backend.get_generator(tensor.device).uniform(tensor.shape, tensor.dtype)  # in [0, 1)
    draws *= b - a
    draws += a
    tensor.data[...] = draws
    tensor._version += 1                                   # backward refuses graphs that used the old values
    return tensor


def constant_(tensor, val):
    """Fill with the value `val`."""
    _init_target(tensor, "constant_")
    tensor.data[...] = val
    tensor._version += 1                                   # backward refuses graphs that used the old values
    return tensor


def zeros_(tensor):
    """Fill with zeros."""
    return constant_(tensor, 0)


def ones_(tensor):
    """Fill with ones."""
    return constant_(tensor, 1)
