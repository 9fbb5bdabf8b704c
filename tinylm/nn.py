"""Layers with parameters: Module, Parameter, the containers and the GPT building blocks.

Owns the bookkeeping PyTorch users know from `torch.nn`: a `Module` finds its parameters and
submodules by looking at its own attributes (so `self.c_fc = Linear(...)` registers a layer and
`self.weight = Parameter(...)` a parameter, in assignment order; `register_buffer` adds state
that is not learnt); `ModuleList`, `ModuleDict` and `Sequential` hold several layers;
`parameters()`, `named_parameters()`, `buffers()`, `modules()`, `apply(fn)`, `train()/eval()`,
`zero_grad()`, `to(device, dtype)`, `num_parameters()`, `state_dict()` and `load_state_dict()`.
Then the layers of a GPT: Linear, Embedding, LayerNorm, Dropout, GELU (and ReLU, Tanh,
Identity), MLP, MultiHeadAttention (CausalSelfAttention) and the pre-LN Block, with GPT-2's
attribute names (`c_attn`, `c_proj`, `c_fc`, `ln_1`, ...), so that a GPT-2 checkpoint maps
across key for key. `nn.init` holds torch's in-place initialisers (`normal_`, `zeros_`, ...).

Conventions:
  - `Parameter` is a Tensor subclass with requires_grad=True; a tied weight is one Parameter
    object reachable under two names (listed once, under its first name).
  - `state_dict()` maps the names of parameters and persistent buffers to the raw arrays
    themselves (NumPy on cpu, CuPy on a GPU), not copies, as PyTorch does: copy them to keep a
    snapshot while training goes on.
  - `load_state_dict()` accepts NumPy/CuPy arrays or Tensors, copies them to the module's device
    and each entry's dtype, and names every missing, unexpected or wrongly shaped key.
  - Inference caches (`KVCache`) hold raw arrays outside the graph: use them under `no_grad()`.

Glossary for shape comments: B batch, T time (new tokens), S time (all keys, cache included),
C channels (n_embd), nh heads, hs head size (C // nh), V vocab.
Leaves out: the GPT itself (tinylm/model.py), optimisers (tinylm/optim.py), hooks.
Reference: torch.nn.Module (names and semantics), nanoGPT `model.py` (the blocks), HF GPT-2.
"""
import math
import sys
from collections import OrderedDict, namedtuple

import numpy as np

from . import backend
from . import functional as F
from .autograd import Tensor, _raw_grad


