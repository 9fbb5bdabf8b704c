"""PyTorch's semantics for the names tinylm shares with it (docs/11-pytorch.md, the audit table).

Expected values come from formulas checked by hand (Python's math.erfc for GELU, NumPy's
log-softmax for cross-entropy, np.sort / np.einsum / np.cumsum for the rest), or, where marked,
from reference values printed once by PyTorch 2.x for the same inputs (NumPy's seeded generators
give the same inputs on every machine). No test needs torch.
"""
import math
import warnings

import numpy as np
import pytest

import tinylm as tl
import tinylm.functional as F
from tinylm import nn, compat
from tinylm.gradcheck import gradcheck


def np_log_softmax(z, axis):
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def exact_gelu(v):
    return 0.5 * v * math.erfc(-v / math.sqrt(2.0))          # x Phi(x), no cancellation in the left tail


# ---------------------------------------------------------------------------- GELU
def test_gelu_defaults_to_the_exact_erf_form_as_pytorch(device):
    xs = np.linspace(-12.0, 10.0, 2201)
    want = np.array([exact_gelu(v) for v in xs])
    got = F.gelu(tl.tensor(xs, dtype=np.float64, device=device)).numpy()
    np.testing.assert_allclose(got, want, rtol=1.5e-7, atol=0)     # the erfc fit's 1.2e-7, relative, in both tails
    x32 = xs.astype(np.float32)
    want32 = np.array([exact_gelu(float(v)) for v in x32])
    np.testing.assert_allclose(F.gelu(tl.tensor(x32, device=device)).numpy(), want32, rtol=2.5e-7, atol=0)
    np.testing.assert_allclose(nn.GELU()(tl.tensor(x32, device=device)).numpy(), want32, rtol=2.5e-7, atol=0)
    # PyTorch 2.x printed F.gelu at these points (float32); it computes 1 + erf(x / sqrt 2), which loses
    # relative digits in the left tail (at -3 it is off by 1.3e-4 relative), hence the absolute tolerance:
    pts = tl.tensor([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.7, 3.0], device=device)
    torch_says = [-0.004050225019454956, -0.15865525603294373, -0.1542687714099884, 0.0, 0.3457312285900116,
                  0.8413447141647339, 2.6906394958496094, 2.9959497451782227]
    np.testing.assert_allclose(F.gelu(pts).numpy(), torch_says, rtol=3e-7, atol=1e-6)


def test_gelu_tanh_form_on_request_and_in_the_gpt(device):
    x = tl.tensor(np.linspace(-5, 5, 101), dtype=np.float64, device=device)
    xn = x.numpy()
    tanh_form = 0.5 * xn * (1 + np.tanh(math.sqrt(2 / math.pi) * (xn + 0.044715 * xn ** 3)))
    np.testing.assert_allclose(F.gelu(x, approximate="tanh").numpy(), tanh_form, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(nn.GELU(approximate="tanh")(x).numpy(), tanh_form, rtol=1e-12, atol=1e-15)
    assert np.abs(F.gelu(x).numpy() - tanh_form).max() > 1e-4    # the two forms differ (4.7e-4 near 2.7)
    mlp = nn.MLP(4, device=device)                              # the GPT's MLP keeps GPT-2's tanh form
    h = tl.randn(2, 4, device=device)
    inner = mlp.c_fc(h).numpy().astype(np.float64)
    want = mlp.c_proj(tl.tensor(0.5 * inner * (1 + np.tanh(math.sqrt(2 / math.pi) * (inner + 0.044715 * inner ** 3))),
                                dtype=np.float32, device=device)).numpy()
    np.testing.assert_allclose(mlp(h).numpy(), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'"):
        F.gelu(x, approximate="erf")


def test_gelu_gradient_is_phi_plus_x_density(device):
    xs = np.array([-30.0, -8.0, -2.0, -0.3, 0.0, 0.7, 3.0, 30.0])
    x = tl.tensor(xs, dtype=np.float64, device=device, requires_grad=True)
    F.gelu(x).sum().backward()
    want = [0.5 * math.erfc(-v / math.sqrt(2)) + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi) for v in xs]
    g = x.grad.get() if hasattr(x.grad, "get") else x.grad
    np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-300)


