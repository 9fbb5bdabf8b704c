"""PyTorch's other common layers, built from tinylm's differentiable ops (so gradients come for free).

Owns the layers that teaching code written for `torch.nn` uses beyond a GPT's own:

  losses      CrossEntropyLoss, NLLLoss, MSELoss
  shapes      Softmax, LogSoftmax, Flatten
  layers      BatchNorm1d (running statistics, train/eval), Conv1d (im2col + one matmul)
  recurrent   RNN, LSTM, GRU (num_layers, batch_first, bias, dropout, bidirectional) and
              RNNCell, LSTMCell, GRUCell

Each takes PyTorch's arguments, keeps PyTorch's parameter and buffer names and layouts, and
initialises as PyTorch does, so a PyTorch `state_dict()` (as NumPy arrays) loads with
`load_state_dict` and gives the same outputs. The recurrent layers follow PyTorch's equations,
with gi = x W_ih^T + b_ih computed for every step in one matmul and gh = h W_hh^T + b_hh per step:

    RNN   h' = tanh(gi + gh)                    (or relu)
    LSTM  i, f, g, o = split(gi + gh, 4)        (PyTorch's gate order)
          c' = sigmoid(f) c + sigmoid(i) tanh(g),   h' = sigmoid(o) tanh(c')
    GRU   r, z, n gates from gi and gh, each split in 3 (PyTorch's order)
          r = sigmoid(gi_r + gh_r),  z = sigmoid(gi_z + gh_z),  n = tanh(gi_n + r * gh_n)
          h' = (1 - z) n + z h

The loop over time steps is the one Python loop (a recurrence cannot be batched over time).
Glossary for shape comments: N batch, L sequence length, C channels, H hidden size,
D directions (2 if bidirectional), K kernel size.
Leaves out: LSTM's proj_size, packed sequences (nn.utils.rnn), cuDNN's fused kernels, Conv2d,
BatchNorm2d, 'same' padding with stride > 1.
Reference: the torch.nn documentation of each layer (arguments, shapes, equations, init).
"""
import math
import warnings

import numpy as np

from . import backend
from . import functional as F
from .nn import init
from .nn.layers import _positive_int
from .nn.module import Module, Parameter
from .tensor import Tensor


# ============================================================================ helpers
def _legacy_reduction(size_average, reduce, reduction, owner):
    """PyTorch's deprecated size_average/reduce arguments, mapped to reduction as PyTorch maps them."""
    if size_average is None and reduce is None:
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"{owner}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        return reduction
    warnings.warn(f"{owner}: size_average and reduce are deprecated; use reduction='mean', 'sum' or 'none'",
                  stacklevel=3)
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    return "none" if not reduce else "mean" if size_average else "sum"


def _param(shape, bound, device, dtype):
    """A Parameter of uniform(-bound, bound) draws (PyTorch's default for conv and recurrent layers)."""
    xp = backend.array_module(device)
    p = Parameter(xp.zeros(shape, dtype=np.dtype(dtype or backend.DEFAULT_DTYPE)))
    return init.uniform_(p, -bound, bound)


