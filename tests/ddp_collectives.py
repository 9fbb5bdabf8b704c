"""Checks each collective and DistributedDataParallel on every rank (run by tests/test_distributed.py
through the launcher); prints "rank R ok" at the end, an assertion error otherwise."""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import tinylm as tl  # noqa: E402
import tinylm.distributed as dist  # noqa: E402
from tinylm import nn  # noqa: E402
from tinylm.nn.parallel import DistributedDataParallel  # noqa: E402

dist.init_process_group("gloo")                     # PyTorch's CPU name: the MPI backend
r, n = dist.get_rank(), dist.get_world_size()
assert (r, n) == (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) and n >= 2
assert dist.get_backend() == "mpi"

t = tl.tensor(np.arange(4, dtype=np.float32) + 10 * r)
dist.all_reduce(t)                                  # sum over ranks
assert np.array_equal(t.data, n * np.arange(4) + 10 * sum(range(n))), t.data
m = tl.tensor(np.array([r, -r], dtype=np.float64))
dist.all_reduce(m, op=dist.ReduceOp.MAX)
assert m.data.tolist() == [n - 1, 0]
avg = np.full(3, float(r), dtype=np.float32)
dist.all_reduce(avg, op=dist.ReduceOp.AVG)
assert np.allclose(avg, (n - 1) / 2)
strided = np.zeros((3, 4), dtype=np.float32)
strided[:, ::2] = r + 1
view = strided[:, ::2]                              # not contiguous: reduced through a copy, written back
dist.all_reduce(view)
assert np.all(strided[:, ::2] == n * (n + 1) / 2) and np.all(strided[:, 1::2] == 0)

b = tl.tensor(np.full(5, r, dtype=np.int64))
dist.broadcast(b, src=n - 1)
assert b.data.tolist() == [n - 1] * 5
parts = [tl.zeros(2) for _ in range(n)]
dist.all_gather(parts, tl.tensor([float(r), r + 0.5]))
assert [p.data.tolist() for p in parts] == [[float(k), k + 0.5] for k in range(n)]
red = tl.tensor([float(r + 1)])
dist.reduce(red, dst=0)
assert red.data.tolist() == ([n * (n + 1) / 2] if r == 0 else [float(r + 1)])
dist.barrier()

# DistributedDataParallel: rank 0's weights everywhere, averaged gradients, no_sync, unused parameters
tl.manual_seed(100 + r)                             # different initial weights on every rank
net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
net.extra = nn.Linear(2, 2)                         # never used in forward: no gradient on any rank
ddp = DistributedDataParallel(net, bucket_cap_mb=1e-5)   # tiny buckets: one parameter each
w0 = net[0].weight.data.copy()
both = np.zeros((n,) + w0.shape, np.float32)
dist.all_gather(list(both), w0)
assert all(np.array_equal(both[0], w) for w in both), "the replicas did not start equal"
assert list(ddp.state_dict())[0] == "module.0.weight" and len(ddp.state_dict()) == len(net.state_dict())
x = tl.tensor(np.full((2, 3), r + 1.0, dtype=np.float32))


def local_grad(k):                                  # rank k's own gradient of net[0].weight, recomputed here
    net.zero_grad()
    with ddp.no_sync():
        ddp(tl.tensor(np.full((2, 3), k + 1.0, dtype=np.float32))).sum().backward()
    return net[0].weight.grad.copy()


expected = sum(local_grad(k) for k in range(n)) / n
own = local_grad(r)
net.zero_grad()
ddp(x).sum().backward()                             # synced: the average over ranks
assert np.allclose(net[0].weight.grad, expected, rtol=1e-6), (net[0].weight.grad, expected)
assert net.extra.weight.grad is None                # unused everywhere: stays None
# accumulation: two micro-steps, only the last synced, equals the average of the summed gradients
net.zero_grad()
with ddp.no_sync():
    ddp(x).sum().backward()
assert np.array_equal(net[0].weight.grad, own)     # under no_sync: this rank's own gradient, not averaged
ddp.require_backward_grad_sync = True
ddp(x).sum().backward()
assert np.allclose(net[0].weight.grad, 2 * expected, rtol=1e-6)
assert not np.allclose(own, expected)              # the ranks' inputs differ, so averaging changed something

# the strict test device (CuPy's rules): buffers on the device, moved through the host for MPI
tl.manual_seed(7)
lin = nn.Linear(3, 2, device="strict")
sddp = DistributedDataParallel(lin)
sddp(tl.tensor(np.full((1, 3), r + 1.0, dtype=np.float32), device="strict")).sum().backward()
assert tl.backend.device_of(lin.weight.grad) == "strict"
assert np.allclose(tl.backend.to_numpy(lin.weight.grad), (n + 1) / 2), lin.weight.grad   # d/dW of sum(W x) = x
print(f"rank {r} ok", flush=True)
