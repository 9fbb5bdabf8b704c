"""Make the tutorial's figures from real runs of tinylm: docs/figures/*.png.

    python docs/make_figures.py              # all figures, about a minute or two on a 2-core CPU
    python docs/make_figures.py --only bpe   # one of: loss, attention, bpe, kvcache, graph, lr, heads, residual

What each figure is:
  loss_curve.png       train and val loss of a small char GPT on tiny-shakespeare, trained with
                       tinylm's own AdamW and warmup + cosine schedule (left); the same model on
                       only the first 3,000 characters, which it memorises: train loss keeps
                       falling while val loss turns up, so early stopping keeps the best step; a
                       third run adds dropout 0.2 (right).
  attention.png        the attention weights of every head of every layer (2 x 4) of the left-hand
                       model on one line of Shakespeare.
  bpe_compression.png  bytes per token on held-out Shakespeare for BPE tokenizers trained on
                       200,000 characters with growing vocabulary sizes.
  kv_cache.png         time per generated token against the context length, with the KV cache
                       and recomputing the whole window, up to and past block_size (timed on
                       the machine that runs this script; one BLAS thread).
  autograd_graph.svg   the recorded graph of x * x + x (chapter 2), drawn by tinylm.viz.draw_graph
                       and Graphviz's dot program (apt-get install graphviz).
  lr_schedule.png      chapter 7's warmup + cosine schedule, tinylm.optim.cosine_lr step by step.
  head_split.png       how one (T, C) matrix of queries becomes nh heads of (T, hs) (chapter 4).
  residual_stream.svg  pre-LN (GPT-2) and post-LN (the 2017 Transformer) blocks side by side
                       (chapter 5), drawn by Graphviz's dot program.

Everything is seeded, so a rerun on the same machine redraws the same curves. Needs matplotlib
(the `examples` extra: pip install -e ".[examples]"), used here only, and Graphviz for the two
.svg drawings. Reads the text with tinylm.data.load_shakespeare() (see docs/appendix-training.md).
"""
import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny matmuls: one thread is faster and shares the machine
ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures"
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tinylm as tl  # noqa: E402
from tinylm.data import TokenDataset, load_shakespeare  # noqa: E402
from tinylm.model import GPT, GPTConfig  # noqa: E402
from tinylm.optim import AdamW, CosineLR, param_groups  # noqa: E402
from tinylm.optim import cosine_lr  # noqa: E402
from tinylm.tokenizers import BPETokenizer, CharTokenizer  # noqa: E402
from tinylm.viz import Graph, draw_graph  # noqa: E402

# the small char model of the figures (and of chapter 7, which trains a smaller one)
CONFIG = dict(block_size=32, n_layer=2, n_head=4, n_embd=64)
BATCH, STEPS, EVAL_EVERY, EVAL_BATCHES = 16, 600, 50, 8


@tl.no_grad()
def estimate_loss(model, data, seed):
    """Mean loss over EVAL_BATCHES batches of `data`, in eval mode, the same batches every call."""
    model.eval()
    tl.manual_seed(seed)
    losses = [model(*data.get_batch(BATCH, CONFIG["block_size"]))[1].item() for _ in range(EVAL_BATCHES)]
    model.train()
    return float(np.mean(losses))


def train(train_data, val_data, vocab_size, dropout=0.0, steps=STEPS, seed=0):
    """A small GPT trained with AdamW + warmup/cosine; returns (model, steps, train losses, val losses)."""
    tl.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=vocab_size, dropout=dropout, **CONFIG))
    opt = AdamW(param_groups(model.named_parameters(), weight_decay=0.1), lr=3e-3, betas=(0.9, 0.95))
    schedule = CosineLR(max_lr=3e-3, warmup=30, total=steps, min_lr=3e-4)
    xs, tr, va = [], [], []
    for step in range(steps + 1):
        if step % EVAL_EVERY == 0:
            xs.append(step)
            tr.append(estimate_loss(model, train_data, 1000))
            va.append(estimate_loss(model, val_data, 2000))
            print(f"  step {step:4d}  train {tr[-1]:.3f}  val {va[-1]:.3f}", flush=True)
        if step == steps:
            break
        tl.manual_seed(seed * 1_000_003 + step + 1)        # per-step seed: batches depend on the step only
        x, y = train_data.get_batch(BATCH, CONFIG["block_size"])
        schedule.apply(opt, step)
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        tl.optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return model, xs, tr, va


