"""tinylm.distributed (as torch.distributed): process groups on MPI and NCCL, collectives, the launcher.

group.py holds the process group and the collectives; run.py is the launcher
(`python -m tinylm.distributed.run`, `tinylm-run`); worker.py is what each launched rank runs.
DistributedDataParallel lives in tinylm/nn/parallel.py. This file only imports and re-exports.
"""
from .group import (ReduceOp, init_process_group, is_available, is_initialized, get_rank, get_world_size,
                    get_backend, barrier, destroy_process_group, all_reduce, broadcast, all_gather, reduce,
                    nccl_bootstrap)

__all__ = ["ReduceOp", "init_process_group", "is_available", "is_initialized", "get_rank", "get_world_size",
           "get_backend", "barrier", "destroy_process_group", "all_reduce", "broadcast", "all_gather", "reduce",
           "nccl_bootstrap"]
