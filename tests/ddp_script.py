"""A small training run for tests/test_distributed.py, started by the launcher or as one process.

python tests/ddp_script.py --out RESULT.npz --batch B --steps S [--dtype float64] [--fail-rank R --fail-step K]
                           [--stop-step K] [--resume] [--run-dir DIR]
Trains the cpu-small GPT (dropout 0) on a fixed synthetic corpus with tinylm.train.train, then
rank 0 writes the per-step losses and every parameter to RESULT.npz. --fail-rank/--fail-step:
that rank raises RuntimeError after that step; --stop-step: rank 0 asks to stop (as Ctrl-C) there.
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from tinylm import backend  # noqa: E402
from tinylm.data import TokenDataset  # noqa: E402
from tinylm.model import GPT, GPTConfig  # noqa: E402
from tinylm.train import TrainConfig, train  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--fail-rank", type=int, default=-1)
    p.add_argument("--fail-step", type=int, default=-1)
    p.add_argument("--stop-step", type=int, default=-1)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--run-dir", default=None)
    p.add_argument("--n-layer", type=int, default=4)
    a = p.parse_args()
    rank = int(os.environ.get("RANK", "0"))
    ids = np.random.default_rng(0).integers(0, 65, 6000)            # a fixed corpus: the same on every rank
    data = TokenDataset(ids).split(0.9)
    backend.manual_seed(1337)
    model = GPT(GPTConfig.from_preset("cpu-small", dropout=0.0, n_layer=a.n_layer))
    if a.dtype == "float64":
        model.to(dtype=np.float64)
    cfg = TrainConfig.from_preset("cpu-small", batch_size=a.batch, max_iters=a.steps, warmup_iters=5,
                                  eval_interval=10_000, eval_iters=1, plot=False,
                                  out_dir=a.run_dir or os.path.join(os.path.dirname(a.out), "run"))

    def on_step(row):
        if rank == a.fail_rank and row["step"] == a.fail_step:
            raise RuntimeError(f"rank {rank} fails at step {row['step']} on purpose")
        if rank == 0 and row["step"] == a.stop_step:
            raise KeyboardInterrupt

    history = train(model, data, cfg, resume=a.resume, progress=False, on_step=on_step)
    if rank == 0:
        arrays = {f"param.{k}": backend.to_numpy(v) for k, v in model.state_dict().items()}
        np.savez(a.out, losses=np.array(history.losses, dtype=np.float64), step=history.step,
                 stopped=np.array(history.stopped), **arrays)


if __name__ == "__main__":
    main()