# ---------------------------------------------------------------------------- cross-entropy
def test_cross_entropy_takes_pytorchs_class_axis_1(device):
    rng = np.random.default_rng(5)
    z = rng.standard_normal((2, 4, 4))                          # (N, C, d) with C == d: the layout is PyTorch's
    t = rng.integers(0, 4, size=(2, 4))
    lp = np_log_softmax(z, 1)
    want = -np.mean([lp[n, t[n, j], j] for n in range(2) for j in range(4)])
    got = F.cross_entropy(tl.tensor(z, device=device), tl.tensor(t, device=device))
    assert float(got) == pytest.approx(want, rel=1e-12)
    wrong_axis = -np.mean([np_log_softmax(z, 2)[n, j, t[n, j]] for n in range(2) for j in range(4)])
    assert abs(want - wrong_axis) > 1e-3                        # the old code's answer differs
    none = F.cross_entropy(tl.tensor(z, device=device), tl.tensor(t, device=device), reduction="none")
    assert none.shape == (2, 4)


def test_cross_entropy_with_classes_last_names_the_fix(device):
    logits, targets = tl.randn(2, 5, 7, device=device), tl.randint(0, 7, (2, 5), device=device)
    with pytest.raises(ValueError, match=r"classes on axis 1.*view\(-1, 7\).*transpose\(1, 2\)"):
        F.cross_entropy(logits, targets)
    with pytest.raises(ValueError, match="transpose"):
        nn.CrossEntropyLoss()(logits, targets)
    ok = F.cross_entropy(logits.transpose(1, 2), targets)
    flat = F.cross_entropy(logits.view(-1, 7), targets.view(-1))
    assert float(ok) == pytest.approx(float(flat), rel=1e-6)


def test_cross_entropy_weight_ignore_smoothing_and_probabilities_match_pytorch(device):
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2, 4, 3))
    t = rng.integers(0, 4, size=(2, 3))
    t[0, 1] = -100
    w = np.array([1.0, 2.0, 0.5, 1.5])
    p = rng.dirichlet(np.ones(4), size=(2, 3)).transpose(0, 2, 1)
    X, T, W = (tl.tensor(x, device=device), tl.tensor(t, device=device), tl.tensor(w, device=device))
    # PyTorch 2.x printed these for the same inputs:
    assert float(F.cross_entropy(X, T)) == pytest.approx(2.085735868461562, rel=1e-12)
    assert float(F.cross_entropy(X, T, weight=W)) == pytest.approx(2.4632955814269093, rel=1e-12)
    assert float(F.cross_entropy(X, T, label_smoothing=0.1)) == pytest.approx(2.074964912635884, rel=1e-12)
    assert float(F.cross_entropy(X, T, weight=W, label_smoothing=0.1)) == pytest.approx(2.415514814537936,
                                                                                        rel=1e-12)
    P = tl.tensor(p, device=device)
    assert float(F.cross_entropy(X, P, label_smoothing=0.1)) == pytest.approx(1.8980419847268246, rel=1e-12)
    # and by hand: the weighted mean divides by the sum of the target weights
    lp, keep = np_log_softmax(x, 1), t != -100
    per = np.array([[-w[t[n, j]] * lp[n, t[n, j], j] if keep[n, j] else 0.0 for j in range(3)] for n in range(2)])
    assert float(F.cross_entropy(X, T, weight=W)) == pytest.approx(per.sum() / w[t[keep]].sum(), rel=1e-12)
    np.testing.assert_allclose(F.cross_entropy(X, T, weight=W, reduction="none").numpy(), per, rtol=1e-12)
    assert float(F.cross_entropy(X, T, weight=W, reduction="sum")) == pytest.approx(per.sum(), rel=1e-12)


