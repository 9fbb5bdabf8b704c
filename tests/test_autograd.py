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
    assert (f"device='{device}'" in r) == (device != "cpu") and "float32" not in r and "grad_fn=<Mul>" in r
    assert "dtype=float64" in repr(tl.ones(2, dtype=tl.float64, device=device))
    assert repr(tl.tensor([1.0, 2.5])) == "tensor([1.0000, 2.5000])" and repr(tl.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert "..." not in repr(tl.ones(8, 8))                    # an 8 x 8 attention pattern prints whole


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


# ---------------------------------------------------------------------------- PyTorch habits
def test_eq_is_elementwise_so_the_tril_causal_mask_idiom_works(device):
    tril = tl.tril(tl.ones(4, 4, device=device))
    w = F.softmax(tl.zeros(4, 4, device=device).masked_fill(tril == 0, float("-inf")), dim=-1)
    np.testing.assert_allclose(w.numpy()[0], [1, 0, 0, 0])
    np.testing.assert_allclose(w.numpy()[3], [0.25] * 4)
    assert (tl.ones(3, device=device) == 1).tolist() == [True] * 3
    assert (tl.ones(3, device=device) != tl.ones(3, device=device)).tolist() == [False] * 3
    a = tl.ones(2, device=device)
    assert {a: 1}[a] == 1                                  # still hashable, by identity


def test_masks_must_be_boolean(device):
    x = tl.zeros(2, 2, device=device)
    with pytest.raises(TypeError, match="boolean"):
        x.masked_fill(tl.ones(2, 2, device=device), 1.0)
    with pytest.raises(TypeError, match="boolean tensor"):
        x.masked_fill(True, 1.0)


def test_truth_value_float_int_format_len():
    assert bool(tl.tensor(2.5) > 0) and not bool(tl.tensor([0.0]))
    with pytest.raises(ValueError, match="ambiguous"):
        bool(tl.ones(2))
    assert float(tl.tensor(2.5)) == 2.5 and int(tl.tensor([3.0])) == 3
    assert f"{tl.tensor(1.23456):.2f}" == "1.23"
    assert list(range(10))[tl.tensor(3)] == 3              # integer tensors index
    with pytest.raises(TypeError, match="0-d"):
        len(tl.tensor(1.0))
    assert len(tl.ones(3, 2)) == 3


def test_iteration_unpacking_and_index_errors(device):
    x = tl.tensor([[1.0, 2.0], [3.0, 4.0]], device=device, requires_grad=True)
    a, b = x
    assert a.tolist() == [1.0, 2.0] and b.tolist() == [3.0, 4.0]
    (a * 2 + b).sum().backward()                           # rows are differentiable views
    np.testing.assert_allclose(tl.backend.to_numpy(x.grad), [[2, 2], [1, 1]])
    with pytest.raises(IndexError, match="out of range"):
        x[2]
    with pytest.raises(TypeError, match="bad index"):
        x[1.5]
    with pytest.raises(TypeError, match="0-d"):
        iter(tl.tensor(1.0))


def test_numpy_conversion_is_implicit_on_the_cpu_only():
    np.testing.assert_allclose(np.asarray(tl.ones(2)), [1.0, 1.0])
    with pytest.raises(TypeError, match="not converted to NumPy implicitly"):
        np.asarray(tl.ones(2, device="strict"))


def test_manual_sgd_step_in_place_under_no_grad(device):
    w = tl.tensor([1.0, 2.0], device=device, requires_grad=True)
    (w * w).sum().backward()
    with tl.no_grad():
        w -= 0.25 * w.grad                                 # a raw gradient array
        w *= tl.tensor([2.0, 2.0], device=device)
    assert w.tolist() == [1.0, 2.0] and w.requires_grad and w.is_leaf
    with pytest.raises(RuntimeError, match="no_grad"):
        w += 1.0                                           # in the graph: refused, not silently wrong
    c = tl.zeros(2, device=device)
    c += 1                                                 # a constant tensor: fine anywhere
    assert c.tolist() == [1.0, 1.0] and c.dtype == np.float32


def test_to_keeps_the_graph_and_takes_a_dtype(device):
    other = "strict" if device == "cpu" else "cpu"
    w = tl.tensor([1.0, 2.0], device=device, requires_grad=True)
    h = (w * 3.0).to(other)
    assert h.device == other and not h.is_leaf
    (h * h).sum().backward()
    np.testing.assert_allclose(tl.backend.to_numpy(w.grad), [18.0, 36.0])
    assert w.to(tl.float64).dtype == np.float64 and w.to(other, tl.float64).device == other
    assert w.to(device) is w
    with pytest.raises(ValueError, match="is neither a device"):
        w.to("cuda:x")


def test_mixed_dtypes_promote_and_gradients_come_back_in_each_dtype(device):
    a = tl.ones(3, device=device, requires_grad=True)
    b = tl.ones(3, dtype=tl.float64, device=device, requires_grad=True)
    (a + b).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    lin = tl.nn.Linear(4, 2, device=device)
    with pytest.raises(TypeError, match="float64"):
        lin(tl.ones(3, 4, dtype=tl.float64, device=device))


def test_dim_and_keepdim_are_accepted_and_max_dim_gives_indices(device):
    x = tl.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]], device=device)
    assert x.sum(dim=1, keepdim=True).shape == (2, 1)
    assert x.mean(dim=0).tolist() == [4.0, 2.5, 2.5]
    values, indices = x.max(dim=1)
    assert values.tolist() == [5.0, 7.0] and indices.tolist() == [1, 0]
    assert x.min(dim=1).indices.tolist() == [0, 1] and x.min().item() == 0.0
    assert x.argmax(dim=-1, keepdim=True).shape == (2, 1)
    assert x.max(axis=1).tolist() == [5.0, 7.0]            # NumPy's axis= keyword: values only
    assert x.softmax(dim=0).shape == (2, 3) and F.softmax(x, dim=-1).shape == (2, 3)
    assert F.cat([x, x], dim=1).shape == (2, 6) and F.stack([x, x], dim=0).shape == (2, 2, 3)
    assert [p.shape for p in x.split(2, dim=1)] == [(2, 2), (2, 1)]
    with pytest.raises(TypeError, match="not both"):
        x.sum(axis=0, dim=0)
    with pytest.raises(ValueError, match="out of range"):
        x.softmax(5)


