"""Hugging Face GPT-2 folders: `GPT.from_pretrained(folder)` and `model.save_pretrained(folder)`.

Owns the folder format (config.json with HF's names + model.safetensors with HF's tensor names
and Conv1D layout) and its safety. Attached to GPT at import (`import tinylm` does it), so the
core never imports this ring.

Reading a folder that may come from a stranger: config.json is read through tinylm.validate
(size and depth limits, UTF-8), every field the GPT uses is checked for type and range, and the
safetensors header's names and shapes are compared with the config BEFORE the model is built, so
`n_layer: 100000` beside 1-layer weights fails at once instead of allocating 100,000 layers.
Every error is a ValueError (TypeError for a wrong type) naming the file and the field.

Writing is atomic as a folder: both files go into a sibling temporary folder, are fsynced, and
the folder is renamed into place; an existing folder is swapped with the new one in one
renameat2(RENAME_EXCHANGE) on Linux (elsewhere: renamed aside, the new one renamed in, the old one
removed), so a reader sees the old folder or the new one. Files other than config.json and
model.safetensors in the old folder (tokenizer files) are carried into the new one. Files follow
the umask (0644 by default), as transformers' do.

Leaves out: sharded checkpoints, pytorch_model.bin (pickle), GPT-2 variants tinylm's GPT does not
compute (refused by name). Reference: Hugging Face `modeling_gpt2.py` (names, Conv1D) and
`configuration_gpt2.py` (config fields).
"""
import ctypes
import dataclasses
import json
import os
import re
import secrets
import shutil
import sys

import numpy as np

from . import backend
from .model import GPT, GPTConfig
from .safetensors import _fsync_dir, atomic_write, read_safetensors, write_safetensors
from .validate import brief, check_int, check_number, read_json

# Hugging Face GPT-2 stores these as Conv1D weights, (in, out): transposed against Linear's (out, in).
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
MAX_SIZE = 2**31 - 1           # vocab_size, n_positions, n_layer, n_head, n_embd: within int32
_FLOATS = ("F64", "F32", "F16", "BF16")


# ---------------------------------------------------------------------------- reading
def expected_shapes(config):
    """{name: shape} of a GPT's state_dict in HF's layout (Conv1D weights (in, out)), from its config alone."""
    V, T, C = config.vocab_size, config.block_size, config.n_embd
    out = {"wte.weight": (V, C), "wpe.weight": (T, C), "ln_f.weight": (C,), "ln_f.bias": (C,)}
    for i in range(config.n_layer):
        p = f"h.{i}."
        out.update({p + "ln_1.weight": (C,), p + "ln_1.bias": (C,), p + "attn.c_attn.weight": (C, 3 * C),
                    p + "attn.c_attn.bias": (3 * C,), p + "attn.c_proj.weight": (C, C), p + "attn.c_proj.bias": (C,),
                    p + "ln_2.weight": (C,), p + "ln_2.bias": (C,), p + "mlp.c_fc.weight": (C, 4 * C),
                    p + "mlp.c_fc.bias": (4 * C,), p + "mlp.c_proj.weight": (4 * C, C), p + "mlp.c_proj.bias": (C,)})
    return out