def test_cross_entropy_layouts_and_gradients(device):
    rng = np.random.default_rng(3)
    z = tl.tensor(rng.standard_normal(5), dtype=np.float64, device=device, requires_grad=True)
    assert float(F.cross_entropy(z, tl.tensor(2, device=device))) == pytest.approx(
        -np_log_softmax(z.numpy(), 0)[2], rel=1e-12)              # unbatched (C,) with a () target
    x = tl.tensor(rng.standard_normal((3, 4, 2)), dtype=np.float64, device=device, requires_grad=True)
    t = tl.tensor(rng.integers(0, 4, size=(3, 2)), device=device)
    p = tl.tensor(rng.dirichlet(np.ones(4), size=(3, 2)).transpose(0, 2, 1), device=device)
    w = tl.tensor([0.5, 1.0, 2.0, 1.5], dtype=np.float64, device=device)
    gradcheck(lambda x: F.cross_entropy(x, t), x)
    gradcheck(lambda x: F.cross_entropy(x, t, weight=w, label_smoothing=0.2), x)
    gradcheck(lambda x: F.cross_entropy(x, p, weight=w, reduction="sum"), x)
    with pytest.raises(ValueError, match="weight of shape"):
        F.cross_entropy(x, t, weight=tl.ones(3, device=device))
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(x, t, label_smoothing=1.5)
    with pytest.raises(ValueError, match="out of bounds"):
        F.cross_entropy(x, t * 0 + 9, weight=w)


# ---------------------------------------------------------------------------- (values, indices)
def test_sort_kthvalue_median_return_values_and_indices(device):
    data = np.array([[3.0, 1.0, 2.0, 1.0], [0.5, -1.0, 4.0, 2.0]])
    x = tl.tensor(data, device=device)
    s = x.sort(1)
    assert type(s).__name__ == "ValuesIndices" and s._fields == ("values", "indices")
    np.testing.assert_array_equal(s.values.numpy(), np.sort(data, 1))
    np.testing.assert_array_equal(s.indices.numpy(), [[1, 3, 2, 0], [1, 0, 3, 2]])   # ties keep their order
    v, i = tl.sort(x, dim=1, descending=True)
    np.testing.assert_array_equal(v.numpy(), -np.sort(-data, 1))
    assert i.dtype == np.int64
    np.testing.assert_array_equal(x.argsort(dim=0).numpy(), np.argsort(data, 0, kind="stable"))
    v, i = x.kthvalue(2, 1)                                     # the 2nd smallest, counted from 1
    np.testing.assert_array_equal(v.numpy(), [1.0, 0.5])
    np.testing.assert_array_equal(i.numpy(), [3, 0])
    m = x.median(1)                                             # the lower median of 4: the 2nd smallest
    np.testing.assert_array_equal(m.values.numpy(), [1.0, 0.5])
    assert float(x.median()) == 1.0 and x.median().shape == ()  # lower median of all 8 (not the mean of two)
    assert tl.median(x, 0, keepdim=True).values.shape == (1, 4)
    assert tl.kthvalue(x, 1, 0).indices.tolist() == [1, 1, 0, 0]
    with pytest.raises(ValueError, match="k must be an int in"):
        x.kthvalue(5, 1)
    nan = tl.tensor([1.0, float("nan"), 0.0], device=device)
    assert np.isnan(nan.sort(descending=True).values.numpy()[0])   # nan ranks as the largest
    assert np.isnan(nan.sort().values.numpy()[-1])


