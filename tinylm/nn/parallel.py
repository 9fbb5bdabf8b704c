"""DistributedDataParallel: one model replica per process, gradients averaged after every backward.

Owns the wrapper PyTorch users know from `torch.nn.parallel`: at construction it copies rank 0's
parameters and buffers to every rank (so all replicas start equal), and when a backward pass
through the wrapped model finishes (the engine's post-backward hook), it averages every
gradient across the ranks. Each rank then runs the same optimizer step on the same averaged
gradient, so the replicas stay equal without ever sending a weight again.

How the average is taken: the gradients are packed, in reverse registration order (close to
the order backward produces them), into flat buckets of at most `bucket_cap_mb` (4 MiB by
default: measured fastest for a 43 MiB gradient on 2 processes, see benchmarks/RESULTS.md), one
in-place all-reduce (sum) per bucket, then a division by the world size. The average of the
ranks' gradients is the gradient of the average of their losses, i.e. of the loss of the whole
global batch when every rank's batch has the same size.

Gradient accumulation (nanoGPT's way): backward passes whose forward ran under `no_sync()`, or
with `require_backward_grad_sync = False`, only accumulate locally; the first backward after a
forward with syncing on averages the accumulated sums. A parameter with no gradient on any rank
keeps `grad = None`; one with a gradient on some ranks gets the average (the others count as 0).

`.module` is the wrapped model; `state_dict()` keys carry PyTorch's "module." prefix (save
`ddp.module.state_dict()` for a checkpoint that loads without the wrapper).
Leaves out: overlapping communication with backward (the engine hook fires once, at the end),
find_unused_parameters, static graphs, join(). Reference: torch.nn.parallel.DistributedDataParallel.
"""
import contextlib
import time
import weakref

from .. import backend
from .. import distributed as dist
from ..engine import is_grad_enabled, raw_grad, register_post_backward_hook
from .module import Module

BUCKET_CAP_MB = 4   # MiB per flat bucket; 4 beat 1, 25 and one buffer for a 43 MiB all-reduce (RESULTS.md)


class _Bucket:
    """Parameters of one device and dtype, with a flat buffer: their gradients, then one presence flag each."""

    def __init__(self, params):
        self.params = params
        self.offsets, n = [], 0
        for p in params:
            self.offsets.append((n, n + p.data.size))
            n += p.data.size
        self.n = n
        xp = backend.array_module(params[0].device)
        self.buffer = xp.empty(n + len(params), dtype=params[0].dtype)   # grads, then has-grad flags


class DistributedDataParallel(Module):
    """Wrap `module` so that backward averages its gradients over all ranks of the process group."""

    def __init__(self, module, device_ids=None, output_device=None, broadcast_buffers=True,
                 bucket_cap_mb=BUCKET_CAP_MB):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel wraps a tinylm.nn.Module, got {type(module).__name__}")
        if not dist.is_initialized():
            raise RuntimeError("DistributedDataParallel needs a process group: call "
                               "tinylm.distributed.init_process_group() first")
        if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, (int, float)) or not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be a positive number, got {bucket_cap_mb!r}")
        self.module = module
        self.require_backward_grad_sync = True
        self.sync_seconds = 0.0   # time spent averaging gradients (packing, all-reduce, unpacking), summed
        self._armed = False
        self._broadcast_state(broadcast_buffers)
        self._buckets = self._make_buckets(bucket_cap_mb * 2**20)
        ref = weakref.ref(self)

        def hook():
            ddp = ref()
            if ddp is not None:
                ddp._after_backward()
        self._hook = register_post_backward_hook(hook)
        weakref.finalize(self, self._hook.remove)

    def _broadcast_state(self, buffers):
        """Every rank takes rank 0's parameters (and buffers): the replicas start equal."""
        for p in self.module.parameters():
            dist.broadcast(p.data, src=0)
        if buffers:
            for b in self.module.buffers():
                dist.broadcast(b.data, src=0)

    def _make_buckets(self, cap_bytes):
        groups = {}
        for p in reversed(list(self.module.parameters())):
            if p.requires_grad:
                groups.setdefault((p.device, p.dtype), []).append(p)
        buckets = []
        for params in groups.values():
            current, size = [], 0
            for p in params:
                if current and size + p.data.nbytes > cap_bytes:
                    buckets.append(_Bucket(current))
                    current, size = [], 0
                current.append(p)
                size += p.data.nbytes
            if current:
                buckets.append(_Bucket(current))
        return buckets

    def forward(self, *args, **kwargs):
        self._armed = self._armed or (self.require_backward_grad_sync and is_grad_enabled())
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Inside, forward passes do not sync their backward: gradients accumulate locally."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def _after_backward(self):
        if self._armed:
            self._armed = False
            self.sync_gradients()

    def sync_gradients(self):
        """Average every parameter's gradient across the ranks now (the hook calls this after backward)."""
        t0 = time.perf_counter()
        world = dist.get_world_size()
        for b in self._buckets:
            flat = b.buffer
            for i, (p, (lo, hi)) in enumerate(zip(b.params, b.offsets)):
                if p.grad is None:
                    flat[lo:hi] = 0
                    flat[b.n + i] = 0
                else:
                    flat[lo:hi] = raw_grad(p.grad).reshape(-1)
                    flat[b.n + i] = 1
            dist.all_reduce(flat)                        # sum over ranks, in place
            present = backend.to_numpy(flat[b.n:]) > 0   # (params,) whether any rank had a gradient
            xp = backend.get_array_module(flat)
            for p, (lo, hi), has in zip(b.params, b.offsets, present):
                if not has:
                    continue
                total = flat[lo:hi].reshape(p.shape)
                if p.grad is None or p.grad is not raw_grad(p.grad):
                    p.grad = total / world               # its own array: the buffer is reused next time
                else:
                    xp.divide(total, world, out=p.grad)  # the average, written into the gradient in one pass
        self.sync_seconds += time.perf_counter() - t0

    def extra_repr(self):
        return f"world_size={dist.get_world_size()}, buckets={len(self._buckets)}"


__all__ = ["DistributedDataParallel", "BUCKET_CAP_MB"]
