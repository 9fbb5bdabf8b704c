"""The process group and its collectives: PyTorch's `torch.distributed` names on MPI and NCCL.

Owns one process group per process (the world: every process the launcher or `mpiexec`
started) and the collectives a training loop needs, each in place on a Tensor (or a raw
NumPy/CuPy array): `all_reduce`, `broadcast`, `all_gather`, `reduce`, `barrier`.

Backends: 'mpi' moves host arrays through MPI (mpi4py's buffer interface: no pickling);
'gloo' is accepted as its alias, since PyTorch's CPU users write that. 'nccl' moves CuPy
arrays through NCCL (`cupy.cuda.nccl`), its unique id broadcast over MPI, and still uses MPI
for host arrays. Rank and world size are MPI's; RANK/WORLD_SIZE in the environment (set by
`python -m tinylm.distributed.run`) must agree with them.

mpi4py and CuPy are imported when a group is made, never at import: `import tinylm.distributed`
works anywhere. Leaves out: subgroups (`new_group`), async handles, send/recv, object
collectives (they pickle). Reference: torch.distributed (names and semantics), mpi4py's
buffer-based Comm.Allreduce, NCCL's ncclCommInitRank bootstrap.
"""
import os

import numpy as np

from .. import backend as devices   # "backend" is init_process_group's argument, as in PyTorch
from ..tensor import Tensor

_DIST_HINT = 'install the dist extra: pip install -e ".[dist]" (mpi4py and the MPICH wheels)'


class ReduceOp:
    """How `all_reduce`/`reduce` combine the ranks' values (torch.distributed.ReduceOp)."""
    SUM = "sum"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"
    AVG = "avg"          # the sum divided by the world size


_OPS = (ReduceOp.SUM, ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.MAX, ReduceOp.AVG)


class _Group:
    """The world: backend name, rank, size, the MPI communicator and (for 'nccl') the NCCL one."""

    def __init__(self, name, comm, nccl_comm=None, nccl=None):
        self.name, self.comm, self.nccl_comm, self.nccl = name, comm, nccl_comm, nccl
        self.rank, self.size = comm.Get_rank(), comm.Get_size()


_group = None


def _import_mpi():
    """mpi4py.MPI, or an ImportError naming the extra to install."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"tinylm.distributed needs mpi4py ({e}); {_DIST_HINT}") from None
    return MPI


def _import_nccl():
    """cupy.cuda.nccl, or an ImportError naming what to install."""
    try:
        from cupy.cuda import nccl
    except ImportError as e:
        raise ImportError(f"backend 'nccl' needs CuPy with NCCL ({e}); install the gpu and dist extras and "
                          "the nvidia-nccl-cu12 wheel: pip install -e \".[gpu,dist]\" nvidia-nccl-cu12") from None
    if not getattr(nccl, "available", True):
        raise ImportError("backend 'nccl': this CuPy was built without NCCL; pip install nvidia-nccl-cu12")
    return nccl


def nccl_bootstrap(comm, nccl, rank, size):
    """The NCCL communicator of this rank: rank 0 makes the unique id, MPI broadcasts it (as bytes).

    comm: an MPI communicator (Bcast of a buffer); nccl: the `cupy.cuda.nccl` module (or a fake
    with `get_unique_id()` and `NcclCommunicator(size, uid, rank)`, as the tests pass).
    """
    uid = np.zeros(128, dtype=np.int64)                     # ncclUniqueId: 128 chars
    if rank == 0:
        made = tuple(int(c) for c in nccl.get_unique_id())
        if len(made) != uid.size:
            raise ValueError(f"nccl.get_unique_id() gave {len(made)} values, expected {uid.size}")
        uid[:] = made
    comm.Bcast(uid, root=0)
    return nccl.NcclCommunicator(size, tuple(int(c) for c in uid), rank)


def init_process_group(backend=None, *, comm=None, nccl=None):
    """Join the world group: backend 'mpi' (or 'gloo', its alias) for host arrays, 'nccl' for CuPy arrays.

    backend None: 'nccl' where CuPy finds a GPU, else 'mpi'. With 'nccl' each process takes GPU
    LOCAL_RANK (mod the GPUs it sees) before NCCL starts. comm, nccl: an MPI communicator and an
    NCCL module to use instead of MPI.COMM_WORLD and cupy.cuda.nccl (for tests).
    """
    global _group
    if _group is not None:
        raise RuntimeError("init_process_group: the process group is already initialized "
                           "(call destroy_process_group() first)")
    name = {"gloo": "mpi"}.get(backend, backend)
    if name is None:
        name = "nccl" if devices.gpu_available() else "mpi"
    if name not in ("mpi", "nccl"):
        raise ValueError(f"init_process_group: unknown backend {backend!r}; choose 'mpi' ('gloo'), or 'nccl'")
    if comm is None:
        comm = _import_mpi().COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    for var, value in (("RANK", rank), ("WORLD_SIZE", size)):
        if os.environ.get(var, str(value)) != str(value):
            raise ValueError(f"init_process_group: the environment's {var}={os.environ[var]} but MPI says "
                             f"{value}; start the processes with python -m tinylm.distributed.run or mpiexec")
    nccl_comm = None
    if name == "nccl":
        if nccl is None:
            nccl = _import_nccl()
            cupy = devices._import_cupy()
            local = int(os.environ.get("LOCAL_RANK", rank))
            cupy.cuda.Device(local % cupy.cuda.runtime.getDeviceCount()).use()
        nccl_comm = nccl_bootstrap(comm, nccl, rank, size)
    _group = _Group(name, comm, nccl_comm, nccl)


def is_available():
    """Whether mpi4py can be imported (torch.distributed.is_available)."""
    try:
        _import_mpi()
    except ImportError:
        return False
    return True


def is_initialized():
    """Whether init_process_group has run (and destroy_process_group not since)."""
    return _group is not None


def _world():
    if _group is None:
        raise RuntimeError("the default process group is not initialized: call "
                           "tinylm.distributed.init_process_group() first")
    return _group


def get_rank():
    """This process's rank, 0 .. world size - 1."""
    return _world().rank


