"""Train tinylm's GPT and the same GPT in PyTorch in lockstep and compare every loss.

    python benchmarks/compare_training.py --steps 60

Same initial weights (copied by name), same Shakespeare batches, AdamW (lr 1e-3, betas
(0.9, 0.99), weight decay 0.1 on ndim >= 2 tensors) and gradient clipping at 1.0 on both
sides: the losses and gradient norms must agree step by step. Needs the `bench` extra and
../shared/data/tinyshakespeare.txt (or --data).
"""
import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
p.add_argument("--steps", type=int, default=60)
p.add_argument("--preset", default="cpu-small")
p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"))
p.add_argument("--threads", type=int, default=2)
p.add_argument("--tolerance", type=float, default=1e-4)
args = p.parse_args()
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import tinylm as tl  # noqa: E402
from tinylm.model import GPT, GPTConfig  # noqa: E402
from tinylm.optim import AdamW, param_groups, clip_grad_norm_  # noqa: E402
from torch_gpt import from_tinylm, configure_adamw  # noqa: E402


def main():
    torch.set_num_threads(args.threads)
    config = GPTConfig.from_preset(args.preset, dropout=0.0)
    tl.manual_seed(0)
    model = GPT(config)
    tmodel = from_tinylm(model)
    opt = AdamW(param_groups(model.named_parameters(), 0.1), lr=1e-3, betas=(0.9, 0.99))
    topt = configure_adamw(tmodel, 1e-3, 0.1, betas=(0.9, 0.99))
    text = Path(args.data).read_text(encoding="utf-8")
    tok = tl.CharTokenizer.from_text(text)
    ids = np.array(tok.encode(text[:300_000]))
    rng = np.random.default_rng(0)
    T, B = config.block_size, 12
    worst = 0.0
    print(f"{'step':>5}{'tinylm loss':>14}{'torch loss':>14}{'tinylm |g|':>12}{'torch |g|':>12}")
    for step in range(args.steps):
        ix = rng.integers(0, len(ids) - T - 1, B)
        x = np.stack([ids[i:i + T] for i in ix])
        y = np.stack([ids[i + 1:i + T + 1] for i in ix])
        _, loss = model(tl.tensor(x), tl.tensor(y))
        opt.zero_grad()
        loss.backward()
        norm = clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        _, tloss = tmodel(torch.from_numpy(x), torch.from_numpy(y))
        topt.zero_grad()
        tloss.backward()
        tnorm = torch.nn.utils.clip_grad_norm_(tmodel.parameters(), 1.0).item()
        topt.step()
        worst = max(worst, abs(loss.item() - tloss.item()))
        if step % 10 == 0 or step == args.steps - 1:
            print(f"{step:>5}{loss.item():>14.6f}{tloss.item():>14.6f}{norm:>12.5f}{tnorm:>12.5f}")
    print(f"largest |loss difference| over {args.steps} steps: {worst:.2e}")
    if worst > args.tolerance:
        raise SystemExit(f"the two trainings diverge by more than {args.tolerance}")


if __name__ == "__main__":
    main()