def _ids(target, device, owner):
    """Integer class ids as a raw array on `device`."""
    t = target.data if isinstance(target, Tensor) else backend.to_device(
        target if hasattr(target, "dtype") else np.asarray(target), device)
    if isinstance(target, Tensor) and target.device != device:
        raise ValueError(f"{owner}: input on '{device}', target on '{target.device}'")
    if t.dtype.kind not in "iu":
        raise TypeError(f"{owner}: target must hold integer class ids, got dtype {t.dtype}")
    return t


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
        return nll_loss(input, target, self.weight, self.ignore_index, self.reduction)

    def extra_repr(self):
        return f"reduction={self.reduction!r}, ignore_index={self.ignore_index}"


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """PyTorch's F.nll_loss, composed of differentiable ops (see NLLLoss)."""
    if not isinstance(input, Tensor) or input.ndim < 1 or input.dtype.kind != "f":
        raise TypeError(f"nll_loss: input must be a float Tensor of log-probabilities (N, C), got "
                        f"{getattr(input, 'shape', type(input).__name__)}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"nll_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    t = _ids(target, input.device, "nll_loss")
    if input.ndim == 1:                                        # unbatched (C,) with a () target
        logp, want = input, ()
    else:
        perm = (0, *range(2, input.ndim), 1)                   # class axis last: (N, d1, ..., C)
        logp, want = input.permute(*perm) if input.ndim > 2 else input, (input.shape[0], *input.shape[2:])
    C = logp.shape[-1]
    if tuple(t.shape) != want:
        raise ValueError(f"nll_loss: target of shape {tuple(t.shape)} does not fit input of shape {input.shape} "
                         f"(expected {want}: PyTorch's layout, classes on axis 1)")
    xp = backend.get_array_module(t)
    valid = t != ignore_index
    safe = xp.where(valid, t, 0)
    if safe.size and (int(safe.min()) < 0 or int(safe.max()) >= C):
        bad = int(safe.min()) if int(safe.min()) < 0 else int(safe.max())
        raise ValueError(f"nll_loss: target {bad} is out of bounds for {C} classes")
    w = xp.ones(C, dtype=input.dtype) if weight is None else (weight.data if isinstance(weight, Tensor)
                                                               else backend.to_device(np.asarray(weight), input.device))
    if tuple(w.shape) != (C,):
        raise ValueError(f"nll_loss: weight of shape {tuple(w.shape)} for {C} classes (expected ({C},))")
    w = w.astype(input.dtype)
    picked_w = xp.where(valid, w[safe], 0).astype(input.dtype)            # weight of each target, 0 if ignored
    mask = (safe[..., None] == xp.arange(C)) * picked_w[..., None]        # (..., C): the weight at the target
    losses = -(logp * Tensor._make(mask.astype(input.dtype), input.device)).sum(axis=-1)   # (N, d1, ...)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    total = float(picked_w.sum())
    return losses.sum() * (1.0 / total) if total else losses.sum() * float("nan")


class MSELoss(Module):
    """The mean (or sum, or each) of the squared differences (PyTorch's MSELoss; F.mse_loss)."""

    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        self.reduction = _legacy_reduction(size_average, reduce, reduction, "MSELoss")

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


# ============================================================================ shapes
def _implicit_dim(name, ndim):
    """PyTorch's old rule for Softmax(dim=None): axis 0 for 0-, 1- and 3-d inputs, else 1 (with its warning)."""
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include "
                  "dim=X as an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


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
        self.weight = _param((self.out_channels, self.in_channels // self.groups, K), bound, device, dtype)
        self.bias = _param((self.out_channels,), bound, device, dtype) if bias else None

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


# ============================================================================ recurrent layers
_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _cell(mode, gi, h, c, w_hh, b_hh):
    """One time step: gi = x W_ih^T + b_ih (N, G H) and the state h (N, H) (and c for LSTM) -> (h', c')."""
    gh = F.linear(h, w_hh, b_hh)                               # (N, G H)
    if mode == "RNN_TANH":
        return (gi + gh).tanh(), None
    if mode == "RNN_RELU":
        return (gi + gh).relu(), None
    H = h.shape[-1]
    if mode == "LSTM":
        i, f, g, o = F.split(gi + gh, H, axis=-1)              # 4 x (N, H), PyTorch's order
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        return o.sigmoid() * c.tanh(), c
    ir, iz, in_ = F.split(gi, H, axis=-1)                      # GRU: 3 x (N, H), PyTorch's order r, z, n
    hr, hz, hn = F.split(gh, H, axis=-1)
    r = (ir + hr).sigmoid()
    z = (iz + hz).sigmoid()
    n = (in_ + r * hn).tanh()
    return (1 - z) * n + z * h, None


def _mode(name, nonlinearity):
    if name != "RNN":
        return name
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"RNN: unknown nonlinearity {nonlinearity!r}; select from 'tanh' or 'relu'")
    return "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"


class _RNNBase(Module):
    """The multi-layer recurrent layers: parameters weight_ih_l{k}[_reverse], weight_hh_l{k}..., as PyTorch."""

    def __init__(self, name, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, nonlinearity="tanh", device="cpu", dtype=None):
        self.mode = _mode(name, nonlinearity)
        self.nonlinearity = nonlinearity
        self.input_size = _positive_int(input_size, "input_size", name)
        self.hidden_size = _positive_int(hidden_size, "hidden_size", name)
        self.num_layers = _positive_int(num_layers, "num_layers", name)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout should be a number in range [0, 1] representing the probability of "
                             f"an element being zeroed, got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{name}: dropout option adds dropout after all but last recurrent layer, so non-zero "
                          f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                          f"num_layers={num_layers}", stacklevel=3)
        if proj_size:
            raise ValueError(f"{name}: proj_size is not implemented in tinylm (got proj_size={proj_size})")
        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), float(dropout)
        self.bidirectional, self.proj_size = bool(bidirectional), 0
        H, D, G = self.hidden_size, 2 if bidirectional else 1, _GATES[self.mode]
        k = 1.0 / math.sqrt(H)
        for layer in range(self.num_layers):                   # PyTorch's names, in PyTorch's order
            n_in = self.input_size if layer == 0 else H * D
            for suffix in ("", "_reverse")[:D]:
                setattr(self, f"weight_ih_l{layer}{suffix}", _param((G * H, n_in), k, device, dtype))
                setattr(self, f"weight_hh_l{layer}{suffix}", _param((G * H, H), k, device, dtype))
                if bias:
                    setattr(self, f"bias_ih_l{layer}{suffix}", _param((G * H,), k, device, dtype))
                    setattr(self, f"bias_hh_l{layer}{suffix}", _param((G * H,), k, device, dtype))

    def flatten_parameters(self):
        """Nothing to do: PyTorch compacts the weights for cuDNN here; tinylm keeps them as they are."""

    def _weights(self, layer, suffix):
        get = lambda kind: getattr(self, f"{kind}_l{layer}{suffix}", None)
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def _check_state(self, state, want, what):
        if not isinstance(state, Tensor):
            raise TypeError(f"{type(self).__name__}: {what} must be a Tensor, got {type(state).__name__}")
        if state.shape != want:
            raise ValueError(f"{type(self).__name__}: expected {what} of shape {want}, got {state.shape}")
        return state

    def forward(self, input, hx=None):
        name, H, D = type(self).__name__, self.hidden_size, 2 if self.bidirectional else 1
        if not isinstance(input, Tensor) or input.ndim not in (2, 3):
            raise ValueError(f"{name}: expected input of 3 dimensions ((L, N, H_in), or (N, L, H_in) with "
                             f"batch_first) or 2 (unbatched (L, H_in)), got {getattr(input, 'shape', input)}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input of shape {input.shape} has size {input.shape[-1]} on its last axis, "
                             f"this layer has input_size={self.input_size}")
        if input.dtype != self.weight_ih_l0.dtype:
            raise TypeError(f"{name}: input of dtype {input.dtype} with weights of dtype {self.weight_ih_l0.dtype}")
        unbatched = input.ndim == 2
        x = input.reshape(input.shape[0], 1, input.shape[1]) if unbatched else (
            input.transpose(0, 1) if self.batch_first else input)   # (L, N, H_in)
        L, N = x.shape[0], x.shape[1]
        lstm = self.mode == "LSTM"
        want = (self.num_layers * D, H) if unbatched else (self.num_layers * D, N, H)
        if hx is None:
            xp = backend.get_array_module(x.data)
            zeros = Tensor._make(xp.zeros((self.num_layers * D, N, H), dtype=x.dtype), x.device)
            h0, c0 = zeros, zeros
        else:
            if lstm and not (isinstance(hx, tuple) and len(hx) == 2):
                raise TypeError(f"LSTM: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
            if not lstm and isinstance(hx, tuple):
                raise TypeError(f"{name}: hx must be one Tensor h_0, got a tuple")
            h0 = self._check_state(hx[0] if lstm else hx, want, "h_0")
            c0 = self._check_state(hx[1], want, "c_0") if lstm else None
            if unbatched:
                h0 = h0.reshape(self.num_layers * D, 1, H)
                c0 = c0.reshape(self.num_layers * D, 1, H) if lstm else None
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for d, suffix in enumerate(("", "_reverse")[:D]):
                w_ih, w_hh, b_ih, b_hh = self._weights(layer, suffix)
                gi = F.linear(x, w_ih, b_ih)                   # (L, N, G H): every step's input part at once
                h, c = h0[layer * D + d], (c0[layer * D + d] if lstm else None)   # (N, H)
                steps = []
                for t in (range(L) if d == 0 else range(L - 1, -1, -1)):
                    h, c = _cell(self.mode, gi[t], h, c, w_hh, b_hh)
                    steps.append(h)
                if d == 1:
                    steps.reverse()
                outs.append(F.stack(steps, axis=0))            # (L, N, H)
                h_n.append(h)
                c_n.append(c)
            x = outs[0] if D == 1 else F.concat(outs, axis=-1)   # (L, N, D H)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        h_n = F.stack(h_n, axis=0)                             # (num_layers D, N, H)
        c_n = F.stack(c_n, axis=0) if lstm else None
        if unbatched:
            x = x.reshape(L, D * H)
            h_n = h_n.reshape(self.num_layers * D, H)
            c_n = c_n.reshape(self.num_layers * D, H) if lstm else None
        elif self.batch_first:
            x = x.transpose(0, 1)                              # (N, L, D H)
        return (x, (h_n, c_n)) if lstm else (x, h_n)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        for flag, default in (("bias", True), ("batch_first", False), ("bidirectional", False)):
            if getattr(self, flag) != default:
                s += f", {flag}={getattr(self, flag)}"
        if self.dropout:
            s += f", dropout={self.dropout}"
        return s


class RNN(_RNNBase):
    """Elman RNN, h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu), stacked num_layers deep.

    forward(input, h_0=None) -> (output, h_n): input (L, N, H_in) ((N, L, H_in) with
    batch_first, or unbatched (L, H_in)); output (L, N, D H); h_n (num_layers D, N, H).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device="cpu", dtype=None):
        super().__init__("RNN", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         nonlinearity=nonlinearity, device=device, dtype=dtype)


class LSTM(_RNNBase):
    """Long short-term memory, PyTorch's gates i, f, g, o (see the module docstring).

    forward(input, (h_0, c_0)=None) -> (output, (h_n, c_n)); shapes as RNN's.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device="cpu", dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device=device, dtype=dtype)


class GRU(_RNNBase):
    """Gated recurrent unit, PyTorch's gates r, z, n with n = tanh(gi_n + r * gh_n) (see the module docstring).

    forward(input, h_0=None) -> (output, h_n); shapes as RNN's.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device="cpu", dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)


class _CellBase(Module):
    """One step of a recurrent layer: parameters weight_ih, weight_hh, bias_ih, bias_hh, as PyTorch's cells."""

    def __init__(self, name, input_size, hidden_size, bias, nonlinearity="tanh", device="cpu", dtype=None):
        self.mode = _mode(name, nonlinearity)
        self.nonlinearity = nonlinearity
        self.input_size = _positive_int(input_size, "input_size", name + "Cell")
        self.hidden_size = _positive_int(hidden_size, "hidden_size", name + "Cell")
        self.bias = bool(bias)
        G, H = _GATES[self.mode], self.hidden_size
        k = 1.0 / math.sqrt(H)
        self.weight_ih = _param((G * H, self.input_size), k, device, dtype)
        self.weight_hh = _param((G * H, H), k, device, dtype)
        self.bias_ih = _param((G * H,), k, device, dtype) if bias else None
        self.bias_hh = _param((G * H,), k, device, dtype) if bias else None

    def forward(self, input, hx=None):
        name, H = type(self).__name__, self.hidden_size
        if not isinstance(input, Tensor) or input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: expected input (N, {self.input_size}) or ({self.input_size},), got "
                             f"{getattr(input, 'shape', type(input).__name__)}")
        unbatched = input.ndim == 1
        x = input.reshape(1, -1) if unbatched else input       # (N, H_in)
        lstm = self.mode == "LSTM"
        want = (H,) if unbatched else (x.shape[0], H)
        if hx is None:
            xp = backend.get_array_module(x.data)
            h = c = Tensor._make(xp.zeros((x.shape[0], H), dtype=x.dtype), x.device)
        else:
            if lstm and not (isinstance(hx, tuple) and len(hx) == 2):
                raise TypeError(f"LSTMCell: hx must be a tuple (h, c), got {type(hx).__name__}")
            states = hx if lstm else (hx,)
            for s, what in zip(states, ("h", "c")):
                if not isinstance(s, Tensor) or s.shape != want:
                    raise ValueError(f"{name}: expected {what} of shape {want}, got "
                                     f"{getattr(s, 'shape', type(s).__name__)}")
            h = states[0].reshape(1, H) if unbatched else states[0]
            c = (states[1].reshape(1, H) if unbatched else states[1]) if lstm else None
        h, c = _cell(self.mode, F.linear(x, self.weight_ih, self.bias_ih), h, c, self.weight_hh, self.bias_hh)
        if unbatched:
            h, c = h.reshape(H), (c.reshape(H) if lstm else None)
        return (h, c) if lstm else h

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        return s


class RNNCell(_CellBase):
    """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu); forward(input, hx=None) -> h'."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device="cpu", dtype=None):
        super().__init__("RNN", input_size, hidden_size, bias, nonlinearity, device, dtype)


class LSTMCell(_CellBase):
    """One LSTM step; forward(input, (h, c)=None) -> (h', c')."""

    def __init__(self, input_size, hidden_size, bias=True, device="cpu", dtype=None):
        super().__init__("LSTM", input_size, hidden_size, bias, device=device, dtype=dtype)


class GRUCell(_CellBase):
    """One GRU step; forward(input, hx=None) -> h'."""

    def __init__(self, input_size, hidden_size, bias=True, device="cpu", dtype=None):
        super().__init__("GRU", input_size, hidden_size, bias, device=device, dtype=dtype)


__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "Softmax", "LogSoftmax", "Flatten", "BatchNorm1d", "Conv1d",
           "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "nll_loss"]
