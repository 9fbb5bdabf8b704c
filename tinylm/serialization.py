"""`tinylm.save` / `tinylm.load`: PyTorch's torch.save and torch.load, without pickle.

A state_dict, or a nest of dicts, lists, arrays, Tensors, numbers and strings, goes into one
.npz (arrays) with JSON (the rest), written atomically by tinylm/checkpoint.py.
"""
import builtins

import numpy as np

from . import backend
from .checkpoint import load_checkpoint, save_checkpoint
from .tensor import Tensor


def save(obj, path):
    """Write `obj` to `path` as one .npz (arrays) with JSON (the rest), atomically, never pickle.

    `obj` is a state_dict, or a nest of dicts, lists, arrays, Tensors, numbers and strings, as
    nanoGPT's `torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), ...})`.
    Returns the path. (`tinylm.checkpoint.save_checkpoint` is the training loop's richer format.)
    """
    obj = _host_tree(obj)
    if isinstance(obj, dict) and builtins.all(isinstance(k, str) and hasattr(v, "shape") and not isinstance(v, np.generic)
                                     for k, v in obj.items()):
        return save_checkpoint(path, obj)                      # a state_dict: arrays by name
    if not isinstance(obj, (dict, list, tuple)):
        raise TypeError(f"save: expected a state_dict or a dict/list of them, got {type(obj).__name__}")
    return save_checkpoint(path, {}, extra={"object": obj})


def load(path, device="cpu", map_location=None):
    """What `save` wrote, with its arrays on `device` (PyTorch's `map_location` too), read without pickle:
    `model.load_state_dict(tl.load("model.npz"))`."""
    ck = load_checkpoint(path)
    device = map_location or device
    return _device_tree(ck.extra["object"] if "object" in ck.extra and not ck.model else dict(ck.model), device)


def _host_tree(obj):
    if isinstance(obj, Tensor):
        return obj.data
    if isinstance(obj, dict):
        return {k: _host_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_host_tree(v) for v in obj]
    return obj


def _device_tree(obj, device):
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        return backend.to_device(obj, device)
    if isinstance(obj, dict):
        return {k: _device_tree(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_device_tree(v, device) for v in obj]
    return obj