def test_sort_and_median_gradients_go_to_the_chosen_elements(device):
    x = tl.tensor(np.random.default_rng(0).standard_normal((3, 5)), dtype=np.float64, device=device,
                  requires_grad=True)
    ramp = tl.arange(5, device=device).double()
    gradcheck(lambda x: x.sort(1, descending=True).values * ramp, x)
    gradcheck(lambda x: x.median(1).values, x)
    gradcheck(lambda x: x.kthvalue(2, 0).values, x)


# ---------------------------------------------------------------------------- functions with gradients
def test_scans_flips_rolls_and_repeats_match_numpy(device):
    a = np.arange(1.0, 13.0).reshape(3, 4)
    x = tl.tensor(a, device=device)
    np.testing.assert_array_equal(x.cumsum(1).numpy(), np.cumsum(a, 1))
    np.testing.assert_array_equal(tl.cumprod(x, 0).numpy(), np.cumprod(a, 0))
    assert tl.tensor([1, 2, 3], device=device).cumsum(0).dtype == np.int64
    with pytest.raises(TypeError, match="dim is required"):
        x.cumsum()
    np.testing.assert_array_equal(x.flip(0).numpy(), a[::-1])
    np.testing.assert_array_equal(tl.flip(x, [0, 1]).numpy(), a[::-1, ::-1])
    np.testing.assert_array_equal(x.roll(1, 1).numpy(), np.roll(a, 1, 1))
    np.testing.assert_array_equal(tl.roll(x, (1, -2), (0, 1)).numpy(), np.roll(a, (1, -2), (0, 1)))
    np.testing.assert_array_equal(x.roll(5).numpy(), np.roll(a, 5))
    np.testing.assert_array_equal(x.repeat(2, 1).numpy(), np.tile(a, (2, 1)))
    np.testing.assert_array_equal(x.repeat(2, 1, 3).numpy(), np.tile(a, (2, 1, 3)))
    np.testing.assert_array_equal(x.tile(2).numpy(), np.tile(a, 2))
    np.testing.assert_array_equal(x.t().numpy(), a.T)
    np.testing.assert_array_equal(x.index_select(1, tl.tensor([3, 0, 3], device=device)).numpy(), a[:, [3, 0, 3]])
    with pytest.raises(ValueError, match="t\\(\\) expects"):
        tl.zeros(2, 2, 2).t()


def test_composed_functions_have_gradients(device):
    x = tl.tensor(np.random.default_rng(1).standard_normal((3, 4)), dtype=np.float64, device=device,
                  requires_grad=True)
    w = tl.arange(12, device=device).double().reshape(3, 4)
    for fn in (lambda x: x.flip(0, 1) * w, lambda x: x.roll(1, 1) * w, lambda x: x.roll(5) * w,
               lambda x: x.repeat(2, 1, 3), lambda x: x.tile(2), lambda x: x.t(),
               lambda x: x.index_select(1, tl.tensor([0, 2, 2], device=device)),
               lambda x: tl.pow(x, 3.0), lambda x: tl.pow(2.0, x), lambda x: tl.pow(x * x + 1.0, x),
               lambda x: tl.bmm(x.reshape(1, 3, 4), x.reshape(1, 4, 3)), lambda x: tl.outer(x[0], x[1])):
        gradcheck(fn, x)


def test_einsum_forms_teaching_code_uses(device):
    rng = np.random.default_rng(2)
    cases = [("ij,jk->ik", [(2, 3), (3, 4)]), ("bij,bjk->bik", [(2, 2, 3), (2, 3, 4)]),
             ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]), ("i,j->ij", [(3,), (2,)]), ("ii->", [(3, 3)]),
             ("ii", [(3, 3)]), ("ij->", [(2, 3)]), ("ij->j", [(2, 3)]), ("...ij,...jk->...ik", [(2, 2, 3), (2, 3, 2)]),
             ("bi,bi->b", [(4, 3), (4, 3)])]
    for eq, shapes in cases:
        arrays = [rng.standard_normal(s) for s in shapes]
        got = tl.einsum(eq, *[tl.tensor(a, device=device) for a in arrays])
        np.testing.assert_allclose(got.numpy(), np.einsum(eq, *arrays), rtol=1e-12, atol=1e-12)
    a, b = (tl.tensor(rng.standard_normal(s), device=device) for s in ((2, 3), (3, 2)))
    np.testing.assert_allclose(tl.einsum("ij,jk", [a, b]).numpy(), (a @ b).numpy(), rtol=1e-12)   # a list, too
    with pytest.raises(ValueError, match="names 2 operands"):
        tl.einsum("ij,jk->ik", a)
    with pytest.raises(ValueError, match="do not fit an operand"):
        tl.einsum("ijk,jk->i", a, b)


