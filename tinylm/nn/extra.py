"""nn's outer ring: the containers and layers a GPT does not need, and PyTorch's nn.utils path.

Sequential, ModuleDict, ReLU, Tanh, Identity, `nn.utils.clip_grad_norm_`; the losses
(CrossEntropyLoss, NLLLoss, MSELoss), Softmax, LogSoftmax, Flatten, BatchNorm1d (running
statistics, train/eval) and Conv1d (im2col + one matmul), composed of differentiable ops, with
PyTorch's arguments, parameter and buffer names and init, so a PyTorch state_dict loads. The
GPT's own layers live in tinylm/nn/layers.py and attention.py; nothing there imports this module.

Glossary for shape comments: N batch, L sequence length, C channels, K kernel size.
Leaves out: Conv2d, BatchNorm2d, 'same' padding with stride > 1.

Reference: torch.nn (names and semantics).
"""
import math
import warnings

import numpy as np

from .. import backend
from .. import functional as F
from ..functional.extra import _implicit_dim, _legacy_reduction
from ..tensor import Tensor
from . import init
from .layers import _positive_int, _uniform
from .module import Module, ModuleList, Parameter, _check_module


class Sequential(ModuleList):
    """Modules called in a chain: Sequential(a, b, c)(x) is c(b(a(x))); indexed and sliced like a ModuleList."""

    def __init__(self, *modules):
        for i, m in enumerate(modules):
            if not isinstance(m, Module):  # Sequential([a, b]) is a common slip
                raise TypeError(f"Sequential: argument {i} is a {type(m).__name__}, not a Module; "
                                "pass the modules one by one: Sequential(a, b, c)")
        super().__init__(modules)

    def __getitem__(self, i):
        return Sequential(*self._list[i]) if isinstance(i, slice) else self._list[i]

    def forward(self, x):
        for module in self._list:
            x = module(x)
        return x


class ModuleDict(Module):
    """A dict of modules, registered under their keys (str) in insertion order: `d["proj"]`, `d.items()`."""

    def __init__(self, modules=None):
        self._dict = {}
        if modules is not None:
            self.update(modules)

    def __getattr__(self, name):                               # d.wte as d["wte"] (nanoGPT's self.transformer.wte)
        d = vars(self).get("_dict", {})
        if name in d:
            return d[name]
        raise AttributeError(f"{type(self).__name__} has no attribute or key {name!r}")

    def __setattr__(self, name, value):
        if isinstance(value, Module) and not name.startswith("_"):
            self[name] = value
        else:
            super().__setattr__(name, value)

    def __delattr__(self, name):
        if name in vars(self).get("_dict", {}):
            del self._dict[name]
        else:
            super().__delattr__(name)

    def named_children(self):
        yield from self._dict.items()

    def update(self, modules):
        """Add (key, module) pairs from a dict or an iterable of pairs."""
        for key, module in (modules.items() if hasattr(modules, "items") else modules):
            self[key] = module

    def __setitem__(self, key, module):
        if not isinstance(key, str):
            raise TypeError(f"ModuleDict: keys must be str, got {type(key).__name__} {key!r}")
        if not key or "." in key:  # keys become parts of dotted parameter names
            raise ValueError(f"ModuleDict: keys must be non-empty and without '.', got {key!r}")
        self._dict[key] = _check_module(module, f"ModuleDict[{key!r}]")

    def __getitem__(self, key):
        return self._dict[key]

    def __delitem__(self, key):
        del self._dict[key]

    def __len__(self):
        return len(self._dict)

    def __iter__(self):
        return iter(self._dict)

    def __contains__(self, key):
        return key in self._dict

    def keys(self):
        return self._dict.keys()

    def values(self):
        return self._dict.values()

    def items(self):
        return self._dict.items()

