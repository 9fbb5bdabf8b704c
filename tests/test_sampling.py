"""Tests for tinylm/sampling.py: top-k, top-p, temperature, greedy and seeded sampling, on every device."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinylm as tl
from tinylm import backend
from tinylm.sampling import sample_next, top_k_filter, top_p_filter


def dev(x, device):
    return backend.to_device(np.asarray(x, dtype=np.float32), device)


def host(x):
    return backend.to_numpy(x)


@settings(deadline=None, max_examples=25)
@given(b=st.integers(1, 4), v=st.integers(1, 30), k=st.integers(1, 35), seed=st.integers(0, 2**16),
       ties=st.booleans())
def test_top_k_keeps_exactly_k(device, b, v, k, seed, ties):
    rng = np.random.default_rng(seed)
    logits = rng.integers(-2, 3, (b, v)).astype(np.float32) if ties else rng.standard_normal((b, v)).astype(np.float32)
    out = host(top_k_filter(dev(logits, device), k))
    kept = np.isfinite(out)
    assert (kept.sum(-1) == min(k, v)).all()
    np.testing.assert_array_equal(out[kept], logits[kept])       # kept logits unchanged
    for r in range(b):  # every kept logit >= every dropped one
        if (~kept[r]).any():
            assert logits[r][kept[r]].min() >= logits[r][~kept[r]].max()


@settings(deadline=None, max_examples=25)
@given(b=st.integers(1, 4), v=st.integers(1, 30), p=st.floats(0.05, 0.99), seed=st.integers(0, 2**16))
def test_top_p_keeps_the_smallest_set_reaching_p(device, b, v, p, seed):
    logits = np.random.default_rng(seed).standard_normal((b, v)).astype(np.float32) * 2
    out = host(top_p_filter(dev(logits, device), p))
    kept = np.isfinite(out)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    for r in range(b):
        order = np.argsort(-logits[r], kind="stable")
        n = int(kept[r].sum())
        assert kept[r][order[:n]].all()                      # the n most likely tokens
        mass = np.cumsum(probs[r][order])
        assert mass[n - 1] >= p - 1e-5                       # reach p ...
        assert n == 1 or mass[n - 2] < p + 1e-5              # ... and one fewer would not: the smallest set


def test_top_p_examples(device):
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]], np.float32))
    for p, n in ((0.4, 1), (0.5, 1), (0.6, 2), (0.81, 3), (1.0, 4)):
        assert np.isfinite(host(top_p_filter(dev(logits, device), p))).sum() == n


def test_temperature_zero_is_argmax(device):
    logits = np.random.default_rng(0).standard_normal((16, 50)).astype(np.float32)
    ids = sample_next(dev(logits, device), temperature=0)
    assert backend.device_of(ids) == device and ids.dtype == np.int64 and ids.shape == (16,)
    np.testing.assert_array_equal(host(ids), logits.argmax(-1))
    # top_k=1 is greedy at any temperature
    np.testing.assert_array_equal(host(sample_next(dev(logits, device), 2.0, top_k=1)), logits.argmax(-1))


def test_fixed_seed_gives_the_same_sample(device):
    logits = dev(np.zeros((8, 100)), device)
    a = host(sample_next(logits, generator=backend.Generator(device, 7)))
    b = host(sample_next(logits, generator=backend.Generator(device, 7)))
    c = host(sample_next(logits, generator=backend.Generator(device, 8)))
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    tl.manual_seed(3)
    d = host(sample_next(logits))
    tl.manual_seed(3)
    np.testing.assert_array_equal(d, host(sample_next(logits)))


def test_samples_follow_the_distribution(device):
    probs = np.array([0.1, 0.0, 0.6, 0.3], np.float32)
    logits = np.log(np.maximum(probs, 1e-30)).astype(np.float32)
    logits[1] = -np.inf
    rows = np.tile(logits, (20000, 1))  # one call, 20000 rows: no loop over rows
    ids = host(sample_next(dev(rows, device), generator=backend.Generator(device, 0)))
    freq = np.bincount(ids, minlength=4) / len(ids)
    np.testing.assert_allclose(freq, probs, atol=0.015)
    assert freq[1] == 0
    # temperature flattens: at T=2 the odds of id 2 over id 0 are sqrt(6)
    ids = host(sample_next(dev(rows, device), temperature=2.0, generator=backend.Generator(device, 1)))
    freq = np.bincount(ids, minlength=4) / len(ids)
    assert abs(freq[2] / freq[0] - np.sqrt(6)) < 0.25


def test_errors():
    with pytest.raises(ValueError, match="temperature"):
        sample_next(np.zeros((1, 3), np.float32), temperature=-1)
    with pytest.raises(ValueError, match="top_k"):
        top_k_filter(np.zeros((1, 3), np.float32), 0)
    with pytest.raises(ValueError, match="top_p"):
        top_p_filter(np.zeros((1, 3), np.float32), 0.0)
    with pytest.raises(ValueError, match=r"\(B, V\)"):
        sample_next(np.zeros(3, np.float32))


def test_bad_sampling_settings_raise_instead_of_returning_token_zero():
    logits = tl.randn(2, 5)
    for temperature in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            tl.sample_next(logits, temperature=temperature)
    with pytest.raises(ValueError, match="not finite"), np.errstate(over="ignore"):
        tl.sample_next(logits * 1e30, temperature=1e-30)
    with pytest.raises(TypeError, match="top_k must be an int"):
        tl.sample_next(logits, top_k=2.0)
    with pytest.raises(ValueError, match="top_p"):
        tl.sample_next(logits, top_p=1.5)


def test_float16_logits_sample_the_whole_vocabulary(device):
    # a float16 cumsum of 20000 probabilities of 5e-5 stops growing near 0.25: the later ids were never drawn
    v = 20000
    logits = backend.to_device(np.zeros((400, v), np.float16), device)
    ids = host(sample_next(logits, generator=backend.Generator(device, 0)))
    assert ids.max() > 0.9 * v and abs(ids.mean() - v / 2) < 0.1 * v
    kept = np.isfinite(host(top_p_filter(logits[:1], 0.5)))
    assert abs(int(kept.sum()) - v // 2) <= 5
    assert top_p_filter(logits[:1], 0.5).dtype == np.float16 and top_k_filter(logits[:1], 3).dtype == np.float16


def test_integer_logits_are_filtered_as_float32(device):
    logits = backend.to_device(np.array([[1, 3, 2, 0]], np.int64), device)
    for out in (top_k_filter(logits, 2), top_p_filter(logits, 0.5)):   # were int64 with INT64_MIN for -inf
        assert out.dtype == np.float32
        assert host(out).tolist()[0][:2] == [-np.inf, 3.0] and host(out)[0, 3] == -np.inf
    assert sample_next(logits, 0.5, top_k=1).tolist() == [1]


def test_a_row_of_all_minus_inf_raises_instead_of_returning_token_zero(device):
    logits = np.zeros((2, 4), np.float32)
    logits[1] = -np.inf
    with pytest.raises(ValueError, match="row 1 is -inf"):
        sample_next(dev(logits, device))


def test_sample_next_gives_a_tensor_for_tensor_logits(device):
    nxt = tl.sample_next(tl.randn(2, 5, device=device), temperature=0)
    assert isinstance(nxt, tl.Tensor) and nxt.shape == (2,) and nxt.dtype == np.int64 and nxt.device == device
