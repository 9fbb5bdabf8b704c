"""The functional API: losses, attention and layer_norm as PyTorch's."""
import gc
import weakref

import numpy as np
import pytest

import tinylm as tl
import tinylm.functional as F
from tinylm import ops
from tinylm.engine import Function


def host(a):
    return tl.backend.to_numpy(a)


def test_cross_entropy_matches_formula_and_ignores(device):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 5)).astype(np.float32)
    t = np.array([0, 4, -100, 2, 2, -100])
    x = tl.tensor(logits, device=device, requires_grad=True)
    loss = F.cross_entropy(x, tl.tensor(t, device=device))
    lse = np.log(np.exp(logits).sum(1))
    keep = t != -100
    expected = (lse[keep] - logits[keep, t[keep]]).mean()
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-5)
    loss.backward()
    assert np.all(host(x.grad)[~keep] == 0)
    with pytest.raises(ValueError, match="target id 7"):
        F.cross_entropy(x, tl.tensor(np.array([7, 0, 0, 0, 0, 0]), device=device))


def test_mse_loss_reductions_and_shapes(device):
    a, b = tl.zeros(3, device=device), tl.tensor([1.0, 2.0, 3.0], device=device)
    assert F.mse_loss(a, b, reduction="none").tolist() == [1.0, 4.0, 9.0]
    assert F.mse_loss(a, b, reduction="sum").item() == 14.0
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(a, b, reduction="bogus")
    with pytest.raises(ValueError, match="differ"):
        F.mse_loss(tl.zeros(3, 1, device=device), b)
    with pytest.raises(ValueError, match="differ"):                 # an array target was broadcast to (3, 3)
        F.mse_loss(tl.zeros(3, 1, device=device), b.data)
    assert F.mse_loss(a, 2.0).item() == 4.0


def test_attention_weights_of_a_row_masked_everywhere_are_zeros(device):
    q = tl.randn(1, 1, 2, 4, device=device, requires_grad=True)
    m = tl.tensor([[True, True], [False, False]], device=device)
    out, w = F.scaled_dot_product_attention(q, q, q, attn_mask=m, return_weights=True)
    assert np.isfinite(out.numpy()).all() and (w.numpy()[0, 0, 1] == 0).all()
    out.sum().backward()
    assert np.isfinite(tl.backend.to_numpy(q.grad)).all()


def test_layer_norm_in_pytorchs_order_keeps_a_keyword_eps():
    x = tl.randn(2, 6)
    np.testing.assert_allclose(F.layer_norm(x, (6,), eps=0.3).numpy(), F.layer_norm(x, eps=0.3).numpy())
    w = tl.ones(6) * 2.0
    np.testing.assert_allclose(F.layer_norm(x, (6,), w, eps=0.3).numpy(), F.layer_norm(x, w, eps=0.3).numpy())