def read_gpt2_config(cfg_path, dropout=0.0):
    """A GPTConfig from a Hugging Face GPT-2 config.json; ValueError/TypeError naming the file and field."""
    hf = read_json(cfg_path, max_bytes=2**20)                 # a GPT-2 config.json is under 1 KB
    if not isinstance(hf, dict):
        raise ValueError(f"{cfg_path}: expected a JSON object of GPT-2 settings, got {type(hf).__name__}")

    def field(key, default=None):
        return hf.get(key, default), f"{cfg_path}: {key}"

    value, where = field("layer_norm_epsilon", 1e-5)
    eps = check_number(value, where, 0.0)
    act, where = field("activation_function", "gelu_new")
    if not isinstance(act, str):
        raise TypeError(f"{where} must be a str, got {brief(act)}")
    if abs(eps - 1e-5) > 1e-12 or act not in ("gelu_new", "gelu_pytorch_tanh"):
        raise ValueError(f"{cfg_path}: tinylm's GPT uses layer_norm_epsilon 1e-5 and GELU's tanh form, "
                         f"got {eps} and {brief(act)}")
    sizes = {}
    for key in ("vocab_size", "n_layer", "n_head", "n_embd"):
        if key not in hf:
            raise ValueError(f"{cfg_path}: missing field '{key}'")
        sizes[key] = check_int(hf[key], f"{cfg_path}: {key}", 1, MAX_SIZE)
    key = "n_positions" if "n_positions" in hf else "n_ctx"
    if key not in hf:
        raise ValueError(f"{cfg_path}: missing field 'n_positions' (or 'n_ctx')")
    sizes["block_size"] = check_int(hf[key], f"{cfg_path}: {key}", 1, MAX_SIZE)
    if sizes["n_embd"] % sizes["n_head"]:
        raise ValueError(f"{cfg_path}: n_embd {sizes['n_embd']} is not divisible by n_head {sizes['n_head']}")
    # GPT-2 variants that tinylm's GPT does not compute: refused rather than loaded into wrong numbers
    n_inner = hf.get("n_inner")
    if n_inner is not None and check_int(n_inner, f"{cfg_path}: n_inner", 1, MAX_SIZE) != 4 * sizes["n_embd"]:
        raise ValueError(f"{cfg_path}: tinylm's GPT has an MLP 4 * n_embd wide, got n_inner {n_inner!r}")
    for key, want in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                      ("add_cross_attention", False), ("tie_word_embeddings", True)):
        if not isinstance(hf.get(key, want), bool):
            raise TypeError(f"{cfg_path}: {key} must be true or false, got {brief(hf[key])}")
        if key != "tie_word_embeddings" and hf.get(key, want) != want:
            raise ValueError(f"{cfg_path}: tinylm's GPT needs {key} {str(want).lower()}, got {hf[key]!r}")
    return GPTConfig(dropout=dropout, bias=True, **sizes), hf


def _check_weights(st_path, tensors, config):
    """Names, shapes and dtypes of the safetensors tensors against the config, before any model exists."""
    layers = {int(m.group(1)) for name in tensors if (m := re.match(r"(?:transformer\.)?h\.(\d{1,9})\.", name))}
    if layers != set(range(len(layers))) or len(layers) != config.n_layer:
        raise ValueError(f"{st_path} holds weights for {len(layers)} layer(s) (indices {brief(sorted(layers))}), "
                         f"but config.json says n_layer {config.n_layer}")
    want = expected_shapes(config)
    state, head = {}, None
    for name, arr in tensors.items():
        key = name[len("transformer."):] if name.startswith("transformer.") else name
        if key.endswith((".attn.bias", ".attn.masked_bias")):
            continue                                          # the causal-mask buffers are rebuilt by F
        if arr.dtype.kind != "f":
            raise ValueError(f"{st_path}: tensor {name!r} has dtype {arr.dtype}; GPT-2 weights are floats")
        if key == "lm_head.weight":
            if arr.shape != want["wte.weight"]:
                raise ValueError(f"{st_path}: lm_head.weight: checkpoint {arr.shape} vs model {want['wte.weight']}")
            head = arr
            continue
        if key not in want:
            raise ValueError(f"{st_path}: unexpected keys: {key[:200]} (not a GPT-2 tensor)")
        if arr.shape != want[key]:
            raise ValueError(f"{st_path}: {key}: checkpoint {arr.shape} vs model {want[key]} (from config.json: "
                             f"vocab_size {config.vocab_size}, n_positions {config.block_size}, n_embd "
                             f"{config.n_embd}; HF's Conv1D layout)")
        state[key] = arr
    missing = [k for k in want if k not in state]
    if missing:
        raise ValueError(f"{st_path}: missing keys: {', '.join(missing[:10])}")
    return state, head


def from_pretrained(cls, path, device="cpu", dropout=0.0):
    """A GPT from a Hugging Face GPT-2 folder (config.json + model.safetensors), any size."""
    path = os.fspath(path)
    cfg_path, st_path = os.path.join(path, "config.json"), os.path.join(path, "model.safetensors")
    for p in (cfg_path, st_path):
        if not os.path.isfile(p):
            raise FileNotFoundError(f"from_pretrained: {p} not found (expected a Hugging Face GPT-2 folder)")
    config, hf = read_gpt2_config(cfg_path, dropout)
    state, head = _check_weights(st_path, read_safetensors(st_path), config)   # memory-mapped: nothing read yet
    # tinylm's head is tied to wte, as GPT-2's: a checkpoint with a head of its own cannot load as it is
    if hf.get("tie_word_embeddings", True) is False and head is not None \
            and not np.array_equal(head, state["wte.weight"]):
        raise ValueError(f"{st_path}: lm_head.weight differs from wte.weight (tie_word_embeddings false); "
                         "tinylm's GPT ties the two and cannot load an untied head")
    model = cls(config, device=device)
    model.load_state_dict({k: v.T if k.endswith(CONV1D) else v for k, v in state.items()})
    return model


