"""Checkpoints: model and optimizer state, config, tokenizer, step and seed in one .npz file, no pickle.

Owns the file format and its safety. One checkpoint is one `.npz` (a zip of `.npy` arrays):

    meta.json          uint8 array: UTF-8 JSON {"format": "tinylm-checkpoint", "version": 1,
                       "step", "seed", "config", "tokenizer", "extra", "model": [names],
                       "optimizer": the optimizer state with each array replaced by {"__array__": key}}
    model/<name>       one array per model state_dict entry (float32 stays float32)
    optimizer/<i>/...  the optimizer's arrays (moment buffers), referenced from meta.json

The JSON lives inside the npz rather than in a sidecar file so that one os.replace() swaps
the whole checkpoint atomically: a crash can never pair new arrays with old metadata.
Saving writes a temporary file in the target's directory, fsyncs it, renames it into place
and fsyncs the directory, so the previous checkpoint survives any crash before the rename.
Loading never unpickles (an object array is refused) and trusts no size the file states: each
member's .npy header is parsed and its shape x itemsize checked against the member's size, and a
compressed member may inflate at most MAX_RATIO (100) times, before anything is allocated
(`read_npz`); meta.json is parsed with tinylm.validate's depth and size limits. Every array is
read in full, so zip CRC checks catch a truncated or edited file; every failure is a ValueError
naming the file.

Resuming: the training loop reseeds its generators every step from (run seed, step), so the
saved `seed` and `step` are the whole RNG state a bit-for-bit `--resume` needs.

Leaves out: sharded or streamed checkpoints, PyTorch/GPT-2 weight import, compression.
Reference: numpy.savez/np.load docs (allow_pickle), nanoGPT's train.py checkpoint dict
(model, optimizer, model_args, iter_num, best_val_loss, config).
"""
import dataclasses
import json
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from . import backend
from .safetensors import atomic_write
from .tensor import Tensor
from .validate import check_shape, is_size as _is_size, parse_json

FORMAT = "tinylm-checkpoint"
VERSION = 1
META = "meta.json"
MAX_RATIO = 100                # a member may inflate to at most 100x its compressed bytes (tinylm stores, 1x)
SLACK = 2**20                  # ... plus 1 MiB, and all members together to 100x the file plus 1 MiB
_KINDS = "biufcSU"             # dtypes a checkpoint may hold: numbers, bools, strings (never objects)


@dataclass
class Checkpoint:
    """What `load_checkpoint` returns: host NumPy arrays and plain JSON data."""

    model: dict                 # {name: np.ndarray}, ready for model.load_state_dict
    optimizer: dict | None      # the optimizer's state_dict (arrays as np.ndarray), or None
    config: dict                # the model config, e.g. dataclasses.asdict(GPTConfig(...))
    tokenizer: dict | None      # tokenizer.to_dict(), or None
    step: int                   # training steps done
    seed: int                   # the run's seed (with step, all the RNG state a resume needs)
    extra: dict = field(default_factory=dict)  # anything else JSON-able: best val loss, run args, ...
    path: str = ""              # the file it was read from


