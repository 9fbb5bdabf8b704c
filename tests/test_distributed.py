"""Data parallel: the collectives, DistributedDataParallel, the launcher, training on 2 processes.

The multi-process tests start 2 ranks through `python -m tinylm.distributed.run` (mpiexec) and
need mpi4py (the `dist` extra); the NCCL bootstrap, the engine hook and the launcher's command
line are checked in this process with fakes.
"""
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tinylm as tl
import tinylm.distributed as dist
from tinylm.engine import register_post_backward_hook
from tinylm.distributed import run as launcher

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
try:
    import mpi4py  # noqa: F401
    HAVE_MPI = True
except ImportError:
    HAVE_MPI = False
needs_mpi = pytest.mark.skipif(not HAVE_MPI, reason="mpi4py is missing: pip install -e '.[dist]'")


def launch(n, script, *args, timeout=240):
    cmd = [sys.executable, "-m", "tinylm.distributed.run", "--nproc-per-node", str(n), str(script), *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def single(script, *args, timeout=240):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    return subprocess.run([sys.executable, str(script), *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


# ---------------------------------------------------------------------------- in this process
def test_post_backward_hook_runs_once_per_backward_and_can_be_removed():
    calls = []
    handle = register_post_backward_hook(lambda: calls.append(1))
    try:
        w = tl.tensor([1.0, 2.0], requires_grad=True)
        (w * w).sum().backward()
        assert calls == [1]
        w.sum().backward()
        w.backward(np.ones(2, np.float32))      # a leaf: no walk, still a completed backward
        assert calls == [1, 1, 1]
    finally:
        handle.remove()
    (tl.tensor([1.0], requires_grad=True) * 2).sum().backward()
    assert calls == [1, 1, 1]


class FakeComm:
    """Two ranks' views of one MPI communicator: rank 0's Bcast stores the buffer, rank 1's reads it."""

    def __init__(self, rank, shared, size=2):
        self.rank, self.shared, self.size = rank, shared, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def Bcast(self, buf, root=0):
        if self.rank == root:
            self.shared["buf"] = buf.copy()
        else:
            buf[...] = self.shared["buf"]


class FakeNccl:
    def __init__(self, uid):
        self.uid, self.made, self.destroyed = uid, [], 0
        test = self

        class NcclCommunicator:
            def __init__(self, ndev, comm_id, rank):
                test.made.append((ndev, comm_id, rank))

            def destroy(self):
                test.destroyed += 1
        self.NcclCommunicator = NcclCommunicator

    def get_unique_id(self):
        return self.uid


def test_nccl_bootstrap_gives_every_rank_rank_0s_unique_id():
    uid = tuple(int(v) for v in np.random.default_rng(0).integers(-128, 128, 128))
    shared, nccl0, nccl1 = {}, FakeNccl(uid), FakeNccl(tuple(range(128)))   # rank 1's own id must not be used
    dist.nccl_bootstrap(FakeComm(0, shared), nccl0, 0, 2)
    dist.nccl_bootstrap(FakeComm(1, shared), nccl1, 1, 2)
    assert nccl0.made == [(2, uid, 0)] and nccl1.made == [(2, uid, 1)]
    with pytest.raises(ValueError, match="128"):
        dist.nccl_bootstrap(FakeComm(0, {}), FakeNccl((1, 2)), 0, 2)


def test_init_process_group_nccl_with_fakes_and_its_errors(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    nccl = FakeNccl(tuple(range(128)))
    dist.init_process_group("nccl", comm=FakeComm(0, {}), nccl=nccl)
    try:
        assert dist.is_initialized() and dist.get_backend() == "nccl"
        assert (dist.get_rank(), dist.get_world_size()) == (0, 2)
        with pytest.raises(RuntimeError, match="already initialized"):
            dist.init_process_group("mpi", comm=FakeComm(0, {}))
    finally:
        dist.destroy_process_group()
    assert not dist.is_initialized() and nccl.destroyed == 1
    with pytest.raises(RuntimeError, match="init_process_group"):
        dist.get_rank()
    if not tl.gpu_available():                      # no GPU: the default backend is MPI's
        dist.init_process_group(comm=FakeComm(1, {}))
        assert dist.get_backend() == "mpi" and dist.get_rank() == 1
        with pytest.raises(TypeError, match="Tensor or a NumPy/CuPy array, got list"):
            dist.all_reduce([1.0, 2.0])
        with pytest.raises(ValueError, match=r"src must be a rank in 0\.\.1, got 2"):
            dist.broadcast(np.zeros(2), src=2)
        with pytest.raises(TypeError, match="AVG needs a floating-point tensor"):
            dist.all_reduce(np.zeros(2, np.int64), op=dist.ReduceOp.AVG)
        dist.destroy_process_group()
    with pytest.raises(ValueError, match="unknown backend 'tcp'"):
        dist.init_process_group("tcp", comm=FakeComm(0, {}))
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(ValueError, match="RANK=1 but MPI says 0"):
        dist.init_process_group("gloo", comm=FakeComm(0, {}))
    assert not dist.is_initialized()


def test_missing_mpi4py_names_the_dist_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r"\.\[dist\]"):
        dist.init_process_group("mpi")
    assert not dist.is_available()


def test_launcher_command_and_environment(tmp_path):
    cmd = launcher.command(3, "train.py", ["--lr", "1e-3"], mpiexec="mpiexec")
    assert cmd[:3] == ["mpiexec", "-n", "3"]
    assert cmd[3:] == [sys.executable, "-m", "tinylm.distributed.worker", "train.py", "--lr", "1e-3"]
    hosts = tmp_path / "hosts"
    hosts.write_text("# two machines\nnode1:4\nnode2\n")
    cmd = launcher.command(2, "train.py", [], hostfile=str(hosts), mpiexec="mpiexec")
    assert cmd[:7] == ["mpiexec", "-f", str(hosts), "-ppn", "2", "-n", "4"]
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n")
    with pytest.raises(ValueError, match="lists no host"):
        launcher.command(2, "train.py", [], hostfile=str(empty), mpiexec="mpiexec")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert launcher.environment(2, base={})["OMP_NUM_THREADS"] == str(max(1, cores // 2))
    assert launcher.environment(2, base={"OMP_NUM_THREADS": "7"})["OMP_NUM_THREADS"] == "7"


# ---------------------------------------------------------------------------- 2 processes
@needs_mpi
def test_collectives_and_ddp_on_two_ranks():
    out = launch(2, HERE / "ddp_collectives.py")
    assert out.returncode == 0, out.stderr
    assert "rank 0 ok" in out.stdout and "rank 1 ok" in out.stdout


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(a)


def _no_key_bias(name, x):
    """c_attn.bias without its key third: softmax ignores a shift shared by a row's scores, so that
    gradient is 0 in exact arithmetic and Adam turns its rounding noise into lr-sized steps."""
    if name.endswith("c_attn.bias"):
        C = x.shape[0] // 3
        return np.concatenate([x[:C], x[2 * C:]])
    return x


@needs_mpi
@pytest.mark.parametrize("dtype, tol", [("float32", 1e-5), ("float64", 1e-12)])
def test_two_ranks_of_batch_b_match_one_process_of_batch_2b(tmp_path, dtype, tol):
    steps, b = 50, 6                      # the cpu-small GPT (4 layers) and its global batch of 12, 50 steps
    args = ["--steps", steps, "--dtype", dtype, "--n-layer", 4]
    one = single(HERE / "ddp_script.py", "--out", tmp_path / "one.npz", "--run-dir", tmp_path / "one",
                 "--batch", 2 * b, *args)
    assert one.returncode == 0, one.stderr
    two = launch(2, HERE / "ddp_script.py", "--out", tmp_path / "two.npz", "--run-dir", tmp_path / "two",
                 "--batch", b, *args)
    assert two.returncode == 0, two.stderr
    a, c = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert len(a["losses"]) == len(c["losses"]) == steps
    assert np.max(np.abs(a["losses"] - c["losses"])) <= tol, (a["losses"], c["losses"])
    names = [k for k in a.files if k.startswith("param.")]
    assert names and sorted(names) == sorted(k for k in c.files if k.startswith("param."))
    whole = np.sqrt(sum(np.sum((a[k] - c[k]).astype(np.float64) ** 2) for k in names)
                    / sum(np.sum(a[k].astype(np.float64) ** 2) for k in names))
    assert whole <= tol
    for k in names:
        assert _rel(_no_key_bias(k, a[k]), _no_key_bias(k, c[k])) <= tol, k


@needs_mpi
def test_resume_on_two_ranks_is_bit_exact(tmp_path):
    args = ["--batch", 3, "--steps", 10, "--n-layer", 1]
    full = launch(2, HERE / "ddp_script.py", "--out", tmp_path / "full.npz", "--run-dir", tmp_path / "full", *args)
    assert full.returncode == 0, full.stderr
    cut = launch(2, HERE / "ddp_script.py", "--out", tmp_path / "cut.npz", "--run-dir", tmp_path / "cut", *args,
                 "--stop-step", 4)                 # rank 0 alone is interrupted: both ranks stop after step 4
    assert cut.returncode == 0, cut.stderr
    first = np.load(tmp_path / "cut.npz")
    assert str(first["stopped"]) == "interrupted" and int(first["step"]) == 5
    rest = launch(2, HERE / "ddp_script.py", "--out", tmp_path / "rest.npz", "--run-dir", tmp_path / "cut", *args,
                  "--resume")
    assert rest.returncode == 0, rest.stderr
    a, c = np.load(tmp_path / "full.npz"), np.load(tmp_path / "rest.npz")
    assert np.array_equal(a["losses"], np.concatenate([first["losses"], c["losses"]]))
    for k in a.files:
        if k.startswith("param."):
            assert np.array_equal(a[k], c[k]), k


def _processes_with(token):
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if token.encode() in f.read():
                        found.append(int(pid))
            except OSError:
                pass
    return found


@needs_mpi
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="looks for leftover processes in /proc")
def test_a_rank_that_raises_ends_every_rank(tmp_path):
    out_path = tmp_path / "never.npz"
    t0 = time.perf_counter()
    out = launch(2, HERE / "ddp_script.py", "--out", out_path, "--batch", 2, "--steps", 1000, "--n-layer", 1,
                 "--fail-rank", 1, "--fail-step", 3, timeout=120)
    took = time.perf_counter() - t0
    assert out.returncode != 0
    assert "[rank 1] RuntimeError: rank 1 fails at step 3 on purpose" in out.stderr, out.stderr
    assert "ddp_script.py" in out.stderr and "on_step" in out.stderr          # the rank's own traceback
    assert took < 60, f"the launcher took {took:.0f} s to end"
    assert not out_path.exists()
    time.sleep(0.5)
    assert _processes_with(str(out_path)) == [], "a rank outlived the launcher"
