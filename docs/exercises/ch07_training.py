"""Chapter 7 exercises, solved.

1. Derive cross-entropy's backward by hand (the three lines of chapter 7) and compare with
   `F.cross_entropy` (the fused `ops.CrossEntropy`), including ignored targets (ignore_index).
2. Run AdamW for 20 steps in plain NumPy, in the textbook form (m_hat, v_hat), and compare
   with `tinylm.optim.AdamW`, which folds the bias corrections into one step size.
3. Write the warmup + cosine schedule from its formula and compare with `optim.cosine_lr`.
"""
import math

import numpy as np

import tinylm as tl
import tinylm.functional as F
from tinylm.optim import AdamW, cosine_lr


def cross_entropy_backward(z, targets, ignore_index=-100):
    """dL/dz for L = mean over the kept rows of (logsumexp(z_n) - z_n[y_n])."""
    keep = targets != ignore_index
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)                          # softmax
    rows = np.flatnonzero(keep)
    p[rows, targets[rows]] -= 1                           # minus 1 at the target
    p[~keep] = 0                                          # ignored rows get no gradient
    return p / max(keep.sum(), 1)


def adamw_numpy(w, grad_fn, steps, lr, betas, eps, wd):
    m, v = np.zeros_like(w), np.zeros_like(w)
    b1, b2 = betas
    for t in range(1, steps + 1):
        g = grad_fn(w)
        w = w * (1 - lr * wd)                             # decoupled weight decay
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
    return w


def cosine(step, max_lr, warmup, total, min_lr):
    if step < warmup:
        return max_lr * (step + 1) / (warmup + 1)
    if step >= total:
        return min_lr
    return min_lr + 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup))) * (max_lr - min_lr)


def check():
    rng = np.random.default_rng(0)
    z = tl.tensor(rng.standard_normal((6, 5)), dtype=tl.float64, requires_grad=True)
    targets = np.array([0, 4, 2, -100, 1, 1])
    F.cross_entropy(z, tl.tensor(targets)).backward(np.array(1.7))   # a non-trivial upstream gradient
    assert np.allclose(1.7 * cross_entropy_backward(z.numpy(), targets), z.grad, atol=1e-12)

    w0 = rng.standard_normal(7)
    target = rng.standard_normal(7)
    grad_fn = lambda w: 2 * (w - target) * np.arange(1, 8)      # d/dw of sum(i (w_i - t_i)^2)
    w = tl.tensor(w0, dtype=tl.float64, requires_grad=True)
    opt = AdamW([w], lr=0.05, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    for _ in range(20):
        w.grad = grad_fn(w.numpy())
        opt.step()
    mine = adamw_numpy(w0, grad_fn, 20, 0.05, (0.9, 0.99), 1e-8, 0.1)
    assert np.allclose(mine, w.numpy(), rtol=1e-10, atol=1e-12)

    for step in range(0, 130, 7):
        assert math.isclose(cosine(step, 1e-3, 10, 100, 1e-4), cosine_lr(step, 1e-3, 10, 100, 1e-4))


if __name__ == "__main__":
    check()
    print("ch07_training: all checks passed")
