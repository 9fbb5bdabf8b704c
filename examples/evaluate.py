"""The exact loss of a trained model on a text: every token a target once (tinylm.train.evaluate).

    # the val split (the last 10%) of tiny Shakespeare, as examples/train_shakespeare.py cut it
    python examples/evaluate.py --checkpoint out/shakespeare-char/best.npz

    # GPT-2 on a text of your own, all of it
    python examples/evaluate.py --pretrained path/to/gpt2 --data my.txt --split all

The training loop's evaluations sample random batches (fast, a little noisy); this walks the
whole split once in windows of the model's block size, so it gives the same number every time.
"""
import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))      # generate.py beside this file

import numpy as np  # noqa: E402

from generate import add_model_arguments, load_model  # noqa: E402
from tinylm.data import TokenDataset, load_shakespeare  # noqa: E402
from tinylm.train import evaluate  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_arguments(p)
    p.add_argument("--data", default=None, help="the text (default: tiny Shakespeare, found or downloaded)")
    p.add_argument("--split", choices=["val", "train", "all"], default="val",
                   help="val: the last 10%% of the tokens (the training split's complement); train: the first 90%%")
    p.add_argument("--batch-size", type=int, default=16, help="windows per forward pass (the result does not depend on it)")
    args = p.parse_args(argv)

    model, tok = load_model(args)
    text = load_shakespeare(args.data)
    data = TokenDataset(np.asarray(tok.encode(text), dtype=np.int64), device=model.device)
    if args.split != "all":
        data = getattr(data.split(0.9), args.split)
    t0 = time.perf_counter()
    loss = evaluate(model, data, batch_size=args.batch_size, progress=True)
    print(f"{args.split}: loss {loss:.4f} (perplexity {math.exp(loss):.3f}, {loss / math.log(2):.3f} bits per token) "
          f"over {len(data) - 1:,} targets, {time.perf_counter() - t0:.1f} s on {model.device}")
    return loss


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, ValueError) as e:  # bad input: say what was wrong, without a traceback
        sys.exit(f"error: {e}")
