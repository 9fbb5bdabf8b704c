"""Every registered op passes a float64 gradient check over hypothesis-drawn shapes and values,
on every test device; a registered op without a case here fails the suite."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinylm as tl
import tinylm.functional as F
from tinylm.functional import core as Fcore
from tinylm.engine import OPS
from tinylm import ops

from strategies import shapes, broadcast_pair, seeds, values, leaf


def _pair(draw, device, low=-2.0, high=2.0, away=0.0):
    sa, sb = draw(broadcast_pair())
    s = draw(seeds)
    return leaf(values(s, sa, low, high, away), device), leaf(values(s + 1, sb, low, high, away), device)


def _one(draw, device, low=-2.0, high=2.0, away=0.0, min_dims=0, max_dims=4):
    shape = draw(shapes(min_dims=min_dims, max_dims=max_dims))
    return leaf(values(draw(seeds), shape, low, high, away), device)


def _axis(draw, ndim):
    """None, one axis or a tuple of axes of an `ndim`-axis tensor."""
    if ndim == 0:
        return None
    return draw(st.one_of(st.none(), st.integers(-ndim, ndim - 1),
                          st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple)))


def case_add(draw, device):
    a, b = _pair(draw, device)
    return (lambda a, b: a + b), (a, b)


def case_sub(draw, device):
    a, b = _pair(draw, device)
    if draw(st.booleans()):
        return (lambda a, b: 2.5 - a - b), (a, b)
    return (lambda a, b: a - b), (a, b)


def case_mul(draw, device):
    a, b = _pair(draw, device)
    return (lambda a, b: a * b * 3.0), (a, b)


def case_div(draw, device):
    a, b = _pair(draw, device, 0.5, 2.0)
    return (lambda a, b: a / b + 1.0 / b), (a, b)


def case_neg(draw, device):
    return (lambda x: -x), (_one(draw, device),)


def case_pow(draw, device):
    p = draw(st.sampled_from([2, 3, 0.5, -1.5]))
    return (lambda x: x ** p), (_one(draw, device, 0.5, 2.0),)


def case_matmul(draw, device):
    kind = draw(st.sampled_from(["1d1d", "1d2d", "2d1d", "2d2d", "batched", "broadcast"]))
    m, k, n, b = (draw(st.integers(1, 4)) for _ in range(4))
    s = draw(seeds)
    sa, sb = {"1d1d": ((k,), (k,)), "1d2d": ((k,), (k, n)), "2d1d": ((m, k), (k,)),
              "2d2d": ((m, k), (k, n)), "batched": ((b, m, k), (b, k, n)),
              "broadcast": ((b, 1, m, k), (2, k, n))}[kind]
    return (lambda a, b: a @ b), (leaf(values(s, sa), device), leaf(values(s + 1, sb), device))


def case_linear(draw, device):
    x = _one(draw, device, min_dims=1, max_dims=3)
    n = draw(st.integers(1, 4))
    s = draw(seeds)
    w = leaf(values(s, (n, x.shape[-1])), device)
    if draw(st.booleans()):
        return (lambda x, w, b: F.linear(x, w, b)), (x, w, leaf(values(s + 1, (n,)), device))
    return (lambda x, w: F.linear(x, w)), (x, w)


def case_cast(draw, device):
    return (lambda x: x.astype(np.float64) * 2.0), (_one(draw, device),)


def case_sum(draw, device):
    x = _one(draw, device)
    axis, keep = _axis(draw, x.ndim), draw(st.booleans())
    return (lambda x: x.sum(axis=axis, keepdims=keep)), (x,)


def case_mean(draw, device):
    x = _one(draw, device)
    axis, keep = _axis(draw, x.ndim), draw(st.booleans())
    return (lambda x: x.mean(axis=axis, keepdims=keep)), (x,)


def case_max(draw, device):
    x = _one(draw, device)
    axis, keep = _axis(draw, x.ndim), draw(st.booleans())
    return (lambda x: x.max(axis=axis, keepdims=keep)), (x,)


def case_var(draw, device):
    x = _one(draw, device, min_dims=1)
    axis, keep = _axis(draw, x.ndim), draw(st.booleans())
    n = x.numel() if axis is None else math.prod(x.shape[a] for a in ((axis,) if isinstance(axis, int) else axis))
    corr = draw(st.sampled_from([0, 1])) if n > 1 else 0
    return (lambda x: x.var(axis=axis, keepdims=keep, correction=corr)), (x,)


def case_reshape(draw, device):
    x = _one(draw, device)
    shape = (-1,) if x.ndim == 0 else (x.shape[-1], -1)
    return (lambda x: x.reshape(*shape) * 2.0), (x,)


def case_permute(draw, device):
    x = _one(draw, device)
    perm = draw(st.permutations(range(x.ndim)))
    return (lambda x: x.permute(*perm)), (x,)


def case_getitem(draw, device):
    x = _one(draw, device, min_dims=1)
    kind = draw(st.sampled_from(["slice", "int", "array", "newaxis"]))
    n = x.shape[0]
    if kind == "slice":
        index = slice(draw(st.integers(0, n - 1)), None, draw(st.integers(1, 2)))
    elif kind == "int":
        index = draw(st.integers(-n, n - 1))
    elif kind == "newaxis":
        index = (None, Ellipsis, 0)
    else:  # repeated indices must accumulate (scatter-add)
        ids = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=6))
        index = tl.tensor(np.array(ids), device=device)
    return (lambda x: x[index]), (x,)


def case_concat(draw, device):
    x = _one(draw, device, min_dims=1)
    axis = draw(st.integers(0, x.ndim - 1))
    shape = list(x.shape)
    shape[axis] = draw(st.integers(1, 3))
    y = leaf(values(draw(seeds), tuple(shape)), device)
    return (lambda x, y: F.concat([x, y, x], axis=axis)), (x, y)


def case_stack(draw, device):
    x = _one(draw, device)
    y = leaf(values(draw(seeds), x.shape), device)
    axis = draw(st.integers(0, x.ndim))
    return (lambda x, y: F.stack([x, y], axis=axis)), (x, y)


def case_split(draw, device):
    x = _one(draw, device, min_dims=1)
    axis = draw(st.integers(0, x.ndim - 1))
    size = draw(st.integers(1, max(1, x.shape[axis])))
    return (lambda x: F.split(x, size, axis=axis)), (x,)


def case_exp(draw, device):
    return (lambda x: x.exp()), (_one(draw, device),)


def case_log(draw, device):
    return (lambda x: x.log()), (_one(draw, device, 0.2, 3.0),)


def case_sqrt(draw, device):
    return (lambda x: x.sqrt()), (_one(draw, device, 0.2, 3.0),)


def case_tanh(draw, device):
    return (lambda x: x.tanh()), (_one(draw, device),)


def case_relu(draw, device):
    return (lambda x: x.relu()), (_one(draw, device, away=0.05),)


def case_abs(draw, device):
    return (lambda x: abs(x)), (_one(draw, device, away=0.05),)


def case_sigmoid(draw, device):
    return (lambda x: x.sigmoid()), (_one(draw, device, -6.0, 6.0),)


def case_broadcastto(draw, device):
    x = _one(draw, device, max_dims=3)
    lead = draw(st.integers(1, 3))
    target = (lead,) + tuple(draw(st.integers(1, 3)) if n == 1 else n for n in x.shape)
    return (lambda x: x.expand(*target) * 1.5), (x,)


def case_todevice(draw, device):
    other = "strict" if device == "cpu" else "cpu"
    return (lambda x: (x * 2.0).to(other).exp().to(device)), (_one(draw, device),)


def case_gelu(draw, device):
    return (lambda x: x.gelu()), (_one(draw, device, -4.0, 4.0),)


def case_softmax(draw, device):
    x = _one(draw, device, min_dims=1)
    axis = draw(st.integers(-x.ndim, x.ndim - 1))
    return (lambda x: F.softmax(x, axis=axis)), (x,)


def case_logsoftmax(draw, device):
    x = _one(draw, device, min_dims=1)
    axis = draw(st.integers(-x.ndim, x.ndim - 1))
    return (lambda x: F.log_softmax(x, axis=axis)), (x,)


def case_layernorm(draw, device):
    x = _one(draw, device, min_dims=1)
    c = x.shape[-1]
    if c == 1:  # a single channel normalises to 0: only the bias matters
        return (lambda x, b: F.layer_norm(x, None, b)), (x, leaf(values(draw(seeds), (c,)), device))
    s = draw(seeds)
    return (lambda x, w, b: F.layer_norm(x, w, b)), (x, leaf(values(s, (c,)), device), leaf(values(s + 1, (c,)), device))


def case_embedding(draw, device):
    v, c = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    idx_shape = draw(shapes(min_dims=1, max_dims=2))
    ids = np.random.default_rng(draw(seeds)).integers(0, v, size=idx_shape)  # repeats accumulate
    idx = tl.tensor(ids, device=device)
    w = leaf(values(draw(seeds), (v, c)), device)
    return (lambda w: F.embedding(idx, w)), (w,)


def test_embedding_padding_row_gets_no_gradient(device):
    w = tl.randn(5, 3, device=device, requires_grad=True)
    idx = tl.tensor([[1, 0, 1], [4, 0, 2]], device=device)
    (F.embedding(idx, w, padding_idx=0) * 2.0).sum().backward()
    g = w.grad.get() if hasattr(w.grad, "get") else w.grad
    assert np.all(g[0] == 0) and np.all(g[1] == 4.0) and np.all(g[3] == 0)  # row 1 used twice


def case_dropout(draw, device):
    x = _one(draw, device)
    p = draw(st.sampled_from([0.1, 0.5]))

    def fn(x):
        tl.manual_seed(7)  # the same mask at every evaluation
        return F.dropout(x, p, training=True)
    return fn, (x,)


def case_where(draw, device):
    a, b = _pair(draw, device)
    cond_shape = np.broadcast_shapes(a.shape, b.shape)
    cond = tl.tensor(np.random.default_rng(draw(seeds)).random(cond_shape) < 0.5, device=device)
    if draw(st.booleans()):
        return (lambda a: F.where(cond, a, -1.5)), (a,)
    return (lambda a, b: F.where(cond, a, b)), (a, b)


def case_crossentropy(draw, device):
    n, v = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    t = np.random.default_rng(draw(seeds)).integers(0, v, size=n)
    if n > 1 and draw(st.booleans()):
        t[0] = -100  # ignored
    targets = tl.tensor(t, device=device)
    logits = leaf(values(draw(seeds), (n, v), -3, 3), device)
    return (lambda x: F.cross_entropy(x, targets, reduction=reduction)), (logits,)


def case_attention(draw, device):
    b, h, t, d = (draw(st.integers(1, 3)) for _ in range(4))
    s_len = t + draw(st.integers(0, 2))  # more keys than queries: a KV cache
    seed = draw(seeds)
    q = leaf(values(seed, (b, h, t, d)), device)
    k = leaf(values(seed + 1, (b, h, s_len, d)), device)
    v = leaf(values(seed + 2, (b, h, s_len, d)), device)
    causal = draw(st.booleans())
    p = draw(st.sampled_from([0.0, 0.3]))

    def fn(q, k, v):
        tl.manual_seed(3)
        return Fcore.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=p)   # the GPT's (KV-cache) rule
    return fn, (q, k, v)


def case_remainder(draw, device):
    a, b = _pair(draw, device, 0.5, 3.0)
    return (lambda a, b: a % b + 7.3 % b), (a, b)


def case_geluerf(draw, device):
    return (lambda x: F.gelu(x)), (_one(draw, device, -6.0, 6.0),)


def case_cumsum(draw, device):
    x = _one(draw, device, min_dims=1)
    axis = draw(st.integers(-x.ndim, x.ndim - 1))
    return (lambda x: x.cumsum(axis) * 1.5), (x,)


def case_cumprod(draw, device):
    x = _one(draw, device, min_dims=1)
    axis = draw(st.integers(-x.ndim, x.ndim - 1))
    if draw(st.booleans()):                                    # a zero takes the exact quadratic path
        zero = np.zeros(x.shape, dtype=bool)
        zero.flat[draw(st.integers(0, zero.size - 1))] = True
        return (lambda x: x.masked_fill(tl.tensor(zero, device=device), 0.0).cumprod(axis)), (x,)
    return (lambda x: x.cumprod(axis)), (x,)


def case_einsum(draw, device):
    eq, shapes = draw(st.sampled_from([
        ("ij,jk->ik", [(2, 3), (3, 4)]), ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
        ("bhqd,bhkd->bhqk", [(1, 2, 3, 2), (1, 2, 4, 2)]), ("i,j->ij", [(3,), (2,)]), ("ii->", [(3, 3)]),
        ("ij->i", [(2, 3)]), ("ij->", [(2, 3)]), ("ii->i", [(3, 3)]), ("...ij,...jk", [(2, 2, 3), (2, 3, 2)]),
        ("ij,ij->i", [(2, 3), (2, 3)]), ("ji", [(2, 3)])]))
    s = draw(seeds)
    return (lambda *xs: tl.einsum(eq, *xs)), tuple(leaf(values(s + i, sh), device) for i, sh in enumerate(shapes))


CASES = {name[len("case_"):]: fn for name, fn in globals().items() if name.startswith("case_")}


def test_every_registered_op_has_a_gradient_case():
    missing = sorted(set(OPS) - set(CASES))
    assert not missing, f"registered ops without a gradient property test: {missing}"
    assert not sorted(set(CASES) - set(OPS)), "a case names an op that is not registered"


@pytest.mark.parametrize("op", sorted(CASES))
@settings(max_examples=12)
@given(data=st.data())
def test_gradients(op, device, data):
    fn, inputs = CASES[op](data.draw, device)
    tl.gradcheck(fn, *inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("op", sorted(CASES))
@settings(max_examples=3)
@given(data=st.data())
def test_float32_in_float32_out(op, device, data):
    fn, inputs = CASES[op](data.draw, device)
    inputs = [tl.tensor(x.numpy().astype(np.float32), device=device, requires_grad=True)
              if isinstance(x, tl.Tensor) and x.dtype == np.float64 else x for x in inputs]
    if op == "cast":
        fn = (lambda x: x.astype(np.float32) * 2.0)
    outs = fn(*inputs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    for o in outs:
        assert o.dtype == np.float32, f"{op} gave {o.dtype} for float32 inputs"
    total = sum((o * o).sum() for o in outs)
    total.backward()
    for x in inputs:
        if isinstance(x, tl.Tensor) and x.requires_grad:
            assert x.grad.dtype == np.float32, f"{op} gradient is {x.grad.dtype}"



@settings(max_examples=15)
@given(data=st.data())
def test_fused_attention_equals_the_composed_reference(device, data):
    fn, (q, k, v) = case_attention(data.draw, device)
    causal = data.draw(st.booleans())
    mask = data.draw(st.booleans())
    t, s_len = q.shape[-2], k.shape[-2]
    m = tl.tensor(np.random.default_rng(0).random((t, s_len)) < 0.7, device=device) if mask else None
    if m is not None:  # keep every row attending to something
        m = tl.tensor(m.numpy() | np.eye(t, s_len, k=s_len - t, dtype=bool), device=device)
    outs, grads = [], []
    for weights in (False, True):
        for x in (q, k, v):
            x.zero_grad()
        out = Fcore.scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=causal, return_weights=weights)
        out = out[0] if weights else out
        (out * out).sum().backward()
        outs.append(out.numpy())
        grads.append([x.grad.get() if hasattr(x.grad, "get") else x.grad.copy() for x in (q, k, v)])
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-10, atol=1e-12)
    for g0, g1 in zip(*grads):
        np.testing.assert_allclose(g0, g1, rtol=1e-9, atol=1e-12)


@settings(max_examples=15)
@given(data=st.data())
def test_causal_self_attention_equals_split_heads_reference(device, data):
    b, t, nh0, hs0 = (data.draw(st.integers(1, 3)) for _ in range(4))
    qkv = leaf(values(data.draw(seeds), (b, t, 3 * nh0 * hs0)), device)
    b, t, c3 = qkv.shape
    nh = data.draw(st.sampled_from([n for n in range(1, c3 // 3 + 1) if (c3 // 3) % n == 0]))
    c, hs = c3 // 3, c3 // 3 // nh
    outs, grads = [], []
    for fused in (True, False):
        qkv.zero_grad()
        if fused:
            y = F.causal_self_attention(qkv, nh)
        else:
            q, k, v = (z.reshape(b, t, nh, hs).transpose(1, 2) for z in F.split(qkv, c, axis=-1))
            y, _ = F.scaled_dot_product_attention(q, k, v, is_causal=True, return_weights=True)
            y = y.transpose(1, 2).reshape(b, t, c)
        (y * y).sum().backward()
        outs.append(y.numpy())
        grads.append(tl.backend.to_numpy(qkv.grad).copy())
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-9, atol=1e-12)


def test_attention_query_broadcast_over_the_batch_gets_its_gradient(device):
    q = tl.randn(1, 2, 4, 8, device=device, requires_grad=True)
    k = tl.randn(2, 2, 5, 8, device=device)
    F.scaled_dot_product_attention(q, k, k).sum().backward()
    assert q.grad.shape == (1, 2, 4, 8)


def test_a_fully_masked_query_row_attends_to_nothing_instead_of_nan(device):
    q = tl.randn(1, 1, 3, 4, device=device, requires_grad=True)
    m = np.ones((3, 3), bool)
    m[1] = False
    out = F.scaled_dot_product_attention(q, q, q, attn_mask=tl.tensor(m, device=device))
    assert np.isfinite(out.numpy()).all() and (out.numpy()[0, 0, 1] == 0).all()
    out.sum().backward()
    assert np.isfinite(tl.backend.to_numpy(q.grad)).all()


def test_cached_causal_masks_are_bounded_and_read_only():
    from tinylm import ops
    m = F.causal_mask(3, 3, "cpu", additive=True)
    with pytest.raises(ValueError):
        m[:] = 0
    for t in range(1, 40):
        F.causal_mask(t, t, "cpu")
    assert ops.causal_mask.cache_info().currsize <= ops.causal_mask.cache_info().maxsize


def test_functional_argument_errors_name_the_problem(device):
    x = tl.ones(2, 4, device=device)
    w = tl.ones(3, 4, device=device)
    with pytest.raises(ValueError, match=r"bias of shape \(2,\) does not fit weight"):
        F.linear(x, w, tl.ones(2, device=device))
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        F.concat([x, x], axis=3)
    q = tl.ones(1, 1, 2, 4, device=device)
    for p in (1.0, -0.1):
        with pytest.raises(ValueError, match="dropout_p"):
            F.scaled_dot_product_attention(q, q, q, dropout_p=p)
    with pytest.raises(TypeError, match="input must be floats with a class axis"):
        F.cross_entropy(tl.tensor([1, 2], device=device), tl.tensor(0, device=device))


# ---------------------------------------------------------------------------- fused == plain formula
def _fused_and_reference(device):
    """(name, fused, reference, inputs) for every fused op: each keeps its plain formula beside it."""
    rng = np.random.default_rng(0)
    t = lambda *shape: tl.tensor(rng.normal(size=shape), dtype=tl.float64, device=device, requires_grad=True)
    ids = tl.tensor(np.array([1, 0, 4, 2, -100, 3]), device=device).data
    mask = ops.causal_mask(3, 5, device, additive=True).astype(np.float64)
    return [
        ("linear", lambda x, w, b: ops.Linear.apply(x, w, b), ops.Linear.reference, (t(2, 3, 4), t(5, 4), t(5))),
        ("gelu", ops.Gelu.apply, ops.Gelu.reference, (t(4, 7) * 3.0,)),
        ("softmax", lambda x: ops.Softmax.apply(x, axis=1), lambda x: ops.Softmax.reference(x, 1), (t(3, 5, 2),)),
        ("log_softmax", lambda x: ops.LogSoftmax.apply(x, axis=2), lambda x: ops.LogSoftmax.reference(x, 2),
         (t(3, 5, 2),)),
        ("layer_norm", lambda x, w, b: ops.LayerNorm.apply(x, w, b, eps=1e-5),
         lambda x, w, b: ops.LayerNorm.reference(x, w, b, 1e-5), (t(2, 3, 6), t(6), t(6))),
        ("cross_entropy", lambda x: ops.CrossEntropy.apply(x, ids, ignore_index=-100, reduction="mean"),
         lambda x: ops.CrossEntropy.reference(x, ids, -100, "mean"), (t(6, 5),)),
        ("attention", lambda q, k, v: ops.Attention.apply(q, k, v, mask, scale=0.5, dropout_p=0.0),
         lambda q, k, v: ops.Attention.reference(q, k, v, mask, 0.5)[0], (t(2, 2, 3, 4), t(2, 2, 5, 4), t(2, 2, 5, 4))),
    ]


@pytest.mark.parametrize("case", range(7))
def test_fused_op_equals_its_plain_formula_in_values_and_gradients(case, device):
    name, fused, reference, inputs = _fused_and_reference(device)[case]
    leaves = [x.detach().requires_grad_() for x in inputs]
    out = [f(*leaves) for f in (fused, lambda *xs: reference(*xs))]
    assert np.allclose(out[0].numpy(), out[1].numpy(), rtol=1e-10, atol=1e-12), name
    grads = []
    for o in out:
        for x in leaves:
            x.grad = None
        g = tl.tensor(np.random.default_rng(1).normal(size=o.shape), dtype=tl.float64, device=device)
        o.backward(g)
        grads.append([tl.tensor(x.grad).numpy() for x in leaves])
    for a, b in zip(*grads):
        assert np.allclose(a, b, rtol=1e-9, atol=1e-11), name
