"""Tokenizer benchmark: BPE training time and GPT-2 encode throughput, beside HF `tokenizers`
and tiktoken measured in the same run.

    python benchmarks/bench_tokenizer.py
    python benchmarks/bench_tokenizer.py --repeat 7 --vocab-size 4096 --json out/bench_tokenizer.json

Train: `BPETokenizer().train(text, vocab_size)` on tinyshakespeare (1.1 MB) against HF
`tokenizers`' BPE trainer with the ByteLevel pre-tokenizer and the 256-byte initial alphabet
(column skipped when `tokenizers` is not installed). Encode: GPT-2's vocab, a fresh tokenizer
per repeat (cold chunk cache; loading the files is timed apart), against tiktoken's
`encode_ordinary` on one thread built offline from the same files; the ids are asserted equal.
Figures are medians (and minimums) over --repeat runs, timed alternately. Comparison packages
come from the `bench` extra: pip install -e ".[bench]".

Long chunks (issue 15's bar: each within 3x tiktoken's time, ids identical): 'a' * N,
' ' * N + 'x', N random bytes decoded with errors='replace', 'ab ' * (N // 3), N = --long-n
(10**6). Each repeat clears the chunk cache first (cold). tiktoken's regex overflows its stack on
' ' * 10**6 + 'x' (a Rust panic); the row then times tiktoken's BPE alone on the chunks our
split gives (`Encoding._encode_single_piece`) and says so. `--only-long` skips the rest.
"""
import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

from tinylm.tokenizers import BPETokenizer, bytes_to_unicode  # noqa: E402


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--text", default=str(DATA / "tinyshakespeare.txt"), help="training/encoding text")
    p.add_argument("--gpt2", default=str(DATA / "gpt2"), help="folder with encoder.json + vocab.bpe")
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    p.add_argument("--long-n", type=int, default=10**6, help="length of the long-chunk texts (0: skip them)")
    p.add_argument("--only-long", action="store_true", help="only the long-chunk rows")
    return p.parse_args()


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def summary(times):
    return {"median_s": statistics.median(times), "min_s": min(times)}


def hf_trainer(path, vocab_size):
    """A function that trains HF tokenizers' ByteLevel BPE on `path`, or None if not installed."""
    try:
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    except ImportError:
        return None

    def train():
        tk = Tokenizer(models.BPE())
        tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tk.train([str(path)], trainer)
        return tk
    return train


