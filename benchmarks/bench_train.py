"""Training-step benchmark: median step time, tokens/s, peak memory, per-op profile; optionally
side by side with the same GPT in PyTorch eager, timed alternately in one run.

    python benchmarks/bench_train.py --preset cpu-small --compare torch
    python benchmarks/bench_train.py --preset char-6L --batch-size 8 --compare torch --memory
    python benchmarks/bench_train.py --preset char-6L --batch-size 64 --device gpu --compare torch

A step is: forward with loss, zero_grad, backward, AdamW step (lr 1e-3, weight decay 0.1 on
ndim >= 2 tensors, betas (0.9, 0.95), as nanoGPT). Batches are random token ids (vocab 65).
`--memory` runs each framework alone in a fresh process and reports its peak RSS (CPU) or the
peak memory reserved from the device (GPU: CuPy's pool, PyTorch's caching allocator).
The PyTorch side needs the `bench` extra: pip install -e ".[bench]".
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="cpu-small", choices=["cpu-small", "char-6L"])
    p.add_argument("--device", default="cpu", help="cpu or gpu")
    p.add_argument("--batch-size", type=int, default=None, help="default: 12 (cpu-small), 64 (char-6L)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per framework")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="BLAS / torch threads on the CPU")
    p.add_argument("--compare", choices=["torch"], default=None)
    p.add_argument("--reseed", action="store_true",
                   help="reseed every step, as the training loop does for bit-exact resume (tinylm.manual_seed; "
                        "torch.manual_seed on the PyTorch side), to see what that costs")
    p.add_argument("--profile", action="store_true", help="print tinylm's per-op forward/backward profile")
    p.add_argument("--memory", action="store_true",
                   help="each framework alone in its own process: peak memory and step time (no cross-talk "
                        "between the two frameworks' idle BLAS/OpenMP threads)")
    p.add_argument("--rounds", type=int, default=3, help="with --memory: alternating process rounds (medians)")
    p.add_argument("--only", choices=["tinylm", "torch"], default=None, help=argparse.SUPPRESS)
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    return p.parse_args()


args = parse()
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

import tinylm as tl  # noqa: E402
from tinylm.autograd import profile  # noqa: E402
from tinylm.model import GPT, GPTConfig  # noqa: E402
from tinylm.optim import AdamW, param_groups  # noqa: E402

DEVICE = tl.parse_device(args.device)
GPU = DEVICE.startswith("cuda")
BATCH = args.batch_size or {"cpu-small": 12, "char-6L": 64}[args.preset]


def gpu_sync():
    if GPU:
        import cupy
        cupy.cuda.Device().synchronize()


def make_batches(config, n):
    rng = np.random.default_rng(0)
    return [(rng.integers(0, config.vocab_size, (BATCH, config.block_size)),
             rng.integers(0, config.vocab_size, (BATCH, config.block_size))) for _ in range(n)]


def tinylm_setup(config, batches):
    tl.manual_seed(0)
    model = GPT(config, device=DEVICE)
    opt = AdamW(param_groups(model.named_parameters(), 0.1), lr=1e-3, betas=(0.9, 0.95))
    data = [(tl.tensor(x, device=DEVICE), tl.tensor(y, device=DEVICE)) for x, y in batches]

    def step(i):
        if args.reseed:
            tl.manual_seed(i)
        x, y = data[i % len(data)]
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    return model, step


def torch_setup(model_tl, batches):
    import torch
    from torch_gpt import from_tinylm, configure_adamw
    torch.set_num_threads(args.threads)
    dev = "cuda" if GPU else "cpu"
    tm = from_tinylm(model_tl).to(dev)
    tm.train()
    opt = configure_adamw(tm, 1e-3, 0.1, betas=(0.9, 0.95))
    data = [(torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)) for x, y in batches]

    def step(i):
        if args.reseed:
            torch.manual_seed(i)
        x, y = data[i % len(data)]
        _, loss = tm(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss
    sync = (lambda: torch.cuda.synchronize()) if GPU else None
    return tm, step, sync


def first_losses_agree(model_tl, tm, batches):
    """Eval mode (no dropout), the same weights, the same batch: the losses must agree to 1e-4."""
    import torch
    x, y = batches[0]
    model_tl.eval()
    tm.eval()
    with tl.no_grad():
        _, l1 = model_tl(tl.tensor(x, device=DEVICE), tl.tensor(y, device=DEVICE))
    dev = "cuda" if GPU else "cpu"
    with torch.no_grad():
        _, l2 = tm(torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev))
    model_tl.train()
    tm.train()
    a, b = l1.item(), l2.item()
    print(f"first loss: tinylm {a:.6f}  torch {b:.6f}  |diff| {abs(a - b):.2e}")
    if abs(a - b) > 1e-4:
        raise SystemExit("first losses disagree by more than 1e-4: the two models are not the same")


def timed(step, i, sync):
    if sync:
        sync()
    t0 = time.perf_counter()
    loss = step(i)
    float(loss.item())  # forces completion on a GPU
    if sync:
        sync()
    return time.perf_counter() - t0


def peak_memory_mib():
    if GPU:  # bytes the pool holds from the device; it keeps freed blocks, so this is its peak
        import cupy
        return cupy.get_default_memory_pool().total_bytes() / 2**20
    # VmHWM: the peak RSS of this process's own address space. (ru_maxrss is no good here: Linux
    # carries the parent's peak across fork + exec, so a child would report the parent's.)
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def torch_peak_gpu_mib():
    """The peak of what PyTorch's caching allocator held from the device (reserved, like CuPy's pool)."""
    import torch
    return torch.cuda.max_memory_reserved() / 2**20


def run_only(config, batches):
    """One framework alone in this process: warm-up, timed steps, then median time and peak memory as JSON."""
    if args.only == "torch":
        import gc
        tl.manual_seed(0)
        model = GPT(config, device=DEVICE)   # only to copy the same initial weights across
        tm, step, sync = torch_setup(model, batches)
        del model
        gc.collect()
    else:
        model, step = tinylm_setup(config, batches)
        sync = gpu_sync if GPU else None
    for i in range(args.warmup):
        timed(step, i, sync)
    times = [timed(step, i, sync) for i in range(args.steps)]
    mem = torch_peak_gpu_mib() if GPU and args.only == "torch" else peak_memory_mib()
    print(json.dumps({"framework": args.only, "peak_mib": mem, "median_s": statistics.median(times)}))


def main():
    config = GPTConfig.from_preset(args.preset)
    batches = make_batches(config, 4)
    if args.only:
        return run_only(config, batches)
    tokens = BATCH * config.block_size
    print(f"preset {args.preset} (n_layer={config.n_layer}, n_head={config.n_head}, n_embd={config.n_embd}, "
          f"block {config.block_size}, dropout {config.dropout}), batch {BATCH}, device {DEVICE}, "
          f"threads {args.threads}, numpy {np.__version__}{', reseeded every step' if args.reseed else ''}")
    model, step = tinylm_setup(config, batches)
    print(f"parameters: {model.num_parameters():,}")
    sync = gpu_sync if GPU else None
    runners = {"tinylm": (step, sync)}
    if args.compare == "torch":
        import torch
        tm, tstep, tsync = torch_setup(model, batches)
        print(f"torch {torch.__version__}")
        first_losses_agree(model, tm, batches)
        runners["torch"] = (tstep, tsync)
    times = {name: [] for name in runners}
    for name, (fn, s) in runners.items():
        for i in range(args.warmup):
            timed(fn, i, s)
    for i in range(args.steps):  # alternate, so drift in machine speed hits both alike
        for name, (fn, s) in runners.items():
            times[name].append(timed(fn, i, s))
    results = {"preset": args.preset, "batch": BATCH, "device": DEVICE, "threads": args.threads}
    print(f"\n{'framework':<10}{'median ms':>11}{'min ms':>9}{'tokens/s':>11}")
    for name, ts in times.items():
        med = statistics.median(ts)
        results[name] = {"median_s": med, "min_s": min(ts), "tokens_per_s": tokens / med}
        print(f"{name:<10}{1e3 * med:>11.1f}{1e3 * min(ts):>9.1f}{tokens / med:>11.0f}")
    if "torch" in times:
        ratio = results["tinylm"]["median_s"] / results["torch"]["median_s"]
        results["ratio_tinylm_over_torch"] = ratio
        print(f"step time ratio tinylm / torch: {ratio:.3f}")
    if args.memory:
        alone = {name: [] for name in runners}
        for _ in range(args.rounds):  # alternate processes, so drift in machine speed hits both alike
            for name in runners:
                cmd = [sys.executable, __file__, "--preset", args.preset, "--device", args.device, "--batch-size",
                       str(BATCH), "--threads", str(args.threads), "--only", name, "--warmup", str(args.warmup),
                       "--steps", str(args.steps)] + (["--reseed"] if args.reseed else [])
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
                alone[name].append(json.loads(out.splitlines()[-1]))
        for name, rows in alone.items():
            results[name]["alone_median_s"] = statistics.median(r["median_s"] for r in rows)
            results[name]["peak_mib"] = max(r["peak_mib"] for r in rows)
            per_round = ", ".join(f"{1e3 * r['median_s']:.1f}" for r in rows)
            print(f"{name} alone in its own process ({args.rounds} rounds): median "
                  f"{1e3 * results[name]['alone_median_s']:.1f} ms (rounds: {per_round}), "
                  f"peak {'GPU memory reserved' if GPU else 'RSS'} {results[name]['peak_mib']:.0f} MiB")
        if "torch" in runners:
            ratio = results["tinylm"]["alone_median_s"] / results["torch"]["alone_median_s"]
            results["ratio_alone"] = ratio
            print(f"step time ratio tinylm / torch, each alone: {ratio:.3f}")
    if args.profile:
        with profile(sync=sync) as prof:
            for i in range(5):
                step(i)
        print("\ntinylm per-op profile (ms per step):")
        print(prof.table(steps=5))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
