"""torch.autograd's names: Function, the grad modes, profile, and the registry of ops.

tinylm's autograd lives in tinylm/engine.py (the graph and the backward walk) and
tinylm/tensor.py (Tensor); this module keeps the path `tinylm.autograd` that PyTorch users know.
"""
from .compat import inference_mode, set_grad_enabled
from .engine import OPS, Function, backward, enable_grad, is_grad_enabled, no_grad, register, sum_to
from .profiler import profile
from .tensor import Tensor

__all__ = ["Function", "Tensor", "backward", "no_grad", "enable_grad", "inference_mode", "is_grad_enabled",
           "set_grad_enabled", "sum_to", "register", "OPS", "profile"]
