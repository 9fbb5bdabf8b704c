"""Count the GPU kernel launches of one training step, on the CPU, fused kernels off and on.

    python benchmarks/count_launches.py                      # char-6L, as the training loop steps
    python benchmarks/count_launches.py --json out/launches.json

The step runs on the strict device (NumPy underneath, CuPy's rules on top) with a counting shim
wrapped around it: every array operation that would be a kernel launch on CuPy is counted once,
by phase (batch, forward, backward, optimizer). With --fused on, the fused kernels run too: their
CUDA source built for the CPU with g++ (tests/cuda_harness), each kernel call counted as one
launch. Nothing else changes between the two counts.

Counting rules (what CuPy does for each):
  one launch   each elementwise operator or ufunc (a + b, x *= y, xp.exp, comparisons), each
               reduction (sum, max, mean, einsum, vdot), each matmul (one cuBLAS call), the
               embedding gradient's scatter-add (cupyx.scatter_add), each copy
               kernel (astype to another dtype, copy, concatenate, stack, a reshape or
               ascontiguousarray that must copy, an advanced-index read, any item assignment,
               fill, zeros), each random draw (cuRAND), each fused kernel
  no launch    views (reshape/transpose/slices/broadcast_to), xp.empty
  counted apart  device -> host reads (item(), float(), bool(), .get()): each one waits for the GPU
The counts do not depend on the batch or context size, so a small batch is used; they are a
model of CuPy's behaviour (cuBLAS or CUB may launch two kernels where one is counted).
"""
import argparse
import collections
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import tinylm as tl  # noqa: E402
from tinylm import backend, cuda_kernels, ops, optim, strict  # noqa: E402
from tinylm.data import TokenDataset  # noqa: E402

_VIEWS = {"reshape", "transpose", "swapaxes", "moveaxis", "expand_dims", "squeeze", "broadcast_to", "ravel",
          "view", "split", "ascontiguousarray", "asarray", "diagonal"}
_FREE = {"empty", "empty_like", "result_type", "dtype", "finfo", "iinfo", "shape", "ndim", "size",
         "can_cast", "promote_types", "may_share_memory", "shares_memory"}
_SYNCS = {"item", "tolist", "get", "__bool__", "__float__", "__int__", "__index__"}


class Counter:
    """Launches by phase; `phase` names the part of the step being run."""

    def __init__(self):
        self.launches = collections.Counter()
        self.syncs = collections.Counter()
        self.by_name = collections.Counter()
        self.phase = "setup"
        self.on = False

    def add(self, name, n=1):
        if self.on and n:
            self.launches[self.phase] += n
            self.by_name[f"{self.phase}:{name}"] += n

    def sync(self, name):
        if self.on:
            self.syncs[self.phase] += 1


COUNT = Counter()


def _base(a):
    return a._a if isinstance(a, strict.StrictArray) else a


def _launches(name, args, result):
    """How many launches one call of `name` (a function or method) on strict arrays costs."""
    if name in _FREE:
        return 0
    if name in _VIEWS:       # a view is free; when it had to copy, one copy kernel
        sources = [_base(a) for a in args if isinstance(a, strict.StrictArray)]
        outs = result if isinstance(result, (tuple, list)) else (result,)
        copied = any(isinstance(o, strict.StrictArray) and sources and
                     not np.shares_memory(o._a, sources[0]) for o in outs)
        return 1 if copied else 0
    if name == "astype":
        src, out = _base(args[0]), result
        return 0 if isinstance(out, strict.StrictArray) and np.shares_memory(out._a, src) else 1
    return 1


