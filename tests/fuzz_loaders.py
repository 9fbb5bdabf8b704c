"""Fuzz one loader with hypothesis, under a memory cap and a time cap: run by tests/test_fuzz_loaders.py.

    python tests/fuzz_loaders.py KIND EXAMPLES WORKDIR       KIND: safetensors, checkpoint or gpt2

Writes a valid file of KIND in WORKDIR, then loads mutated copies of it: bit flips, truncations,
inserted bytes, and structural edits (a header or JSON field replaced by a hostile value: huge or
negative numbers, 5,000-digit numbers, JSON nested 5,000 deep, 65 dimensions, wrong types; a
member's .npy header rewritten; members deflated). Each load may succeed or raise ValueError /
TypeError whose message names the file; anything else (RecursionError, MemoryError, OverflowError,
KeyError, a hang past the time cap, ...) fails, and hypothesis prints the smallest failing edit.
The process's address space is capped (RLIMIT_AS) at what setup took plus CAP_MB, so an
allocation a lying header asks for fails loudly instead of swapping the machine.
"""
import io
import json
import os
import resource
import signal
import struct
import sys
import zipfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import tinylm as tl                                                       # noqa: E402
from tinylm.checkpoint import load_checkpoint, save_checkpoint            # noqa: E402
from tinylm.model import GPT, GPTConfig                                   # noqa: E402
from tinylm.safetensors import read_safetensors, write_safetensors       # noqa: E402

CAP_MB = 512          # new address space each case may use
TIME_CAP_S = 10       # seconds each case may take

# JSON texts an attacker would try, spliced in where a value belongs
HOSTILE_TEXT = ["9" * 5000, "-" + "9" * 5000, "[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000,
                "1e999", "-1e999", "NaN", "Infinity", "-1", "0", "18446744073709551616", "9223372036854775808",
                "9223372036854775807", "[18446744073709551616, 0]", "[" + ",".join(["1"] * 65) + "]",
                "[" + ",".join(["1"] * 64) + "]", "[-1]", "[1.5]", "[true]", "[[1]]", "null", "true", "\"x\"",
                "[]", "{}", '"\\ud800"', "[1e308, 1e308]", "[4611686018427387904, 4]", "1.0", "100000"]
json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=4),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner,
                                                                                      max_size=3), max_leaves=8)
hostile = st.one_of(st.sampled_from(HOSTILE_TEXT), st.sampled_from(HOSTILE_TEXT),      # 2 in 3: the known attacks
                    json_values.map(lambda v: json.dumps(v, allow_nan=True)))


def splice(obj, key_path, text):
    """json.dumps(obj) with the value at `key_path` (a list of keys / indices) replaced by raw JSON `text`."""
    hole = "\x00HOLE\x00"
    target = obj
    for k in key_path[:-1]:
        target = target[k]
    target[key_path[-1]] = hole
    return json.dumps(obj).replace(json.dumps(hole), text)


def paths_of(obj, prefix=()):
    """Every key path in a JSON object (for picking a field to replace)."""
    out = [list(prefix)] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += paths_of(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += paths_of(v, prefix + (i,))
    return out


@st.composite
def byte_edits(draw, data):
    """Bit flips, a truncation or an insertion anywhere in `data`."""
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "overwrite"]))
    b = bytearray(data)
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(b) - 1))
            b[i] ^= 1 << draw(st.integers(0, 7))
    elif kind == "truncate":
        del b[draw(st.integers(0, len(b) - 1)):]
    elif kind == "insert":
        i = draw(st.integers(0, len(b)))
        b[i:i] = draw(st.binary(min_size=1, max_size=16))
    else:                                          # a little-endian integer written over 1-8 bytes
        width = draw(st.sampled_from([1, 2, 4, 8]))
        i = draw(st.integers(0, len(b) - width))
        b[i:i + width] = draw(st.integers(0, 2 ** (8 * width) - 1)).to_bytes(width, "little")
    return bytes(b)


# ---------------------------------------------------------------------------- safetensors
def valid_safetensors(path):
    rng = np.random.default_rng(0)
    write_safetensors(path, {"a": rng.standard_normal((2, 3)).astype(np.float32), "b": np.arange(4, dtype=np.int64),
                             "c": np.array([1.5, -2.0], np.float32), "d": np.zeros((0, 2), np.float16)},
                      metadata={"format": "pt"}, bf16={"c"})
    return open(path, "rb").read()


@st.composite
def safetensors_edits(draw, data):
    if draw(st.integers(0, 2)) == 0:                # 1 in 3: bytes; 2 in 3: a header field
        return draw(byte_edits(data))
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    text = splice(header, draw(st.sampled_from(paths_of(header))), draw(hostile)).encode("utf-8", "surrogatepass")
    length = len(text) if draw(st.integers(0, 7)) else draw(st.integers(0, 2**64 - 1))
    return struct.pack("<Q", length) + text + data[8 + n:]


def load_safetensors(path):
    for arr in read_safetensors(path).values():
        np.asarray(arr).sum()                        # the views are usable