def test_bmm_and_outer_check_shapes():
    with pytest.raises(ValueError, match=r"bmm: expected \(B, n, m\)"):
        tl.bmm(tl.zeros(2, 3, 4), tl.zeros(3, 4, 2))
    with pytest.raises(ValueError, match="outer: expected two 1-D"):
        tl.outer(tl.zeros(2, 2), tl.zeros(2))
    assert tl.outer(tl.ones(2), tl.ones(3)).shape == (2, 3) and tl.ones(2).ger(tl.ones(3)).shape == (2, 3)


def test_pow_function_form():
    x = tl.tensor([1.0, 2.0, 3.0])
    np.testing.assert_allclose(tl.pow(x, 3.0).numpy(), [1.0, 8.0, 27.0], rtol=1e-6)
    np.testing.assert_allclose(tl.pow(2.0, x).numpy(), [2.0, 4.0, 8.0], rtol=1e-6)
    np.testing.assert_allclose(tl.pow(x, x).numpy(), [1.0, 4.0, 27.0], rtol=1e-6)
    with pytest.raises(ValueError, match="must be positive"):
        tl.pow(x - 2.0, x)


def test_randperm_is_a_seeded_permutation(device):
    tl.manual_seed(3)
    p = tl.randperm(10, device=device)
    assert p.dtype == np.int64 and p.device == device and sorted(p.tolist()) == list(range(10))
    tl.manual_seed(3)
    assert tl.randperm(10, device=device).tolist() == p.tolist()
    g = tl.Generator(device).manual_seed(1)
    assert sorted(tl.randperm(6, generator=g, device=device).tolist()) == list(range(6))
    assert tl.randperm(0).shape == (0,)
    with pytest.raises(ValueError, match="non-negative int"):
        tl.randperm(-1)


def test_one_hot_as_pytorch():
    ids = tl.tensor([0, 2, 1])
    out = F.one_hot(ids)                                      # num_classes=-1: the largest id + 1
    assert out.dtype == np.int64 and out.shape == (3, 3)
    np.testing.assert_array_equal(out.numpy(), np.eye(3, dtype=np.int64)[[0, 2, 1]])
    assert F.one_hot(ids, num_classes=5).shape == (3, 5)


# ---------------------------------------------------------------------------- in-place methods
def test_in_place_methods_change_data_and_count_versions(device):
    x = tl.zeros(2, 3, device=device)
    v0 = x._version
    assert x.fill_(2.5) is x and np.all(x.numpy() == 2.5)
    x.copy_(tl.tensor([1.0, 2.0, 3.0], device=device))        # broadcast to (2, 3)
    np.testing.assert_array_equal(x.numpy(), [[1, 2, 3], [1, 2, 3]])
    x.masked_fill_(x > 2, -1.0)
    x.clamp_(0.0, 1.5)
    np.testing.assert_array_equal(x.numpy(), [[1, 1.5, 0], [1, 1.5, 0]])
    x.add_(1.0, alpha=2.0).mul_(2.0)
    np.testing.assert_array_equal(x.numpy(), [[6, 7, 4], [6, 7, 4]])
    x.zero_()
    assert not x.numpy().any()
    tl.manual_seed(0)
    x.normal_(3.0, 0.5)
    y = tl.zeros(2000, device=device).uniform_(-1.0, 2.0)
    assert y.numpy().min() >= -1.0 and y.numpy().max() < 2.0 and abs(float(y.mean()) - 0.5) < 0.1
    assert x._version == v0 + 8                              # fill, copy, masked_fill, clamp, add, mul, zero, normal
    with pytest.raises(ValueError, match="does not broadcast"):
        x.copy_(tl.zeros(4, device=device))


