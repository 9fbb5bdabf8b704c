"""Tensor: errors, dtype rules, shapes, conversions and printing."""
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


def test_matmul_shape_error_names_both_shapes(device):
    a, b = tl.ones(2, 3, device=device), tl.ones(4, 5, device=device)
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\)"):
        a @ b


def test_reshape_error_names_shapes(device):
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        tl.ones(2, 3, device=device).reshape(4)


def test_softmax_family_is_stable_for_huge_logits(device):
    x = tl.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], device=device, requires_grad=True)
    p = F.softmax(x, dim=-1)
    lp = F.log_softmax(x, dim=-1)
    loss = F.cross_entropy(x, tl.tensor(np.array([1, 2]), device=device))
    loss.backward()
    for t in (p, lp, loss):
        assert np.all(np.isfinite(host(t.data)))
    assert np.all(np.isfinite(host(x.grad)))
    np.testing.assert_allclose(host(p.data)[0], [1, 0, 0])
    np.testing.assert_allclose(loss.item(), (2e4 + np.log(3)) / 2, rtol=1e-6)


def test_float32_stays_float32_with_python_and_numpy_scalars(device):
    x = tl.randn(3, device=device)
    for y in (x * 2.0, x / np.float64(3.0), 1.5 - x, x ** 2, np.float64(2.0) * x):
        assert y.dtype == np.float32
    assert tl.tensor([1.0, 2.0]).dtype == np.float32
    assert tl.tensor(np.zeros(2)).dtype == np.float64  # an explicit float64 array keeps its dtype


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


def test_comparisons_and_masked_fill(device):
    x = tl.tensor([1.0, -2.0, 3.0], device=device, requires_grad=True)
    y = x.masked_fill(x < 0, 0.0)
    np.testing.assert_allclose(host(y.data), [1, 0, 3])
    y.sum().backward()
    np.testing.assert_allclose(host(x.grad), [1, 0, 1])


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


def test_integer_operands_keep_float32_and_backward_works(device):
    x = tl.randn(3, device=device, requires_grad=True)
    for y in ([1, 2, 3], tl.arange(3, device=device), tl.tensor([True, False, True], device=device), 2):
        for out in (x * y, y * x, x + y, y - x, x / 2, (x @ tl.ones(3, 2, device=device)).sum()):
            assert out.dtype == np.float32, (y, out.dtype)
        (x * y + y).sum().backward()
        assert x.grad.dtype == np.float32
    assert (tl.arange(3) * 0.5).dtype == np.float32 and (tl.arange(3) / tl.arange(1, 4)).dtype == np.float32
    assert (tl.arange(3) + 1).dtype == np.int64                  # integers with integers stay integers


def test_pow_zero_has_a_zero_gradient_at_zero(device):
    x = tl.tensor([0.0, 2.0], device=device, requires_grad=True)
    (x ** 0).sum().backward()
    assert tl.backend.to_numpy(x.grad).tolist() == [0.0, 0.0]


def test_sigmoid_keeps_tiny_values(device):
    x = tl.tensor([-20.0, -40.0, 0.0, 30.0], dtype=tl.float64, device=device, requires_grad=True)
    y = x.sigmoid()
    np.testing.assert_allclose(y.numpy(), 1 / (1 + np.exp([20.0, 40.0, 0.0, -30.0])), rtol=1e-12)
    y.log().sum().backward()
    assert np.isfinite(tl.backend.to_numpy(x.grad)).all()
    assert tl.tensor([-20.0], device=device).sigmoid().item() > 0


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


def test_to_another_tensor_takes_its_device_and_dtype():
    x = tl.ones(2)
    y = x.to(tl.zeros(1, dtype=tl.float64, device="strict"))
    assert y.device == "strict" and y.dtype == np.float64


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


def test_gelu_gradient_in_the_far_tails(device):
    for dtype in (tl.float32, tl.float64):
        x = tl.tensor([-1e13, -30.0, 30.0, 1e13], dtype=dtype, device=device, requires_grad=True)
        x.gelu().sum().backward()
        np.testing.assert_allclose(tl.backend.to_numpy(x.grad), [0.0, 0.0, 1.0, 1.0], atol=1e-12)


def test_the_tensor_class_makes_float32_from_lists_as_torch_Tensor_and_tensor_infers():
    assert tl.Tensor([1, 2]).dtype == np.float32 and tl.Tensor((True,)).dtype == np.float32   # int64 before
    assert tl.tensor([1, 2]).dtype == np.int64 and tl.tensor([1.5]).dtype == np.float32       # torch.tensor's rule
    assert tl.Tensor(np.array([1, 2])).dtype == np.int64                                      # an array keeps its dtype
    assert (tl.tensor([1, 2]) + [3, 4]).tolist() == [4, 6] and (tl.tensor([1, 2]) + [3, 4]).dtype == np.int64
