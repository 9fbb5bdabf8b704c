"""Data-parallel benchmark: 1 process (2 BLAS threads) against 2 processes (1 thread each) on the
same global batch, and the 50-step equality check of issue 16.

    python benchmarks/bench_ddp.py                         # cpu-small batch 12 and char-6L batch 8, both ways
    python benchmarks/bench_ddp.py --check                 # 2 x batch 6 == 1 x batch 12, 50 steps, float32 and float64
    python benchmarks/bench_ddp.py --figure docs/figures/ddp_step_time.png   # also draw step time vs processes

A step is what tinylm.train runs: forward with loss, zero_grad, backward (DistributedDataParallel
averages the gradients when it finishes), clip to norm 1, AdamW. Batches are random token ids.
Each configuration runs `--repeats` times, alternating 1 and 2 processes, and the fastest median
step of each counts (the machine is shared: the load average is printed before and after). "all-reduce share" is DistributedDataParallel.sync_seconds (pack, all-reduce,
unpack) over the step time, on rank 0. Needs the dist extra.
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
sys.path.insert(0, str(ROOT))

CONFIGS = [("cpu-small", 12), ("char-6L", 8)]     # (preset, global batch)


def worker(preset, global_batch, steps, warmup):
    """Run inside each process: time `steps` steps; rank 0 prints one JSON line."""
    import numpy as np

    import tinylm as tl
    import tinylm.distributed as dist
    from tinylm import optim
    from tinylm.model import GPT, GPTConfig
    from tinylm.nn.parallel import DistributedDataParallel

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("mpi")
    rank = dist.get_rank() if world > 1 else 0
    tl.manual_seed(1337)
    model = GPT(GPTConfig.from_preset(preset))
    net = DistributedDataParallel(model) if world > 1 else model
    opt = optim.AdamW(optim.param_groups(model.named_parameters(), 0.1), lr=1e-3)
    B, T, V = global_batch // world, model.config.block_size, model.config.vocab_size
    rng = np.random.default_rng(rank)
    times, syncs = [], []
    for i in range(warmup + steps):
        x = tl.tensor(rng.integers(0, V, (B, T)))
        y = tl.tensor(rng.integers(0, V, (B, T)))
        s0 = net.sync_seconds if world > 1 else 0.0
        t0 = time.perf_counter()
        _, loss = net(x, y)
        opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            syncs.append((net.sync_seconds - s0) if world > 1 else 0.0)
    if rank == 0:
        med = statistics.median(times)
        print(json.dumps({"preset": preset, "processes": world, "threads": int(os.environ.get("OMP_NUM_THREADS", 0)),
                          "global_batch": global_batch, "step_s": med, "tokens_per_s": global_batch * T / med,
                          "allreduce_share": statistics.median(syncs) / med,
                          "params": model.num_parameters()}), flush=True)


def measure(preset, batch, processes, steps, warmup):
    threads = 2 // processes
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
    me = [str(Path(__file__).resolve()), "--worker", preset, str(batch), str(steps), str(warmup)]
    if processes == 1:
        cmd = [sys.executable] + me
    else:
        cmd = [sys.executable, "-m", "tinylm.distributed.run", "--nproc-per-node", str(processes)] + me
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def check(steps=50):
    """The acceptance run: 2 ranks of batch 6 against 1 process of batch 12, cpu-small, `steps` steps."""
    import tempfile

    import numpy as np
    script = ROOT / "tests" / "ddp_script.py"
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("float32", "float64"):
            one, two = os.path.join(tmp, f"one-{dtype}.npz"), os.path.join(tmp, f"two-{dtype}.npz")
            common = ["--steps", str(steps), "--dtype", dtype]
            subprocess.run([sys.executable, str(script), "--out", one, "--run-dir", os.path.join(tmp, "r1" + dtype),
                            "--batch", "12", *common], cwd=ROOT, check=True, capture_output=True)
            subprocess.run([sys.executable, "-m", "tinylm.distributed.run", "--nproc-per-node", "2", str(script),
                            "--out", two, "--run-dir", os.path.join(tmp, "r2" + dtype), "--batch", "6", *common],
                           cwd=ROOT, check=True, capture_output=True)
            a, b = np.load(one), np.load(two)
            names = [k for k in a.files if k.startswith("param.")]
            whole = np.sqrt(sum(np.sum((a[k] - b[k]).astype(np.float64) ** 2) for k in names)
                            / sum(np.sum(a[k].astype(np.float64) ** 2) for k in names))

            def rel(k):
                x, y = a[k], b[k]
                if k.endswith("c_attn.bias"):   # leave out the key third (zero gradient in exact arithmetic)
                    C = x.shape[0] // 3
                    x, y = np.concatenate([x[:C], x[2 * C:]]), np.concatenate([y[:C], y[2 * C:]])
                return np.linalg.norm(x - y) / np.linalg.norm(x)
            print(json.dumps({"check": dtype, "steps": steps, "max_loss_diff": float(np.max(np.abs(a["losses"] - b["losses"]))),
                              "params_rel_whole": float(whole), "params_rel_worst_tensor": float(max(map(rel, names))),
                              "final_loss": float(a["losses"][-1])}), flush=True)


def figure(rows, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7, 3.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(CONFIGS))
    for ax, (preset, batch) in zip(axes, CONFIGS):
        mine = [r for r in rows if r["preset"] == preset]
        procs = [r["processes"] for r in mine]
        comm = [1e3 * r["step_s"] * r["allreduce_share"] for r in mine]
        comp = [1e3 * r["step_s"] - c for r, c in zip(mine, comm)]
        ax.bar(procs, comp, width=0.5, label="compute")
        ax.bar(procs, comm, width=0.5, bottom=comp, label="gradient all-reduce")
        for p, r in zip(procs, mine):
            ax.annotate(f"{1e3 * r['step_s']:.0f} ms", (p, 1e3 * r["step_s"]), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(procs, [f"{p} x {2 // p} thread{'s' if p == 1 else ''}" for p in procs])
        ax.set_title(f"{preset}, global batch {batch}", fontsize=10)
        ax.set_ylabel("step time (ms)")
        ax.set_ylim(0, 1.18 * max(1e3 * r["step_s"] for r in mine))
    axes[0].legend(fontsize=8)
    fig.suptitle("Data parallel on a 2-core CPU: the same global batch, 1 or 2 processes", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        preset, batch, steps, warmup = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        return worker(preset, batch, steps, warmup)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="the 50-step equality check instead of timing")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--figure", default=None, help="draw step time vs processes to this PNG")
    a = p.parse_args()
    if a.check:
        return check()
    rows = []
    print(f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    for preset, batch in CONFIGS:
        steps, warmup = (20, 3) if preset == "cpu-small" else (4, 1)
        best = {}
        for _ in range(a.repeats):
            for procs in (1, 2):
                r = measure(preset, batch, procs, steps, warmup)
                if procs not in best or r["step_s"] < best[procs]["step_s"]:
                    best[procs] = r
        for procs in (1, 2):
            print(json.dumps(best[procs]), flush=True)
            rows.append(best[procs])
        print(f"{preset}: 2 processes are {best[1]['step_s'] / best[2]['step_s']:.2f}x the throughput of 1", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}", flush=True)
    if a.figure:
        figure(rows, a.figure)


if __name__ == "__main__":
    main()