def test_shape_helpers(device):
    x = tl.randn(2, 3, 4, device=device, requires_grad=True)
    assert x.size() == (2, 3, 4) and x.size(-1) == 4 and x.numel() == 24 and x.dim() == 3
    assert x.unsqueeze(0).shape == (1, 2, 3, 4) and x.unsqueeze(-1).shape == (2, 3, 4, 1)
    assert x.unsqueeze(1).squeeze().shape == (2, 3, 4) and x[:1].squeeze(0).shape == (3, 4)
    assert x.flatten().shape == (24,) and x.flatten(1).shape == (2, 12)
    assert [c.shape for c in x.chunk(2, dim=1)] == [(2, 2, 4), (2, 1, 4)]
    e = x[:, :1].expand(2, 5, -1)
    assert e.shape == (2, 5, 4)
    e.sum().backward()
    np.testing.assert_allclose(tl.backend.to_numpy(x.grad)[:, 0], 5.0)
    np.testing.assert_allclose(tl.backend.to_numpy(x.grad)[:, 1:], 0.0)
    with pytest.raises(ValueError, match="out of range"):
        x.transpose(0, 3)


def test_elementwise_helpers(device):
    x = tl.tensor([-2.0, 0.5, 3.0], device=device)
    assert abs(x).tolist() == [2.0, 0.5, 3.0]
    assert x.clamp(min=0.0, max=1.0).tolist() == [0.0, 0.5, 1.0]
    np.testing.assert_allclose(x.sigmoid().numpy(), 1 / (1 + np.exp([2.0, -0.5, -3.0])), rtol=1e-6)
    np.testing.assert_allclose((2 ** x).numpy(), 2.0 ** np.array([-2.0, 0.5, 3.0]), rtol=1e-6)
    assert x.pow(2).tolist() == [4.0, 0.25, 9.0] and x.std().dtype == np.float32
    m = x > 0
    assert (~m).tolist() == [True, False, False] and (m & (x < 1)).tolist() == [False, True, False]
    assert (m | (x < 0)).all().item() and m.any().item()
    with pytest.raises(TypeError, match="boolean or integer"):
        ~x


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


