"""Module, Parameter and ModuleList: the bookkeeping PyTorch users know from `torch.nn`.

A `Module` registers the Parameters and Modules assigned to its attributes, in order;
`register_buffer` adds state that is not learnt. A tied weight is one Parameter under two
names, listed once. `state_dict()` maps names to the live arrays (not copies), as PyTorch;
`load_state_dict()` copies arrays or Tensors in and names every missing, unexpected or
wrongly shaped key.

Reference: torch.nn.Module (names and semantics).
"""
from collections import OrderedDict, namedtuple

import numpy as np

from .. import backend
from ..engine import raw_grad
from ..tensor import Tensor


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
                raw_grad(p.grad)[...] = 0                     # in place, and inf * 0 is no 0

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
                p.grad = None if p.grad is None else backend.to_device(raw_grad(p.grad), device)
                p.device = device
            if dtype is not None and p.dtype.kind == "f" and p.dtype != dtype:  # as torch: integers keep theirs
                p.data = p.data.astype(dtype)
                p.grad = None if p.grad is None else p.grad.astype(dtype)
        return self

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
