"""Train a byte-level BPE tokenizer on a text file, report its compression, save it.

    python examples/train_tokenizer.py                       # tinyshakespeare, vocab 4096
    python examples/train_tokenizer.py --input my.txt --vocab-size 8192 --pattern gpt4 \
        --special "<|endoftext|>" --out out/my.bpe

The default input is tinyshakespeare, found as `tinylm.data.load_shakespeare()` finds it (a
copy beside the repository, the cache, a download, or the offline corpus of the `examples`
extra). The saved file is readable text; load it with `BPETokenizer.load(path)`.
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tinylm.data import load_shakespeare  # noqa: E402
from tinylm.tokenizers import PATTERNS, BPETokenizer  # noqa: E402


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--input", type=Path, default=None,
                   help="UTF-8 text file to train on (default: tinyshakespeare, via tinylm.data.load_shakespeare)")
    p.add_argument("--vocab-size", type=int, default=4096, help="ids in all: 256 bytes + merges + specials")
    p.add_argument("--pattern", default="gpt2",
                   help=f"split regex: a preset ({', '.join(PATTERNS)}) or a regex string")
    p.add_argument("--special", action="append", default=[], metavar="TOKEN",
                   help="a special token, e.g. '<|endoftext|>' (repeatable)")
    p.add_argument("--out", type=Path, default=Path("out") / "tokenizer.bpe", help="where to save")
    p.add_argument("--verbose", action="store_true", help="print every merge")
    return p.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    try:
        text = args.input.read_text(encoding="utf-8") if args.input else load_shakespeare()
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    if not text:
        sys.exit(f"error: {args.input} is empty: there is nothing to train on")
    nbytes = len(text.encode("utf-8"))
    print(f"training on {args.input.name if args.input else 'tinyshakespeare'}: {nbytes:,} bytes")

    t0 = time.perf_counter()
    tok = BPETokenizer(pattern=args.pattern).train(text, args.vocab_size, special_tokens=args.special,
                                                    verbose=args.verbose)
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    ids = tok.encode_ordinary(text)
    t_encode = time.perf_counter() - t0
    assert tok.decode(ids) == text

    longest = max(tok.merges.values(), key=lambda i: len(tok.vocab[i]), default=None)
    print(f"vocab size {tok.vocab_size} ({len(tok.merges)} merges, {len(tok.special_tokens)} special)")
    print(f"trained in {t_train:.2f} s; encoded in {t_encode:.2f} s: {len(ids):,} tokens, "
          f"{nbytes / len(ids):.2f} bytes per token")
    if longest is not None:
        print(f"longest token: {tok.vocab[longest].decode('utf-8', errors='replace')!r} (id {longest})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tok.save(args.out)
    print(f"saved to {args.out}")


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, ValueError) as e:  # bad input: say what was wrong, without a traceback
        sys.exit(f"error: {e}")