class GELU(Module):
    """PyTorch's nn.GELU: the exact erf form by default, GPT-2's tanh form with approximate='tanh'."""

    def __init__(self, approximate="none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class ReLU(Module):
    """max(x, 0), elementwise."""

    def forward(self, x):
        return F.relu(x)


class Tanh(Module):
    """tanh(x), elementwise."""

    def forward(self, x):
        return F.tanh(x)


class Identity(Module):
    """Returns its input unchanged (a placeholder for a layer left out); ignores any arguments, as torch."""

    def __init__(self, *args, **kwargs):
        pass

    def forward(self, x):
        return x


class utils:
    """`nn.utils.clip_grad_norm_`, where PyTorch keeps it (the same function as tinylm.optim's)."""

    @staticmethod
    def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
        """Scale all gradients together so their global L2 norm is at most max_norm; the norm before, as a
        0-d float32 Tensor (PyTorch's type; tinylm.optim.clip_grad_norm_ returns a float)."""
        from ..optim import clip_grad_norm_
        if norm_type not in (2, 2.0):
            raise ValueError(f"clip_grad_norm_: only the L2 norm (norm_type=2) is supported, got {norm_type!r}")
        if isinstance(parameters, Tensor):
            parameters = [parameters]
        total = clip_grad_norm_(parameters, max_norm)
        if error_if_nonfinite and not math.isfinite(total):
            raise RuntimeError(f"The total norm of order {float(norm_type)} for gradients from `parameters` is "
                               "non-finite, so it cannot be clipped (error_if_nonfinite=True)")
        return Tensor(np.asarray(total, dtype=np.float32))


class _ModuleMethods:
    """Module methods outside the GPT's path, attached to Module below."""

    def apply(self, fn):
        """Call fn(module) on every submodule (children before parents), then on self; returns self.

        As torch: `model.apply(init_weights)` re-initialises a whole model, layer by layer.
        """
        seen = set()

        def visit(m):                                          # each module once, children before parents
            if id(m) not in seen:
                seen.add(id(m))
                for child in m.children():
                    visit(child)
                fn(m)
        visit(self)
        return self

    def requires_grad_(self, requires_grad=True):
        """Set requires_grad on every parameter (False freezes them: no gradients); returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def cpu(self):
        """Move everything to the CPU (NumPy); returns self."""
        return self.to("cpu")

    def float(self):
        """Cast floating-point parameters and buffers to float32; returns self."""
        return self.to(dtype=np.float32)

    def double(self):
        """Cast floating-point parameters and buffers to float64 (e.g. for gradient checks); returns self."""
        return self.to(dtype=np.float64)


for _name in ("apply", "requires_grad_", "cpu", "float", "double"):
    setattr(Module, _name, vars(_ModuleMethods)[_name])



# ============================================================================ helpers
# ============================================================================ losses
class CrossEntropyLoss(Module):
    """F.cross_entropy as a layer: `CrossEntropyLoss()(logits, targets)` (PyTorch's CrossEntropyLoss).

    weight, ignore_index, reduction and label_smoothing are passed through to F.cross_entropy
    (weight and label_smoothing only when set, so F decides which layouts and options it takes);
    the class weights are a buffer, saved by state_dict() as PyTorch saves them.
    """

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                 label_smoothing=0.0):
        self.reduction = _legacy_reduction(size_average, reduce, reduction, "CrossEntropyLoss")
        self.ignore_index, self.label_smoothing = ignore_index, float(label_smoothing)
        if not 0.0 <= self.label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing}")
        if weight is None:
            self.weight = None
        else:
            self.register_buffer("weight", weight if isinstance(weight, Tensor) else Tensor(np.asarray(weight)))

    def forward(self, input, target):
        kwargs = dict(ignore_index=self.ignore_index, reduction=self.reduction)
        if self.weight is not None:
            kwargs["weight"] = self.weight
        if self.label_smoothing:
            kwargs["label_smoothing"] = self.label_smoothing
        return F.cross_entropy(input, target, **kwargs)

    def extra_repr(self):
        return f"reduction={self.reduction!r}, ignore_index={self.ignore_index}"


class NLLLoss(Module):
    """The negative log-likelihood of the target classes, given log-probabilities (PyTorch's NLLLoss).

    input (N, C), (N, C, d1, ...) or unbatched (C,); target (N,), (N, d1, ...) or (); optional
    class weights (C,). loss_i = -weight[t_i] input[i, t_i], 0 where t_i == ignore_index; 'mean'
    divides the sum by the sum of the weights of the targets counted (NaN if none is).
    """

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
        self.reduction = _legacy_reduction(size_average, reduce, reduction, "NLLLoss")
        self.ignore_index = ignore_index
        if weight is None:
            self.weight = None
        else:
            self.register_buffer("weight", weight if isinstance(weight, Tensor) else Tensor(np.asarray(weight)))

    def forward(self, input, target):
        return F.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)

    def extra_repr(self):
        return f"reduction={self.reduction!r}, ignore_index={self.ignore_index}"




class MSELoss(Module):
    """The mean (or sum, or each) of the squared differences (PyTorch's MSELoss; F.mse_loss)."""

    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        self.reduction = _legacy_reduction(size_average, reduce, reduction, "MSELoss")

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


# ============================================================================ shapes
class _AlongDim(Module):
    """A function of F applied along `dim` (`fn`, its name); dim=None is PyTorch's implicit choice."""

    fn = None

    def __init__(self, dim=None):
        self.dim = dim

    def forward(self, x):
        dim = self.dim if self.dim is not None else _implicit_dim(self.fn, x.ndim)
        return getattr(F, self.fn)(x, dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax(_AlongDim):
    """softmax along `dim` (PyTorch's Softmax)."""

    fn = "softmax"


class LogSoftmax(_AlongDim):
    """log(softmax) along `dim`, computed stably (PyTorch's LogSoftmax)."""

    fn = "log_softmax"


class Flatten(Module):
    """Merge axes start_dim..end_dim into one; by default all but the batch axis (PyTorch's Flatten)."""

    def __init__(self, start_dim=1, end_dim=-1):
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


# ============================================================================ layers
class BatchNorm1d(Module):
    """Normalise each channel over the batch (and length), then scale and shift (PyTorch's BatchNorm1d).

    Input (N, C) or (N, C, L). In training the batch's own mean and biased variance normalise,
    and the running statistics move towards the batch's (the variance unbiased, n / (n - 1)):
    running = (1 - momentum) running + momentum batch; momentum=None keeps a plain average over
    all batches. In eval() the running statistics normalise. Buffers running_mean,
    running_var and num_batches_tracked, parameters weight (ones) and bias (zeros), as PyTorch.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device="cpu", dtype=None):
        C = _positive_int(num_features, "num_features", "BatchNorm1d")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm1d: momentum must be in [0, 1] or None, got {momentum}")
        self.num_features, self.eps, self.momentum = C, float(eps), momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        xp, dt = backend.array_module(device), np.dtype(dtype or backend.DEFAULT_DTYPE)
        self.weight = Parameter(xp.ones(C, dtype=dt)) if affine else None
        self.bias = Parameter(xp.zeros(C, dtype=dt)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(xp.zeros(C, dtype=dt)))
            self.register_buffer("running_var", Tensor(xp.ones(C, dtype=dt)))
            self.register_buffer("num_batches_tracked", Tensor(xp.zeros((), dtype=np.int64)))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def reset_running_stats(self):
        """Running mean 0, running variance 1, no batches seen."""
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def forward(self, x):
        if not isinstance(x, Tensor) or x.ndim not in (2, 3):
            raise ValueError(f"BatchNorm1d: expected 2D (N, C) or 3D (N, C, L) input, got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm1d: input of shape {x.shape} has {x.shape[1]} channels on axis 1, "
                             f"this layer has num_features={self.num_features}")
        axes = (0,) if x.ndim == 2 else (0, 2)
        shape = (1, -1) if x.ndim == 2 else (1, -1, 1)        # (1, C) or (1, C, 1): broadcast over N and L
        n = x.shape[0] * (x.shape[2] if x.ndim == 3 else 1)
        if self.training or not self.track_running_stats:
            if self.training and n == 1:
                raise ValueError(f"BatchNorm1d: expected more than 1 value per channel when training, got input "
                                 f"of shape {x.shape}")
            mean = x.mean(axis=axes, keepdims=True)            # (1, C[, 1])
            xc = x - mean
            var = (xc * xc).mean(axis=axes, keepdims=True)     # biased, as PyTorch normalises
            if self.training and self.track_running_stats:
                self._update_running(mean.data.reshape(-1), var.data.reshape(-1), n)
        else:
            xc = x - self.running_mean.reshape(*shape)
            var = self.running_var.reshape(*shape)
        y = xc / (var + self.eps).sqrt()
        if self.affine:
            y = y * self.weight.reshape(*shape) + self.bias.reshape(*shape)
        return y

    def _update_running(self, mean, var, n):
        """Move the running statistics towards the batch's, in place (no graph)."""
        self.num_batches_tracked.data[...] += 1
        f = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked.data)
        rm, rv = self.running_mean.data, self.running_var.data
        rm[...] = (1 - f) * rm + f * mean.astype(rm.dtype)
        rv[...] = (1 - f) * rv + f * (var * (n / (n - 1))).astype(rv.dtype)
        self.running_mean._version += 1
        self.running_var._version += 1

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


def _int1(value, name, owner, low):
    """An int (or a 1-tuple of one, PyTorch's conv style) >= low."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(f"{owner}: {name} must be an int or a 1-tuple, got {value!r}")
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{owner}: {name} must be an int >= {low}, got {value!r}")
    return int(value)


class Conv1d(Module):
    """1-d convolution (cross-correlation, as PyTorch): (N, C_in, L) -> (N, C_out, L_out).

    L_out = (L + pad_left + pad_right - dilation (K - 1) - 1) // stride + 1. padding is an int,
    'valid' (0) or 'same' (stride 1 only); padding_mode 'zeros', 'reflect', 'replicate' or
    'circular'. weight (C_out, C_in / groups, K), bias (C_out,), both uniform(+-1/sqrt(C_in / groups * K))
    as PyTorch. Computed as im2col: one gather of the K taps of every output position, then one
    matmul per group, so the gradient is that of indexing and matmul.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device="cpu", dtype=None):
        owner = "Conv1d"
        self.in_channels = _positive_int(in_channels, "in_channels", owner)
        self.out_channels = _positive_int(out_channels, "out_channels", owner)
        self.kernel_size = (_int1(kernel_size, "kernel_size", owner, 1),)
        self.stride = (_int1(stride, "stride", owner, 1),)
        self.dilation = (_int1(dilation, "dilation", owner, 1),)
        self.groups = _positive_int(groups, "groups", owner)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"{owner}: in_channels {in_channels} and out_channels {out_channels} must both be "
                             f"divisible by groups {groups}")
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"{owner}: padding must be an int, 'valid' or 'same', got {padding!r}")
            if padding == "same" and self.stride[0] != 1:
                raise ValueError(f"{owner}: padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = (_int1(padding, "padding", owner, 0),)
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"{owner}: padding_mode must be 'zeros', 'reflect', 'replicate' or 'circular', "
                             f"got {padding_mode!r}")
        self.padding_mode = padding_mode
        K = self.kernel_size[0]
        bound = 1.0 / math.sqrt(self.in_channels // self.groups * K)
        self.weight = _uniform((self.out_channels, self.in_channels // self.groups, K), bound, device, dtype)
        self.bias = _uniform((self.out_channels,), bound, device, dtype) if bias else None

    def _pads(self):
        if self.padding == "valid":
            return 0, 0
        if self.padding == "same":
            total = self.dilation[0] * (self.kernel_size[0] - 1)
            return total // 2, total - total // 2
        return self.padding[0], self.padding[0]

    def forward(self, x):
        if not isinstance(x, Tensor) or x.ndim not in (2, 3):
            raise ValueError(f"Conv1d: expected (N, C, L) or unbatched (C, L) input, got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        unbatched = x.ndim == 2
        if unbatched:
            x = x.reshape(1, *x.shape)                         # (1, C, L)
        N, C, L = x.shape
        if C != self.in_channels:
            raise ValueError(f"Conv1d: input of shape {x.shape} has {C} channels, this layer expects "
                             f"in_channels={self.in_channels}")
        if x.dtype != self.weight.dtype:
            raise TypeError(f"Conv1d: input of dtype {x.dtype} with a weight of dtype {self.weight.dtype}")
        left, right = self._pads()
        K, S, Dil, G = self.kernel_size[0], self.stride[0], self.dilation[0], self.groups
        x = self._pad(x, left, right)                          # (N, C, L + left + right)
        Lp = x.shape[2]
        L_out = (Lp - Dil * (K - 1) - 1) // S + 1
        if L_out < 1:
            raise ValueError(f"Conv1d: input length {L} (padded {Lp}) is shorter than the kernel's reach "
                             f"{Dil * (K - 1) + 1}")
        taps = np.arange(L_out)[:, None] * S + np.arange(K)[None, :] * Dil   # (L_out, K) input positions
        cols = x[:, :, backend.to_device(taps, x.device)]      # (N, C, L_out, K)
        cg = C // G
        cols = cols.reshape(N, G, cg, L_out, K).permute(0, 1, 3, 2, 4).reshape(N, G, L_out, cg * K)
        w = self.weight.reshape(G, self.out_channels // G, cg * K).transpose(1, 2)   # (G, cg K, O/G)
        y = cols @ w                                            # (N, G, L_out, O/G)
        y = y.permute(0, 1, 3, 2).reshape(N, self.out_channels, L_out)               # (N, O, L_out)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1)
        return y.reshape(*y.shape[1:]) if unbatched else y

    def _pad(self, x, left, right):
        if not left and not right:
            return x
        L = x.shape[2]
        if self.padding_mode == "zeros":
            xp = backend.get_array_module(x.data)
            parts = [Tensor._make(xp.zeros((x.shape[0], x.shape[1], n), dtype=x.dtype), x.device)
                     for n in (left, right)]
            return F.concat([p for p in (parts[0], x, parts[1]) if p.shape[2]], axis=2)
        pos = np.arange(-left, L + right)                      # the input position each padded position copies
        if self.padding_mode == "circular":
            if left > L or right > L:
                raise ValueError(f"Conv1d: circular padding {max(left, right)} is larger than the input length {L}")
            pos = pos % L
        elif self.padding_mode == "replicate":
            pos = np.clip(pos, 0, L - 1)
        else:                                                  # reflect: ... 2 1 | 0 1 2 ... L-1 | L-2 L-3 ...
            if left >= L or right >= L:
                raise ValueError(f"Conv1d: reflect padding {max(left, right)} must be smaller than the input "
                                 f"length {L}")
            pos = np.abs(pos)
            pos = np.where(pos > L - 1, 2 * (L - 1) - pos, pos)
        return x[:, :, backend.to_device(pos, x.device)]

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,):
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) else f", padding={self.padding}"
        if self.dilation != (1,):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        return s