def figure_loss_and_attention(text, which):
    tok = CharTokenizer.from_text(text)
    train_data, val_data = TokenDataset.from_text(text, tok).split(0.9)
    print("full data:", len(train_data), "train tokens")
    model, xs, tr, va = train(train_data, val_data, tok.vocab_size)
    if "loss" in which:
        small = TokenDataset(train_data.ids[:3_000])
        print("first 3,000 train tokens only:")
        _, xs2, tr2, va2 = train(small, val_data, tok.vocab_size)
        print("first 3,000 train tokens, dropout 0.2:")
        _, xs3, tr3, va3 = train(small, val_data, tok.vocab_size, dropout=0.2)
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
        ax = axes[0]
        ax.plot(xs, tr, "o-", ms=3, color="C0", label="train")
        ax.plot(xs, va, "o-", ms=3, color="C1", label="val")
        ax.axhline(np.log(tok.vocab_size), color="gray", ls=":", lw=1)
        ax.text(STEPS, np.log(tok.vocab_size), "ln 65 (a uniform guess)", ha="right", va="bottom", fontsize=8)
        ax.set_title(f"all {len(train_data):,} training characters", fontsize=10)
        ax.set_ylabel("cross-entropy loss (nats per character)")
        ax = axes[1]
        ax.plot(xs2, tr2, "o-", ms=3, color="C0", label="train")
        ax.plot(xs2, va2, "o-", ms=3, color="C1", label="val")
        ax.plot(xs3, tr3, "s--", ms=3, color="C0", alpha=0.6, label="train, dropout 0.2")
        ax.plot(xs3, va3, "s--", ms=3, color="C1", alpha=0.6, label="val, dropout 0.2")
        best = int(np.argmin(va2))
        ax.axvline(xs2[best], color="gray", ls="--", lw=1)
        ax.annotate(f"best val: early stopping\nkeeps step {xs2[best]}", (xs2[best], va2[best]),
                    xytext=(25, 45), textcoords="offset points", fontsize=8,
                    arrowprops=dict(arrowstyle="->", color="gray"))
        ax.set_title("only the first 3,000 characters: overfitting", fontsize=10)
        for ax in axes:
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(f"char GPT, {model.num_parameters():,} parameters ({CONFIG['n_layer']} layers, "
                     f"C={CONFIG['n_embd']}), AdamW, batch {BATCH} x {CONFIG['block_size']}", fontsize=10)
        fig.tight_layout()
        fig.savefig(FIGURES / "loss_curve.png", dpi=110)
        plt.close(fig)
    if "attention" in which:
        line = "ROMEO:\nBut soft, what light through"[:CONFIG["block_size"]]
        ids = tl.tensor([tok.encode(line)])
        model.eval()
        maps = []                                                   # per layer: (nh, T, T)
        with tl.no_grad():
            x = model.wte(ids) + model.wpe(tl.arange(len(line)))    # (1, T, C)
            for block in model.h:
                _, weights = block.attn(block.ln_1(x), return_weights=True)   # (1, nh, T, T)
                maps.append(weights.numpy()[0])
                x = block(x)                                        # on to the next layer's input
        labels = [repr(c)[1:-1] if c != " " else "␣" for c in line]
        n_layer, n_head = len(maps), maps[0].shape[0]
        fig, axes = plt.subplots(n_layer, n_head, figsize=(3.4 * n_head, 3.9 * n_layer))
        for layer in range(n_layer):
            for h in range(n_head):
                ax = axes[layer, h]
                ax.imshow(maps[layer][h], cmap="Blues", vmin=0, vmax=1)
                ax.set_title(f"layer {layer}, head {h}", fontsize=10)
                ax.set_xticks(range(len(line)), labels, fontsize=5, family="monospace")
                ax.set_yticks(range(len(line)), labels, fontsize=5, family="monospace")
                if layer == n_layer - 1:
                    ax.set_xlabel("key (attended to)", fontsize=8)
                if h == 0:
                    ax.set_ylabel("query (attending)", fontsize=8)
        fig.suptitle(f"attention weights of every layer and head after {STEPS} training steps "
                     "(causal: nothing above the diagonal)", fontsize=11)
        fig.tight_layout(h_pad=2.0)
        fig.savefig(FIGURES / "attention.png", dpi=100)
        plt.close(fig)


