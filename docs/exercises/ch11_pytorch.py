"""Chapter 11 exercise, solved.

Port a PyTorch training loop by renaming the import: makemore's bigram network, a (27, 27)
weight matrix trained by gradient descent on character pairs, written the PyTorch way (note
`W.grad = None`, `W.data += -lr * W.grad`, `F.one_hot(...).float()`), runs under
`import tinylm as torch`. Its loss must fall below that of a uniform guess, ln 27.
"""
import math

import tinylm as torch
import tinylm.functional as F

WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn", "abigail"]


def train(steps=60, lr=20.0):
    chars = sorted(set("".join(WORDS)))
    stoi = {s: i + 1 for i, s in enumerate(chars)}
    stoi["."] = 0
    xs, ys = [], []
    for w in WORDS:
        chs = ["."] + list(w) + ["."]
        for c1, c2 in zip(chs, chs[1:]):
            xs.append(stoi[c1])
            ys.append(stoi[c2])
    xs, ys = torch.tensor(xs), torch.tensor(ys)
    g = torch.Generator().manual_seed(2147483647)
    W = torch.randn((27, 27), generator=g, requires_grad=True)
    for _ in range(steps):
        xenc = F.one_hot(xs, num_classes=27).float()
        logits = xenc @ W                                 # log-counts
        counts = logits.exp()
        probs = counts / counts.sum(1, keepdims=True)
        loss = -probs[torch.arange(len(ys)), ys].log().mean() + 0.01 * (W ** 2).mean()
        W.grad = None
        loss.backward()
        W.data += -lr * W.grad
    return loss.item()


def check():
    loss = train()
    assert loss < math.log(27) - 1.0, loss


if __name__ == "__main__":
    check()
    print("ch11_pytorch: all checks passed")
