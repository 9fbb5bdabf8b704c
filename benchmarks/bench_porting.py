"""The porting benchmark: makemore's Transformer step, written once against `torch`, run on PyTorch and
on tinylm (imported as torch), each in its own fresh process, in alternating rounds.

    python benchmarks/bench_porting.py --rounds 5

The model is makemore's (4 layers, 64 wide, 4 heads, block 16, vocab 27), with its NewGELU written
as 0.5 * x * (1 + tanh(c * (x + 0.044715 * torch.pow(x, 3.0)))), batch 32. A step is forward with
loss, zero_grad, backward and an AdamW step. Each process (`--threads` BLAS/OpenMP threads) times `--steps` steps after `--warmup`
and reports the median; the ratio of each round and the median over rounds are printed. Needs
PyTorch (the `bench` extra) for its side.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(torch, nn, F, vocab_size=27, block_size=16, n_layer=4, n_embd=64, n_head=4):
    """makemore's Transformer, in PyTorch's names only (the same source runs on both frameworks)."""

    class NewGELU(nn.Module):
        def forward(self, x):
            return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))

    class CausalSelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(n_embd, 3 * n_embd)
            self.c_proj = nn.Linear(n_embd, n_embd)
            self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size))
                                 .view(1, 1, block_size, block_size))

        def forward(self, x):
            B, T, C = x.size()
            q, k, v = self.c_attn(x).split(n_embd, dim=2)
            k = k.view(B, T, n_head, C // n_head).transpose(1, 2)
            q = q.view(B, T, n_head, C // n_head).transpose(1, 2)
            v = v.view(B, T, n_head, C // n_head).transpose(1, 2)
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            att = F.softmax(att, dim=-1)
            y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
            return self.c_proj(y)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(n_embd)
            self.attn = CausalSelfAttention()
            self.ln_2 = nn.LayerNorm(n_embd)
            self.mlp = nn.ModuleDict(dict(c_fc=nn.Linear(n_embd, 4 * n_embd), c_proj=nn.Linear(4 * n_embd, n_embd),
                                          act=NewGELU()))

        def forward(self, x):
            m = self.mlp
            x = x + self.attn(self.ln_1(x))
            return x + m.c_proj(m.act(m.c_fc(self.ln_2(x))))

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = nn.ModuleDict(dict(
                wte=nn.Embedding(vocab_size, n_embd), wpe=nn.Embedding(block_size, n_embd),
                h=nn.ModuleList([Block() for _ in range(n_layer)]), ln_f=nn.LayerNorm(n_embd)))
            self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)

        def forward(self, idx, targets=None):
            b, t = idx.size()
            pos = torch.arange(0, t, dtype=torch.long).unsqueeze(0)
            x = self.transformer.wte(idx) + self.transformer.wpe(pos)
            for block in self.transformer.h:
                x = block(x)
            logits = self.lm_head(self.transformer.ln_f(x))
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
            return logits, loss

    return Transformer()


def worker(framework, steps, warmup, batch_size):
    if framework == "tinylm":
        import tinylm as torch
        import tinylm.nn as nn
        import tinylm.nn.functional as F
    else:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    torch.manual_seed(3407)
    model = build(torch, nn, F)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 27, (batch_size, 17), generator=g) for _ in range(8)]
    times, losses = [], []
    for i in range(warmup + steps):
        xy = batches[i % len(batches)]
        x, y = xy[:, :-1].contiguous(), xy[:, 1:].contiguous()
        t0 = time.perf_counter()
        _, loss = model(x, y)
        model.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        losses.append(loss.item())
        if i >= warmup:
            times.append(dt)
    print(json.dumps({"framework": framework, "median_ms": 1000 * statistics.median(times),
                      "first_loss": losses[0], "last_loss": losses[-1]}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2, help="BLAS / OpenMP threads in each process")
    p.add_argument("--worker", choices=["tinylm", "torch"], default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        return worker(a.worker, a.steps, a.warmup, a.batch_size)
    ratios = []
    for r in range(a.rounds):
        order = ("tinylm", "torch") if r % 2 == 0 else ("torch", "tinylm")
        ms = {}
        for fw in order:
            out = subprocess.run([sys.executable, __file__, "--worker", fw, "--steps", str(a.steps), "--warmup",
                                  str(a.warmup), "--batch-size", str(a.batch_size)], capture_output=True, text=True,
                                 cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS=str(a.threads),
                                                    OPENBLAS_NUM_THREADS=str(a.threads),
                                                    MKL_NUM_THREADS=str(a.threads)))
            if out.returncode:
                sys.exit(f"the {fw} worker failed:\n{out.stderr[-3000:]}")
            res = json.loads(out.stdout.strip().splitlines()[-1])
            ms[fw] = res["median_ms"]
            print(f"  round {r + 1} {fw:6s}: {res['median_ms']:7.2f} ms/step  "
                  f"(loss {res['first_loss']:.4f} -> {res['last_loss']:.4f})", flush=True)
        ratios.append(ms["tinylm"] / ms["torch"])
        print(f"round {r + 1}: tinylm / torch = {ratios[-1]:.3f}", flush=True)
    print(f"median ratio over {a.rounds} rounds: {statistics.median(ratios):.3f} "
          f"(rounds: {', '.join(f'{x:.3f}' for x in ratios)})")


if __name__ == "__main__":
    main()