# ---------------------------------------------------------------------------- encoding
def _plain(obj, where):
    """A dataclass or dict as a plain dict (TypeError naming `where` otherwise)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if obj is None or isinstance(obj, dict):
        return obj
    raise TypeError(f"{where} must be a dict or a dataclass, got {type(obj).__name__}")


def _is_array(x):
    return isinstance(x, (np.ndarray, Tensor)) or (hasattr(x, "shape") and hasattr(x, "dtype")
                                                    and not isinstance(x, np.generic))


def _host(x, where):
    """Any device array (or Tensor) as a NumPy array; object arrays are refused."""
    a = backend.to_numpy(x.data if isinstance(x, Tensor) else x)
    if a.dtype.hasobject:
        raise TypeError(f"{where}: object arrays cannot be saved (they would need pickle)")
    return a


def _encode(obj, key, arrays):
    """JSON-able copy of obj with each array stored in `arrays[key...]` and replaced by a reference."""
    if _is_array(obj):
        arrays[key] = _host(obj, key)
        return {"__array__": key}
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, str):
                raise TypeError(f"{key}: dict keys must be str to be saved, got {type(k).__name__} {k!r}")
            if "/" in k or k == "__array__":  # '/' joins the array names; '__array__' marks a reference
                raise ValueError(f"{key}: the key {k!r} cannot be saved (no '/' and not '__array__')")
        return {k: _encode(v, f"{key}/{k}", arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v, f"{key}/{i}", arrays) for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"{key}: cannot save a {type(obj).__name__} in a checkpoint (use arrays, numbers, str, "
                    "lists and dicts)")


def _decode(obj, arrays, path):
    """Undo `_encode`: references become the arrays they name."""
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            if not isinstance(obj["__array__"], str) or obj["__array__"] not in arrays:
                raise ValueError(f"checkpoint {path}: meta.json names array {obj['__array__']!r}, which is missing")
            return arrays[obj["__array__"]]
        return {k: _decode(v, arrays, path) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, arrays, path) for v in obj]
    return obj


# ---------------------------------------------------------------------------- save / load
def save_checkpoint(path, model_state, optimizer_state=None, config=None, tokenizer=None, step=0,
                    extra=None, seed=None):
    """Write one .npz checkpoint atomically (temporary file, fsync, os.replace); arrays go to host memory.

    model_state: {name: array}; optimizer_state: optimizer.state_dict() or None; config: dict or
    dataclass; tokenizer: tokenizer.to_dict() or None; step: int; extra: JSON-able dict;
    seed: the run's seed (default: tinylm.backend.initial_seed()). Returns the path.
    """
    if not isinstance(model_state, dict):
        raise TypeError(f"model_state must be a dict of arrays, got {type(model_state).__name__}")
    if optimizer_state is not None and not isinstance(optimizer_state, dict):
        raise TypeError(f"optimizer_state must be a dict (optimizer.state_dict()) or None, got "
                        f"{type(optimizer_state).__name__}")
    if not _is_size(step):
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    seed = backend.initial_seed() if seed is None else seed
    if not _is_size(seed):
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    arrays, names = {}, []
    for name, value in model_state.items():
        if not isinstance(name, str) or not _is_array(value):
            raise TypeError(f"model_state entry {name!r} must map a str to an array, got {type(value).__name__}")
        arrays[f"model/{name}"] = _host(value, f"model_state[{name!r}]")
        names.append(name)
    meta = {"format": FORMAT, "version": VERSION, "step": int(step), "seed": int(seed), "model": names,
            "config": _encode(_plain(config, "config") or {}, "config", arrays),
            "tokenizer": _encode(_plain(tokenizer, "tokenizer"), "tokenizer", arrays),
            "extra": _encode(_plain(extra, "extra") or {}, "extra", arrays),
            "optimizer": _encode(optimizer_state, "optimizer", arrays)}
    arrays[META] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)

    return atomic_write(path, lambda f: np.savez(f, **arrays))


def read_npz(path):
    """{name: array} from an .npz archive that may come from a stranger, without pickle and
    without trusting a single size it states: each member's .npy header is parsed first and its
    shape x itemsize must equal the member's size; a member may inflate to at most MAX_RATIO times
    its compressed bytes (+ SLACK), all of them together to MAX_RATIO times the file (+ SLACK).
    Only then is the member read (zipfile stops at the stated size and checks the CRC)."""
    size = os.path.getsize(path)
    if not zipfile.is_zipfile(path):
        raise ValueError("it is not an .npz archive (a zip of .npy arrays)")
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        total = 0
        for info in infos:
            if info.compress_size > size:
                raise ValueError(f"member {info.filename!r} claims {info.compress_size} compressed bytes "
                                 f"in a file of {size}")
            if info.file_size > MAX_RATIO * info.compress_size + SLACK:
                raise ValueError(f"member {info.filename!r} inflates {info.compress_size} bytes to "
                                 f"{info.file_size}, more than the {MAX_RATIO}x a checkpoint may")
            total += info.file_size
        if total > MAX_RATIO * size + SLACK:
            raise ValueError(f"its members hold {total} bytes, more than {MAX_RATIO}x the file's {size}")
        arrays = {}
        for info in infos:
            name = info.filename
            if not name.endswith(".npy") or name[:-4] in arrays:
                raise ValueError(f"member {name!r} is not a .npy array, or appears twice")
            with zf.open(info) as f:
                _check_npy(f, info, name)
            with zf.open(info) as f:                          # sizes known good: NumPy reads it in place
                arrays[name[:-4]] = np.lib.format.read_array(f, allow_pickle=False, max_header_size=10000)
    return arrays


def _check_npy(f, info, name):
    """One .npy member's header, parsed and checked against the member's size (nothing allocated)."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"member {name!r} is .npy version {version}; tinylm reads 1.0 and 2.0")
    read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, _, dtype = read_header(f, max_header_size=10000)
    if dtype.hasobject or dtype.kind not in _KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"member {name!r} has dtype {dtype}, which a checkpoint cannot hold (objects would "
                         "need pickle: allow_pickle is never on)")
    nbytes = check_shape(shape, dtype.itemsize, f"member {name!r}")
    if f.tell() + nbytes != info.file_size:
        raise ValueError(f"member {name!r}: shape {shape} of {dtype} needs {nbytes} bytes after its "
                         f"{f.tell()}-byte header, but the member holds {info.file_size}")


