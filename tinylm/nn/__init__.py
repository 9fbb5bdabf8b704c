"""tinylm.nn: layers with parameters, as torch.nn (Module, Linear, ..., init, functional, utils).

The GPT's layers are in module.py, layers.py and attention.py (the core); extra.py and init.py
hold the rest of PyTorch's names (the outer ring). This file only imports and re-exports.
"""
import sys

from .. import functional
from .. import functional as F
from . import init
from .attention import KVCache, MultiHeadAttention, CausalSelfAttention, Block
from .extra import Sequential, ModuleDict, ReLU, Tanh, Identity, utils
from .layers import Linear, Embedding, LayerNorm, Dropout, GELU, MLP
from .module import Module, Parameter, ModuleList, IncompatibleKeys
from ..tensor import Tensor

sys.modules[__name__ + ".functional"] = functional   # `import tinylm.nn.functional as F`, as in PyTorch

__all__ = ["Module", "Parameter", "ModuleList", "ModuleDict", "Sequential", "IncompatibleKeys", "Linear", "Embedding",
           "LayerNorm", "Dropout", "GELU", "ReLU", "Tanh", "Identity", "MLP", "KVCache", "MultiHeadAttention",
           "CausalSelfAttention", "Block", "init", "functional", "F", "utils", "Tensor"]