def test_broadcast_errors_name_the_op_and_shapes(device):
    with pytest.raises(ValueError, match=r"Add: shapes \(2, 3\) and \(5,\) do not broadcast"):
        tl.ones(2, 3, device=device) + tl.ones(5, device=device)


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


# ---------------------------------------------------------------------------- dtype rules and edge cases
def test_integer_operands_keep_float32_and_backward_works(device):
    x = tl.randn(3, device=device, requires_grad=True)
    for y in ([1, 2, 3], tl.arange(3, device=device), tl.tensor([True, False, True], device=device), 2):
        for out in (x * y, y * x, x + y, y - x, x / 2, (x @ tl.ones(3, 2, device=device)).sum()):
            assert out.dtype == np.float32, (y, out.dtype)
        (x * y + y).sum().backward()
        assert x.grad.dtype == np.float32
    assert (tl.arange(3) * 0.5).dtype == np.float32 and (tl.arange(3) / tl.arange(1, 4)).dtype == np.float32
    assert (tl.arange(3) + 1).dtype == np.int64                  # integers with integers stay integers


def test_integer_outputs_are_cut_from_the_graph(device):
    x = tl.randn(3, device=device, requires_grad=True)
    i = x.astype(np.int64)
    assert not i.requires_grad
    (i * x).sum().backward()                                      # i is a constant here
    np.testing.assert_allclose(tl.backend.to_numpy(x.grad), tl.backend.to_numpy(i.data))


def test_pow_zero_has_a_zero_gradient_at_zero(device):
    x = tl.tensor([0.0, 2.0], device=device, requires_grad=True)
    (x ** 0).sum().backward()
    assert tl.backend.to_numpy(x.grad).tolist() == [0.0, 0.0]


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


def test_gradcheck_takes_pytorchs_tuple_of_inputs():
    x = tl.randn(3, dtype=tl.float64, requires_grad=True)
    assert tl.gradcheck(lambda a: a.tanh(), (x,))


def test_save_and_load_a_state_dict(tmp_path, device):
    m = tl.nn.Linear(3, 2, device=device)
    path = tl.save(m.state_dict(), tmp_path / "m.npz")
    m2 = tl.nn.Linear(3, 2, device=device)
    m2.load_state_dict(tl.load(path, device=device))
    np.testing.assert_array_equal(m2.weight.numpy(), m.weight.numpy())
    with pytest.raises(TypeError, match="state_dict"):
        tl.save(3, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="cannot save a set"):
        tl.save({"a": {1, 2}}, tmp_path / "x.npz")


def test_sample_next_gives_a_tensor_for_tensor_logits(device):
    nxt = tl.sample_next(tl.randn(2, 5, device=device), temperature=0)
    assert isinstance(nxt, tl.Tensor) and nxt.shape == (2,) and nxt.dtype == np.int64 and nxt.device == device


# ---------------------------------------------------------------------------- second bug hunt
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


def test_sigmoid_keeps_tiny_values(device):
    x = tl.tensor([-20.0, -40.0, 0.0, 30.0], dtype=tl.float64, device=device, requires_grad=True)
    y = x.sigmoid()
    np.testing.assert_allclose(y.numpy(), 1 / (1 + np.exp([20.0, 40.0, 0.0, -30.0])), rtol=1e-12)
    y.log().sum().backward()
    assert np.isfinite(tl.backend.to_numpy(x.grad)).all()
    assert tl.tensor([-20.0], device=device).sigmoid().item() > 0