def install_shim():
    """Wrap the strict device's module, array methods and operators, and the random generators."""
    call = strict._Callable.__call__

    def counted_call(self, *args, **kwargs):
        result = call(self, *args, **kwargs)
        f = self._f
        name = getattr(f, "__name__", type(f).__name__)
        COUNT.add(name, _launches(name, args, result))
        return result
    strict._Callable.__call__ = counted_call

    getattr_ = strict.StrictArray.__getattr__

    def counted_getattr(self, name):
        value = getattr_(self, name)
        if not callable(value):
            return value

        def method(*args, **kwargs):
            result = value(*args, **kwargs)
            if name in _SYNCS:
                COUNT.sync(name)
            else:
                COUNT.add(name, _launches(name, (self,) + args, result))
            return result
        return method
    strict.StrictArray.__getattr__ = counted_getattr

    def wrap(attr, launches):
        original = getattr(strict.StrictArray, attr)

        def counted(self, *args):
            result = original(self, *args)
            if attr in _SYNCS:
                COUNT.sync(attr)
            else:
                n = launches(self, args, result)
                COUNT.add(attr, n)
            return result
        setattr(strict.StrictArray, attr, counted)

    one = lambda self, args, result: 1  # noqa: E731
    for attr in [a for a in vars(strict.StrictArray) if a.startswith("__") and a.endswith("__")]:
        if attr in ("__init__", "__repr__", "__len__", "__iter__", "__getattr__", "__array__",
                    "__array_function__", "__array_ufunc__", "__slots__", "__module__", "__doc__", "__hash__",
                    "_a", "__getitem__", "__setitem__", "__dict__", "__weakref__", "__qualname__"):
            continue
        if callable(getattr(strict.StrictArray, attr)):
            wrap(attr, one)
    wrap("__getitem__", lambda self, args, result: 0 if not isinstance(result, strict.StrictArray)
         or np.shares_memory(result._a, self._a) else 1)
    wrap("__setitem__", one)

    # embedding backward: one cupyx.scatter_add on CuPy; the strict device takes the CPU's sort-and-reduceat path
    add_rows = ops.add_rows

    def counted_add_rows(target, index, rows):
        on, COUNT.on = COUNT.on, False
        try:
            return add_rows(target, index, rows)
        finally:
            COUNT.on = on
            COUNT.add("scatter_add")
    ops.add_rows = counted_add_rows

    for draw in ("normal", "uniform", "integers"):
        original = getattr(backend.Generator, draw)

        def counted_draw(self, *args, _original=original, _draw=draw, **kwargs):
            COUNT.add(f"random.{_draw}")
            return _original(self, *args, **kwargs)
        setattr(backend.Generator, draw, counted_draw)


def count_step(preset, batch, block, fused, launcher):
    """Launches of one training step (as tinylm/train.py steps) with the kernels on or off."""
    def counted(name, grid, block, args):
        COUNT.add(f"kernel {name}")
        launcher(name, grid, block, args)
    cuda_kernels.use_fused_kernels(fused, launcher=counted, array_type=strict.StrictArray)
    tl.manual_seed(0)
    cfg = tl.GPTConfig.from_preset(preset)
    model = tl.GPT(cfg, device="strict")
    opt = optim.AdamW(optim.param_groups(model.named_parameters(), 0.1), lr=1e-3)
    data = TokenDataset(np.random.default_rng(0).integers(0, cfg.vocab_size, 10_000), device="strict")
    global COUNT
    result = {}
    for step in range(2):                    # the second step is the one counted (optimizer state exists)
        COUNT = Counter()
        COUNT.on = step == 1
        COUNT.phase = "batch"
        x, y = data.get_batch(batch, block)
        COUNT.phase = "forward"
        _, loss = model(x, y)
        COUNT.phase = "optimizer"
        opt.zero_grad()
        COUNT.phase = "backward"
        loss.backward()
        COUNT.phase = "optimizer"
        optim.clip_grad_norm_(model.parameters(), 1.0)
        loss.item()
        opt.step()
        result = {"launches": dict(COUNT.launches), "total": sum(COUNT.launches.values()),
                  "syncs": sum(COUNT.syncs.values()), "by_name": dict(COUNT.by_name.most_common())}
    cuda_kernels.use_fused_kernels(False)
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="char-6L")
    p.add_argument("--batch-size", type=int, default=2, help="the counts do not depend on it")
    p.add_argument("--block", type=int, default=32, help="tokens per sequence (the counts do not depend on it)")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    from cuda_harness import harness
    reason = harness.gxx_available()
    launcher = None
    if not reason:
        launcher = harness.build(cuda_kernels.SOURCE, REPO / "out" / "cuda_harness")
    install_shim()
    t0 = time.perf_counter()
    report = {"preset": args.preset, "batch_size": args.batch_size, "block": args.block,
              "unfused": count_step(args.preset, args.batch_size, args.block, False, None)}
    if launcher is not None:
        report["fused"] = count_step(args.preset, args.batch_size, args.block, True, launcher)
    else:
        print(f"fused: not counted: {reason}")
    report["seconds"] = round(time.perf_counter() - t0, 1)
    phases = ["batch", "forward", "backward", "optimizer"]
    print(f"{args.preset} training step: kernel launches (device -> host waits)")
    print(f"{'':10}" + "".join(f"{ph:>11}" for ph in phases) + f"{'total':>9}{'at 5-10 us':>14}")
    for mode in ("unfused", "fused"):
        if mode in report:
            r = report[mode]
            n = r["total"]
            print(f"{mode:10}" + "".join(f"{r['launches'].get(ph, 0):>11}" for ph in phases)
                  + f"{n:>9}{f'{n * 5e-3:.1f}-{n * 10e-3:.1f} ms':>14}  ({r['syncs']} waits)")
    for mode in ("unfused", "fused"):
        if mode in report:
            top = ", ".join(f"{k} {v}" for k, v in list(report[mode]["by_name"].items())[:12])
            print(f"{mode} by name: {top}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
