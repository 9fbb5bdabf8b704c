"""Creating tensors: factories, triangles, random draws and generators, as PyTorch's."""
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


def test_factories_follow_pytorch_and_stay_float32():
    assert tl.arange(0, 1, 0.25).dtype == np.float32 and tl.arange(3).dtype == np.int64
    assert tl.tensor([1, 2]).mean().dtype == np.float32
    assert tl.zeros(size=(2, 3)).shape == (2, 3) and tl.randint(10, (4,)).shape == (4,)
    assert tl.randint(5, 6, size=(2,)).tolist() == [5, 5]
    assert tl.full_like(tl.ones(2), 7.0).tolist() == [7.0, 7.0] and tl.randn_like(tl.ones(3, 2)).shape == (3, 2)
    assert tl.triu(tl.ones(2, 2)).tolist() == [[1.0, 1.0], [0.0, 1.0]]
    assert tl.cat([tl.ones(1), tl.zeros(1)]).tolist() == [1.0, 0.0]
    w = F.where(tl.tensor([True, False], device="strict"), 1.0, 0.0)
    assert w.device == "strict" and w.dtype == np.float32


def test_tril_triu_keep_infinities_and_need_a_matrix():
    m = tl.triu(tl.full((3, 3), float("-inf")), 1)
    assert np.isneginf(m.numpy()[0, 1]) and (m.numpy()[np.tril_indices(3)] == 0).all()
    with pytest.raises(ValueError, match="at least 2 axes"):
        tl.tril(tl.ones(3))


def test_multinomial_and_generator(device):
    g = tl.Generator(device).manual_seed(7)
    p = tl.tensor([0.1, 0.6, 0.3], device=device)
    draws = tl.multinomial(p, 3000, replacement=True, generator=g).numpy()
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / 3000, [0.1, 0.6, 0.3], atol=0.03)
    a = tl.multinomial(p, 3000, replacement=True, generator=tl.Generator(device).manual_seed(7)).numpy()
    assert (a == draws).all()                                   # the same seed, the same draws
    rows = tl.multinomial(tl.tensor([[1.0, 0.0, 2.0, 1.0]] * 50, device=device), 3)
    assert rows.shape == (50, 3) and all(len(set(r)) == 3 and 1 not in r for r in rows.tolist())
    assert tl.randn(2, generator=g, device=device).shape == (2,)
    with pytest.raises(ValueError, match="without replacement"):
        tl.multinomial(p, 4)