def test_tril_triu_keep_infinities_and_need_a_matrix():
    m = tl.triu(tl.full((3, 3), float("-inf")), 1)
    assert np.isneginf(m.numpy()[0, 1]) and (m.numpy()[np.tril_indices(3)] == 0).all()
    with pytest.raises(ValueError, match="at least 2 axes"):
        tl.tril(tl.ones(3))


def test_split_and_chunk_default_to_the_first_axis():
    assert [p.shape for p in tl.ones(3, 4).split(2)] == [(2, 4), (1, 4)]
    assert [p.shape for p in F.split(tl.ones(3, 4), np.int64(2), dim=1)] == [(3, 2), (3, 2)]
    with pytest.raises(ValueError, match=r"sizes \[5, -2\]"):      # gave pieces of 3 and 0 rows
        F.split(tl.ones(3, 4), [5, -2])
    with pytest.raises(ValueError, match="chunks"):
        tl.ones(4).chunk(0)


def test_numpy_array_copies_and_contains():
    x = tl.tensor([1.0, 2.0, 3.0])
    a = np.array(x)
    a[0] = 99
    assert x.tolist()[0] == 1.0
    assert 2.0 in x and 7.0 not in x


def test_min_argmin_of_unsigned_and_bool_tensors():
    u = tl.tensor(np.array([3, 0, 5], np.uint16))
    assert u.min().item() == 0 and u.argmin().item() == 1
    assert tl.tensor([True, False]).min().item() is False or tl.tensor([True, False]).min().item() == 0
    assert tl.tensor([[1.0, 5.0]]).argmax(keepdim=True).shape == (1, 1)


def test_std_of_a_constant_has_a_zero_gradient(device):
    x = tl.tensor([1.0, 1.0, 1.0], device=device, requires_grad=True)
    x.std().backward()
    assert tl.backend.to_numpy(x.grad).tolist() == [0.0, 0.0, 0.0]


def test_max_dim_sends_the_gradient_to_the_returned_index(device):
    x = tl.tensor([[1.0, 1.0, 0.0]], device=device, requires_grad=True)
    values, indices = x.max(dim=1)
    values.sum().backward()
    assert indices.tolist() == [0] and tl.backend.to_numpy(x.grad).tolist() == [[1.0, 0.0, 0.0]]
    v, i = x.min(dim=1, keepdim=True)
    assert v.shape == i.shape == (1, 1) and i.tolist() == [[2]]


def test_more_dtype_rules():
    i = tl.arange(3)
    assert (i ** 2).dtype == np.int64 and (2 ** i).tolist() == [1, 2, 4]
    for t in (i ** 0.5, i.exp(), i.sqrt(), i.tanh(), i.sigmoid(), i.var(), i.std(), i.softmax()):
        assert t.dtype == np.float32
    c = tl.tensor([True, False, True])
    assert F.where(c, i, 0.5).dtype == np.float32 and F.where(c, tl.ones(3), i).dtype == np.float32
    assert tl.cat([tl.ones(2), tl.arange(2)]).dtype == np.float32
    assert i.masked_fill(c, 1.5).tolist() == [1, 1, 1] and i.masked_fill(c, 1.5).dtype == np.int64
    assert tl.full((2,), True).dtype == np.bool_ and tl.full((2,), 3).dtype == np.int64
    assert tl.full(size=(2,), fill_value=1.5).dtype == np.float32
    with pytest.raises(TypeError, match="one Tensor"):
        tl.cat(tl.ones(2, 2))


