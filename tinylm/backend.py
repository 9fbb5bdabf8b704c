"""Devices: names, array modules (NumPy, CuPy, registered host devices), moving arrays, random numbers.

Code never imports numpy or cupy for array work; it asks here: `xp = get_array_module(x)` or
`array_module(device)`. Devices: "cpu" (NumPy), "gpu"/"cuda"/"cuda:N" (CuPy, imported lazily),
and devices that register themselves (tinylm/strict.py's "strict"). One random generator per
device, all seeded by `manual_seed(seed)`.

Reference: DeZero's `cuda.py` (one place for xp), PyTorch's device strings.
"""
import ctypes
import os
import sys

import numpy as np

DEFAULT_DTYPE = np.float32

_GPU_HINT = ('install the gpu extra for your CUDA version, e.g. pip install -e ".[gpu]" '
             "(CUDA 12: cupy-cuda12x; CUDA 11: cupy-cuda11x; CUDA 13: cupy-cuda13x)")
_cupy = None
_HOST_DEVICES = {}   # name -> (array module, array type): devices made of NumPy arrays (strict)


def register_host_device(name, xp, array_type):
    """Add a device whose arrays wrap NumPy's (`xp.from_numpy`, `array.get()`); tinylm/strict.py
    registers "strict" when it is imported."""
    _HOST_DEVICES[name] = (xp, array_type)


def _import_cupy():
    """Import CuPy on first use, with an error that says what is missing and how to fix it."""
    global _cupy
    if _cupy is None:
        try:
            import cupy
        except ImportError as e:
            raise RuntimeError(f"device 'gpu' needs CuPy, which is not installed ({e}); {_GPU_HINT}") from None
        try:
            n = cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # CUDA driver missing or broken
            raise RuntimeError(f"device 'gpu': CuPy is installed but no CUDA device is usable ({e})") from None
        if n == 0:
            raise RuntimeError("device 'gpu': CuPy is installed but no CUDA device was found")
        _cupy = cupy
    return _cupy


def gpu_available():
    """True when CuPy is installed and a CUDA device is present (never raises)."""
    try:
        _import_cupy()
        return True
    except RuntimeError:
        return False


def parse_device(device):
    """Device name -> canonical name: None/'cpu' -> 'cpu'; 'gpu'/'cuda' -> 'cuda:0'; 'cuda:N'; 'strict'."""
    if device is None:
        return "cpu"
    if not isinstance(device, str):
        raise TypeError(f"device must be a str such as 'cpu' or 'gpu', got {type(device).__name__}")
    name = device.strip().lower()
    if name == "cpu" or name in _HOST_DEVICES:
        return name
    if name in ("gpu", "cuda"):
        return "cuda:0"
    index = name.partition(":")[2]
    if name.startswith(("cuda:", "gpu:")) and index.isascii() and index.isdigit():
        return f"cuda:{int(index)}"                                 # 'cuda:01' is 'cuda:1'
    known = "".join(f", '{n}'" for n in _HOST_DEVICES)
    raise ValueError(f"unknown device {device!r}; expected 'cpu', 'gpu', 'cuda', 'cuda:N'{known}")


def array_module(device):
    """The array module (numpy, cupy or the strict module) for a device name."""
    device = parse_device(device)
    if device == "cpu":
        return np
    if device in _HOST_DEVICES:
        return _HOST_DEVICES[device][0]
    return _import_cupy()


def _is_cupy(x):
    """True for a CuPy array, also one made before tinylm imported CuPy itself."""
    if _cupy is not None:
        return isinstance(x, _cupy.ndarray)
    return type(x).__module__.startswith("cupy") and _import_cupy() is not None


def get_array_module(x):
    """The array module an array belongs to (numpy for NumPy arrays and Python scalars)."""
    if isinstance(x, np.ndarray):
        return np
    for xp, array_type in _HOST_DEVICES.values():
        if isinstance(x, array_type):
            return xp
    return _cupy if _is_cupy(x) else np


def device_of(x):
    """The canonical device name of an array."""
    if isinstance(x, np.ndarray):
        return "cpu"
    for name, (_, array_type) in _HOST_DEVICES.items():
        if isinstance(x, array_type):
            return name
    return f"cuda:{x.device.id}" if _is_cupy(x) else "cpu"


