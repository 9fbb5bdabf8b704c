"""Tests for nn.init's fan-based initialisers (tinylm/nn/init.py): bounds, standard deviations (within sampling error, fixed seed,
large tensors), orthogonality, gains from PyTorch's documented table, and errors."""
import math

import numpy as np
import pytest

import tinylm as tl
from tinylm.nn.init import (calculate_gain, kaiming_normal_, kaiming_uniform_, orthogonal_, trunc_normal_,
                            xavier_normal_, xavier_uniform_)


def big(*shape, dtype=np.float32):
    return tl.zeros(*shape, dtype=dtype, requires_grad=True)


def std_close(x, want):
    """The sample std of n draws is within 5 standard errors (want / sqrt(2n)) of the true std."""
    n = x.size
    assert abs(x.std() - want) < 5 * want / math.sqrt(2 * n), (x.std(), want)


def test_calculate_gain_matches_pytorchs_table():
    assert calculate_gain("linear") == calculate_gain("conv2d") == calculate_gain("sigmoid") == 1
    assert calculate_gain("tanh") == pytest.approx(5 / 3)
    assert calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)))
    assert calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="unsupported nonlinearity 'gelu'"):
        calculate_gain("gelu")


def test_xavier_uniform_bound_and_std():
    tl.manual_seed(0)
    w = big(300, 500)
    out = xavier_uniform_(w, gain=2.0)
    assert out is w and w.dtype == np.float32 and w.requires_grad
    a = 2.0 * math.sqrt(6 / 800)
    x = w.numpy().astype(np.float64)
    assert -a <= x.min() and x.max() < a and x.max() > 0.99 * a
    std_close(x, a / math.sqrt(3))


def test_xavier_normal_counts_the_receptive_field():
    tl.manual_seed(1)
    w = big(64, 32, 3, 3)                                      # a conv weight: fan_in 32*9, fan_out 64*9
    xavier_normal_(w)
    std_close(w.numpy().astype(np.float64), math.sqrt(2 / (32 * 9 + 64 * 9)))


@pytest.mark.parametrize("mode, fan", [("fan_in", 400), ("fan_out", 250)])
def test_kaiming_uniform_and_normal(mode, fan):
    tl.manual_seed(2)
    w = big(250, 400)
    kaiming_uniform_(w, a=math.sqrt(5), mode=mode)            # nn.Linear's own init in PyTorch
    bound = math.sqrt(2 / (1 + 5)) * math.sqrt(3 / fan)
    x = w.numpy().astype(np.float64)
    assert -bound <= x.min() and x.max() < bound and x.max() > 0.99 * bound
    kaiming_normal_(w, mode=mode, nonlinearity="relu")
    std_close(w.numpy().astype(np.float64), math.sqrt(2) / math.sqrt(fan))
    with pytest.raises(ValueError, match="mode 'fan_avg' not supported"):
        kaiming_normal_(w, mode="fan_avg")


def test_trunc_normal_stays_inside_and_has_the_truncated_std():
    tl.manual_seed(3)
    w = big(400, 500, dtype=np.float64)
    trunc_normal_(w, mean=1.0, std=2.0, a=0.0, b=3.0)          # [mean - 0.5 std, mean + std]
    x = w.numpy()
    assert x.min() >= 0.0 and x.max() <= 3.0 and x.min() < 0.01 and x.max() > 2.99
    # moments of a normal truncated to [alpha, beta] (in std units): by the textbook formulas
    alpha, beta = -0.5, 1.0
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    Phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))
    Z = Phi(beta) - Phi(alpha)
    mean = 1.0 + 2.0 * (phi(alpha) - phi(beta)) / Z
    var = 4.0 * (1 + (alpha * phi(alpha) - beta * phi(beta)) / Z - ((phi(alpha) - phi(beta)) / Z) ** 2)
    assert abs(x.mean() - mean) < 5 * math.sqrt(var / x.size)
    std_close(x, math.sqrt(var))
    w2 = big(1000)
    trunc_normal_(w2, std=0.02)                                # PyTorch's common use: no truncation at +-2
    std_close(w2.numpy().astype(np.float64), 0.02)
    with pytest.raises(ValueError, match="values, not numbers of standard deviations"):
        trunc_normal_(w2, mean=0.0, std=0.02, a=1.0, b=2.0)


@pytest.mark.parametrize("shape", [(20, 50), (50, 20), (8, 3, 2, 2)])
def test_orthogonal_gives_orthonormal_rows_or_columns(shape):
    tl.manual_seed(4)
    w = big(*shape, dtype=np.float64)
    orthogonal_(w, gain=1.5)
    m = w.numpy().reshape(shape[0], -1) / 1.5
    small = min(m.shape)
    gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-12)


def test_seeded_draws_repeat_and_generators_work():
    tl.manual_seed(5)
    a = xavier_uniform_(big(4, 4)).numpy().copy()
    tl.manual_seed(5)
    b = xavier_uniform_(big(4, 4)).numpy().copy()
    assert (a == b).all()
    g1, g2 = tl.Generator().manual_seed(9), tl.Generator().manual_seed(9)
    assert (kaiming_normal_(big(3, 3), generator=g1).numpy() == kaiming_normal_(big(3, 3), generator=g2).numpy()).all()


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="fewer than 2 dimensions, got shape \\(5,\\)"):
        xavier_uniform_(big(5))
    with pytest.raises(TypeError, match="floating-point"):
        kaiming_uniform_(tl.zeros(3, 3, dtype=np.int64))
    with pytest.raises(TypeError, match="expected a Tensor"):
        orthogonal_(np.zeros((3, 3)))


def test_init_does_not_record_a_graph_and_bumps_the_version():
    w = big(3, 3)
    y = (w * w).sum()                                          # saves w for backward
    xavier_uniform_(w)
    assert w.grad_fn is None
    with pytest.raises(RuntimeError, match="changed in place"):
        y.backward()                                           # the weight changed under the graph
