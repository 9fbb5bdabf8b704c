"""tinylm: a minimal, fast language-model framework on NumPy (CPU) and CuPy (GPU).

    import tinylm as tl
    x = tl.randn(3, 4, requires_grad=True)
    (x.tanh() @ x.T).sum().backward()
    x.grad.shape  # (3, 4)

The core (docs/design.md): engine, tensor, ops, functional, nn, model, backend, sampling. Around
it the outer rings: creation, compat (PyTorch's names), serialization, safetensors, checkpoint,
tokenizers, data, optim, train, strict, gradcheck, profiler. This file only imports and re-exports.
"""
from . import backend, engine, ops, ops_extra, functional, strict
from . import functional as F
from . import compat, creation, profiler, serialization, autograd
from . import optim, data, checkpoint, nn, sampling, safetensors, tokenizers, train, validate, model, hub, utils
from . import distributed
from . import backends
from .backend import manual_seed, gpu_available, get_array_module, parse_device
from .compat import (ValuesIndices, Histogram, allclose, equal, histogram, amp, cuda, float16, half, float32,
                     float64, int32, int64, bool_, long, bool, METHOD_FORMS, set_grad_enabled, inference_mode,
                     sum, mean, max, min, argmax, argmin, exp, log, sqrt, tanh, sigmoid, softmax, log_softmax,
                     abs, clamp, reshape, flatten, unsqueeze, squeeze, transpose, permute, matmul, topk, gather,
                     unbind, chunk, split, var, std, masked_fill, numel, all, any, sort, argsort, kthvalue, median,
                     cumsum, cumprod, flip, roll, t, index_select, tile, bmm, outer, pow, einsum, compile, autocast,
                     bfloat16, logsumexp, norm)
from .creation import (tensor, from_numpy, zeros, ones, full, Generator, randn, rand, multinomial, randint, arange,
                       linspace, zeros_like, ones_like, full_like, randn_like, rand_like, tril, triu, randperm, empty)
from .engine import Function, no_grad, enable_grad, is_grad_enabled, sum_to, OPS
from .functional import cat, concat, stack, where
from .gradcheck import gradcheck, GradcheckError
from .model import GPT, GPTConfig, PRESETS
from .sampling import sample_next
from .serialization import save, load
from .tensor import Tensor
from .tokenizers import CharTokenizer, BPETokenizer
from . import cuda_kernels  # outer ring: fused CuPy kernels, off unless TINYLM_FUSED=1
from .cuda_kernels import use_fused_kernels

__version__ = "0.1.0"

__all__ = [
    "Tensor", "Function", "tensor", "from_numpy", "zeros", "ones", "full", "randn", "rand", "randint",
    "arange", "zeros_like", "ones_like", "full_like", "randn_like", "rand_like", "tril", "triu",
    "cat", "concat", "stack", "where", "save", "load", "Generator", "multinomial", "linspace", "allclose", "histogram",
    "equal", "cuda", "amp", "float16", "half", *METHOD_FORMS, "no_grad", "enable_grad", "is_grad_enabled",
    "set_grad_enabled", "inference_mode", "manual_seed",
    "gpu_available", "get_array_module", "parse_device", "sum_to", "gradcheck", "GradcheckError",
    "F", "functional", "backend", "optim", "data", "checkpoint", "nn", "train",
    "sampling", "safetensors", "tokenizers", "GPT", "GPTConfig", "PRESETS", "sample_next", "CharTokenizer",
    "BPETokenizer", "float32", "float64", "int32", "int64", "long", "bool_", "bool", "use_fused_kernels",
    "randperm", "pow", "einsum", "compile", "autocast", "bfloat16", "backends", "utils", "empty", "logsumexp", "norm",
]