def to_numpy(x):
    """Copy any device array to a NumPy array (no copy for a NumPy array)."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "get"):  # cupy.ndarray and StrictArray
        return x.get()
    return np.asarray(x)


def to_device(x, device):
    """Move an array (or anything array-like) to a device; a no-op when it is already there."""
    device = parse_device(device)
    if isinstance(x, (list, tuple, int, float, bool)):
        host = np.asarray(x)
    elif device_of(x) == device:
        return x
    else:
        host = to_numpy(x)
    if device == "cpu" or device in _HOST_DEVICES:
        return _from_host(host, device)
    cupy = _import_cupy()
    with cupy.cuda.Device(int(device.split(":")[1])):
        return cupy.asarray(host)


def _from_host(host, device):
    """A NumPy array as an array of a host device registered here (e.g. 'strict'); other arrays as they are."""
    return _HOST_DEVICES[device][0].from_numpy(host) if device in _HOST_DEVICES else host


# ---------------------------------------------------------------------------- host memory
def tune_host_allocator(mmap_threshold=32 * 2**20, trim_threshold=256 * 2**20):
    """Let glibc reuse freed memory for large arrays instead of mmap/munmap each one.

    By default glibc serves every allocation over 128 KiB with a fresh mmap and returns it on
    free, so each temporary array of an op costs page faults on first touch; in elementwise
    code (GELU, layer-norm, softmax) that was 3-5x the arithmetic (docs/design.md, Speed).
    Called once when tinylm is imported (Linux with glibc only); set TINYLM_NO_MALLOPT=1 to
    leave the allocator alone. Returns True when the settings took effect.
    """
    if sys.platform != "linux" or os.environ.get("TINYLM_NO_MALLOPT"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
        return bool(libc.mallopt(m_mmap_threshold, int(mmap_threshold))) and \
            bool(libc.mallopt(m_trim_threshold, int(trim_threshold)))
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False


HOST_ALLOCATOR_TUNED = tune_host_allocator()


# ---------------------------------------------------------------------------- random numbers
class Generator:
    """One device's random numbers: normal, uniform and integer draws, made on the device."""

    def __init__(self, device, seed):
        self.device = parse_device(device)
        self.seed = seed
        if self.device.startswith("cuda"):
            cupy = _import_cupy()
            with cupy.cuda.Device(int(self.device.split(":")[1])):
                self._rng = cupy.random.RandomState(seed)
        else:
            self._rng = np.random.default_rng(seed)

    def normal(self, shape, dtype=DEFAULT_DTYPE):
        """Standard normal samples of `shape` and `dtype` (float32 by default), on the device."""
        dtype, draw = _draw_dtype(dtype)
        out = _from_host(self._rng.standard_normal(shape, dtype=draw), self.device)   # NumPy's or CuPy's
        return out if draw == dtype else out.astype(dtype)

    def uniform(self, shape, dtype=DEFAULT_DTYPE):
        """Uniform samples in [0, 1) of `shape` and `dtype`, on the device."""
        dtype, draw = _draw_dtype(dtype)
        sample = self._rng.random_sample if self.device.startswith("cuda") else self._rng.random
        out = _from_host(sample(shape, dtype=draw), self.device)
        if draw == dtype:
            return out
        out = out.astype(dtype)                      # float16: values just below 1 round up to 1
        out[out >= 1] = np.nextafter(dtype.type(1), dtype.type(0))
        return out

    def integers(self, low, high, shape):
        """Integers in [low, high) of `shape` (int64), on the device."""
        if self.device.startswith("cuda"):
            return self._rng.randint(low, high, size=shape, dtype=np.int64)
        out = self._rng.integers(low, high, size=shape, dtype=np.int64)
        return _from_host(out, self.device)


def _draw_dtype(dtype):
    """(dtype, the dtype to draw in): the generators draw float32 or float64, so float16 is drawn as float32."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"random floats need a floating-point dtype, got {dtype}")
    return dtype, dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)


_seed = 1337
_generators = {}


def manual_seed(seed):
    """Seed every device's generator (also those made later); the same seed, the same run."""
    global _seed
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    _seed = int(seed)
    _generators.clear()


def initial_seed():
    """The seed last given to `manual_seed` (1337 before any call)."""
    return _seed


def get_generator(device):
    """The random generator of a device, created from the current seed on first use."""
    device = parse_device(device)
    gen = _generators.get(device)
    if gen is None:
        # each device gets its own stream from the one seed
        stream = 1 + int(device.split(":")[1]) if device.startswith("cuda") else 0  # strict == cpu
        gen = _generators[device] = Generator(device, np.random.SeedSequence([_seed, stream]).generate_state(1)[0])
    return gen


def argsort_stable(x, axis=-1):
    """Indices that sort `x` along `axis`, equal values kept in their order (NumPy's kind="stable").

    CuPy's sort is always stable and documents no `kind` but None, so it is not passed there.
    """
    xp = get_array_module(x)
    if _cupy is not None and xp is _cupy:
        return xp.argsort(x, axis=axis)
    return xp.argsort(x, axis=axis, kind="stable")


def add_rows(target, index, rows):
    """target[index[i]] += rows[i] for a 1-D integer index (repeated ids accumulate); in place.

    On the CPU: sort the ids, sum each run of equal ids with add.reduceat, write each sum once
    (about 3x faster than np.add.at for embedding gradients). On a GPU: cupyx.scatter_add.
    """
    xp = get_array_module(target)
    if _cupy is not None and xp is _cupy:
        return scatter_add(target, index, rows)
    if index.size == 0:
        return target
    order = argsort_stable(index)
    ids = index[order]
    starts = xp.flatnonzero(xp.concatenate([xp.ones(1, dtype=bool), ids[1:] != ids[:-1]]))
    target[ids[starts]] += xp.add.reduceat(rows[order], starts, axis=0)
    return target


def scatter_add(target, index, values):
    """target[index] += values with repeated indices accumulated (np.add.at; cupyx.scatter_add)."""
    xp = get_array_module(target)
    if xp is _cupy and _cupy is not None:
        import cupyx
        cupyx.scatter_add(target, index, values)
    else:
        xp.add.at(target, index, values)
    return target
