"""Check CUDA kernel source without a GPU: compile it as CuPy would (NVRTC), and run it on the CPU (g++).

`nvrtc_compile(source, arch)` compiles with NVRTC and the options CuPy adds to a RawModule
(cupy._core.core.assemble_cupy_compiler_options: include paths and --std=c++17; then
-ftz=true, -arch=sm_XX and --device-as-default-execution-space, as
cupy.cuda.compiler does), returning the cubin or raising NVRTCCompileError with the log.

`build(source, folder)` compiles the same source with g++ after cuda_shim.h (threadIdx,
__syncthreads, __shared__ on the CPU) and returns a CpuLauncher, called as CuPy's kernels are:
`launch(name, grid, block, args)` with arrays (NumPy, or the strict device's), None for a
null pointer and NumPy scalars (np.int32, np.int64, np.float32) for scalar parameters.

What the CPU cannot show: speed, -ftz (the GPU flushes float32 subnormals to zero, g++ does
not), fused multiply-adds (NVRTC contracts a * b + c, x86-64 g++ by default does not) and
memory races between blocks (blocks run one after the other here).
"""
import ctypes
import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from tinylm import strict

SHIM = Path(__file__).with_name("cuda_shim.h")
_SIGNATURE = re.compile(r'extern "C" __global__ void (\w+)\(([^)]*)\)\s*\{')
_SCALARS = {"int": (ctypes.c_int32, np.int32), "long long": (ctypes.c_int64, np.int64),
            "float": (ctypes.c_float, np.float32)}


class NVRTCCompileError(RuntimeError):
    """NVRTC refused the source; the message holds its log."""


def nvrtc_available():
    """'' when NVRTC and CuPy's compiler options can be had here, else the reason they cannot."""
    try:
        from cupy.cuda import nvrtc
        from cupy._core import core
        nvrtc.getVersion()
        core.assemble_cupy_compiler_options(())
    except Exception as e:  # ImportError, a missing libnvrtc, a CuPy without the function
        return f"CuPy with NVRTC is not usable here ({type(e).__name__}: {e})"
    return ""


def cupy_options(options, arch):
    """The options CuPy compiles a RawModule with, for compute capability `arch` (80, 90, ...)."""
    from cupy._core import core
    return tuple(core.assemble_cupy_compiler_options(tuple(options))) + (
        "-ftz=true", f"-arch=sm_{arch}", "--device-as-default-execution-space")


def nvrtc_compile(source, arch, options=()):
    """Compile `source` with NVRTC for sm_`arch` as CuPy would; the cubin as bytes."""
    from cupy.cuda import nvrtc
    prog = nvrtc.createProgram(source, "tinylm_kernels.cu", [], [])
    try:
        try:
            nvrtc.compileProgram(prog, list(cupy_options(options, arch)))
        except nvrtc.NVRTCError:
            raise NVRTCCompileError(f"NVRTC (sm_{arch}) refused the source:\n{nvrtc.getProgramLog(prog)}") from None
        return nvrtc.getCUBIN(prog)
    finally:
        nvrtc.destroyProgram(prog)


def gxx_available():
    """'' when g++ is on PATH, else the reason it is needed."""
    return "" if shutil.which("g++") else "g++ is not installed (the CPU harness builds the kernels with it)"


def kernels_of(source):
    """{name: ([parameter types], threaded)} for each extern "C" __global__ function of `source`;
    threaded when its body uses shared memory (its threads must run together, meeting at barriers)."""
    found = {}
    for m in _SIGNATURE.finditer(source):
        types = []
        for param in filter(None, (p.strip() for p in m.group(2).split(","))):
            types.append(re.match(r"^(.*?)\s*\b\w+$", param).group(1).replace("__restrict__", "").strip())
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(source[i], 0)
            i += 1
        body = source[m.end():i]
        found[m.group(1)] = (types, "__shared__" in body or "__syncthreads" in body)
    return found


