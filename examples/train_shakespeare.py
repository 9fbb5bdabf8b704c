"""Train a GPT on tiny Shakespeare, characters or BPE tokens, on the CPU or a GPU.

    python examples/train_shakespeare.py --device cpu                 # cpu-small: 4 layers, 128 wide, 2000 steps
    python examples/train_shakespeare.py --device gpu                 # char-6L: nanoGPT's shakespeare_char run
    python examples/train_shakespeare.py --tokenizer bpe --vocab-size 512
    python examples/train_shakespeare.py --device cpu --resume        # continue from out/shakespeare-char/last.npz
    python examples/train_shakespeare.py --init-from GPT2_DIR --block-size 128 --max-iters 200   # fine-tune GPT-2
    python examples/generate.py --checkpoint out/shakespeare-char/best.npz --prompt "ROMEO:"

Every field of GPTConfig (tinylm/model.py) and TrainConfig (tinylm/train.py) is a flag
(`--n-layer`, `--lr`, `--max-iters`, ...); a preset fills in the rest (--preset, by default
cpu-small on the CPU and char-6L on a GPU). A sample is printed at every evaluation and at
the end. Ctrl-C saves a checkpoint; run the same command with --resume to continue.
Data parallel with no new flag: `python -m tinylm.distributed.run --nproc-per-node 2
examples/train_shakespeare.py --device cpu` (--batch-size is then per process; rank 0 alone prints).
Thin on purpose: tinylm.train.train does the work.
"""
import argparse
import dataclasses
import inspect
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import tinylm as tl  # noqa: E402
from tinylm.checkpoint import load_checkpoint  # noqa: E402
from tinylm.data import TokenDataset, load_shakespeare  # noqa: E402
from tinylm.model import GPT, GPTConfig  # noqa: E402
from tinylm.tokenizers import BPETokenizer, CharTokenizer, tokenizer_from_dict  # noqa: E402
from tinylm.train import TrainConfig, evaluate, train  # noqa: E402

PRESETS = ["cpu-small", "char-6L"]   # names shared by tinylm.model.PRESETS and tinylm.train.PRESETS
DEFAULT_PRESET = {"cpu": "cpu-small", "strict": "cpu-small", "gpu": "char-6L"}
FINETUNE = dict(lr=3e-5, min_lr=3e-5, warmup_iters=0)   # --init-from: a small, constant lr (nanoGPT's finetune)


def is_main():
    """Whether this is rank 0 of a data-parallel run (or the only process): it alone prints and samples."""
    return int(os.environ.get("RANK", "0")) == 0


def field_comments(cls):
    """{field: its trailing comment} from a dataclass's source: the comments are the flags' help."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    return dict(re.findall(r"^\s+(\w+):[^=\n]+=[^#\n]+#\s*(.+)$", source, re.M))


def add_fields(parser, cls, skip=()):
    """One flag per dataclass field (--n-layer for n_layer), default None so the preset fills it in."""
    values = {name: ", ".join(f"{f.name}={getattr(cls.from_preset(name), f.name)}" for f in dataclasses.fields(cls)
                              if f.name not in skip and f.name not in ("out_dir",)) for name in PRESETS}
    group = parser.add_argument_group(
        f"{cls.__name__} fields (default: the preset's)",
        "; ".join(f"{name}: {v}" for name, v in values.items()))
    helps = field_comments(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=helps.get(f.name))
        else:
            group.add_argument(flag, type=f.type, default=None, metavar=f.name.upper(), help=helps.get(f.name))


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu", "strict"], metavar="{auto,cpu,gpu}",
                   help="auto = gpu when CuPy and a CUDA device are present, else cpu")
    p.add_argument("--preset", choices=PRESETS, default=None,
                   help="model and training sizes (default: cpu-small on cpu, char-6L on gpu)")
    p.add_argument("--tokenizer", choices=["char", "bpe"], default="char")
    p.add_argument("--vocab-size", type=int, default=512, help="bpe: ids in the trained tokenizer")
    p.add_argument("--tokenizer-file", default=None, help="bpe: load this BPETokenizer file instead of training one")
    p.add_argument("--trust-pattern", action="store_true",
                   help="accept a tokenizer file or checkpoint whose split pattern is not a known one (it is code)")
    p.add_argument("--data", default=None, help="the text to train on (default: tiny Shakespeare, found or downloaded)")
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/last.npz")
    p.add_argument("--init-from", default=None, metavar="DIR",
                   help="fine-tune a Hugging Face GPT-2 folder (config.json, model.safetensors and its tokenizer "
                        "files) instead of training from scratch; --block-size crops its positions; a constant lr, "
                        f"{FINETUNE['lr']:g} unless --lr says otherwise")
    p.add_argument("--sample-chars", type=int, default=200, help="length of the samples printed (0 = none)")
    add_fields(p, GPTConfig, skip=("vocab_size",))
    add_fields(p, TrainConfig)
    return p.parse_args(argv)


def given(args, cls):
    """The fields of dataclass `cls` set on the command line (the preset supplies the others)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name, None) is not None}