def test_in_place_methods_are_refused_in_the_graph_but_not_under_no_grad():
    w = tl.ones(3, requires_grad=True)
    for call in (lambda: w.zero_(), lambda: w.fill_(1.0), lambda: w.normal_(), lambda: w.uniform_(),
                 lambda: w.clamp_(0, 1), lambda: w.copy_(tl.zeros(3)), lambda: w.masked_fill_(w > 0, 0.0)):
        with pytest.raises(RuntimeError, match="in the graph"):
            call()
    with tl.no_grad():
        w.normal_(0.0, 0.02)                                  # nn.init's way
        w.zero_()
    assert not w.numpy().any()


# ---------------------------------------------------------------------------- the no-GPU CUDA API
def test_backends_flags_are_accepted_with_pytorchs_defaults():
    import tinylm as torch
    assert torch.backends.cuda.matmul.allow_tf32 is False and torch.backends.cudnn.allow_tf32 is True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    try:
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == np.float32   # no effect on NumPy
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
    assert torch.backends.mps.is_available() is False and torch.backends.cudnn.is_available() is False


def test_grad_scaler_enabled_warns_and_disables_itself():
    with pytest.warns(UserWarning, match="GradScaler is enabled, but .* Disabling."):
        scaler = tl.amp.GradScaler(enabled=True)
    assert not scaler.is_enabled()
    with pytest.warns(UserWarning, match="Disabling"):
        tl.cuda.amp.GradScaler(enabled=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tl.amp.GradScaler("cuda", enabled=False)
    p = tl.ones(2, requires_grad=True)
    opt = tl.optim.SGD([p], lr=1.0)
    loss = (p * p).sum()
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    scaler.step(opt)
    scaler.update()
    np.testing.assert_allclose(p.numpy(), [-1.0, -1.0])       # one plain SGD step: 1 - 1 * 2


def test_autocast_is_a_no_op_context_and_decorator(monkeypatch):
    monkeypatch.setattr(compat, "_WARNED", set())
    x = tl.ones(2, 2)
    with pytest.warns(UserWarning, match="no mixed precision"):
        with tl.autocast(device_type="cpu", dtype=tl.bfloat16):
            y = x @ x
    assert y.dtype == np.float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")                         # warned once only
        with tl.amp.autocast("cuda", dtype=tl.float16), tl.cuda.amp.autocast(enabled=True):
            pass
        with tl.autocast("cpu", enabled=False):
            pass

    @tl.autocast("cpu")
    def f(a):
        return a * 2.0
    assert f(x).dtype == np.float32
    with pytest.raises(TypeError, match="device_type must be a string"):
        tl.autocast(3)


def test_compile_returns_the_model_and_warns_once(monkeypatch):
    monkeypatch.setattr(compat, "_WARNED", set())
    model = nn.Linear(2, 2)
    with pytest.warns(UserWarning, match="no compiler"):
        assert tl.compile(model) is model
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tl.compile(model, mode="max-autotune") is model

        @tl.compile(fullgraph=True)
        def g(a):
            return a + 1.0
        assert float(g(tl.zeros(()))) == 1.0


def test_bfloat16_is_a_name_whose_use_is_refused():
    dtypes = {"float32": tl.float32, "bfloat16": tl.bfloat16, "float16": tl.float16}   # nanoGPT's table
    assert "bfloat16" in repr(dtypes["bfloat16"])
    for use in (lambda: tl.zeros(2, dtype=tl.bfloat16), lambda: tl.ones(2).to(tl.bfloat16),
                lambda: tl.ones(2).astype(tl.bfloat16), lambda: tl.tensor([1.0], dtype=tl.bfloat16)):
        with pytest.raises(ValueError, match="bfloat16 is not supported"):
            use()


def test_cuda_seed_and_sync_functions_run_without_a_gpu():
    tl.cuda.manual_seed(1)
    tl.cuda.manual_seed_all(1)
    tl.cuda.synchronize()
    assert tl.cuda.is_bf16_supported() is False
    with pytest.raises(ValueError, match="non-negative int"):
        tl.cuda.manual_seed(-1)


# ---------------------------------------------------------------------------- more silent differences, closed
def test_functional_attention_is_causal_aligns_top_left_as_pytorch(device):
    q, k = tl.ones(1, 1, 2, 2, device=device), tl.ones(1, 1, 3, 2, device=device)
    v = tl.arange(6, device=device).float().view(1, 1, 3, 2)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True).numpy()
    # equal scores: query 0 averages key 0 only, query 1 keys 0 and 1 (PyTorch's tril(ones(L, S)))
    np.testing.assert_allclose(out[0, 0], [[0.0, 1.0], [1.0, 2.0]], rtol=1e-6)
    from tinylm.functional import core                         # the GPT's (KV cache) rule: aligned to the last key
    np.testing.assert_allclose(core.scaled_dot_product_attention(q, k, v, is_causal=True).numpy()[0, 0],
                               [[1.0, 2.0], [2.0, 3.0]], rtol=1e-6)
    with pytest.raises(ValueError, match="not both"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=tl.ones(2, 3, device=device).bool(), is_causal=True)


