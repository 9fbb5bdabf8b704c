"""Chapter 9 exercise, solved (it runs without a GPU).

Train a small GPT for a few steps on the `strict` device (NumPy underneath, CuPy's rules on
top) and on the CPU from the same weights and batches: the losses and weights must agree. A
step that quietly converted an array to NumPy would raise on `strict` instead.
"""
import numpy as np

import tinylm as tl
from tinylm.model import GPT, GPTConfig
from tinylm.optim import AdamW, param_groups


def train(device, steps=3):
    tl.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=16))
    model.to(device)                                      # the same initial weights on both devices
    opt = AdamW(param_groups(model.named_parameters(), 0.1), lr=1e-2)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(steps):
        ids = rng.integers(0, 20, (4, 9))
        x, y = tl.tensor(ids[:, :-1], device=device), tl.tensor(ids[:, 1:], device=device)
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, model.wte.weight.numpy()


def check():
    cpu_losses, cpu_w = train("cpu")
    strict_losses, strict_w = train("strict")
    assert np.allclose(cpu_losses, strict_losses, atol=1e-6)
    assert np.allclose(cpu_w, strict_w, atol=1e-6)
    assert cpu_losses[-1] < cpu_losses[0]


if __name__ == "__main__":
    check()
    print("ch09_gpu: all checks passed")