def figure_bpe(text):
    train_text, held_out = text[:200_000], text[-100_000:]
    n_bytes = len(held_out.encode("utf-8"))
    sizes = [256, 320, 384, 512, 768, 1024, 1536, 2048, 3072, 4096]
    ratios = []
    for v in sizes:
        tok = BPETokenizer().train(train_text, v) if v > 256 else BPETokenizer()
        ratios.append(n_bytes / len(tok.encode(held_out)))
        print(f"  vocab {v:5d}: {ratios[-1]:.2f} bytes per token", flush=True)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(sizes, ratios, "o-")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(s) for s in sizes], fontsize=8)
    ax.set_xlabel("vocabulary size (256 bytes + merges)")
    ax.set_ylabel("bytes per token (held-out text)")
    ax.set_title("byte-level BPE trained on 200k chars of Shakespeare,\nmeasured on the last 100k chars (not trained on)",
                 fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(FIGURES / "bpe_compression.png", dpi=110)
    plt.close(fig)


@tl.no_grad()
def figure_kv_cache(n_tokens=400, block_size=256, smooth=9, repeats=3):
    """Milliseconds per generated token (greedy) against the context length, cache on and off."""
    tl.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=65, block_size=block_size, n_layer=4, n_head=4, n_embd=128))
    model.eval()
    runs = {}
    for use_cache in (True, False):
        best = None
        for _ in range(repeats):                 # the fastest of a few runs, token by token: less noise
            cache = model.new_kv_cache(1) if use_cache else None
            ids, ms = np.zeros((1, 1), np.int64), []
            for _ in range(n_tokens):
                t0 = time.perf_counter()
                logits = model.next_token_logits(ids, cache)                     # (1, V)
                ids = np.concatenate([ids, logits.argmax(-1)[:, None]], axis=1)
                ms.append(1e3 * (time.perf_counter() - t0))
            best = np.array(ms) if best is None else np.minimum(best, ms)
        runs[use_cache] = (ids, best)
    assert np.array_equal(runs[True][0], runs[False][0]), "the cache changed the greedy text"
    T = np.arange(1, n_tokens + 1)                                            # context length fed
    fig, ax = plt.subplots(figsize=(7, 4))
    for use_cache, color, label in ((False, "C1", "recompute the window"), (True, "C0", "KV cache")):
        ms = runs[use_cache][1]
        smoothed = np.array([np.median(ms[max(0, i - smooth // 2):i + smooth // 2 + 1]) for i in range(len(ms))])
        ax.plot(T, smoothed, color=color, label=f"{label}: {ms[:block_size].sum() / 1e3:.2f} s for the "
                                                f"first {block_size} tokens")
    ax.axvline(block_size, color="gray", ls="--", lw=1)
    ax.text(block_size + 6, ax.get_ylim()[1] * 0.3, "past block_size the window slides,\npositions shift, "
            "and the cache\nis rebuilt at every step", fontsize=8, va="top")
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("ms per generated token")
    ax.set_title(f"greedy generation, {model.num_parameters():,}-parameter GPT (4 layers, C=128)\n"
                 f"1 BLAS thread, the fastest of {repeats} runs at each length", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(FIGURES / "kv_cache.png", dpi=110)
    plt.close(fig)
    for use_cache in (True, False):
        print(f"  cache {use_cache}: {runs[use_cache][1][:block_size].sum():.0f} ms for the first {block_size}, "
              f"{runs[use_cache][1][block_size:].sum():.0f} ms for the rest")


def figure_graph():
    """Chapter 2's diamond, x * x + x, as tinylm.viz draws it (needs Graphviz's dot)."""
    x = tl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x.name = "x"
    draw_graph(x * x + x).render(FIGURES / "autograd_graph.svg")


def figure_lr(max_lr=3e-3, warmup=20, total=200, min_lr=3e-4):
    """Chapter 7's schedule (the values of its training loop), from optim.cosine_lr."""
    steps = np.arange(total + 40)
    lrs = [cosine_lr(int(s), max_lr, warmup, total, min_lr) for s in steps]
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    ax.plot(steps, lrs)
    ax.axvline(warmup, color="gray", ls="--", lw=1)
    ax.axvline(total, color="gray", ls="--", lw=1)
    ax.text(warmup + 3, max_lr * 0.55, f"warmup ends\n(step {warmup})", fontsize=8)
    ax.text(total + 3, max_lr * 0.55, f"total = {total}:\nmin_lr from here", fontsize=8)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title(f"cosine_lr(step, max_lr={max_lr:g}, warmup={warmup}, total={total}, min_lr={min_lr:g})",
                 fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(FIGURES / "lr_schedule.png", dpi=110)
    plt.close(fig)


def figure_heads(T=6, nh=3, hs=4):
    """One (T, C) matrix, C = nh * hs, and the same numbers as nh heads of (T, hs) after the reshape."""
    C = nh * hs
    head_of = np.repeat(np.arange(nh), hs)[None, :].repeat(T, 0)      # (T, C): which head owns each column
    colors = plt.get_cmap("Set2")
    fig = plt.figure(figsize=(10, 3.4))
    ax = fig.add_axes([0.03, 0.12, 0.34, 0.72])
    ax.imshow(head_of, cmap=colors, vmin=0, vmax=7, aspect="equal")
    ax.set_title(f"q = x W_Q: shape (T, C) = ({T}, {C})", fontsize=10)
    ax.set_xticks(range(C), [str(c) for c in range(C)], fontsize=7)
    ax.set_yticks(range(T), [f"t={t}" for t in range(T)], fontsize=7)
    ax.set_xlabel("channel", fontsize=8)
    for c in range(1, C):
        ax.axvline(c - 0.5, color="white", lw=0.5)
    for t in range(1, T):
        ax.axhline(t - 0.5, color="white", lw=0.5)
    for h in range(1, nh):
        ax.axvline(h * hs - 0.5, color="k", lw=1.5)
    fig.text(0.445, 0.62, "reshape to (T, nh, hs),\nthen transpose\nto (nh, T, hs)", ha="center", va="center",
             fontsize=9)
    fig.text(0.445, 0.42, "→", ha="center", va="center", fontsize=26)
    for h in range(nh):
        ax = fig.add_axes([0.52 + h * 0.16, 0.12, 0.14, 0.72])
        ax.imshow(np.full((T, hs), h), cmap=colors, vmin=0, vmax=7, aspect="equal")
        for c in range(1, hs):
            ax.axvline(c - 0.5, color="white", lw=0.5)
        for t in range(1, T):
            ax.axhline(t - 0.5, color="white", lw=0.5)
        ax.set_title(f"head {h}: (T, hs) = ({T}, {hs})\nchannels {h * hs}-{h * hs + hs - 1}", fontsize=9)
        ax.set_xticks(range(hs), [str(h * hs + c) for c in range(hs)], fontsize=7)
        ax.set_yticks([])
    fig.savefig(FIGURES / "head_split.png", dpi=110)
    plt.close(fig)


def figure_residual():
    """Pre-LN (GPT-2) and post-LN (Vaswani et al.) blocks as Graphviz drawings, side by side."""
    def block(prefix, pre):
        n = lambda s: f"{prefix}_{s}"
        lines = [f'  subgraph cluster_{prefix} {{', f'    label="{"pre-LN (GPT-2, tinylm)" if pre else "post-LN (2017 Transformer)"}";',
                 '    fontsize=11; color="#999999";',
                 f'    {n("x")} [label="x (B, T, C)", shape=box, style=filled, fillcolor="#eeeeee"];',
                 f'    {n("add1")} [label="+", shape=circle];', f'    {n("add2")} [label="+", shape=circle];',
                 f'    {n("out")} [label="to the next block", shape=box, style=filled, fillcolor="#eeeeee"];',
                 f'    {n("attn")} [label="attention", shape=box, style=filled, fillcolor="#fff2cc"];',
                 f'    {n("mlp")} [label="MLP", shape=box, style=filled, fillcolor="#fff2cc"];']
        if pre:
            lines += [f'    {n("ln1")} [label="LayerNorm ln_1", shape=box, style=filled, fillcolor="#cfe2f3"];',
                      f'    {n("ln2")} [label="LayerNorm ln_2", shape=box, style=filled, fillcolor="#cfe2f3"];',
                      f'    {n("x")} -> {n("add1")} [penwidth=3, color="#3c78d8"];',
                      f'    {n("x")} -> {n("ln1")} -> {n("attn")} -> {n("add1")};',
                      f'    {n("add1")} -> {n("add2")} [penwidth=3, color="#3c78d8"];',
                      f'    {n("add1")} -> {n("ln2")} -> {n("mlp")} -> {n("add2")};',
                      f'    {n("add2")} -> {n("out")} [penwidth=3, color="#3c78d8"];']
        else:
            lines += [f'    {n("ln1")} [label="LayerNorm", shape=box, style=filled, fillcolor="#cfe2f3"];',
                      f'    {n("ln2")} [label="LayerNorm", shape=box, style=filled, fillcolor="#cfe2f3"];',
                      f'    {n("x")} -> {n("add1")} [penwidth=3, color="#3c78d8"];',
                      f'    {n("x")} -> {n("attn")} -> {n("add1")};',
                      f'    {n("add1")} -> {n("ln1")};',
                      f'    {n("ln1")} -> {n("add2")} [penwidth=3, color="#3c78d8"];',
                      f'    {n("ln1")} -> {n("mlp")} -> {n("add2")};',
                      f'    {n("add2")} -> {n("ln2")} -> {n("out")};']
        return lines + ["  }"]
    source = "\n".join(["digraph residual {", "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=10];',
                         *block("pre", True), *block("post", False), "}"]) + "\n"
    Graph(source).render(FIGURES / "residual_stream.svg")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    names = ["loss", "attention", "bpe", "kvcache", "graph", "lr", "heads", "residual"]
    p.add_argument("--only", choices=names, action="append",
                   help="make only this figure (repeatable); default: all")
    which = set(p.parse_args().only or names)
    FIGURES.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if which & {"loss", "attention", "bpe"}:
        text = load_shakespeare()
    if which & {"loss", "attention"}:
        figure_loss_and_attention(text, which)
    if "bpe" in which:
        figure_bpe(text)
    if "kvcache" in which:
        figure_kv_cache()
    if "graph" in which:
        figure_graph()
    if "lr" in which:
        figure_lr()
    if "heads" in which:
        figure_heads()
    if "residual" in which:
        figure_residual()
    print(f"done in {time.perf_counter() - t0:.0f} s; figures in docs/figures/")


if __name__ == "__main__":
    main()