def _wrappers(kernels):
    lines = []
    for name, (types, threaded) in kernels.items():
        args = ", ".join(f"*({t}*)args[{i}]" for i, t in enumerate(types))
        lines.append(f'extern "C" int tl_run_{name}(const unsigned* grid, const unsigned* block, void** args) {{\n'
                     f"    return tl_launch(grid, block, {str(threaded).lower()}, [args]() {{ {name}({args}); }});\n}}")
    return "\n".join(lines)


def build(source, folder):
    """g++-compile `source` for the CPU into `folder` (reused when the same source was built there)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kernels = kernels_of(source)
    text = f'#include "{SHIM.name}"\n#line 1 "kernels.cu"\n{source}\n{_wrappers(kernels)}\n'
    digest = hashlib.sha256(text.encode() + SHIM.read_bytes()).hexdigest()[:16]
    lib = folder / f"kernels_{digest}.so"
    if not lib.exists():
        src = folder / f"kernels_{digest}.cpp"
        src.write_text(text)
        cmd = ["g++", "-std=c++17", "-O2", "-shared", "-fPIC", "-pthread", "-I", str(SHIM.parent),
               "-o", str(lib), str(src)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"g++ refused the kernel source:\n{done.stderr[-4000:]}")
    return CpuLauncher(ctypes.CDLL(str(lib)), kernels)


class CpuLauncher:
    """Runs kernels built by `build` on host arrays, with CuPy's launch signature."""

    def __init__(self, lib, kernels):
        self.lib, self.kernels, self.launches = lib, kernels, 0

    def __call__(self, name, grid, block, args):
        types, _ = self.kernels[name]
        if len(args) != len(types):
            raise TypeError(f"kernel {name} takes {len(types)} arguments, got {len(args)}")
        cells = [self._cell(name, i, t, a) for i, (t, a) in enumerate(zip(types, args))]
        argv = (ctypes.c_void_p * len(cells))(*[ctypes.addressof(c) for c in cells])
        g = (ctypes.c_uint * 3)(*(tuple(grid) + (1, 1, 1))[:3])
        b = (ctypes.c_uint * 3)(*(tuple(block) + (1, 1, 1))[:3])
        if getattr(self.lib, f"tl_run_{name}")(g, b, argv):
            raise RuntimeError(f"kernel {name}: the CPU barrier could not be set up for block {tuple(block)}")
        self.launches += 1

    @staticmethod
    def _cell(name, i, ctype, value):
        if ctype.endswith("*"):
            if value is None:
                return ctypes.c_void_p(0)
            a = value._a if isinstance(value, strict.StrictArray) else value
            if not isinstance(a, np.ndarray) or not a.flags.c_contiguous:
                raise TypeError(f"kernel {name} argument {i} ({ctype}): expected a C-contiguous array, "
                                f"got {type(a).__name__}")
            want = {"float": np.float32, "long long": np.int64, "int": np.int32}[ctype.replace("const", "").strip(" *")]
            if a.dtype != want:
                raise TypeError(f"kernel {name} argument {i} ({ctype}): dtype {a.dtype}, expected {np.dtype(want)}")
            return ctypes.c_void_p(a.ctypes.data)
        ctype_, numpy_type = _SCALARS[ctype]
        if type(value) is not numpy_type:
            raise TypeError(f"kernel {name} argument {i} ({ctype}): expected {numpy_type.__name__}, "
                            f"got {type(value).__name__}")
        return ctype_(value)


if __name__ == "__main__":  # python tests/cuda_harness/harness.py: compile tinylm's kernels both ways
    from tinylm import cuda_kernels
    for arch in (80, 90):
        print(f"sm_{arch}: {len(nvrtc_compile(cuda_kernels.SOURCE, arch, cuda_kernels.OPTIONS))} bytes of cubin")
    launcher = build(cuda_kernels.SOURCE, Path(sys.argv[1] if len(sys.argv) > 1 else "out/cuda_harness"))
    print(f"g++: {len(launcher.kernels)} kernels built")