def get_tokenizer(args, text, out_dir):
    """The run's tokenizer: from the checkpoint when resuming, else built from the training text."""
    last = os.path.join(out_dir, "last.npz")
    if args.resume and os.path.isfile(last):
        return tokenizer_from_dict(load_checkpoint(last).tokenizer, trust_pattern=args.trust_pattern,
                                   source=f"{last}: tokenizer")
    if args.init_from:
        return BPETokenizer.from_pretrained(args.init_from)   # the model's own tokenizer
    if args.tokenizer == "char":
        return CharTokenizer.from_text(text)
    if args.tokenizer_file:
        return BPETokenizer.load(args.tokenizer_file, trust_pattern=args.trust_pattern)
    train_text = text[:int(0.9 * len(text))]            # the val text stays unseen by the tokenizer too
    if is_main():
        print(f"training a BPE tokenizer to {args.vocab_size} ids on {len(train_text):,} characters")
    return BPETokenizer().train(train_text, args.vocab_size)


def main(argv=None):
    args = parse(argv)
    device = args.device if args.device != "auto" else ("gpu" if tl.gpu_available() else "cpu")
    try:
        tl.backend.array_module(device)               # no CuPy or no GPU: say so now, in one line
    except RuntimeError as e:
        sys.exit(f"--device {device}: {e}")
    preset = args.preset or DEFAULT_PRESET[device]
    if device == "gpu" and int(os.environ.get("LOCAL_WORLD_SIZE", "1")) > 1:
        device = f"cuda:{os.environ['LOCAL_RANK']}"      # data parallel on one machine: a GPU per process
    run_name = "gpt2-finetune" if args.init_from else args.tokenizer
    # fine-tuning keeps its lr constant: an --lr given moves min_lr with it (unless --min-lr is given too)
    finetune = {**FINETUNE, **({"min_lr": args.lr} if args.lr is not None else {})} if args.init_from else {}
    tcfg = TrainConfig.from_preset(preset, **{"out_dir": os.path.join("out", f"shakespeare-{run_name}"),
                                              **finetune, **given(args, TrainConfig)})

    text = load_shakespeare(args.data)
    tok = get_tokenizer(args, text, tcfg.out_dir)
    data = TokenDataset(np.asarray(tok.encode(text), dtype=np.int64), device=device).split(0.9)
    tl.manual_seed(tcfg.seed)                            # the initial weights depend on the seed only
    if args.init_from:                                   # GPT-2's weights; its sizes come with them
        model = GPT.from_pretrained(args.init_from, device=device, dropout=args.dropout or 0.0)
        if args.block_size:
            model.crop_block_size(args.block_size)
    else:
        config = GPTConfig.from_preset(preset, **{**given(args, GPTConfig), "vocab_size": tok.vocab_size})
        model = GPT(config, device=device)
    if is_main():
        print(f"{args.init_from or preset} on {model.device}: {model.num_parameters():,} parameters, {tok!r}, "
              f"{len(data.train):,} train and {len(data.val):,} val tokens")

    def sample(row=None):
        if args.sample_chars <= 0 or not is_main():
            return
        prompt = tok.encode("\n")
        out = model.generate([prompt], args.sample_chars, temperature=0.8, top_k=40, seed=tcfg.seed)
        words = tok.decode(out.tolist()[0][len(prompt):])[:args.sample_chars]
        tqdm.write("-" * 40 + "\n" + words + "\n" + "-" * 40)   # tqdm.write: the progress bar stays intact

    history = train(model, data, tcfg, tokenizer=tok, resume=args.resume, on_eval=sample)
    best = os.path.join(tcfg.out_dir, "best.npz")
    if history.stopped != "interrupted" and is_main():
        ev = history.evals[-1] if history.evals else None
        if ev is not None:
            print(f"done at step {history.step}: val loss {ev['val_loss']:.4f}, best {history.best_val_loss:.4f}; "
                  f"sample with: python examples/generate.py --checkpoint {best}")
            exact = evaluate(model, data.val, tcfg.batch_size)
            print(f"val loss over all {len(data.val) - 1:,} val targets (every one once): {exact:.4f}")
        else:  # resumed a run that had already finished
            print(f"nothing to do: the run in {tcfg.out_dir} is already at step {history.step} "
                  f"(best val loss {history.best_val_loss:.4f}); sample with: "
                  f"python examples/generate.py --checkpoint {best}")
    return history


if __name__ == "__main__":
    try:
        history = main()
    except (FileNotFoundError, ValueError, FloatingPointError) as e:  # bad input or a NaN loss: one line
        sys.exit(f"error: {e}")
    sys.exit(130 if history.stopped == "interrupted" else 0)
