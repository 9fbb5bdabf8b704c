"""Generation benchmark: tokens/s with and without the KV cache, tinylm vs the same GPT in PyTorch.

    python benchmarks/bench_generate.py --compare torch
    python benchmarks/bench_generate.py --preset char-6L --block-size 512 --compare torch

Greedy decoding (temperature 0) of `--new-tokens` tokens from a one-token prompt, on one thread
by default; each configuration is run `--repeats` times, alternating frameworks, and the
median is reported. Without `--no-recompute`, full recomputation of the window at every step
(no cache) is timed too, for the cache speed-up. The PyTorch side needs the `bench` extra.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
p.add_argument("--preset", default="cpu-small", choices=["cpu-small", "char-6L"])
p.add_argument("--block-size", type=int, default=512)
p.add_argument("--new-tokens", type=int, default=500)
p.add_argument("--repeats", type=int, default=5)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--device", default="cpu")
p.add_argument("--compare", choices=["torch"], default=None)
p.add_argument("--no-recompute", action="store_true", help="skip the (slow) no-cache runs")
args = p.parse_args()
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

import tinylm as tl  # noqa: E402
from tinylm.model import GPT, GPTConfig  # noqa: E402


def main():
    device = tl.parse_device(args.device)
    config = GPTConfig.from_preset(args.preset, block_size=args.block_size, dropout=0.0)
    if args.new_tokens + 1 > config.block_size:
        raise SystemExit(f"--new-tokens {args.new_tokens} + the prompt must fit block size {config.block_size}")
    tl.manual_seed(0)
    model = GPT(config, device=device)
    model.eval()
    prompt = np.zeros((1, 1), dtype=np.int64)
    print(f"preset {args.preset} (n_layer={config.n_layer}, n_embd={config.n_embd}), block {config.block_size}, "
          f"{args.new_tokens} new tokens, greedy, device {device}, threads {args.threads}")

    runs = {"tinylm cache": lambda: model.generate(tl.tensor(prompt, device=device), args.new_tokens,
                                                     temperature=0.0, use_cache=True)}
    if not args.no_recompute:
        runs["tinylm no-cache"] = lambda: model.generate(tl.tensor(prompt, device=device), args.new_tokens,
                                                           temperature=0.0, use_cache=False)
    gpu = device.startswith("cuda")
    syncs = []
    if gpu:
        import cupy
        syncs.append(lambda: cupy.cuda.Device().synchronize())
    if args.compare == "torch":
        import torch
        from torch_gpt import from_tinylm
        torch.set_num_threads(args.threads)
        tdev = "cuda" if gpu else "cpu"
        tm = from_tinylm(model).to(tdev).eval()
        tp = torch.from_numpy(prompt).to(tdev)
        if gpu:
            syncs.append(torch.cuda.synchronize)
        runs["torch cache"] = lambda: tm.generate(tp, args.new_tokens, use_cache=True)
        if not args.no_recompute:
            runs["torch no-cache"] = lambda: tm.generate(tp, args.new_tokens, use_cache=False)
        # the same greedy tokens from the same weights
        a = runs["tinylm cache"]().numpy()
        b = runs["torch cache"]().cpu().numpy()
        same = int((a == b).all(axis=0).sum()) if a.shape == b.shape else 0
        print(f"torch {torch.__version__}; greedy tokens identical for {same}/{a.shape[1]} positions")

    def sync():
        for f in syncs:
            f()

    times = {k: [] for k in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()  # a GPU run is done when its kernels are
            times[name].append(time.perf_counter() - t0)
    print(f"\n{'run':<16}{'median s':>10}{'tokens/s':>10}")
    med = {}
    for name, ts in times.items():
        med[name] = statistics.median(ts)
        print(f"{name:<16}{med[name]:>10.3f}{args.new_tokens / med[name]:>10.0f}")
    if "torch cache" in med:
        print(f"tokens/s ratio tinylm / torch (cache): {med['torch cache'] / med['tinylm cache']:.3f}")
    if "tinylm no-cache" in med:
        print(f"KV-cache speed-up, tinylm: {med['tinylm no-cache'] / med['tinylm cache']:.2f}x")
    if "torch no-cache" in med:
        print(f"KV-cache speed-up, torch: {med['torch no-cache'] / med['torch cache']:.2f}x")


if __name__ == "__main__":
    main()
