#!/usr/bin/env bash
# CI step for the fused CuPy kernels, no GPU needed: installs CuPy and NVRTC (CUDA 12 wheels from
# PyPI, about 500 MB installed; pip's cache keeps the wheels between runs) into the CI virtual
# environment and runs tests/test_cuda_kernels.py, which compiles every kernel with NVRTC for
# sm_80 and sm_90 and runs each on the CPU through g++ against the generic NumPy path.
# Run after .ci/run (it reuses .venv-ci, or makes it). Fails, rather than skips, when NVRTC or g++ is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv-ci ] || { python3 -m venv .venv-ci && .venv-ci/bin/pip install --quiet -e ".[test]"; }
source .venv-ci/bin/activate
command -v g++ >/dev/null || { echo "kernels.sh: g++ is needed (apt-get install g++)" >&2; exit 1; }
pip install --quiet cupy-cuda12x nvidia-cuda-nvrtc-cu12 nvidia-cuda-runtime-cu12
python - <<'PY'
import sys
sys.path.insert(0, "tests")
from cuda_harness import harness
reason = harness.nvrtc_available() or harness.gxx_available()
if reason:
    sys.exit(f"kernels.sh: {reason}")
PY
python -m pytest -q -rs tests/test_cuda_kernels.py