def get_world_size():
    """The number of processes in the group."""
    return _world().size


def get_backend():
    """'mpi' or 'nccl'."""
    return _world().name


def barrier():
    """Wait until every rank has called barrier()."""
    _world().comm.Barrier()


def destroy_process_group():
    """Leave the group (MPI itself is finalized when the process exits)."""
    global _group
    if _group is not None and _group.nccl_comm is not None:
        _group.nccl_comm.destroy()
    _group = None


# ---------------------------------------------------------------------------- collectives
def _array(tensor, fn):
    """The raw array behind `tensor` (a Tensor or a NumPy/CuPy array)."""
    if isinstance(tensor, Tensor):
        return tensor.data
    if isinstance(tensor, np.ndarray) or devices._is_cupy(tensor) or devices.device_of(tensor) == "strict":
        return tensor
    raise TypeError(f"{fn}: expected a tinylm Tensor or a NumPy/CuPy array, got {type(tensor).__name__}")


def _changed(tensor):
    """Count an in-place change (a backward through the old values then refuses, as after x.add_())."""
    if isinstance(tensor, Tensor):
        tensor._vc[0] += 1


def _check_op(op, fn):
    if op not in _OPS:
        raise ValueError(f"{fn}: unknown op {op!r}; use a tinylm.distributed.ReduceOp")


def _check_rank(rank, group, what, fn):
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < group.size:
        raise ValueError(f"{fn}: {what} must be a rank in 0..{group.size - 1}, got {rank!r}")


def _on_nccl(group, a):
    return group.nccl_comm is not None and devices._is_cupy(a)


def _mpi_op(op):
    MPI = _import_mpi()
    return {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
            ReduceOp.MIN: MPI.MIN, ReduceOp.MAX: MPI.MAX}[op]


def _nccl_args(group, a, op=None):
    """(pointer, count, NCCL datatype[, NCCL op], stream pointer) for a contiguous CuPy array."""
    nccl = group.nccl
    types = {"float16": nccl.NCCL_FLOAT16, "float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64,
             "int32": nccl.NCCL_INT32, "int64": nccl.NCCL_INT64}
    if a.dtype.name not in types:
        raise TypeError(f"backend 'nccl' cannot move dtype {a.dtype}; use one of {', '.join(types)}")
    import cupy   # only reached with a CuPy array in hand
    stream = cupy.cuda.get_current_stream().ptr
    ops = {ReduceOp.SUM: nccl.NCCL_SUM, ReduceOp.AVG: nccl.NCCL_SUM, ReduceOp.PRODUCT: nccl.NCCL_PROD,
           ReduceOp.MIN: nccl.NCCL_MIN, ReduceOp.MAX: nccl.NCCL_MAX}
    return a.data.ptr, a.size, types[a.dtype.name], (ops[op] if op else None), stream


def _host(a):
    """(a contiguous host array with a's values, whether it must be copied back into a)."""
    if isinstance(a, np.ndarray) and a.flags.c_contiguous:
        return a, False
    return np.ascontiguousarray(devices.to_numpy(a)), True