def test_cross_entropy_mean_with_every_target_ignored_is_nan(device):
    loss = F.cross_entropy(tl.zeros(2, 3, device=device), tl.tensor([-100, -100], device=device))
    assert np.isnan(float(loss))                              # 0 / 0, as PyTorch
    assert float(F.cross_entropy(tl.zeros(2, 3, device=device), tl.tensor([-100, -100], device=device),
                                 reduction="sum")) == 0.0


def test_softmax_without_dim_takes_pytorchs_implicit_axis():
    z = np.random.default_rng(4).standard_normal((2, 3, 4))
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        got = F.softmax(tl.tensor(z))                         # 3-d: PyTorch's old rule picks axis 0
    np.testing.assert_allclose(got.numpy(), np.exp(np_log_softmax(z, 0)), rtol=1e-12)
    with pytest.warns(UserWarning, match="log_softmax"):
        got = F.log_softmax(tl.tensor(z[0]))                  # 2-d: axis 1
    np.testing.assert_allclose(got.numpy(), np_log_softmax(z[0], 1), rtol=1e-12)
    np.testing.assert_allclose(F.softmax(tl.tensor(z), dim=-1).numpy(), np.exp(np_log_softmax(z, -1)), rtol=1e-12)
    np.testing.assert_allclose(F.softmax(tl.tensor(z), axis=1).numpy(), np.exp(np_log_softmax(z, 1)), rtol=1e-12)


