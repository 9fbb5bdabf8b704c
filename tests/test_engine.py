"""The engine: the graph walk, accumulation, aliasing, freeing, grad modes, in-place checks, hooks, gradcheck."""
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


def test_backward_gradient_shape_is_checked():
    x = tl.randn(2, 2, requires_grad=True)
    with pytest.raises(ValueError, match=r"gradient shape \(3,\)"):
        (x * 2.0).backward(np.ones(3, dtype=np.float32))


def test_profile_counts_forward_and_backward_per_op(device):
    from tinylm.autograd import profile
    x = tl.randn(4, 4, device=device, requires_grad=True)
    with profile() as prof:
        (x.tanh() @ x).sum().backward()
    (x * 2.0).sum()  # outside the block: not counted
    assert set(prof.stats) == {"Tanh", "MatMul", "Sum"}
    assert all(row[0] == 1 and row[2] == 1 for row in prof.stats.values())
    assert "MatMul" in prof.table()


def test_grad_mode_helpers():
    @tl.no_grad
    def f(x):
        return x * 2
    assert not f(tl.ones(1, requires_grad=True)).requires_grad
    with tl.set_grad_enabled(False):
        assert not tl.is_grad_enabled()
    assert tl.is_grad_enabled()
    with tl.inference_mode():
        assert not tl.is_grad_enabled()


def test_integer_outputs_are_cut_from_the_graph(device):
    x = tl.randn(3, device=device, requires_grad=True)
    i = x.astype(np.int64)
    assert not i.requires_grad
    (i * x).sum().backward()                                      # i is a constant here
    np.testing.assert_allclose(tl.backend.to_numpy(x.grad), tl.backend.to_numpy(i.data))


def test_retain_grad_keeps_an_intermediate_gradient(device):
    x = tl.tensor([1.0, 2.0], device=device, requires_grad=True)
    h = (x * 3.0).retain_grad()
    y = h * h
    y.retain_grad()
    (y.sum() + h.sum()).backward()
    np.testing.assert_allclose(tl.backend.to_numpy(h.grad), 2 * np.array([3.0, 6.0]) + 1)   # both paths summed
    np.testing.assert_allclose(tl.backend.to_numpy(y.grad), [1.0, 1.0])
    np.testing.assert_allclose(tl.backend.to_numpy(x.grad), 3 * (2 * np.array([3.0, 6.0]) + 1))
    assert (x * 2.0).grad is None                              # not retained: no gradient kept


def test_in_place_changes_after_use_are_refused_by_backward(device):
    a = tl.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    b = tl.tensor([2.0, 2.0, 2.0], device=device)
    y = (a * b).sum()
    b += 10                                                    # b was saved by Mul
    with pytest.raises(RuntimeError, match="changed in place"):
        y.backward()
    w = tl.nn.Parameter(tl.tensor([1.0, 2.0], device=device))
    loss = (w * w).sum()
    with tl.no_grad():
        w -= 0.5
    with pytest.raises(RuntimeError, match="changed in place"):
        loss.backward()
    e = a.exp()
    with tl.no_grad():
        e += 1                                                 # an output saved for backward
    with pytest.raises(RuntimeError, match="changed in place"):
        e.sum().backward()
    loss = (w * w).sum()                                       # a graph built after the change is fine
    loss.backward()
    np.testing.assert_allclose(tl.backend.to_numpy(w.grad), [1.0, 3.0])


def test_grad_modes_are_reentrant_and_decorate_generators():
    @tl.no_grad()
    def f(n):
        return f(n - 1) if n else tl.is_grad_enabled()
    assert f(3) is False and tl.is_grad_enabled()

    @tl.no_grad()
    def gen():
        yield (tl.ones(1, requires_grad=True) * 2).requires_grad
    assert list(gen()) == [False]
    with tl.inference_mode(False):
        assert tl.is_grad_enabled()

    @tl.set_grad_enabled(False)
    def h():
        return tl.is_grad_enabled()
    assert tl.is_grad_enabled() and h() is False and tl.is_grad_enabled()

    @tl.enable_grad
    def e():
        return tl.is_grad_enabled()
    with tl.no_grad():
        assert e() is True and not tl.is_grad_enabled()


def test_a_tensor_assigned_to_grad_accumulates_and_moves():
    w = tl.tensor([1.0, 2.0], requires_grad=True)
    w.grad = tl.ones(2)
    (w * w).sum().backward()
    np.testing.assert_allclose(tl.backend.to_numpy(w.grad), [3.0, 5.0])
    m = tl.nn.Linear(2, 1)
    m.weight.grad = tl.ones(1, 2)
    m.to("strict")
    assert tl.backend.device_of(m.weight.grad) == "strict"


def test_an_optimizer_step_counts_as_an_in_place_change():
    w = tl.tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    tl.optim.SGD([w], lr=0.1).step()
    with pytest.raises(RuntimeError, match="changed in place"):
        loss.backward()


def test_in_place_changes_through_views_and_detach_are_seen(device):
    a = tl.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    b = a * a
    d = a.detach()
    d += 1                                                     # the same memory as a
    with pytest.raises(RuntimeError, match="changed in place"):
        b.sum().backward()
    a = tl.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    b = a * 2.0
    c = b * b
    with tl.no_grad():
        v = b[0:2]                                             # a view of b
        v += 100
    with pytest.raises(RuntimeError, match="changed in place"):
        c.sum().backward()
    x = tl.tensor([[1.0, 2.0]], device=device, requires_grad=True)
    z = (x * x).sum()
    with tl.no_grad():
        y = x.reshape(2)
        y += 1
    with pytest.raises(RuntimeError, match="changed in place"):
        z.backward()
    x = tl.tensor([1.0, 2.0], device=device, requires_grad=True)
    (x[[0, 1]] * x).sum().backward()                           # a copy (fancy index) with nothing changed: fine
    assert x.grad is not None


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


def test_gradcheck_takes_pytorchs_tuple_of_inputs():
    x = tl.randn(3, dtype=tl.float64, requires_grad=True)
    assert tl.gradcheck(lambda a: a.tanh(), (x,))


def test_broadcast_errors_name_the_op_and_shapes(device):
    with pytest.raises(ValueError, match=r"Add: shapes \(2, 3\) and \(5,\) do not broadcast"):
        tl.ones(2, 3, device=device) + tl.ones(5, device=device)


def test_post_backward_hooks_run_after_each_walk_until_removed(device):
    calls = []
    handle = tl.engine.register_post_backward_hook(lambda: calls.append(x.grad is not None))
    x = tl.ones(3, device=device, requires_grad=True)
    (x * 2.0).sum().backward()
    (x * 3.0).sum().backward()
    handle.remove()
    (x * 4.0).sum().backward()
    assert calls == [True, True]


def test_function_settings_are_constructor_arguments():
    with pytest.raises(TypeError):
        ops.Softmax.apply(tl.ones(3), axes=0)          # a misspelt setting is refused, not stored
    assert ops.Sum(axis=(0,), keepdims=True).keepdims is True
