"""The safetensors file format, read and written with NumPy alone (never pickle).

Owns `read_safetensors(path) -> {name: np.ndarray}` and `write_safetensors(path, tensors, metadata)`.
The format: 8 bytes little-endian u64 N, then N bytes of JSON header
{name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {str: str}}
(padded with spaces), then the raw little-endian buffers, offsets counted from the end of the
header. Reading memory-maps the file, so a 6 GB GPT-2 XL costs no copy until it is used.
Reading checks the header as the reference library does: shapes and offsets are non-negative
ints, `__metadata__` maps str to str, and the buffers tile the data exactly (no overlap, no gap).
Reading also refuses a shape of more than 64 dimensions or of 2**63 bytes or more before making
any view, and parses the header with a depth limit (tinylm.validate), so a hostile file gets a
ValueError naming it. Writing goes through `atomic_write` (a temporary file that follows the umask,
fsync, rename), which checkpoints use too.
bfloat16 has no NumPy dtype: BF16 tensors are read as float32 (the 16 bits shifted into the high
half of a float32) and written from float32 (rounded to nearest even) for names given in `bf16`.

Leaves out: lazy per-tensor loading APIs, F8 dtypes, sharded checkpoints (model-0000x-of-0000y).
Reference: the safetensors specification (github.com/huggingface/safetensors, README "Format").
"""
import json
import os
import re
import secrets
import struct

import numpy as np

from .validate import brief as _short, check_shape, is_size as _is_size, parse_json

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
           "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?", "BF16": "<u2"}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items() if k != "BF16"}
_MAX_HEADER = 100 * 1024 * 1024


def _bad(path, why):
    return ValueError(f"{path}: not a valid safetensors file: {why}")


def read_safetensors(path, return_metadata=False):
    """{name: array} from a .safetensors file (read-only memory-mapped views; BF16 becomes float32)."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise _bad(path, f"{size} bytes, shorter than the 8-byte header length")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, _MAX_HEADER):
            raise _bad(path, f"header length {n} does not fit a file of {size} bytes")
        try:
            header = parse_json(f.read(n), "the header")      # size checked above; depth, UTF-8 here
        except ValueError as e:
            raise _bad(path, e) from None
    if not isinstance(header, dict):
        raise _bad(path, "the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _bad(path, f"__metadata__ must map str to str, got {metadata!r}")
    data_size = size - 8 - n
    buf = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n, shape=(data_size,)).view(np.ndarray) \
        if data_size else np.zeros(0, np.uint8)  # plain ndarray views of the mapped bytes
    out, spans = {}, []
    for name, info in header.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise _bad(path, f"tensor {name!r} has a malformed entry {info!r}") from None
        if not isinstance(shape, list) or not all(_is_size(s) for s in shape + [begin, end]):
            raise _bad(path, f"tensor {name!r} has a malformed entry {_short(info)} (shape and data_offsets "
                             "must be non-negative ints)")
        if not isinstance(dtype, str) or dtype not in _DTYPES:
            raise _bad(path, f"tensor {name!r} has unsupported dtype {_short(dtype)}")
        np_dtype = np.dtype(_DTYPES[dtype])
        try:                                 # 65 dimensions, [2**64, 0], 5,000 digits: refused before any view
            nbytes = check_shape(shape, np_dtype.itemsize, f"tensor {name!r}")
        except ValueError as e:
            raise _bad(path, e) from None
        if not begin <= end <= data_size or end - begin != nbytes:
            raise _bad(path, f"tensor {name!r} of dtype {dtype} and shape {_short(shape)} has data_offsets "
                             f"{_short([begin, end])} (expected {nbytes} bytes within {data_size})")
        spans.append((begin, end, name))
        arr = buf[begin:end].view(np_dtype).reshape(shape)
        if dtype == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr
    covered = 0  # as the reference library: the buffers tile the data exactly, no overlap, no gap
    for begin, end, name in sorted(spans):
        if begin != covered:
            why = "overlap another tensor" if begin < covered else "leave a gap"
            raise _bad(path, f"tensor {name!r} has data_offsets {[begin, end]}, which {why} "
                             f"(expected to start at {covered})")
        covered = end
    if covered != data_size:
        raise _bad(path, f"the tensors cover {covered} of the {data_size} data bytes")
    return (out, metadata) if return_metadata else out


def _to_bf16_bits(x):
    """float32 -> bfloat16 bit patterns (uint16), rounding to nearest even; NaN stays NaN."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(x), np.uint16(0x7FC0), rounded)


def write_safetensors(path, tensors, metadata=None, bf16=()):
    """Write {name: NumPy array} to `path` (atomically); names in `bf16` (a set, or one name) are stored as BF16."""
    path = os.fspath(path)
    header, blobs, offset = {}, [], 0
    bf16 = {bf16} if isinstance(bf16, str) else set(bf16)          # one name, not its substrings
    if not bf16 <= set(tensors):
        raise ValueError(f"write_safetensors: bf16 names {sorted(bf16 - set(tensors))} are not among the tensors")
    for name in tensors:
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(f"write_safetensors: tensor names must be str other than '__metadata__', got {name!r}")
    for name in sorted(tensors):
        arr = tensors[name]
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"write_safetensors: {name!r} is a {type(arr).__name__}; pass NumPy arrays "
                            "(tinylm.backend.to_numpy moves device arrays)")
        if name in bf16:
            dtype, data = "BF16", _to_bf16_bits(arr)
        else:
            if arr.dtype.byteorder == ">":                         # big-endian: the same values, little-endian
                arr = arr.astype(arr.dtype.newbyteorder("<"))
            if arr.dtype not in _NAMES:
                raise TypeError(f"write_safetensors: {name!r} has unsupported dtype {arr.dtype}")
            dtype, data = _NAMES[arr.dtype], arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        raw = np.ascontiguousarray(data).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}, **header}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # buffers start 8-byte aligned

    def write(f):
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)

    atomic_write(path, write)


def _fsync_dir(directory):
    """Make a rename durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temporary_name(path):
    """A fresh name beside `path` that `remove_stale_temporaries` recognises: .NAME.<8 hex>.tmp"""
    directory, base = os.path.split(os.fspath(path))
    return os.path.join(directory, f".{base}.{secrets.token_hex(4)}.tmp")


def atomic_write(path, write):
    """Call write(f) on a temporary file beside `path`, fsync it, rename it into place, fsync the
    directory: a crash or Ctrl-C at any point leaves the old file whole. The file's mode follows the
    umask (0644 by default), as open() and PyTorch's torch.save do. Returns the path."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    while True:
        tmp = _temporary_name(os.path.abspath(path))
        try:                                 # O_EXCL: never someone else's file; 0o666 less the umask
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C or a full disk: drop the temporary file, keep the old one
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(directory)
    return path


def remove_stale_temporaries(directory, names):
    """Delete the temporary files that killed `atomic_write`s of `names` left in `directory`
    (.NAME.XXXXXXXX.tmp, tinylm's own pattern, and nothing else). Returns the paths removed."""
    pattern = re.compile(r"\.(%s)\.[a-z0-9_]{8}\.tmp" % "|".join(re.escape(n) for n in names))
    removed = []
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for entry in entries:
        full = os.path.join(directory, entry)
        if pattern.fullmatch(entry) and os.path.isfile(full) and not os.path.islink(full):
            try:
                os.unlink(full)
                removed.append(full)
            except FileNotFoundError:
                pass
    return removed