class Parameter(Tensor):
    """A Tensor that a Module registers as learnable (requires_grad=True), kept on its device."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(data, device=backend.device_of(data), requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter(" + super().__repr__() + ")"


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of layers: attributes that are Parameters or Modules are registered by assignment.

    Subclasses set attributes in `__init__` and write `forward`; calling the module calls
    `forward`. Calling `super().__init__()` is optional. Tensors that are state but not learnable
    (masks, running statistics) are registered with `register_buffer`.
    """

    training = True

    def __setattr__(self, name, value):
        if isinstance(value, (list, tuple)) and any(isinstance(v, Module) for v in value):
            raise TypeError(f"{type(self).__name__}.{name}: a plain {type(value).__name__} of modules is not "
                            "registered; wrap it in tinylm.nn.ModuleList")
        if isinstance(value, dict) and any(isinstance(v, Module) for v in value.values()):
            raise TypeError(f"{type(self).__name__}.{name}: a plain dict of modules is not registered; "
                            "wrap it in tinylm.nn.ModuleDict")
        if name in _buffer_flags(self) and (not isinstance(value, Tensor) or isinstance(value, Parameter)):
            raise TypeError(f"{type(self).__name__}.{name} is a buffer: assign it a Tensor (not a Parameter), "
                            f"got {type(value).__name__}")
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        _buffer_flags(self).pop(name, None)                    # a deleted buffer leaves the registry too
        object.__delattr__(self, name)

    def register_buffer(self, name, tensor, persistent=True):
        """Register a Tensor (or device array) that is state but not learnable, as `self.<name>`.

        As torch: buffers move with `to()`, get no gradient, are listed by `named_buffers()`, and
        are saved by `state_dict()` (and loaded by `load_state_dict()`) unless persistent=False.
        """
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"register_buffer: name must be an identifier such as 'mask', got {name!r}")
        if hasattr(self, name) and name not in _buffer_flags(self):
            raise ValueError(f"register_buffer: {type(self).__name__} already has an attribute {name!r}")
        if isinstance(tensor, Parameter):
            raise TypeError(f"register_buffer: {name!r} is a Parameter; assign it as an attribute to make it "
                            "learnable")
        if not isinstance(tensor, Tensor):
            if not (hasattr(tensor, "shape") and hasattr(tensor, "dtype")):
                raise TypeError(f"register_buffer: {name!r} must be a Tensor or an array, "
                                f"got {type(tensor).__name__}")
            tensor = Tensor(tensor)  # on the array's own device
        elif tensor.requires_grad:
            tensor = tensor.detach()  # a buffer is no leaf of any graph
        vars(self).setdefault("_buffers", {})[name] = bool(persistent)  # name -> persistent
        object.__setattr__(self, name, tensor)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    # ------------------------------------------------------------------ traversal
    def named_children(self):
        """(name, module) for each direct submodule, in assignment order."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def named_modules(self, prefix=""):
        """(dotted name, module) for self and every submodule, each once (depth first)."""
        seen, stack = set(), [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield name, m
            children = [(f"{name}.{n}" if name else n, c) for n, c in m.named_children()]
            stack.extend(reversed(children))

    def children(self):
        """Each direct submodule once, in assignment order."""
        seen = set()
        for _, m in self.named_children():
            if id(m) not in seen:
                seen.add(id(m))
                yield m

    def modules(self):
        """Self and every submodule, each once."""
        return (m for _, m in self.named_modules())

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

    def _named_members(self, own, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, tensor) for what `own(module)` lists of each module, depth first.

        A tensor reachable under two names (a tied weight) comes once, under its first name,
        unless remove_duplicate=False; recurse=False looks at this module alone.
        """
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_prefix, m in modules:
            for name, value in own(m):
                if remove_duplicate and id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), value

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, Parameter) pairs; a tied Parameter comes once, under its first name."""
        return self._named_members(_own_parameters, prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        """Every Parameter once (tied ones once), in a stable order (a list)."""
        return [p for _, p in self.named_parameters(recurse=recurse)]

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, Tensor) for every buffer, persistent or not."""
        return self._named_members(_own_buffers, prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        """Every buffer once, in a stable order (a list)."""
        return [b for _, b in self.named_buffers(recurse=recurse)]

    def num_parameters(self):
        """The number of learnable scalars (a tied weight counted once)."""
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ state
    def train(self, mode=True):
        """Training mode (dropout on) for self and every submodule; returns self."""
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        """Evaluation mode (dropout off); returns self."""
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        """Clear every parameter's gradient: None (the default, as PyTorch), or zeros in place."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                _raw_grad(p.grad)[...] = 0                     # in place, and inf * 0 is no 0

    def requires_grad_(self, requires_grad=True):
        """Set requires_grad on every parameter (False freezes them: no gradients); returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def to(self, device=None, dtype=None):
        """Move parameters (with gradients) and buffers to `device` and/or cast them to `dtype`; returns self.

        As torch: `to("gpu")`, `to(tl.float64)`, `to("gpu", tl.float64)`, `to(dtype=np.float64)`;
        only floating-point tensors are cast. Each tensor is changed in place, not replaced, so
        tied weights stay tied.
        """
        if device is not None and not isinstance(device, str):  # to(tl.float64): a dtype in device's place
            if dtype is not None:
                raise TypeError(f"to(): expected a device name (str) first, got {device!r}")
            device, dtype = None, device
        device = None if device is None else backend.parse_device(device)
        dtype = None if dtype is None else _float_dtype(dtype)
        for p in self.parameters() + self.buffers():
            if device is not None and p.device != device:
                p.data = backend.to_device(p.data, device)
                p.grad = None if p.grad is None else backend.to_device(_raw_grad(p.grad), device)
                p.device = device
            if dtype is not None and p.dtype.kind == "f" and p.dtype != dtype:  # as torch: integers keep theirs
                p.data = p.data.astype(dtype)
                p.grad = None if p.grad is None else p.grad.astype(dtype)
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

    def state_dict(self):
        """OrderedDict name -> raw array (live, not copied) of every parameter and persistent buffer.

        A tied weight comes once; a module's own entries come before its submodules', as in torch.
        """
        return OrderedDict((name, t.data) for name, t in self._named_members(_own_state))

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays (NumPy/CuPy/Tensors) into parameters and persistent buffers, on their device and dtype.

        Raises ValueError naming every wrongly shaped key, and (when strict) every missing and
        unexpected key, before changing anything. Returns (missing_keys, unexpected_keys).
        """
        entries = dict(self._named_members(_own_state))
        aliases = dict(self._named_members(_own_state, remove_duplicate=False))  # tied names are accepted too
        missing = [k for k in entries if k not in state_dict and not _alias_given(k, aliases, state_dict)]
        unexpected = [k for k in state_dict if k not in aliases]
        wrong = []
        for k, v in state_dict.items():
            if k in aliases and tuple(v.shape) != aliases[k].shape:
                wrong.append(f"{k}: checkpoint {tuple(v.shape)} vs model {aliases[k].shape}")
        problems = []
        if wrong:
            problems.append("wrong shapes: " + "; ".join(wrong))
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__}: " + " | ".join(problems))
        for k, v in state_dict.items():
            if k in aliases:
                t = aliases[k]
                arr = backend.to_device(v.data if isinstance(v, Tensor) else v, t.device)
                t.data = arr.astype(t.dtype, order="C")  # always a copy: the module never aliases the caller's array
        return IncompatibleKeys(missing, unexpected)

    def __repr__(self):
        lines = [f"  ({n}): " + repr(m).replace("\n", "\n  ") for n, m in self.named_children()]
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        return f"{type(self).__name__}({extra}\n" + "\n".join(lines) + "\n)"

    def extra_repr(self):
        return ""


def _buffer_flags(module):
    """{buffer name: persistent} of one module ({} before its first register_buffer)."""
    return vars(module).get("_buffers", {})


def _own_parameters(module):
    """One module's own (name, Parameter) pairs, in assignment order."""
    return [(n, v) for n, v in vars(module).items() if isinstance(v, Parameter)]


def _own_buffers(module, persistent_only=False):
    """One module's own (name, buffer) pairs, in registration order."""
    return [(n, vars(module)[n]) for n, keep in _buffer_flags(module).items() if keep or not persistent_only]


def _own_state(module):
    """What state_dict() saves of one module: its parameters, then its persistent buffers (torch's order)."""
    return _own_parameters(module) + _own_buffers(module, persistent_only=True)


def _float_dtype(dtype):
    """A floating NumPy dtype from anything np.dtype accepts (tl.float64, np.float32, "float64")."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"to(): expected a device name (str) or a dtype such as tl.float64, got "
                        f"{type(dtype).__name__} {dtype!r}") from None
    if dtype.kind != "f":  # parameters must stay differentiable
        raise TypeError(f"to(): a module can only be cast to a floating-point dtype, got {dtype}")
    return dtype


def _alias_given(name, aliases, state_dict):
    """True when the tensor behind `name` is given under another of its (tied) names."""
    p = aliases[name]
    return any(aliases.get(k) is p for k in state_dict)


def _check_module(value, where):
    """`value` if it is a Module, else a TypeError naming `where`."""
    if not isinstance(value, Module):
        raise TypeError(f"{where}: expected a Module, got {type(value).__name__}")
    return value


class ModuleList(Module):
    """A list of modules, registered under the names '0', '1', ..."""

    def __init__(self, modules=()):
        self._list = []
        self.extend(modules)

    def named_children(self):
        for i, m in enumerate(self._list):
            yield str(i), m

    def append(self, module):
        """Add a module at the end; returns self."""
        self._list.append(_check_module(module, f"{type(self).__name__}.append"))
        return self

    def extend(self, modules):
        """Add each module of an iterable at the end; returns self."""
        for module in modules:
            self.append(module)
        return self

    def insert(self, index, module):
        """Put a module before position `index` (the later ones are renumbered)."""
        self._list.insert(index, _check_module(module, f"{type(self).__name__}.insert"))

    def __setitem__(self, i, module):
        self._list[i] = _check_module(module, f"{type(self).__name__}[{i}]")

    def __getitem__(self, i):
        return ModuleList(self._list[i]) if isinstance(i, slice) else self._list[i]

    def __len__(self):
        return len(self._list)

    def __iter__(self):
        return iter(self._list)


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


# ============================================================================ argument checks
def _positive_int(value, name, owner):
    """`value` as an int if it is an int >= 1; otherwise a TypeError/ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{owner}: {name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value}")
    return int(value)


def _probability(value, name, owner):
    """`value` as a float if 0 <= value < 1 (F.dropout keeps at least some units); otherwise an error."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: {name} must be a number, got {type(value).__name__} {value!r}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}: {name} must be in [0, 1), got {value}")
    return float(value)


# ============================================================================ initialisation
def _init_target(tensor, fn, floating=False):
    """Check that `nn.init.<fn>` was given a Tensor (of a floating dtype when it draws random numbers)."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"init.{fn}: expected a Tensor or Parameter, got {type(tensor).__name__}")
    if floating and tensor.dtype.kind != "f":
        raise TypeError(f"init.{fn}: needs a floating-point tensor, got dtype {tensor.dtype}")


class init:
    """In-place initialisers, as torch.nn.init: `nn.init.normal_(module.weight, mean=0.0, std=0.02)`.

    A namespace, never instantiated. Each function overwrites `tensor.data` in place (the array
    object stays the same, so a `state_dict()` taken earlier sees the new values), keeps its
    shape, dtype and device, draws from the device's generator (reproducible after
    `tl.manual_seed`), records no graph, and returns the tensor.
    """

    @staticmethod
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

    @staticmethod
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

    @staticmethod
    def constant_(tensor, val):
        """Fill with the value `val`."""
        _init_target(tensor, "constant_")
        tensor.data[...] = val
        tensor._version += 1                                   # backward refuses graphs that used the old values
        return tensor

    @staticmethod
    def zeros_(tensor):
        """Fill with zeros."""
        return init.constant_(tensor, 0)

    @staticmethod
    def ones_(tensor):
        """Fill with ones."""
        return init.constant_(tensor, 1)


def _const(shape, value, device, dtype=None):
    """A Parameter filled with `value` (float32 unless `dtype`)."""
    xp = backend.array_module(device)
    return Parameter(xp.full(shape, value, dtype=np.dtype(dtype or backend.DEFAULT_DTYPE)))


def _normal(shape, std, device, dtype=None):
    """A Parameter of normal(0, std) draws from the device's generator."""
    return init.normal_(_const(shape, 0.0, device, dtype), std=std)


def _uniform(shape, bound, device, dtype=None):
    """A Parameter of uniform(-bound, bound) draws from the device's generator."""
    return init.uniform_(_const(shape, 0.0, device, dtype), -bound, bound)


# ============================================================================ layers
class Linear(Module):
    """y = x @ weight.T + bias; weight (out, in) as PyTorch, uniform(+-1/sqrt(in)) at first."""

    def __init__(self, in_features, out_features, bias=True, device="cpu", dtype=None):
        in_features = _positive_int(in_features, "in_features", "Linear")
        out_features = _positive_int(out_features, "out_features", "Linear")
        bound = 1.0 / math.sqrt(in_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = _uniform((out_features, in_features), bound, device, dtype)   # (out, in)
        self.bias = _uniform((out_features,), bound, device, dtype) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)                 # (..., in) -> (..., out)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A table of `num_embeddings` vectors of size `embedding_dim`; the `padding_idx` row gets no gradient."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, device="cpu", dtype=None):
        num_embeddings = _positive_int(num_embeddings, "num_embeddings", "Embedding")
        embedding_dim = _positive_int(embedding_dim, "embedding_dim", "Embedding")
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)):
                raise TypeError(f"Embedding: padding_idx must be an int or None, got {type(padding_idx).__name__}")
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx must be in [{-num_embeddings}, {num_embeddings}), "
                                 f"got {padding_idx}")
            padding_idx = int(padding_idx) % num_embeddings  # -1 means the last row, as in torch
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.weight = _normal((num_embeddings, embedding_dim), 1.0, device, dtype)   # (V, C)
        if padding_idx is not None:
            self.weight.data[padding_idx] = 0

    def forward(self, idx):
        if not isinstance(idx, (Tensor, list, tuple, np.ndarray)):  # a raw device array (CuPy, strict)
            idx = Tensor._make(idx, backend.device_of(idx))
        return F.embedding(idx, self.weight, padding_idx=self.padding_idx)  # (*idx.shape, C)

    def extra_repr(self):
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class LayerNorm(Module):
    """Normalise the last axis, then scale (weight, ones) and shift (bias, zeros).

    As torch: `normalized_shape` is the size C of the last axis (an int, or a 1-element tuple or
    list); `elementwise_affine=False` leaves out weight and bias, `bias=False` the bias only.
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device="cpu", dtype=None):
        if isinstance(normalized_shape, (tuple, list)):
            if len(normalized_shape) != 1:  # torch also normalises over several trailing axes; tinylm does not
                raise ValueError("LayerNorm normalises the last axis only: normalized_shape must be an int or a "
                                 f"1-element tuple, got {tuple(normalized_shape)}")
            normalized_shape = normalized_shape[0]
        C = _positive_int(normalized_shape, "normalized_shape", "LayerNorm")
        if not eps >= 0:
            raise ValueError(f"LayerNorm: eps must be >= 0, got {eps}")
        self.normalized_shape, self.eps, self.elementwise_affine = (C,), eps, elementwise_affine
        self.weight = _const((C,), 1.0, device, dtype) if elementwise_affine else None
        self.bias = _const((C,), 0.0, device, dtype) if elementwise_affine and bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self):
        dropped = ", bias=False" if self.elementwise_affine and self.bias is None else ""
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}{dropped}"


class Dropout(Module):
    """Zero elements with probability p while training (inverted dropout); identity in eval()."""

    def __init__(self, p=0.5):
        self.p = _probability(p, "p", "Dropout")

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class GELU(Module):
    """GPT-2's GELU, tanh form: torch's `nn.GELU(approximate="tanh")` (the exact erf form is not implemented)."""

    def __init__(self, approximate="tanh"):
        if approximate != "tanh":
            raise ValueError(f"GELU: only the tanh approximation is implemented (approximate='tanh'), "
                             f"got approximate={approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x)

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


class MLP(Module):
    """The feed-forward block: Linear C -> 4C, GELU, Linear 4C -> C, dropout (GPT-2's c_fc, c_proj)."""

    def __init__(self, n_embd, dropout=0.0, bias=True, device="cpu"):
        self.c_fc = Linear(n_embd, 4 * n_embd, bias=bias, device=device)
        self.gelu = GELU()
        self.c_proj = Linear(4 * n_embd, n_embd, bias=bias, device=device)
        self.dropout = Dropout(dropout)

    def forward(self, x):
        x = self.c_fc(x)                                           # (B, T, 4C)
        x = self.gelu(x)
        x = self.c_proj(x)                                         # (B, T, C)
        return self.dropout(x)


class KVCache:
    """Keys and values of the tokens seen so far, per layer: k[i], v[i] (B, nh, max_len, hs) each.

    `length` tokens are filled; each attention layer appends its new keys and values, then
    `advance(T)` (called by the model after all layers) moves `length` on.
    """

    def __init__(self, n_layer, batch, n_head, max_len, head_size, device="cpu", dtype=None):
        xp = backend.array_module(device)
        shape = (batch, n_head, max_len, head_size)                # (B, nh, max_len, hs)
        dtype = np.dtype(dtype or backend.DEFAULT_DTYPE)
        self.k = [xp.zeros(shape, dtype=dtype) for _ in range(n_layer)]
        self.v = [xp.zeros(shape, dtype=dtype) for _ in range(n_layer)]
        self.max_len, self.length = max_len, 0

    def update(self, layer, k, v):
        """Store new k, v (B, nh, T, hs) of `layer` after the cached ones; all of them -> (B, nh, S, hs)."""
        t0, t1 = self.length, self.length + k.shape[2]
        if t1 > self.max_len:
            raise ValueError(f"KVCache: {t1} tokens do not fit a cache of {self.max_len}")
        self.k[layer][:, :, t0:t1] = k
        self.v[layer][:, :, t0:t1] = v
        return self.k[layer][:, :, :t1], self.v[layer][:, :, :t1]  # (B, nh, S, hs)

    def advance(self, n):
        """Mark n more tokens as stored (after every layer has seen them)."""
        self.length += n

    def reset(self):
        """Forget every token (the arrays are kept for reuse)."""
        self.length = 0


class MultiHeadAttention(Module):
    """Self-attention over nh heads at once: fused QKV projection `c_attn`, output projection `c_proj`.

    Self-attention only: queries, keys and values are all projected from the one input x, so
    `forward(x, *, attn_mask=None, kv_cache=None, layer=0, return_weights=False)` takes x alone
    and the rest by keyword (not torch's `mha(query, key, value)`). `causal=True` masks the
    future (CausalSelfAttention); attn_mask is boolean, True where allowed, broadcastable to
    (B, nh, T, S).
    """

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True, causal=False, device="cpu"):
        n_embd = _positive_int(n_embd, "n_embd", type(self).__name__)
        n_head = _positive_int(n_head, "n_head", type(self).__name__)
        dropout = _probability(dropout, "dropout", type(self).__name__)
        if n_embd % n_head:
            raise ValueError(f"n_embd {n_embd} is not divisible by n_head {n_head}")
        self.n_embd, self.n_head, self.causal, self.dropout_p = n_embd, n_head, causal, dropout
        self.c_attn = Linear(n_embd, 3 * n_embd, bias=bias, device=device)   # W^Q, W^K, W^V stacked
        self.c_proj = Linear(n_embd, n_embd, bias=bias, device=device)       # W^O
        self.resid_dropout = Dropout(dropout)

    def forward(self, x, *more, attn_mask=None, kv_cache=None, layer=0, return_weights=False):
        if more:  # e.g. torch's mha(query, key, value): say so, rather than fail later on a "mask" or "cache"
            raise TypeError(f"{type(self).__name__} is self-attention: forward(x) takes one input x (B, T, C) "
                            f"for queries, keys and values, got {1 + len(more)} positional arguments; pass "
                            "attn_mask, kv_cache, layer and return_weights by keyword")
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        qkv = self.c_attn(x)                                       # (B, T, 3C)
        if kv_cache is not None and qkv.requires_grad:  # recorded for backward, but the cache would cut the graph
            raise RuntimeError("a KVCache is for inference: call the model under tinylm.no_grad()")
        if attn_mask is None and not return_weights:
            # the fast path: split heads, attend, merge heads in one fused op (the same math as below)
            y = F.causal_self_attention(qkv, nh, self.dropout_p, self.training, causal=self.causal,
                                        kv_cache=kv_cache, layer=layer)  # (B, T, C)
            return self.resid_dropout(self.c_proj(y))              # (B, T, C)
        q, k, v = F.split(qkv, C, axis=-1)                         # (B, T, 3C) -> 3 x (B, T, C)
        q = q.reshape(B, T, nh, hs).transpose(1, 2)                # (B, nh, T, hs)
        k = k.reshape(B, T, nh, hs).transpose(1, 2)                # (B, nh, T, hs)
        v = v.reshape(B, T, nh, hs).transpose(1, 2)                # (B, nh, T, hs)
        if kv_cache is not None:  # inference: attend to the cached keys too (no gradient through them)
            k_all, v_all = kv_cache.update(layer, k.data, v.data)  # (B, nh, S, hs)
            k, v = Tensor._make(k_all, x.device), Tensor._make(v_all, x.device)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=self.causal, dropout_p=self.dropout_p,
            training=self.training, return_weights=return_weights)  # (B, nh, T, hs)
        if return_weights:
            y, weights = y                                         # weights (B, nh, T, S)
        y = y.transpose(1, 2).reshape(B, T, C)                     # (B, T, nh, hs) -> (B, T, C)
        y = self.resid_dropout(self.c_proj(y))                     # (B, T, C)
        return (y, weights) if return_weights else y

    def extra_repr(self):
        return f"n_embd={self.n_embd}, n_head={self.n_head}, causal={self.causal}"


