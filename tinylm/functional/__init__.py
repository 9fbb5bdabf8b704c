"""The functional API (`import tinylm.functional as F`), as torch.nn.functional.

core.py holds what the GPT calls (linear, embedding, layer_norm, dropout, gelu, cross_entropy,
attention); extra.py the rest. Each function is a thin wrapper over one op (or a few), so its
gradient is the op's. This file only imports and re-exports.
"""
from .core import (linear, embedding, layer_norm, dropout, gelu, cross_entropy, causal_mask, causal_self_attention,
                   scaled_dot_product_attention)
from .extra import (relu, tanh, sigmoid, softmax, log_softmax, one_hot, mse_loss, where, masked_fill, concat, cat,
                    stack, split, nll_loss, gelu, cross_entropy, scaled_dot_product_attention)
from ..tensor import Tensor

__all__ = ["linear", "embedding", "layer_norm", "dropout", "gelu", "cross_entropy", "causal_mask",
           "causal_self_attention", "scaled_dot_product_attention", "relu", "tanh", "sigmoid", "softmax", "log_softmax",
           "one_hot", "mse_loss", "nll_loss", "where", "masked_fill", "concat", "cat", "stack", "split", "Tensor"]
