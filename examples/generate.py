"""Sample text from a GPT: a tinylm training checkpoint or a Hugging Face GPT-2 folder.

    # GPT-2 (any size) from a folder with config.json, model.safetensors and the tokenizer files
    # (vocab.json + merges.txt, or encoder.json + vocab.bpe): no deep-learning framework needed
    python examples/generate.py --pretrained path/to/gpt2 --prompt "Once upon a time" --top-k 40

    # a model trained with tinylm (examples/train_shakespeare.py)
    python examples/generate.py --checkpoint out/shakespeare-char/best.npz --prompt "ROMEO:" --temperature 0.8

Thin on purpose: GPT.from_pretrained / GPT.generate (tinylm/model.py) do the work.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from tinylm.model import GPT, GPTConfig  # noqa: E402


def load_pretrained(directory, device):
    """GPT-2 weights and its BPE tokenizer from one Hugging Face style folder."""
    from tinylm.tokenizers import BPETokenizer
    model = GPT.from_pretrained(directory, device=device)
    return model, BPETokenizer.from_pretrained(directory)


def load_training_checkpoint(path, device, trust_pattern=False):
    """A model and tokenizer saved by tinylm's training loop (tinylm/checkpoint.py); a tokenizer with
    a custom split pattern loads only with trust_pattern (the pattern is code, docs/06-bpe.md)."""
    from tinylm.checkpoint import load_checkpoint
    from tinylm.tokenizers import tokenizer_from_dict
    ckpt = load_checkpoint(path)                      # a Checkpoint: .model, .config, .tokenizer, .step, ...
    if ckpt.tokenizer is None:
        sys.exit(f"{path} holds no tokenizer (train with tinylm.train.train(..., tokenizer=tok))")
    model = GPT(GPTConfig.from_dict(ckpt.config), device=device)
    model.load_state_dict(ckpt.model)
    return model, tokenizer_from_dict(ckpt.tokenizer, trust_pattern=trust_pattern, source=f"{path}: tokenizer")


def add_model_arguments(p):
    """--checkpoint | --pretrained, and --device: the model a script works on."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a tinylm training checkpoint")
    src.add_argument("--pretrained", metavar="DIR", help="a Hugging Face GPT-2 folder (with its tokenizer files)")
    p.add_argument("--device", default="cpu", help="cpu, gpu, cuda:N")
    p.add_argument("--trust-pattern", action="store_true",
                   help="load a checkpoint's tokenizer whose split pattern is not a known one (the pattern is code)")


def load_model(args):
    """(model, tokenizer) from the parsed --checkpoint or --pretrained, on --device."""
    import tinylm as tl
    try:
        tl.backend.array_module(args.device)          # an unknown device, no CuPy or no GPU: one line
    except (RuntimeError, ValueError) as e:
        sys.exit(f"--device {args.device}: {e}")
    if args.pretrained:
        return load_pretrained(args.pretrained, args.device)
    return load_training_checkpoint(args.checkpoint, args.device, args.trust_pattern)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_arguments(p)
    p.add_argument("--prompt", default="\n", help="text to continue")
    p.add_argument("--max-new-tokens", type=int, default=100)
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (argmax)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling: the smallest set reaching p")
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=None, help="a fixed seed gives a fixed sample")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context at every step")
    args = p.parse_args(argv)

    model, tok = load_model(args)
    ids = tok.encode(args.prompt)
    if not ids:
        sys.exit("the prompt encodes to no tokens; give a non-empty --prompt")
    stop = getattr(tok, "eot_token", None) if args.pretrained else None
    t0 = time.perf_counter()
    out = model.generate([ids], args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                         top_p=args.top_p, num_samples=args.num_samples, seed=args.seed,
                         stop_token=stop, use_cache=not args.no_cache)
    dt = time.perf_counter() - t0
    for i, row in enumerate(out.tolist()):
        if i:
            print("\n" + "-" * 40)
        print(tok.decode(row))
    new = out.shape[0] * (out.shape[1] - len(ids))
    print(f"\n[{new} tokens in {dt:.2f} s, {new / max(dt, 1e-9):.1f} tokens/s on {model.device}]", file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, ValueError) as e:  # bad input: say what was wrong, without a traceback
        sys.exit(f"error: {e}")