def test_a_tensor_assigned_to_grad_accumulates_and_moves():
    w = tl.tensor([1.0, 2.0], requires_grad=True)
    w.grad = tl.ones(2)
    (w * w).sum().backward()
    np.testing.assert_allclose(tl.backend.to_numpy(w.grad), [3.0, 5.0])
    m = tl.nn.Linear(2, 1)
    m.weight.grad = tl.ones(1, 2)
    m.to("strict")
    assert tl.backend.device_of(m.weight.grad) == "strict"


def test_attention_weights_of_a_row_masked_everywhere_are_zeros(device):
    q = tl.randn(1, 1, 2, 4, device=device, requires_grad=True)
    m = tl.tensor([[True, True], [False, False]], device=device)
    out, w = F.scaled_dot_product_attention(q, q, q, attn_mask=m, return_weights=True)
    assert np.isfinite(out.numpy()).all() and (w.numpy()[0, 0, 1] == 0).all()
    out.sum().backward()
    assert np.isfinite(tl.backend.to_numpy(q.grad)).all()


def test_to_another_tensor_takes_its_device_and_dtype():
    x = tl.ones(2)
    y = x.to(tl.zeros(1, dtype=tl.float64, device="strict"))
    assert y.device == "strict" and y.dtype == np.float64


# ---------------------------------------------------------------------------- teaching code habits
def test_item_assignment_floor_div_and_mod(device):
    n = tl.zeros((3, 3), dtype=tl.int32, device=device)
    i, j = tl.tensor([0, 0, 2], device=device), tl.tensor([1, 1, 2], device=device)
    n[i, j] += 1
    assert n.tolist() == [[0, 1, 0], [0, 0, 0], [0, 0, 1]]
    losses = tl.zeros(2, device=device)
    losses[1] = tl.tensor(2.5, device=device).item()
    assert losses.tolist() == [0.0, 2.5]
    assert (tl.arange(5, device=device) // 2).tolist() == [0, 0, 1, 1, 2] and (tl.arange(4, device=device) % 3).tolist() == [0, 1, 2, 0]
    w = tl.ones(2, device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="item assignment"):
        w[0] = 5.0
    y = w * 2.0
    with tl.no_grad():
        w[0] = 5.0
    with pytest.raises(RuntimeError, match="changed in place"):
        y.sum().backward()


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


def test_function_forms_topk_gather_one_hot(device):
    x = tl.tensor([[1.0, 5.0, 3.0], [4.0, 2.0, 6.0]], device=device, requires_grad=True)
    assert tl.sum(x, 1, keepdim=True).shape == (2, 1) and tl.allclose(tl.exp(tl.log(x)), x)
    values, indices = x.topk(2)
    assert values.tolist() == [[5.0, 3.0], [6.0, 4.0]] and indices.tolist() == [[1, 2], [2, 0]]
    values.sum().backward()
    assert tl.backend.to_numpy(x.grad).tolist() == [[0, 1, 1], [1, 0, 1]]
    assert x.gather(1, tl.tensor([[0], [2]], device=device)).tolist() == [[1.0], [6.0]]
    assert F.one_hot(tl.tensor([2, 0], device=device), 3).tolist() == [[0, 0, 1], [1, 0, 0]]
    assert [t.shape for t in x.unbind(1)] == [(2,), (2,), (2,)] and x.nelement() == 6
    np.testing.assert_allclose(tl.tensor([100.0], device=device).log10().numpy(), [2.0], rtol=1e-6)


def test_pytorch_paths_and_signatures():
    import tinylm.nn.functional as NF
    assert NF is F and tl.nn.functional is F
    d = tl.nn.ModuleDict(dict(wte=tl.nn.Embedding(3, 2)))
    assert d.wte is d["wte"]
    x, w, b = tl.randn(2, 4), tl.ones(4), tl.zeros(4)
    np.testing.assert_allclose(F.layer_norm(x, (4,), w, b, 1e-5).numpy(), F.layer_norm(x, w, b).numpy())
    np.testing.assert_allclose(F.layer_norm(x, w.shape, w, b).numpy(), F.layer_norm(x, w, b).numpy())
    with pytest.raises(ValueError, match="normalized_shape"):
        F.layer_norm(x, (2, 4))
    q = tl.randn(1, 1, 3, 4)
    a = F.scaled_dot_product_attention(q, q, q, None, 0.0, True)                 # PyTorch's positional order
    b2 = F.scaled_dot_product_attention(q, q, q, is_causal=True, scale=2.0)   # the default is 1/sqrt(4)
    assert a.shape == b2.shape and not tl.allclose(a, b2)
    assert tl.cuda.is_available() == tl.gpu_available()
    t = np.zeros(3, np.float32)
    c = tl.tensor(t)
    t[0] = 5
    assert c.tolist() == [0.0, 0.0, 0.0]                        # tl.tensor copies, as torch.tensor


# ---------------------------------------------------------------------------- third bug hunt
def test_an_optimizer_step_counts_as_an_in_place_change():
    w = tl.tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    tl.optim.SGD([w], lr=0.1).step()
    with pytest.raises(RuntimeError, match="changed in place"):
        loss.backward()


def test_function_forms_of_max_and_min_return_indices_with_a_dim():
    out = tl.tensor([[0.1, 0.9, 0.3], [0.8, 0.2, 0.5]])
    _, pred = tl.max(out, 1)
    assert pred.tolist() == [1, 0] and tl.min(out).item() == pytest.approx(0.1)
    np.testing.assert_allclose(tl.max(out, 1 - out).numpy(), [[0.9, 0.9, 0.7], [0.8, 0.8, 0.5]], rtol=1e-6)  # elementwise


def test_var_unbiased_keyword_floor_div_and_mod():
    x = tl.tensor([1.0, 2.0, 4.0], requires_grad=True)
    assert x.var(unbiased=False).item() == pytest.approx(np.var([1, 2, 4]))
    assert (7 // tl.tensor([2, 3])).tolist() == [3, 2] and (tl.tensor([7, 8]) // 2.0).dtype == np.float32
    ((x * 2).sum() + (x % 1.5).sum()).backward()                   # d(x % c)/dx = 1, as PyTorch
    assert tl.backend.to_numpy(x.grad).tolist() == [3.0, 3.0, 3.0]
    np.testing.assert_allclose((x % 1.5).numpy(), np.array([1.0, 2.0, 4.0]) % 1.5)
    assert (7 % tl.tensor([2, 4])).tolist() == [1, 3]


def test_log10_is_exact_at_powers_of_ten_and_gather_checks_its_range():
    assert tl.tensor([1000.0, 1e6]).log10().tolist() == [3.0, 6.0]
    with pytest.raises(IndexError, match="out of range"):
        tl.tensor([[1.0, 2.0, 3.0]]).gather(1, tl.tensor([[-1]]))


def test_layer_norm_in_pytorchs_order_keeps_a_keyword_eps():
    x = tl.randn(2, 6)
    np.testing.assert_allclose(F.layer_norm(x, (6,), eps=0.3).numpy(), F.layer_norm(x, eps=0.3).numpy())
    w = tl.ones(6) * 2.0
    np.testing.assert_allclose(F.layer_norm(x, (6,), w, eps=0.3).numpy(), F.layer_norm(x, w, eps=0.3).numpy())


def test_repr_prints_fixed_decimals_and_empty_sizes():
    assert repr(tl.tensor([1.23456, -2.0])) == "tensor([ 1.2346, -2.0000])"
    assert repr(tl.zeros(2, 0)) == "tensor([], size=(2, 0))"
    # whole numbers print short, as PyTorch, unless past 1e8 or spanning more than a factor 1000
    assert repr(tl.tensor([1.0, 1000.0])) == "tensor([   1., 1000.])"
    assert repr(tl.tensor([1e10, 2.0])) == "tensor([1.0000e+10, 2.0000e+00])"
    assert repr(tl.tensor([1.0, 2000.0])) == "tensor([1.0000e+00, 2.0000e+03])"
    assert repr(tl.tensor([float("nan"), 1e9])) == "tensor([       nan, 1.0000e+09])"
    assert tl.ones(2).half().dtype == np.float16 and tl.allclose(tl.tensor([float("nan")]), tl.tensor([float("nan")]),
                                                                equal_nan=True)


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


def test_dictionary_check_fixes():
    x = tl.tensor([[1.0, 2.0, 4.0], [0.0, 3.0, 3.0]], requires_grad=True)
    assert x.float() is x and x.to(tl.float32) is x
    assert tl.var(x, 1, False).numpy()[0] == pytest.approx(np.var([1, 2, 4]))        # PyTorch's order: biased
    assert x.var(1, True, True).shape == (2, 1)
    y = (x * 2.0).sum()
    y.backward(gradient=tl.tensor(1.0))
    assert tl.backend.to_numpy(x.grad).tolist() == [[2.0] * 3] * 2
    b = tl.tensor([1.5, 1.5], requires_grad=True)
    a = tl.tensor([4.0, 5.0], requires_grad=True)
    (a % b).sum().backward()
    assert tl.backend.to_numpy(b.grad).tolist() == [-2.0, -3.0] and tl.backend.to_numpy(a.grad).tolist() == [1.0, 1.0]
    assert F.sigmoid(tl.tensor([1, 2])).dtype == np.float32 and F.tanh(tl.tensor([1])).dtype == np.float32
    assert f"{tl.tensor(3)}" == "3" and x.unsqueeze(axis=0).shape == (1, 2, 3) and x.size(axis=1) == 3
    assert issubclass(tl.GradcheckError, RuntimeError)


def test_save_and_load_a_whole_nanogpt_checkpoint_and_the_disabled_grad_scaler(tmp_path):
    m = tl.nn.Linear(2, 2)
    opt = tl.optim.AdamW(m.parameters())
    scaler = tl.cuda.amp.GradScaler(enabled=False)
    scaler.scale(m(tl.ones(1, 2)).sum()).backward()
    scaler.unscale_(opt)
    scaler.step(opt)
    scaler.update()
    path = tl.save({"model": m.state_dict(), "optimizer": opt.state_dict(), "iter_num": 5,
                    "best_val_loss": tl.tensor(1.5), "config": {"n_layer": 2}}, tmp_path / "ckpt.pt")
    ck = tl.load(path, map_location="strict")
    assert ck["iter_num"] == 5 and float(ck["best_val_loss"]) == 1.5 and ck["config"] == {"n_layer": 2}
    m2 = tl.nn.Linear(2, 2, device="strict")
    m2.load_state_dict(ck["model"])
    opt2 = tl.optim.AdamW(m2.parameters())
    opt2.load_state_dict(ck["optimizer"])
    np.testing.assert_array_equal(m2.weight.numpy(), m.weight.numpy())
    with pytest.raises(NotImplementedError, match="enabled=False"):
        tl.amp.GradScaler()


def test_topk_ranks_nan_first_and_integer_division_by_zero_raises(device):
    v, i = tl.tensor([1.0, float("nan"), 3.0], device=device).topk(2)
    assert np.isnan(v.numpy()[0]) and i.tolist() == [1, 2]
    for fn in (lambda t: t // 0, lambda t: t % tl.tensor([1, 0], device=device), lambda t: 7 // (t * 0)):
        with pytest.raises(ZeroDivisionError):
            fn(tl.tensor([4, 5], device=device))


def test_fourth_hunt_fixes():
    assert (tl.tensor([1000.1]) % 0.7).item() == pytest.approx(np.float32(1000.1) % np.float32(0.7), rel=1e-5)
    x = tl.tensor([2.5, 4.0], requires_grad=True)
    y = 7.0 % x
    assert y.requires_grad and y.tolist() == [2.0, 3.0]
    y.sum().backward()
    assert tl.backend.to_numpy(x.grad).tolist() == [-2.0, -1.0]            # d(7 % x)/dx = -floor(7 / x)
    a = tl.tensor([2.0, float("nan")], requires_grad=True)
    b = tl.tensor([2.0, 1.0], requires_grad=True)
    m = tl.max(a, b)
    assert np.isnan(m.numpy()[1]) and np.isnan(tl.max(b, a).numpy()[1])      # nan wins either way
    m.sum().backward()
    assert tl.backend.to_numpy(a.grad)[0] == 0.5 and tl.backend.to_numpy(b.grad)[0] == 0.5   # a tie splits
    v = tl.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 9.0]])
    assert v.var(False).item() == pytest.approx(np.var([1, 2, 3, 4, 5, 9]))
    assert (tl.ones(2) + tl.tensor(2.0, dtype=tl.float64)).dtype == np.float32
    assert f"{tl.tensor([2.5])}" == "tensor([2.5000])" and f"{tl.tensor(2.5)}" == "2.5"
    assert not tl.amp.GradScaler("cuda", enabled=False).is_enabled()
    with pytest.raises(TypeError, match="not both"):
        v.unsqueeze(1, axis=0)
    with pytest.raises(TypeError, match="not both"):
        tl.ones(1, requires_grad=True).sum().backward(tl.tensor(1.0), gradient=tl.tensor(1.0))


