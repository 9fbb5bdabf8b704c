"""The engine: graph walk, accumulation, aliasing, freeing, no_grad, errors, gradcheck itself."""
import gc
import weakref

import numpy as np
import pytest

import tinylm as tl
import tinylm.functional as F
from tinylm import ops
from tinylm.autograd import Function


def host(a):
    return tl.backend.to_numpy(a)


def test_readme_example(device):
    x = tl.randn(3, 4, requires_grad=True, device=device)
    (x.tanh() @ x.T).sum().backward()
    assert x.grad.shape == (3, 4) and x.grad.dtype == np.float32
    # d/dx sum(tanh(x) @ x^T) = (1 - tanh^2) * colsum-of-x broadcast + colsum of tanh(x)
    xn = x.numpy().astype(np.float64)
    t = np.tanh(xn)
    expected = (1 - t ** 2) * xn.sum(axis=0) + t.sum(axis=0)
    np.testing.assert_allclose(host(x.grad), expected, rtol=1e-5, atol=1e-5)


def test_deep_chain_does_not_recurse(device):
    x = tl.tensor([1.0], device=device, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(host(x.grad), [1.0001 ** 10_000], rtol=1e-3)


def test_shared_subexpression_is_counted_once_per_path(device):
    # a diamond: y = (x*2) used twice; dy/dx must add both paths exactly once
    x = tl.tensor([3.0], device=device, requires_grad=True)
    a = x * 2.0
    b = a * a + a
    b.sum().backward()
    np.testing.assert_allclose(host(x.grad), [2 * (2 * 6.0) + 2.0])


def test_backward_twice_on_fresh_graphs_accumulates(device):
    x = tl.tensor([1.0, 2.0], device=device, requires_grad=True)
    (x * x).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(host(x.grad), [4.0, 8.0])
    x.zero_grad()
    assert x.grad is None


def test_gradients_never_alias(device):
    a = tl.ones(3, device=device, requires_grad=True)
    b = tl.ones(3, device=device, requires_grad=True)
    (a + b).sum().backward()
    assert a.grad is not b.grad
    a.grad += 1
    np.testing.assert_allclose(host(b.grad), [1, 1, 1])


def test_non_scalar_backward_needs_gradient(device):
    x = tl.randn(2, 3, device=device, requires_grad=True)
    with pytest.raises(ValueError, match=r"non-scalar tensor of shape \(2, 3\)"):
        (x * 2.0).backward()
    y = x * 2.0
    y.backward(tl.ones(2, 3, device=device))
    np.testing.assert_allclose(host(x.grad), np.full((2, 3), 2.0))


def test_saved_arrays_are_freed_after_backward(device):
    x = tl.randn(4, device=device, requires_grad=True)
    y = x.exp()
    fn = y.grad_fn
    y.sum().backward()
    assert not hasattr(fn, "y"), "Exp kept its saved output after backward"
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.sum().backward()


def test_retain_graph_allows_a_second_backward(device):
    x = tl.randn(4, 5, device=device, requires_grad=True)
    t = tl.tensor(np.array([0, 1, 2, 3]), device=device)
    loss = F.cross_entropy(x * 1.0, t)
    loss.backward(retain_graph=True)
    g1 = host(x.grad).copy()
    loss.backward()
    np.testing.assert_allclose(host(x.grad), 2 * g1, rtol=1e-6)


def test_graph_memory_is_released():
    x = tl.randn(100, requires_grad=True)
    y = (x * 2.0).exp()
    ref = weakref.ref(y.grad_fn.args[0])  # the intermediate x*2
    y.sum().backward()
    gc.collect()
    assert ref() is None


def test_no_grad_records_nothing(device):
    x = tl.randn(3, device=device, requires_grad=True)
    with tl.no_grad():
        y = (x * 2.0).exp()
    assert y.grad_fn is None and not y.requires_grad

    @tl.no_grad()
    def f(z):
        return z * 3.0
    assert f(x).grad_fn is None
    assert (x * 3.0).grad_fn is not None


def test_leaf_backward_and_detach(device):
    x = tl.randn(3, device=device, requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None
    y = (x * d).sum()
    y.backward()
    np.testing.assert_allclose(host(x.grad), host(d.data))


def test_mixed_devices_raise_naming_both():
    a = tl.ones(2, device="cpu")
    b = tl.ones(2, device="strict")
    with pytest.raises(ValueError, match=r"'cpu' and 'strict'"):
        a + b


def test_matmul_shape_error_names_both_shapes(device):
    a, b = tl.ones(2, 3, device=device), tl.ones(4, 5, device=device)
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\)"):
        a @ b


def test_reshape_error_names_shapes(device):
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        tl.ones(2, 3, device=device).reshape(4)


def test_softmax_family_is_stable_for_huge_logits(device):
    x = tl.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], device=device, requires_grad=True)
    p = F.softmax(x)
    lp = F.log_softmax(x)
    loss = F.cross_entropy(x, tl.tensor(np.array([1, 2]), device=device))
    loss.backward()
    for t in (p, lp, loss):
        assert np.all(np.isfinite(host(t.data)))
    assert np.all(np.isfinite(host(x.grad)))
    np.testing.assert_allclose(host(p.data)[0], [1, 0, 0])
    np.testing.assert_allclose(loss.item(), (2e4 + np.log(3)) / 2, rtol=1e-6)


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


