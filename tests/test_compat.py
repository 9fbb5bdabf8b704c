"""PyTorch's names and habits: function forms, in-place ops, (values, indices), //, %, cuda and amp stand-ins."""
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


def test_eq_is_elementwise_so_the_tril_causal_mask_idiom_works(device):
    tril = tl.tril(tl.ones(4, 4, device=device))
    w = F.softmax(tl.zeros(4, 4, device=device).masked_fill(tril == 0, float("-inf")), dim=-1)
    np.testing.assert_allclose(w.numpy()[0], [1, 0, 0, 0])
    np.testing.assert_allclose(w.numpy()[3], [0.25] * 4)
    assert (tl.ones(3, device=device) == 1).tolist() == [True] * 3
    assert (tl.ones(3, device=device) != tl.ones(3, device=device)).tolist() == [False] * 3
    a = tl.ones(2, device=device)
    assert {a: 1}[a] == 1                                  # still hashable, by identity


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


def test_function_forms_of_max_and_min_return_indices_with_a_dim():
    out = tl.tensor([[0.1, 0.9, 0.3], [0.8, 0.2, 0.5]])
    _, pred = tl.max(out, 1)
    assert pred.tolist() == [1, 0] and tl.min(out).item() == pytest.approx(0.1)
    np.testing.assert_allclose(tl.max(out, 1 - out).numpy(), [[0.9, 0.9, 0.7], [0.8, 0.8, 0.5]], rtol=1e-6)  # elementwise


def test_log10_agrees_with_numpy_within_float32_rounding_and_gather_checks_its_range():
    x = np.array([1000.0, 1e6, 0.5, 7.0], dtype=np.float32)
    np.testing.assert_allclose(tl.tensor(x).log10().numpy(), np.log10(x), rtol=2e-7)   # float32 rounding
    with pytest.raises(IndexError, match="out of range"):
        tl.tensor([[1.0, 2.0, 3.0]]).gather(1, tl.tensor([[-1]]))


def test_var_unbiased_keyword_floor_div_and_mod():
    x = tl.tensor([1.0, 2.0, 4.0], requires_grad=True)
    assert x.var(unbiased=False).item() == pytest.approx(np.var([1, 2, 4]))
    assert (7 // tl.tensor([2, 3])).tolist() == [3, 2] and (tl.tensor([7, 8]) // 2.0).dtype == np.float32
    ((x * 2).sum() + (x % 1.5).sum()).backward()                   # d(x % c)/dx = 1, as PyTorch
    assert tl.backend.to_numpy(x.grad).tolist() == [3.0, 3.0, 3.0]
    np.testing.assert_allclose((x % 1.5).numpy(), np.array([1.0, 2.0, 4.0]) % 1.5)
    assert (7 % tl.tensor([2, 4])).tolist() == [1, 3]


def test_pytorch_spellings_of_var_backward_to_and_the_remainder_gradient():
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


def test_topk_ranks_nan_first_and_integer_division_by_zero_raises(device):
    v, i = tl.tensor([1.0, float("nan"), 3.0], device=device).topk(2)
    assert np.isnan(v.numpy()[0]) and i.tolist() == [1, 2]
    for fn in (lambda t: t // 0, lambda t: t % tl.tensor([1, 0], device=device), lambda t: 7 // (t * 0)):
        with pytest.raises(ZeroDivisionError):
            fn(tl.tensor([4, 5], device=device))


def test_remainder_elementwise_max_min_and_0d_promotion_follow_pytorch():
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


def test_max_dim_sends_the_gradient_to_the_returned_index(device):
    x = tl.tensor([[1.0, 1.0, 0.0]], device=device, requires_grad=True)
    values, indices = x.max(dim=1)
    values.sum().backward()
    assert indices.tolist() == [0] and tl.backend.to_numpy(x.grad).tolist() == [[1.0, 0.0, 0.0]]
    v, i = x.min(dim=1, keepdim=True)
    assert v.shape == i.shape == (1, 1) and i.tolist() == [[2]]