def test_gelu_gradient_in_the_far_tails(device):
    for dtype in (tl.float32, tl.float64):
        x = tl.tensor([-1e13, -30.0, 30.0, 1e13], dtype=dtype, device=device, requires_grad=True)
        x.gelu().sum().backward()
        np.testing.assert_allclose(tl.backend.to_numpy(x.grad), [0.0, 0.0, 1.0, 1.0], atol=1e-12)


# ---------------------------------------------------------------------------- makemore parts 3-5
def test_histogram_as_pytorch_and_all_any_function_forms(device):
    x = tl.tensor([0.5, 1.0, 1.0, 3.5, 4.0], device=device)
    hist, edges = tl.histogram(x, bins=4)                      # 4 equal bins over [min, max]
    assert hist.tolist() == [3.0, 0.0, 0.0, 2.0] and edges.tolist() == [0.5, 1.375, 2.25, 3.125, 4.0]
    assert hist.dtype == np.float32 and hist.device == x.device
    h = tl.histogram(x, bins=2, range=(0.0, 2.0), density=True).hist   # counts out of range are dropped
    np.testing.assert_allclose(h.numpy(), [1 / 3, 2 / 3])
    assert tl.histogram(tl.ones(3, device=device), bins=2).bin_edges.tolist() == [0.5, 1.0, 1.5]
    assert tl.histogram(x, tl.tensor([0.0, 2.0, 8.0], device=device)).hist.tolist() == [3.0, 2.0]
    g = tl.randn(100, device=device).data                     # a raw array, as a .grad is (part 3's plots)
    assert tl.histogram(g, density=True).hist.shape == (100,)
    assert tl.all(x > 0).item() and not tl.any(x > 5).item() and tl.all(x > 0.7, dim=0).item() is False


def test_max_with_a_positional_dim_gives_values_and_indices_as_pytorch():
    logits = tl.tensor([[1.0, 3.0, 2.0], [0.0, -1.0, 5.0]])
    assert logits.max(1, keepdim=True).values.tolist() == [[3.0], [5.0]]   # makemore part 4's spelling
    v, i = logits.max(1)                     # with exactly 2 rows this unpacked the two values before
    assert v.tolist() == [3.0, 5.0] and i.tolist() == [1, 2]
    v, i = logits.min(0)
    assert v.tolist() == [0.0, -1.0, 2.0] and i.tolist() == [1, 1, 0]
    assert logits.max(axis=1).tolist() == [3.0, 5.0]                        # NumPy's keyword: values only
    with pytest.raises(AttributeError, match=r"x.max\(1\)"):
        logits.max(axis=1).values
