"""torch.backends' switches, accepted so ported scripts run: `backends.cuda.matmul.allow_tf32 = True`,
`backends.cudnn.allow_tf32`, `backends.cudnn.benchmark`, `backends.mps.is_available()`.

They change nothing: NumPy computes float32 matmuls in float32 (no TF32), and tinylm has no cuDNN
or Metal path. The defaults are PyTorch's, so a script that reads them sees what it expects.

Reference: torch.backends (names and defaults).
"""


class _Matmul:
    """`backends.cuda.matmul`: allow_tf32 (PyTorch's default False) and the reduced-precision flags."""

    allow_tf32 = False
    allow_fp16_reduced_precision_reduction = True
    allow_bf16_reduced_precision_reduction = True


class cuda:
    """`torch.backends.cuda`: the matmul flags (accepted, no effect) and `is_built()` (False: no CUDA build)."""

    matmul = _Matmul

    @staticmethod
    def is_built():
        """False: tinylm reaches a GPU through CuPy, not a CUDA build of its own."""
        return False


class cudnn:
    """`torch.backends.cudnn`: allow_tf32 (default True), benchmark, deterministic, enabled; no cuDNN here."""

    allow_tf32 = True
    benchmark = False
    deterministic = False
    enabled = True

    @staticmethod
    def is_available():
        """False: tinylm does not use cuDNN."""
        return False


class mps:
    """`torch.backends.mps`: Apple's Metal backend, which tinylm does not have."""

    @staticmethod
    def is_available():
        """False: no Metal backend."""
        return False

    @staticmethod
    def is_built():
        """False: no Metal backend."""
        return False


__all__ = ["cuda", "cudnn", "mps"]
