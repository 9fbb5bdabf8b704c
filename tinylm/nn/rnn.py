"""Recurrent layers as torch.nn's: RNN, LSTM, GRU and RNNCell, LSTMCell, GRUCell.

num_layers, batch_first, bias, dropout, bidirectional; PyTorch's parameter names, gate layout and
init, so a PyTorch `state_dict()` (as NumPy arrays) loads and gives the same outputs. gi = x W_ih^T
+ b_ih is computed for every step in one matmul and gh = h W_hh^T + b_hh per step:

    RNN   h' = tanh(gi + gh)                    (or relu)
    LSTM  i, f, g, o = split(gi + gh, 4)        (PyTorch's gate order)
          c' = sigmoid(f) c + sigmoid(i) tanh(g),   h' = sigmoid(o) tanh(c')
    GRU   r, z, n gates from gi and gh, each split in 3 (PyTorch's order)
          r = sigmoid(gi_r + gh_r),  z = sigmoid(gi_z + gh_z),  n = tanh(gi_n + r * gh_n)
          h' = (1 - z) n + z h

The loop over time steps is the one Python loop (a recurrence cannot be batched over time).
Glossary for shape comments: N batch, L sequence length, H hidden size, D directions.
Leaves out: LSTM's proj_size, packed sequences (nn.utils.rnn), cuDNN's fused kernels.
Reference: the torch.nn documentation of each layer (arguments, shapes, equations, init).
"""
import math
import warnings

from .. import backend
from .. import functional as F
from ..tensor import Tensor
from .layers import _positive_int, _uniform
from .module import Module, Parameter


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
                setattr(self, f"weight_ih_l{layer}{suffix}", _uniform((G * H, n_in), k, device, dtype))
                setattr(self, f"weight_hh_l{layer}{suffix}", _uniform((G * H, H), k, device, dtype))
                if bias:
                    setattr(self, f"bias_ih_l{layer}{suffix}", _uniform((G * H,), k, device, dtype))
                    setattr(self, f"bias_hh_l{layer}{suffix}", _uniform((G * H,), k, device, dtype))

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
        self.weight_ih = _uniform((G * H, self.input_size), k, device, dtype)
        self.weight_hh = _uniform((G * H, H), k, device, dtype)
        self.bias_ih = _uniform((G * H,), k, device, dtype) if bias else None
        self.bias_hh = _uniform((G * H,), k, device, dtype) if bias else None

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
