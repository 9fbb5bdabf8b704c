"""tinylm.nn: layers with parameters, as torch.nn (Module, Linear, ..., init, functional, utils).

The GPT's layers are in module.py, layers.py and attention.py (the core); extra.py and init.py
hold the rest of PyTorch's names (the outer ring). This file only imports and re-exports.
"""
import sys

from .. import functional
from .. import functional as F
from . import init
from . import parallel   # DistributedDataParallel (torch.nn.parallel): tinylm.distributed underneath
from .attention import KVCache, MultiHeadAttention, CausalSelfAttention, Block
from .extra import (GELU, Sequential, ModuleDict, ReLU, Tanh, Identity, utils, CrossEntropyLoss, NLLLoss, MSELoss, Softmax,
                    LogSoftmax, Flatten, BatchNorm1d, Conv1d)
from .layers import Linear, Embedding, LayerNorm, Dropout, MLP
from .module import Module, Parameter, ModuleList, IncompatibleKeys
from .rnn import RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell
from ..tensor import Tensor

sys.modules[__name__ + ".functional"] = functional   # `import tinylm.nn.functional as F`, as in PyTorch

__all__ = ["Module", "Parameter", "ModuleList", "ModuleDict", "Sequential", "IncompatibleKeys", "Linear", "Embedding",
           "LayerNorm", "Dropout", "GELU", "ReLU", "Tanh", "Identity", "MLP", "KVCache", "MultiHeadAttention",
           "CausalSelfAttention", "Block", "init", "functional", "F", "utils", "Tensor", "CrossEntropyLoss", "NLLLoss",
           "MSELoss", "Softmax", "LogSoftmax", "Flatten", "BatchNorm1d", "Conv1d", "RNN", "LSTM", "GRU", "RNNCell",
           "LSTMCell", "GRUCell", "parallel"]