def _check_meta(meta):
    """ValueError naming the first field of meta.json that `save_checkpoint` could not have written."""
    kinds = {"step": (_is_size, "a non-negative int"), "seed": (_is_size, "a non-negative int"),
             "model": (lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v), "a list of names"),
             "config": (lambda v: isinstance(v, dict), "a dict"), "extra": (lambda v: isinstance(v, dict), "a dict"),
             "tokenizer": (lambda v: v is None or isinstance(v, dict), "a dict or null"),
             "optimizer": (lambda v: v is None or isinstance(v, dict), "a dict or null")}
    for key, (ok, what) in kinds.items():
        if key not in meta or not ok(meta[key]):
            raise ValueError(f"{META}: {key!r} must be {what}, got {meta.get(key, 'nothing')!r:.80}")


def load_checkpoint(path, config=None, ignore=()):
    """Read a checkpoint written by `save_checkpoint` (no pickle); ValueError naming the file if it is damaged.

    With `config`, also `check_config(saved, config, ignore)` before returning.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        arrays = read_npz(path)                               # sizes checked before anything is allocated
        if META not in arrays:
            raise ValueError(f"it has no {META} entry")
        raw = arrays.pop(META)
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError(f"{META} must be a 1-D uint8 array, got {raw.dtype} of shape {raw.shape}")
        meta = parse_json(raw.tobytes(), META)                # depth-limited; its size is the member's
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"{META} does not describe a {FORMAT}")
        if meta.get("version") != VERSION:
            raise ValueError(f"format version {meta.get('version')!r} is not supported (this tinylm reads {VERSION})")
        _check_meta(meta)
        for name in meta["model"]:
            if f"model/{name}" not in arrays:
                raise ValueError(f"model array {name!r} is missing")
        model = {name: arrays[f"model/{name}"] for name in meta["model"]}
        ckpt = Checkpoint(model=model, optimizer=_decode(meta["optimizer"], arrays, path),
                          config=_decode(meta["config"], arrays, path),
                          tokenizer=_decode(meta["tokenizer"], arrays, path), step=meta["step"],
                          seed=meta["seed"], extra=_decode(meta["extra"], arrays, path), path=path)
    except (ValueError, KeyError, TypeError, OSError, EOFError, zipfile.BadZipFile, zlib.error, struct.error,
            NotImplementedError, RuntimeError, OverflowError) as e:   # zipfile's own: encrypted, unknown method
        if isinstance(e, (PermissionError, IsADirectoryError)) or str(e).startswith(f"checkpoint {path}"):
            raise
        raise ValueError(f"checkpoint {path} is damaged or not a tinylm checkpoint: {e}") from None
    if config is not None:
        check_config(ckpt.config, config, ignore)
    return ckpt


def check_config(saved, current, ignore=()):
    """ValueError naming every field where the saved config and the current one differ (fields in `ignore` skipped)."""
    saved = json.loads(json.dumps(_plain(saved, "saved config")))      # tuples -> lists, as stored
    current = json.loads(json.dumps(_plain(current, "current config")))
    diffs = []
    for key in sorted(set(saved) | set(current)):
        if key in ignore:
            continue
        if key not in saved:
            diffs.append(f"{key}: not in the checkpoint, current {current[key]!r}")
        elif key not in current:
            diffs.append(f"{key}: saved {saved[key]!r}, not in the current config")
        elif saved[key] != current[key]:
            diffs.append(f"{key}: saved {saved[key]!r}, current {current[key]!r}")
    if diffs:
        raise ValueError("the checkpoint's config differs from the current one: " + "; ".join(diffs))


__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "check_config", "read_npz"]