def tiktoken_gpt2(folder):
    """tiktoken's Encoding for GPT-2 from encoder.json (no network), or None if not installed."""
    try:
        import tiktoken
    except ImportError:
        return None
    byte_of = {c: b for b, c in bytes_to_unicode().items()}
    encoder = json.loads((Path(folder) / "encoder.json").read_text(encoding="utf-8"))
    ranks = {bytes(byte_of[c] for c in tok): i for tok, i in encoder.items() if tok != "<|endoftext|>"}
    return tiktoken.Encoding("gpt2-local", pat_str=BPETokenizer().pattern, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": encoder["<|endoftext|>"]})


def versions():
    out = {"python": platform.python_version()}
    for name in ("tiktoken", "tokenizers", "regex"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    return out


def machine():
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "platform": platform.platform()}


def long_texts(n):
    """The issue's long-chunk texts, n chars (bytes) each."""
    rng = random.Random(0)
    return {"'a' * n": "a" * n, "' ' * n + 'x'": " " * n + "x",
            "n random bytes, errors='replace'": rng.randbytes(n).decode("utf-8", errors="replace"),
            "'ab ' * (n // 3)": "ab " * (n // 3)}


def tiktoken_time(enc, gpt2, text):
    """(seconds, ids, how) for tiktoken on `text`: encode_ordinary, or where its regex panics,
    its BPE alone on the chunks of our split."""
    try:
        return (*timed(lambda: enc.encode_ordinary(text)), "encode_ordinary")
    except BaseException as e:           # pyo3's PanicException is a BaseException
        if type(e).__name__ != "PanicException":
            raise
    chunks = gpt2._split(text)
    t, ids = timed(lambda: [i for c in chunks for i in enc._encode_single_piece(c.encode("utf-8"))])
    return t, ids, "BPE only (its regex panicked: stack overflow)"


def bench_long(args, folder, res):
    """The long-chunk rows: tinylm (cold chunk cache) beside tiktoken, alternately."""
    if args.long_n <= 0 or not (folder / "encoder.json").is_file():
        return
    enc = tiktoken_gpt2(folder)
    gpt2 = BPETokenizer.from_pretrained(folder)
    os.environ["RUST_BACKTRACE"] = "0"          # tiktoken may panic below: no Rust backtrace
    res["long"] = {}
    print(f"long chunks, n = {args.long_n:,} (GPT-2 vocab; cold cache; medians of {args.repeat}):")
    for name, text in long_texts(args.long_n).items():
        ours, theirs, how = [], [], None
        for _ in range(args.repeat):
            gpt2._cache.clear()
            dt, ids = timed(lambda: gpt2.encode_ordinary(text))
            ours.append(dt)
            if enc:
                dt, ref, how = tiktoken_time(enc, gpt2, text)
                theirs.append(dt)
                assert ids == ref, f"{name}: tinylm and tiktoken ids differ"
        row = {"tinylm": summary(ours), "tokens": len(ids)}
        line = f"  {name:34s} tinylm {statistics.median(ours):.3f} s (min {min(ours):.3f})"
        if enc:
            ratio = statistics.median(ours) / statistics.median(theirs)
            row.update(tiktoken=summary(theirs), tiktoken_how=how, ratio_tinylm_over_tiktoken=ratio)
            line += (f"; tiktoken {statistics.median(theirs):.3f} s (min {min(theirs):.3f}, {how}); "
                     f"tinylm/tiktoken = {ratio:.2f}x (bar <= 3x); ids identical ({len(ids):,} tokens)")
        res["long"][name] = row
        print(line)


def main():
    args = parse()
    text_path = Path(args.text)
    if not text_path.is_file():
        sys.exit(f"text file not found: {text_path} (pass --text)")
    text = text_path.read_text(encoding="utf-8")
    nbytes = len(text.encode("utf-8"))
    res = {"machine": machine(), "versions": versions(), "text": text_path.name, "text_bytes": nbytes,
           "vocab_size": args.vocab_size, "repeat": args.repeat}
    print(f"# {res['machine']['cpu']}, nproc {res['machine']['nproc']}; {res['versions']}")
    print(f"# text {text_path.name}: {nbytes:,} bytes")
    folder = Path(args.gpt2)
    if args.only_long:
        bench_long(args, folder, res)
        return finish(args, res)

    # --- training ---------------------------------------------------------------------------
    hf = hf_trainer(text_path, args.vocab_size)
    ours, theirs = [], []
    for _ in range(args.repeat):
        dt, tok = timed(lambda: BPETokenizer().train(text, args.vocab_size, progress=False))
        ours.append(dt)
        if hf:
            dt, hf_tok = timed(hf)
            theirs.append(dt)
    res["train"] = {"tinylm": summary(ours), "merges": len(tok.merges)}
    ids = tok.encode(text)
    res["train"]["bytes_per_token"] = nbytes / len(ids)
    line = f"train to {args.vocab_size}: tinylm {statistics.median(ours):.3f} s (min {min(ours):.3f})"
    if hf:
        res["train"]["hf_tokenizers"] = summary(theirs)
        res["train"]["hf_vocab_size"] = hf_tok.get_vocab_size()
        res["train"]["ratio_tinylm_over_hf"] = statistics.median(ours) / statistics.median(theirs)
        line += (f"; HF tokenizers {statistics.median(theirs):.3f} s (min {min(theirs):.3f}); "
                 f"tinylm/HF = {res['train']['ratio_tinylm_over_hf']:.1f}x")
    print(line + f"; {nbytes / len(ids):.2f} bytes/token")

    # --- encoding with GPT-2's vocab ----------------------------------------------------------
    if not (folder / "encoder.json").is_file():
        print(f"GPT-2 files not found in {folder}: encode benchmark skipped")
    else:
        enc = tiktoken_gpt2(folder)
        cold, warm, loads, tt = [], [], [], []
        for _ in range(args.repeat):
            dt, gpt2 = timed(lambda: BPETokenizer.from_pretrained(folder))
            loads.append(dt)
            dt, ids = timed(lambda: gpt2.encode_ordinary(text))     # fresh tokenizer: cold cache
            cold.append(dt)
            warm.append(timed(lambda: gpt2.encode_ordinary(text))[0])
            if enc:
                dt, ref = timed(lambda: enc.encode_ordinary(text))
                tt.append(dt)
                assert ids == ref, "tinylm and tiktoken ids differ"
        mbs = lambda ts: nbytes / statistics.median(ts) / 1e6  # noqa: E731
        res["encode"] = {"tokens": len(ids), "load": summary(loads),
                         "tinylm_cold": {**summary(cold), "MB_per_s": mbs(cold)},
                         "tinylm_warm": {**summary(warm), "MB_per_s": mbs(warm)}}
        line = (f"encode GPT-2: tinylm cold {mbs(cold):.2f} MB/s ({statistics.median(cold):.3f} s), "
                f"warm {mbs(warm):.2f} MB/s; load {statistics.median(loads):.3f} s")
        if enc:
            res["encode"]["tiktoken"] = {**summary(tt), "MB_per_s": mbs(tt)}
            res["encode"]["ratio_tinylm_cold_over_tiktoken"] = mbs(cold) / mbs(tt)
            line += (f"; tiktoken {mbs(tt):.2f} MB/s ({statistics.median(tt):.3f} s); "
                     f"tinylm cold / tiktoken = {mbs(cold) / mbs(tt):.2f}; ids identical "
                     f"({len(ids):,} tokens)")
        print(line)
    bench_long(args, folder, res)
    return finish(args, res)


def finish(args, res):
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    main()