def _write_back(a, host):
    a[...] = host if isinstance(a, np.ndarray) else devices.to_device(host, devices.device_of(a))


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Combine `tensor` over all ranks, in place: every rank ends with the same values."""
    g = _world()
    _check_op(op, "all_reduce")
    _no_subgroups(group, async_op, "all_reduce")
    a = _array(tensor, "all_reduce")
    _check_avg(op, a, "all_reduce")
    if _on_nccl(g, a) and a.flags.c_contiguous:
        ptr, n, dtype, nop, stream = _nccl_args(g, a, op)
        g.nccl_comm.allReduce(ptr, ptr, n, dtype, nop, stream)
    else:
        host, copied = _host(a)
        g.comm.Allreduce(_import_mpi().IN_PLACE, host, op=_mpi_op(op))
        if copied:
            _write_back(a, host)
    if op == ReduceOp.AVG:
        a /= g.size
    _changed(tensor)


def broadcast(tensor, src, group=None, async_op=False):
    """Copy rank `src`'s `tensor` into every rank's `tensor`, in place."""
    g = _world()
    _check_rank(src, g, "src", "broadcast")
    _no_subgroups(group, async_op, "broadcast")
    a = _array(tensor, "broadcast")
    if _on_nccl(g, a) and a.flags.c_contiguous:
        ptr, n, dtype, _, stream = _nccl_args(g, a)
        g.nccl_comm.bcast(ptr, n, dtype, int(src), stream)
    else:
        host, copied = _host(a)
        g.comm.Bcast(host, root=int(src))
        if copied:
            _write_back(a, host)
    _changed(tensor)


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """Fill `tensor_list[r]` with rank r's `tensor`, on every rank (all of one shape and dtype)."""
    g = _world()
    _no_subgroups(group, async_op, "all_gather")
    a = _array(tensor, "all_gather")
    if not isinstance(tensor_list, list) or len(tensor_list) != g.size:
        raise ValueError(f"all_gather: tensor_list must be a list of {g.size} tensors (one per rank), "
                         f"got {type(tensor_list).__name__} of {len(tensor_list) if hasattr(tensor_list, '__len__') else '?'}")
    outs = [_array(t, "all_gather") for t in tensor_list]
    for r, o in enumerate(outs):
        if tuple(o.shape) != tuple(a.shape) or o.dtype != a.dtype:
            raise ValueError(f"all_gather: tensor_list[{r}] has shape {tuple(o.shape)} and dtype {o.dtype}, "
                             f"the tensor {tuple(a.shape)} and {a.dtype}")
    if _on_nccl(g, a):
        xp = devices.get_array_module(a)
        send, recv = xp.ascontiguousarray(a), xp.empty((g.size,) + tuple(a.shape), a.dtype)
        ptr, n, dtype, _, stream = _nccl_args(g, send)
        g.nccl_comm.allGather(ptr, recv.data.ptr, n, dtype, stream)
        gathered = recv
    else:
        send = _host(a)[0]
        gathered = np.empty((g.size,) + tuple(a.shape), a.dtype)
        g.comm.Allgather(send, gathered)
    for o, t, part in zip(outs, tensor_list, gathered):
        if _on_nccl(g, o):
            o[...] = part
        else:
            _write_back(o, devices.to_numpy(part))
        _changed(t)


def reduce(tensor, dst, op=ReduceOp.SUM, group=None, async_op=False):
    """Combine `tensor` over all ranks into rank `dst`'s `tensor` (the others keep theirs)."""
    g = _world()
    _check_rank(dst, g, "dst", "reduce")
    _check_op(op, "reduce")
    _no_subgroups(group, async_op, "reduce")
    a = _array(tensor, "reduce")
    _check_avg(op, a, "reduce")
    if _on_nccl(g, a) and a.flags.c_contiguous:
        xp = devices.get_array_module(a)
        out = a if g.rank == dst else xp.empty_like(a)
        ptr, n, dtype, nop, stream = _nccl_args(g, a, op)
        g.nccl_comm.reduce(ptr, out.data.ptr, n, dtype, nop, int(dst), stream)
    else:
        host, copied = _host(a)
        MPI = _import_mpi()
        if g.rank == dst:
            g.comm.Reduce(MPI.IN_PLACE, host, op=_mpi_op(op), root=int(dst))
            if copied:
                _write_back(a, host)
        else:
            g.comm.Reduce(host, None, op=_mpi_op(op), root=int(dst))
    if g.rank == dst:
        if op == ReduceOp.AVG:
            a /= g.size
        _changed(tensor)


def _check_avg(op, a, fn):
    if op == ReduceOp.AVG and a.dtype.kind != "f":
        raise TypeError(f"{fn}: ReduceOp.AVG needs a floating-point tensor, got dtype {a.dtype}")


def _no_subgroups(group, async_op, fn):
    if group is not None:
        raise ValueError(f"{fn}: only the default group (group=None) is supported")
    if async_op:
        raise ValueError(f"{fn}: async_op=True is not supported; collectives return when done")


__all__ = ["ReduceOp", "init_process_group", "is_available", "is_initialized", "get_rank", "get_world_size",
           "get_backend", "barrier", "destroy_process_group", "all_reduce", "broadcast", "all_gather", "reduce",
           "nccl_bootstrap"]
