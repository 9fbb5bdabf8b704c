"""Chapter 10 exercise, solved.

Write a safetensors file by hand (an 8-byte little-endian header length, a JSON header giving
each tensor's dtype, shape and byte offsets, then the raw little-endian bytes) and read it
back with `tinylm.safetensors.read_safetensors`; then read it with the chapter's hand loader.
"""
import json
import os
import struct
import tempfile

import numpy as np

from tinylm.safetensors import read_safetensors

DTYPES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int64"): "I64"}


def write(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        data = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)                       # pad so the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def hand_load(path):                                      # the loader of chapter 10
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    dtypes = {"F32": "<f4", "F16": "<f2", "I64": "<i8"}
    return {name: np.frombuffer(raw, dtypes[m["dtype"]], offset=8 + n + m["data_offsets"][0],
                                count=int(np.prod(m["shape"]))).reshape(m["shape"])
            for name, m in header.items() if name != "__metadata__"}


def check():
    rng = np.random.default_rng(0)
    tensors = {"wte.weight": rng.standard_normal((5, 3)).astype(np.float32),
               "ln_f.bias": rng.standard_normal(3).astype(np.float16),
               "steps": np.arange(4, dtype=np.int64), "scalar": np.array(2.5, dtype=np.float32)}
    path = os.path.join(tempfile.mkdtemp(), "hand.safetensors")
    write(path, tensors)
    for loaded in (read_safetensors(path), hand_load(path)):
        assert sorted(loaded) == sorted(tensors)
        for name, a in tensors.items():
            assert loaded[name].dtype == a.dtype and np.array_equal(loaded[name], a), name


if __name__ == "__main__":
    check()
    print("ch10_gpt2: all checks passed")
