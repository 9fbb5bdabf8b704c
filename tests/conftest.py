"""Test configuration: the device fixture, hypothesis profiles, paths to shared data.

Every test that takes the `device` fixture runs on NumPy ("cpu"), on the strict test device
that behaves like CuPy ("strict"), and on real CuPy ("cuda:0") where a CUDA GPU is present.
`pytest --device gpu` runs only on the GPU; `--device cpu,strict` picks devices explicitly.
"""
import os
from pathlib import Path

# Small test arrays gain nothing from BLAS threads, and threads thrash on a busy machine.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pytest
from hypothesis import HealthCheck, settings

import tinylm as tl

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption("--device", default=None,
                     help="comma-separated devices to test on: cpu, strict, gpu (default: cpu,strict, "
                          "plus gpu when CuPy and a CUDA device are present)")


def _devices(config):
    opt = config.getoption("--device")
    if opt:
        return [tl.parse_device(d) for d in opt.split(",")]
    return ["cpu", "strict"] + (["cuda:0"] if tl.gpu_available() else [])


def pytest_configure(config):
    opt = config.getoption("--device")
    if opt and any(tl.parse_device(d).startswith("cuda") for d in opt.split(",")):
        try:
            tl.backend.array_module("gpu")
        except RuntimeError as e:  # says what is missing and how to install it
            raise pytest.UsageError(f"--device {opt}: {e}") from None


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        metafunc.parametrize("device", _devices(metafunc.config))


@pytest.fixture
def shared_data():
    """../shared/data beside the repository (skips when absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found beside the repository ({SHARED_DATA.name})")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _seed():
    tl.manual_seed(0)