# ---------------------------------------------------------------------------- writing
def _rename_exchange(a, b):
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), exchange) == 0:
        return True
    return False                                              # e.g. a file system without the flag


def _temporary_dir(path):
    """A new empty folder beside `path`: .NAME.<8 hex>.tmp, mode 0777 less the umask."""
    parent, base = os.path.split(os.path.abspath(path))
    while True:
        tmp = os.path.join(parent, f".{base}.{secrets.token_hex(4)}.tmp")
        try:
            os.mkdir(tmp)
            return tmp
        except FileExistsError:
            continue


def _remove_stale(path):
    """Delete the temporary folders that killed save_pretrained calls for `path` left beside it."""
    parent, base = os.path.split(os.path.abspath(path))
    pattern = re.compile(r"\.%s\.[0-9a-f]{8}\.tmp" % re.escape(base))
    for entry in os.listdir(parent):
        full = os.path.join(parent, entry)
        if pattern.fullmatch(entry) and os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full, ignore_errors=True)


def save_pretrained(self, path):
    """Write a Hugging Face GPT-2 folder: config.json (HF names) and model.safetensors (float32), atomically."""
    c = self.config
    if not c.bias:
        raise ValueError("save_pretrained: GPT-2 checkpoints have biases; this model has bias=False")
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"save_pretrained: {path} exists and is not a folder")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _remove_stale(path)
    tensors = {}
    for name, arr in self.state_dict().items():
        arr = backend.to_numpy(arr)
        tensors["transformer." + name] = arr.T if name.endswith(CONV1D) else arr
    hf = {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "activation_function": "gelu_new",
        "vocab_size": c.vocab_size, "n_positions": c.block_size, "n_ctx": c.block_size,
        "n_embd": c.n_embd, "n_layer": c.n_layer, "n_head": c.n_head, "layer_norm_epsilon": 1e-5,
        "attn_pdrop": c.dropout, "embd_pdrop": c.dropout, "resid_pdrop": c.dropout,
        "initializer_range": 0.02, "tie_word_embeddings": True,
    }
    # GPT-2's BPE: <|endoftext|> is 50256; other vocabularies have no such token (null, not
    # transformers' default 50256, which it warns about when it lies outside the vocabulary)
    eot = 50256 if c.vocab_size == 50257 else None
    hf.update(bos_token_id=eot, eos_token_id=eot)
    tmp = _temporary_dir(path)
    try:
        write_safetensors(os.path.join(tmp, "model.safetensors"), tensors, metadata={"format": "pt"})
        atomic_write(os.path.join(tmp, "config.json"),
                     lambda f: f.write((json.dumps(hf, indent=2) + "\n").encode("utf-8")))
        if os.path.isdir(path):                               # keep what else the old folder held (tokenizer files)
            for entry in os.listdir(path):
                src, dst = os.path.join(path, entry), os.path.join(tmp, entry)
                if entry in ("config.json", "model.safetensors"):
                    continue
                if os.path.isdir(src) and not os.path.islink(src):
                    shutil.copytree(src, dst, symlinks=True)
                else:
                    shutil.copy2(src, dst, follow_symlinks=False)
        _fsync_dir(tmp)
        if not os.path.isdir(path):
            os.rename(tmp, path)
        elif _rename_exchange(tmp, path):                     # tmp now holds the old folder
            pass
        else:                                                 # aside, in, remove: a short window without it
            aside = _temporary_dir(path)
            os.rmdir(aside)
            os.rename(path, aside)
            os.rename(tmp, path)
            tmp = aside
        _fsync_dir(os.path.dirname(path))
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return path

def crop_block_size(self, block_size):
    """Keep only the first `block_size` learned positions (fine-tune GPT-2 on shorter contexts)."""
    if not isinstance(block_size, int) or not 0 < block_size <= self.config.block_size:
        raise ValueError(f"crop_block_size: block_size must be an int in [1, {self.config.block_size}], "
                         f"got {block_size!r}")
    self.config = dataclasses.replace(self.config, block_size=block_size)
    self.wpe.num_embeddings = block_size
    self.wpe.weight.data = self.wpe.weight.data[:block_size].copy()        # (block_size, C)
    return self


GPT.from_pretrained = classmethod(from_pretrained)
GPT.save_pretrained = save_pretrained
GPT.crop_block_size = crop_block_size

__all__ = ["from_pretrained", "save_pretrained", "read_gpt2_config", "expected_shapes"]
