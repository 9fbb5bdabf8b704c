"""Chapter 3 exercises, solved.

1. Derive LayerNorm's backward by hand and compare it with what autograd gives through
   `F.layer_norm` (the fused `ops.LayerNorm`). With xhat = (x - mu) / sigma, y = w xhat + b
   and upstream gradient g (per row of C channels):
       dL/db = sum_rows g,   dL/dw = sum_rows g * xhat,
       dL/dx = (1 / sigma) * (d - mean(d) - xhat * mean(d * xhat)),   d = g * w.
2. Backprop by hand through a whole small MLP, Linear -> tanh -> Linear -> cross-entropy, and
   compare every gradient with autograd.
3. Measure the variance that `nn.Linear`'s uniform init in +-1/sqrt(C_in) gives the output
   for unit-variance input: C_in * (1/sqrt(C_in))^2 / 3 = 1/3, not 1.
"""
import numpy as np

import tinylm as tl
import tinylm.functional as F
from tinylm import nn


def layer_norm_backward(x, w, g, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    rstd = 1 / np.sqrt(x.var(-1, keepdims=True) + eps)       # 1 / sigma
    xhat = (x - mu) * rstd
    d = g * w
    dx = rstd * (d - d.mean(-1, keepdims=True) - xhat * (d * xhat).mean(-1, keepdims=True))
    lead = tuple(range(x.ndim - 1))
    return dx, (g * xhat).sum(lead), g.sum(lead)


def mlp_backward(x, W1, b1, W2, b2, targets):
    """Forward and backward of cross_entropy(tanh(x W1^T + b1) W2^T + b2, targets), by hand."""
    N = x.shape[0]
    h = x @ W1.T + b1                  # (N, H)
    a = np.tanh(h)                     # (N, H)
    z = a @ W2.T + b2                  # (N, V)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)       # softmax
    loss = -np.log(p[np.arange(N), targets]).mean()
    dz = p.copy()
    dz[np.arange(N), targets] -= 1
    dz /= N                            # dL/dz = (softmax - onehot) / N
    dW2, db2 = dz.T @ a, dz.sum(0)     # Linear: dW = G^T x, db = sum G
    da = dz @ W2                       # dL/da = G W
    dh = da * (1 - a ** 2)             # tanh' = 1 - tanh^2
    dW1, db1 = dh.T @ x, dh.sum(0)
    dx = dh @ W1
    return loss, dict(x=dx, W1=dW1, b1=db1, W2=dW2, b2=db2)


def check():
    tl.manual_seed(0)
    rng = np.random.default_rng(0)
    x = tl.tensor(rng.standard_normal((2, 3, 6)) * 3 + 1, dtype=tl.float64, requires_grad=True)
    w = tl.tensor(rng.standard_normal(6), dtype=tl.float64, requires_grad=True)
    b = tl.tensor(rng.standard_normal(6), dtype=tl.float64, requires_grad=True)
    g = rng.standard_normal((2, 3, 6))                          # a random upstream gradient
    F.layer_norm(x, w, b).backward(g)
    dx, dw, db = layer_norm_backward(x.numpy(), w.numpy(), g)
    assert np.allclose(dx, x.grad, atol=1e-10) and np.allclose(dw, w.grad) and np.allclose(db, b.grad)

    fc1, fc2 = nn.Linear(4, 8).to(tl.float64), nn.Linear(8, 5).to(tl.float64)
    xs = tl.tensor(rng.standard_normal((10, 4)), requires_grad=True, dtype=tl.float64)
    targets = rng.integers(0, 5, 10)
    loss = F.cross_entropy(fc2(fc1(xs).tanh()), tl.tensor(targets))
    loss.backward()
    mine, grads = mlp_backward(xs.numpy(), fc1.weight.numpy(), fc1.bias.numpy(), fc2.weight.numpy(),
                               fc2.bias.numpy(), targets)
    assert np.isclose(mine, loss.item())
    auto = dict(x=xs.grad, W1=fc1.weight.grad, b1=fc1.bias.grad, W2=fc2.weight.grad, b2=fc2.bias.grad)
    for name, grad in grads.items():
        assert np.allclose(grad, auto[name], atol=1e-12), name

    tl.manual_seed(1)
    lin = nn.Linear(512, 512)
    inp = tl.randn(4096, 512)
    ratio = float(lin(inp).numpy().var() / inp.numpy().var())
    assert 0.30 < ratio < 0.37, ratio                           # about 1/3


if __name__ == "__main__":
    check()
    print("ch03_layers: all checks passed")