def test_float32_stays_float32_with_python_and_numpy_scalars(device):
    x = tl.randn(3, device=device)
    for y in (x * 2.0, x / np.float64(3.0), 1.5 - x, x ** 2, np.float64(2.0) * x):
        assert y.dtype == np.float32
    assert tl.tensor([1.0, 2.0]).dtype == np.float32
    assert tl.tensor(np.zeros(2)).dtype == np.float64  # an explicit float64 array keeps its dtype


class _BrokenSoftmax(Function):
    """A softmax whose backward returns zeros: a sum-only check would pass it."""

    def forward(self, x):
        return ops.Softmax(axis=-1).forward(x)

    def backward(self, g):
        return g * 0.0


def test_gradcheck_catches_a_wrong_backward_that_sum_checks_miss(device):
    x = tl.tensor(np.random.default_rng(0).standard_normal((2, 3)), dtype=np.float64, device=device,
                  requires_grad=True)
    # through .sum(), zero is the right gradient of a softmax: a sum-only check cannot see the bug
    _BrokenSoftmax.apply(x).sum().backward()
    assert np.allclose(host(x.grad), 0)
    with pytest.raises(tl.GradcheckError, match=r"input 0 .* analytic 0 vs numeric"):
        tl.gradcheck(lambda x: _BrokenSoftmax.apply(x), x)
    assert tl.gradcheck(lambda x: F.softmax(x), x)


def test_gradcheck_requires_float64():
    x = tl.randn(3, requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        tl.gradcheck(lambda x: x * 2.0, x)


def test_repr_shows_device_dtype_and_grad_fn(device):
    x = tl.ones(2, device=device, requires_grad=True)
    r = repr(x * 2.0)
    assert f"device='{device}'" in r and "float32" in r and "grad_fn=<Mul>" in r


def test_getitem_with_repeated_indices_accumulates(device):
    x = tl.zeros(4, device=device, requires_grad=True)
    idx = tl.tensor(np.array([1, 1, 3, 1]), device=device)
    x[idx].sum().backward()
    np.testing.assert_allclose(host(x.grad), [0, 3, 0, 1])


def test_backward_gradient_shape_is_checked():
    x = tl.randn(2, 2, requires_grad=True)
    with pytest.raises(ValueError, match=r"gradient shape \(3,\)"):
        (x * 2.0).backward(np.ones(3, dtype=np.float32))


def test_comparisons_and_masked_fill(device):
    x = tl.tensor([1.0, -2.0, 3.0], device=device, requires_grad=True)
    y = x.masked_fill(x < 0, 0.0)
    np.testing.assert_allclose(host(y.data), [1, 0, 3])
    y.sum().backward()
    np.testing.assert_allclose(host(x.grad), [1, 0, 1])


def test_profile_counts_forward_and_backward_per_op(device):
    from tinylm.autograd import profile
    x = tl.randn(4, 4, device=device, requires_grad=True)
    with profile() as prof:
        (x.tanh() @ x).sum().backward()
    (x * 2.0).sum()  # outside the block: not counted
    assert set(prof.stats) == {"Tanh", "MatMul", "Sum"}
    assert all(row[0] == 1 and row[2] == 1 for row in prof.stats.values())
    assert "MatMul" in prof.table()


def test_every_public_name_has_a_docstring():
    import inspect
    missing = []
    for name in tl.__all__:
        obj = getattr(tl, name)
        if isinstance(obj, dict) or obj in (tl.float32, tl.float64, tl.int64):
            continue  # PRESETS (documented in tinylm/model.py) and NumPy's dtype aliases
        if not (inspect.getdoc(obj) or "").strip():
            missing.append(name)
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if not attr.startswith("_") and callable(member) and not (inspect.getdoc(member) or "").strip():
                    missing.append(f"{name}.{attr}")
    assert not missing, f"public names without a docstring: {missing}"
