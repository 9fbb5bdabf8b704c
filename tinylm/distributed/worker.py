"""What each process of `tinylm.distributed.run` runs: set the rank variables, run the script, abort on error.

`python -m tinylm.distributed.worker [-m] TARGET ARGS` (under mpiexec): RANK, WORLD_SIZE,
LOCAL_RANK and LOCAL_WORLD_SIZE come from MPI (the ranks sharing this machine's memory are the
local ones), then TARGET runs as `__main__` with sys.argv = [TARGET, *ARGS]. An exception that
escapes it (or a non-zero sys.exit) prints this rank's traceback, prefixed with the rank, and
calls MPI_Abort, which ends every rank of the job: a rank that failed never leaves the others
waiting in an all-reduce. Reference: `python -m mpi4py`.
"""
import os
import runpy
import sys
import traceback

from .group import _import_mpi


def set_rank_environment(MPI):
    """RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE from MPI; returns the rank."""
    world = MPI.COMM_WORLD
    local = world.Split_type(MPI.COMM_TYPE_SHARED, key=world.Get_rank())
    os.environ.update(RANK=str(world.Get_rank()), WORLD_SIZE=str(world.Get_size()),
                      LOCAL_RANK=str(local.Get_rank()), LOCAL_WORLD_SIZE=str(local.Get_size()))
    local.Free()
    return world.Get_rank()


def main(argv):
    module = bool(argv) and argv[0] == "-m"
    argv = argv[1:] if module else argv
    if not argv:
        sys.exit("usage: python -m tinylm.distributed.worker [-m] TARGET ARGS")
    MPI = _import_mpi()
    rank = set_rank_environment(MPI)
    target = argv[0]
    sys.argv = list(argv)
    try:
        if module:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
            runpy.run_path(target, run_name="__main__")
    except SystemExit as e:
        if e.code in (None, 0):
            return
        if not isinstance(e.code, int):
            print(f"[rank {rank}] {e.code}", file=sys.stderr)
        _abort(MPI, rank, e.code if isinstance(e.code, int) else 1, f"exited with code {e.code if isinstance(e.code, int) else 1}")
    except BaseException as e:
        tb = e.__traceback__
        while tb is not None and (tb.tb_frame.f_code.co_filename in (__file__, "<frozen runpy>")
                                  or "runpy" in os.path.basename(tb.tb_frame.f_code.co_filename)):
            tb = tb.tb_next                              # start at the script's own frames
        lines = "".join(traceback.format_exception(type(e), e, tb)).rstrip("\n").split("\n")
        sys.stderr.write("".join(f"[rank {rank}] {line}\n" for line in lines))
        _abort(MPI, rank, 1, "failed")


def _abort(MPI, rank, code, what):
    sys.stderr.write(f"[rank {rank}] {what}: ending all ranks (MPI_Abort)\n")
    sys.stdout.flush()
    sys.stderr.flush()
    MPI.COMM_WORLD.Abort(code)


if __name__ == "__main__":
    main(sys.argv[1:])