# ---------------------------------------------------------------------------- checkpoints
def valid_checkpoint(path):
    tl.manual_seed(0)
    w = tl.randn(3, 2, requires_grad=True)
    opt = tl.optim.AdamW([w], lr=0.1)
    w.grad = tl.randn(3, 2).data
    opt.step()
    save_checkpoint(path, {"w": w.data, "b": np.zeros(2, np.float32)}, opt.state_dict(),
                    {"vocab_size": 5, "n_layer": 1}, {"type": "char", "chars": "abc"}, step=3,
                    extra={"best_val_loss": 1.5, "train_config": {"lr": 0.1}}, seed=7)
    return open(path, "rb").read()


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def _zip(members, method):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, raw in members.items():
            z.writestr(name, raw)
    return buf.getvalue()


@st.composite
def checkpoint_edits(draw, data):
    kind = draw(st.sampled_from(["bytes", "npy_header", "meta", "deflate"]))
    if kind == "bytes":
        return draw(byte_edits(data))
    members = _members(data)
    method = zipfile.ZIP_STORED
    if kind == "npy_header":                      # a member's header rewritten: shape, dtype or order lie
        name = draw(st.sampled_from(sorted(members)))
        raw = members[name]
        hlen = 10 + struct.unpack("<H", raw[8:10])[0]
        shape = draw(st.one_of(st.tuples(st.integers(0, 2**64)),
                               st.lists(st.integers(-2, 10**13), max_size=70).map(tuple), st.just((10**13,))))
        descr = draw(st.sampled_from(["<f4", "<f8", "|u1", ">i8", "<U3", "|V8", "O", "<c16", "|b1"]))
        head = "{'descr': %r, 'fortran_order': %s, 'shape': %r, }" % (descr, draw(st.booleans()), shape)
        head = head.ljust(((len(head) + 11) // 64 + 1) * 64 - 11) + "\n"
        members[name] = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head.encode("latin1") + raw[hlen:]
    elif kind == "meta":                          # meta.json with one field replaced by a hostile value
        raw = members["meta.json.npy"]
        hlen = 10 + struct.unpack("<H", raw[8:10])[0]
        meta = json.loads(raw[hlen:])
        text = splice(meta, draw(st.sampled_from(paths_of(meta))), draw(hostile)).encode("utf-8", "surrogatepass")
        buf = io.BytesIO()
        np.save(buf, np.frombuffer(text, np.uint8))
        members["meta.json.npy"] = buf.getvalue()
    else:
        method = zipfile.ZIP_DEFLATED
    out = _zip(members, method)
    return draw(byte_edits(out)) if draw(st.booleans()) else out


# ---------------------------------------------------------------------------- GPT-2 folders
def valid_gpt2(folder):
    tl.manual_seed(0)
    GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)).save_pretrained(folder)
    return (open(os.path.join(folder, "config.json"), "rb").read(),
            open(os.path.join(folder, "model.safetensors"), "rb").read())


@st.composite
def gpt2_edits(draw, files):
    config, weights = files
    which = draw(st.sampled_from(["config_field", "config_bytes", "weights"]))
    if which == "config_field":
        cfg = json.loads(config)
        key = draw(st.sampled_from(sorted(cfg) + ["n_inner", "scale_attn_weights", "add_cross_attention"]))
        cfg.setdefault(key, None)
        config = splice(cfg, [key], draw(hostile)).encode("utf-8", "surrogatepass")
    elif which == "config_bytes":
        config = draw(byte_edits(config))
    else:
        weights = draw(safetensors_edits(weights))
    return config, weights


# ---------------------------------------------------------------------------- the loop
class TimeCap(Exception):
    pass


def _alarm(signum, frame):
    raise TimeCap(f"a case took more than {TIME_CAP_S} s")


def main(kind, examples, workdir):
    os.makedirs(workdir, exist_ok=True)
    if kind == "gpt2":
        target = os.path.join(workdir, "gpt2")
        valid, edits = valid_gpt2(target), gpt2_edits
    else:
        target = os.path.join(workdir, "fuzz." + ("safetensors" if kind == "safetensors" else "npz"))
        valid = (valid_safetensors if kind == "safetensors" else valid_checkpoint)(target)
        edits = safetensors_edits if kind == "safetensors" else checkpoint_edits
    load = {"safetensors": load_safetensors, "checkpoint": load_checkpoint, "gpt2": GPT.from_pretrained}[kind]

    def write(content):
        if kind == "gpt2":
            for name, raw in zip(("config.json", "model.safetensors"), content):
                with open(os.path.join(target, name), "wb") as f:
                    f.write(raw)
        else:
            with open(target, "wb") as f:
                f.write(content)

    write(valid)
    load(target)                                   # the valid file loads
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + CAP_MB * 2**20, resource.RLIM_INFINITY))
    signal.signal(signal.SIGALRM, _alarm)
    randomize = "TINYLM_FUZZ_EXAMPLES" in os.environ

    @settings(max_examples=examples, deadline=None, database=None, derandomize=not randomize,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(edits(valid))
    def case(content):
        write(content)
        signal.alarm(TIME_CAP_S)
        try:
            load(target)
        except (ValueError, TypeError) as e:
            assert str(target) in str(e), f"{type(e).__name__} does not name the file: {e}"
        finally:
            signal.alarm(0)

    case()
    print(f"{kind}: {examples} cases, each within {CAP_MB} MiB and {TIME_CAP_S} s")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