class CausalSelfAttention(MultiHeadAttention):
    """MultiHeadAttention that masks the future (GPT's attention)."""

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True, device="cpu"):
        super().__init__(n_embd, n_head, dropout=dropout, bias=bias, causal=True, device=device)


class Block(Module):
    """A pre-LN transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True, device="cpu"):
        self.ln_1 = LayerNorm(n_embd, bias=bias, device=device)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout=dropout, bias=bias, device=device)
        self.ln_2 = LayerNorm(n_embd, bias=bias, device=device)
        self.mlp = MLP(n_embd, dropout=dropout, bias=bias, device=device)

    def forward(self, x, *, kv_cache=None, layer=0):
        x = x + self.attn(self.ln_1(x), kv_cache=kv_cache, layer=layer)  # (B, T, C)
        x = x + self.mlp(self.ln_2(x))                                    # (B, T, C)
        return x


# ---------------------------------------------------------------------------- PyTorch's paths
class utils:
    """`nn.utils.clip_grad_norm_`, where PyTorch keeps it (the same function as tinylm.optim's)."""

    @staticmethod
    def clip_grad_norm_(parameters, max_norm, eps=1e-6):
        """Scale all gradients together so their global L2 norm is at most max_norm; the norm before (a float)."""
        from .optim import clip_grad_norm_
        return clip_grad_norm_(parameters, max_norm, eps)


functional = F  # `from tinylm.nn import functional as F` and `import tinylm.nn.functional as F`, as in PyTorch
sys.modules[__name__ + ".functional"] = F
