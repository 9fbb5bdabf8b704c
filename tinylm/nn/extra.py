"""nn's outer ring: the containers and layers a GPT does not need, and PyTorch's nn.utils path.

Sequential, ModuleDict, ReLU, Tanh, Identity, `nn.utils.clip_grad_norm_`. The GPT's own layers
live in tinylm/nn/layers.py and attention.py; nothing there imports this module.

Reference: torch.nn (names and semantics).
"""
from .. import functional as F
import numpy as np

from .module import Module, ModuleList, _check_module


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
    def clip_grad_norm_(parameters, max_norm, eps=1e-6):
        """Scale all gradients together so their global L2 norm is at most max_norm; the norm before (a float)."""
        from ..optim import clip_grad_norm_
        return clip_grad_norm_(parameters, max_norm, eps)


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
