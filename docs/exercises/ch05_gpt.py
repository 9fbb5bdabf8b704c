"""Chapter 5 exercises, solved.

1. Reproduce GPT-2 small's parameter count, 124,439,808, from the formula of chapter 5
   (12 layers, C = 768, V = 50,257, block_size 1024, tied head), and check it against the model
   tinylm builds from the `gpt2` preset. Which share of it is the token embedding?
2. Measure the residual stream's size at the output of 24 random blocks, with GPT-2's init
   (each c_proj scaled by 1/sqrt(2 n_layer)) and without the scaling: the scaling keeps it
   from growing with depth.
"""
import math

import numpy as np

import tinylm as tl
from tinylm.model import GPT, GPTConfig


def gpt_parameters(n_layer, n_embd, vocab_size, block_size):
    C = n_embd
    per_block = 2 * 2 * C + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C)
    assert per_block == 12 * C * C + 13 * C
    return n_layer * per_block + vocab_size * C + block_size * C + 2 * C     # + ln_f; lm_head is tied


@tl.no_grad()
def residual_std(model, ids):
    """The standard deviation of the residual stream after the last block (before ln_f)."""
    x = model.wte(ids) + model.wpe(tl.arange(ids.shape[1]))
    for block in model.h:
        x = block(x)
    return float(x.numpy().std())


def check():
    count = gpt_parameters(n_layer=12, n_embd=768, vocab_size=50257, block_size=1024)
    assert count == 124_439_808
    assert round(50257 * 768 / count, 2) == 0.31             # the token table is 31% of GPT-2 small
    tl.manual_seed(0)
    assert GPT(GPTConfig.from_preset("gpt2")).num_parameters() == count
    for L, C, V, S in [(1, 8, 11, 5), (3, 24, 65, 16)]:
        model = GPT(GPTConfig(n_layer=L, n_head=2, n_embd=C, vocab_size=V, block_size=S))
        assert model.num_parameters() == gpt_parameters(L, C, V, S)

    L = 24
    tl.manual_seed(0)
    model = GPT(GPTConfig(n_layer=L, n_head=4, n_embd=64, vocab_size=65, block_size=32))
    ids = tl.randint(0, 65, (8, 32))
    scaled = residual_std(model, ids)
    for name, p in model.named_parameters():                  # undo the scaling: c_proj back to 0.02
        if name.endswith("c_proj.weight"):
            p.data = p.data * np.float32(math.sqrt(2 * L))
    unscaled = residual_std(model, ids)
    assert unscaled > 1.5 * scaled, (scaled, unscaled)


if __name__ == "__main__":
    check()
    print("ch05_gpt: all checks passed")
