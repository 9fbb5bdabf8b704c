"""The launcher, as torchrun: `python -m tinylm.distributed.run --nproc-per-node N script.py ARGS`.

Starts N copies of the script through MPI's `mpiexec` (the one next to this Python first, as
the `mpich` wheel installs it, else the one on PATH); `--hostfile FILE` spreads them over the
machines it lists, N on each. Every copy runs under a small wrapper (tinylm/distributed/worker.py)
that sets RANK, LOCAL_RANK, WORLD_SIZE and LOCAL_WORLD_SIZE from MPI before the script starts,
and, when the script raises, prints that rank's traceback and aborts the whole job (MPI_Abort),
so no rank waits forever in a collective: the launcher then exits non-zero.

OMP_NUM_THREADS (the BLAS threads of each process) is set to cores / N unless it is set
already: N processes of all-core BLAS each oversubscribe the CPU and run slower than one.
Also installed as the `tinylm-run` console script. Leaves out: elastic restarts, rendezvous
servers, --nnodes/--node-rank (the hostfile says where the ranks go). Reference: torchrun's
flags; `python -m mpi4py`'s abort-on-exception.
"""
import argparse
import os
import shutil
import subprocess
import sys

from .group import _DIST_HINT


def find_mpiexec():
    """The mpiexec to use: next to this Python (the mpich wheel's), else the first on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.path.isfile(here) and os.access(here, os.X_OK):
        return here
    found = shutil.which("mpiexec")
    if found is None:
        raise FileNotFoundError(f"tinylm-run: no mpiexec next to {sys.executable} or on PATH; {_DIST_HINT}")
    return found


def _is_open_mpi(mpiexec):
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "open mpi" in (out.stdout + out.stderr).lower()


def _hosts(path):
    """The machines a hostfile lists (one per line, 'host' or 'host:slots' or 'host slots=N'; # comments)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.split("#")[0].strip() for line in f]
    except OSError as e:
        raise ValueError(f"--hostfile {path}: {e.strerror or e}") from None
    hosts = [line.split()[0].split(":")[0] for line in lines if line]
    if not hosts:
        raise ValueError(f"--hostfile {path}: lists no host")
    return hosts


def command(nproc_per_node, target, args, hostfile=None, module=False, mpiexec=None):
    """The mpiexec command line that starts the job (a list of strings)."""
    mpiexec = mpiexec or find_mpiexec()
    worker = [sys.executable, "-m", "tinylm.distributed.worker"] + (["-m"] if module else []) + [target] + list(args)
    if hostfile is None:
        return [mpiexec, "-n", str(nproc_per_node)] + worker
    total = nproc_per_node * len(_hosts(hostfile))
    if _is_open_mpi(mpiexec):
        return [mpiexec, "--hostfile", hostfile, "--map-by", f"ppr:{nproc_per_node}:node", "-n", str(total)] + worker
    return [mpiexec, "-f", hostfile, "-ppn", str(nproc_per_node), "-n", str(total)] + worker


def environment(nproc_per_node, base=None):
    """The environment the ranks inherit: OMP_NUM_THREADS = cores / N unless already set."""
    env = dict(os.environ if base is None else base)
    if "OMP_NUM_THREADS" not in env:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        env["OMP_NUM_THREADS"] = str(max(1, cores // nproc_per_node))
    return env


def parse(argv):
    p = argparse.ArgumentParser(prog="tinylm-run", description="Start N processes of a training script through "
                                "mpiexec, as torchrun does (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE set).")
    p.add_argument("--nproc-per-node", "--nproc_per_node", type=int, default=1, metavar="N",
                   help="processes on each machine (default 1)")
    p.add_argument("--hostfile", default=None, help="the machines to use, one per line, as mpiexec takes it")
    p.add_argument("-m", "--module", action="store_true", help="the target is a module name, as python -m")
    p.add_argument("target", help="the script (or, with -m, module) to run")
    p.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    a = p.parse_args(argv)
    if a.nproc_per_node < 1:
        p.error(f"--nproc-per-node must be >= 1, got {a.nproc_per_node}")
    return a


def main(argv=None):
    a = parse(argv)
    try:
        cmd = command(a.nproc_per_node, a.target, a.args, a.hostfile, a.module)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(str(e))
    proc = subprocess.Popen(cmd, env=environment(a.nproc_per_node))
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:   # mpiexec passes Ctrl-C on to the ranks; wait for them to finish
            continue


if __name__ == "__main__":
    sys.exit(main())