def test_norm_logsumexp_amax_and_new_tensors():
    a = np.random.default_rng(6).standard_normal((3, 4))
    x = tl.tensor(a)
    assert float(x.norm()) == pytest.approx(np.sqrt((a * a).sum()), rel=1e-12)
    np.testing.assert_allclose(tl.norm(x, dim=1).numpy(), np.sqrt((a * a).sum(1)), rtol=1e-12)
    np.testing.assert_allclose(x.norm(p=1, dim=0, keepdim=True).numpy(), np.abs(a).sum(0, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(x.logsumexp(1).numpy(), np.log(np.exp(a).sum(1)), rtol=1e-12)
    assert float(tl.logsumexp(tl.tensor([[-np.inf, -np.inf]]), 1)[0]) == -np.inf
    np.testing.assert_array_equal(x.amax(1).numpy(), a.max(1))
    assert float(x.amin()) == a.min()
    assert x.mT.shape == (4, 3) and x.type_as(tl.zeros(1)).dtype == np.float32
    assert x.new_zeros(2, 3).dtype == np.float64 and x.new_ones((2,)).shape == (2,)
    assert x.new_full((2,), 7.0).tolist() == [7.0, 7.0] and x.new_tensor([1, 2]).dtype == np.float64
    assert tl.empty(2, 3).shape == (2, 3) and tl.empty(2, dtype=tl.int64).dtype == np.int64
    xg = tl.tensor(a, requires_grad=True)
    gradcheck(lambda t: t.logsumexp(1) * tl.tensor([1.0, 2.0, 3.0], dtype=np.float64), xg)
    gradcheck(lambda t: t.norm(dim=1), xg)
    with pytest.raises(ValueError, match="only p=2"):
        x.norm(p=3)


# ---------------------------------------------------------------------------- the audit table is true to the code
def _audit_names():
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / "11-pytorch.md").read_text()
    table = text.split("## The audit: every name tinylm shares with PyTorch")[1].split("\n## ")[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    return [n for row in rows for n in re.findall(r"`([^`]+)`", row.split(" | ")[0])]


TINYLM_ONLY = {"GPT", "GPTConfig", "PRESETS", "sample_next", "CharTokenizer", "BPETokenizer", "backend", "sampling",
               "safetensors", "tokenizers", "train", "data", "checkpoint", "get_array_module", "parse_device",
               "gpu_available", "sum_to", "GradcheckError", "F", "functional", "nn", "optim", "utils", "bool_",
               "MLP", "KVCache", "CausalSelfAttention", "Block", "IncompatibleKeys", "Tensor", "causal_mask",
               "causal_self_attention", "masked_fill", "use_fused_kernels"}


def test_every_name_in_the_audit_table_exists():
    where = {"tl": tl, "x": tl.Tensor, "F": F, "nn": nn, "optim": tl.optim}
    assert len(_audit_names()) > 150                           # the table was found and parsed
    missing = []
    for name in _audit_names():
        head, _, rest = name.partition(".")
        obj = where.get(head)
        for part in rest.split("."):
            obj = getattr(obj, part, None)
        if obj is None:
            missing.append(name)
    assert not missing, f"the audit table names what tinylm lacks: {missing}"


def test_every_shared_public_name_is_in_the_audit_table():
    listed = set(_audit_names())
    missing = [f"tl.{n}" for n in tl.__all__ if n not in TINYLM_ONLY and f"tl.{n}" not in listed]
    missing += [f"F.{n}" for n in F.__all__ if n not in TINYLM_ONLY and f"F.{n}" not in listed]
    missing += [f"nn.{n}" for n in nn.__all__ if n not in TINYLM_ONLY and f"nn.{n}" not in listed]
    assert not missing, f"public names missing from the audit table in docs/11-pytorch.md: {missing}"


def test_nn_utils_clip_grad_norm_returns_a_tensor_as_pytorch():
    p = tl.ones(2, requires_grad=True)
    (p * 3.0).sum().backward()
    norm = nn.utils.clip_grad_norm_(p, 1.0)                   # one tensor is accepted, as PyTorch
    assert isinstance(norm, tl.Tensor) and norm.shape == () and norm.dtype == np.float32
    assert norm.item() == pytest.approx(math.sqrt(18.0), rel=1e-6)
    np.testing.assert_allclose(p.grad, [1 / math.sqrt(2)] * 2, rtol=1e-5)
    with pytest.raises(ValueError, match="only the L2 norm"):
        nn.utils.clip_grad_norm_(p, 1.0, norm_type=1)
    p.grad = np.array([np.inf, 1.0], dtype=np.float32)
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
