"""Tests for tinylm/nn/extra.py and rnn.py: PyTorch's losses, BatchNorm1d, Conv1d and recurrent layers.

A PyTorch-layout state_dict (NumPy arrays under PyTorch's names, made here from a seeded
generator) is loaded into each layer, and the outputs are compared with a plain-NumPy
implementation of the equations in PyTorch's documentation, written below. The ANCHOR values
were printed by PyTorch 2.13.0+cpu for the same state_dicts and inputs (float64; the weights are
`np.random.default_rng(seed).uniform(-0.5, 0.5, shape)` for each entry in state_dict order, then
the input `rng.standard_normal(shape)` from the same generator), rounded to 12 decimals.
Gradients are checked in float64 with tinylm.gradcheck. torch is not needed to run these tests.
"""
import math
import warnings

import numpy as np
import pytest

import tinylm as tl
from tinylm import gradcheck
from tinylm.nn import (GRU, LSTM, RNN, BatchNorm1d, Conv1d, CrossEntropyLoss, Flatten, GRUCell, LogSoftmax,
                             LSTMCell, MSELoss, NLLLoss, RNNCell, Softmax)

ANCHOR = {
    "lstm": [[0.127862503392, 0.06266195638, 0.0100488456, 0.213750889978, 0.058117359169, -0.038299397931,
              0.04794957441, 0.117713219427, 0.084082729584, 0.185431815675, -0.011787183826, -0.046383522327,
              0.03552310677, 0.150980745997, 0.166129191736, 0.121327601823, 0.019003908966, -0.050693477789],
             [0.03552310677, 0.150980745997, 0.166129191736, 0.213750889978, 0.058117359169, -0.038299397931],
             [0.062812764338, 0.335053260251, 0.406972496525, 0.332967794064, 0.158297035891, -0.072300705008]],
    "gru": [[0.192386941245, -0.247238116902, 0.130738030966, 0.23146394773, -0.351233796881, 0.213119247728,
             0.265440617884, -0.458308114234, 0.237519537277],
            [0.211173389169, 0.435957628674, 0.462613404975, 0.265440617884, -0.458308114234, 0.237519537277]],
    "rnn": [[-0.130742267752, 0.087203186072, -0.76733738333, 0.6062772136, -0.509559239089, -0.2899765845,
             0.011881392452, -0.277426043611, -0.69315686584],
            [0.011881392452, -0.277426043611, -0.69315686584]],
    "conv": [[0.338438472702, 0.521841657825, -0.21309043594, 1.460449454648, -0.348588546162, 0.297522328339]],
    "bn": [[0.138363841771, 0.379362927772, 0.160054863506, -0.484902154234, -0.325937263778, 0.369907252043,
            0.13012739585, -0.69850622575, -0.088057504886, -0.381685886669, -0.226233495562, -0.16573210328],
           [0.08891802655, -0.180355310373], [1.152668468248, 0.886154327153]],
}


def torch_like(module, seed):
    """Load a PyTorch-layout state_dict of uniform(-0.5, 0.5) float64 arrays; return the generator for inputs."""
    module.double()
    rng = np.random.default_rng(seed)
    sd = {k: rng.uniform(-0.5, 0.5, v.shape) if v.dtype.kind == "f" else np.zeros_like(v)
          for k, v in module.state_dict().items()}
    module.load_state_dict(sd)
    return rng, sd


def flat(*arrays):
    return [np.asarray(a.numpy() if isinstance(a, tl.Tensor) else a).reshape(-1) for a in arrays]


# ---------------------------------------------------------------------------- the NumPy oracle
def sig(x):
    return 1 / (1 + np.exp(-x))


def np_cell(mode, x, h, c, w_ih, w_hh, b_ih, b_hh):
    """PyTorch's documented cell equations, gates in PyTorch's order."""
    gi = x @ w_ih.T + (0 if b_ih is None else b_ih)
    gh = h @ w_hh.T + (0 if b_hh is None else b_hh)
    H = h.shape[-1]
    if mode == "tanh":
        return np.tanh(gi + gh), None
    if mode == "relu":
        return np.maximum(gi + gh, 0), None
    if mode == "lstm":
        a = gi + gh
        i, f, g, o = sig(a[:, :H]), sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sig(a[:, 3 * H:])
        c = f * c + i * g
        return o * np.tanh(c), c
    r = sig(gi[:, :H] + gh[:, :H])
    z = sig(gi[:, H:2 * H] + gh[:, H:2 * H])
    n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    return (1 - z) * n + z * h, None


def np_rnn(mode, sd, x, num_layers, bidirectional, H, h0=None, c0=None):
    """x (L, N, I) -> output (L, N, D H), h_n, c_n: layers and directions as PyTorch documents them."""
    D, (L, N, _) = 2 if bidirectional else 1, x.shape
    h0 = np.zeros((num_layers * D, N, H)) if h0 is None else h0
    c0 = np.zeros((num_layers * D, N, H)) if c0 is None else c0
    hn, cn = [], []
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            s = f"_l{layer}" + ("_reverse" if d else "")
            w = [sd.get(k + s) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            h, c = h0[layer * D + d], c0[layer * D + d]
            out = np.zeros((L, N, H))
            for t in (range(L) if d == 0 else reversed(range(L))):
                h, c = np_cell(mode, x[t], h, c, *w)
                out[t] = h
            outs.append(out)
            hn.append(h)
            cn.append(c)
        x = np.concatenate(outs, axis=-1)
    return x, np.stack(hn), (np.stack(cn) if mode == "lstm" else None)


def np_conv1d(x, w, b, stride, padding, dilation, groups, mode="zeros"):
    """out[n, o, t] = b[o] + sum_{c, k} w[o, c, k] xpad[n, group(o) C/G + c, t stride + k dilation]."""
    pad_mode = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
    xp = np.pad(x, ((0, 0), (0, 0), padding), mode=pad_mode)
    N, C, Lp = xp.shape
    O, cg, K = w.shape
    L_out = (Lp - dilation * (K - 1) - 1) // stride + 1
    out = np.zeros((N, O, L_out))
    for o in range(O):
        g = o // (O // groups)
        for t in range(L_out):
            window = xp[:, g * cg:(g + 1) * cg, t * stride:t * stride + dilation * (K - 1) + 1:dilation]
            out[:, o, t] = (window * w[o]).sum(axis=(1, 2)) + (0 if b is None else b[o])
    return out


# ---------------------------------------------------------------------------- recurrent layers
def test_lstm_matches_pytorchs_stored_outputs():
    m = LSTM(2, 3, bidirectional=True, batch_first=True)
    rng, _ = torch_like(m, 1)
    out, (h, c) = m(tl.tensor(rng.standard_normal((1, 3, 2))))
    assert out.shape == (1, 3, 6) and h.shape == c.shape == (2, 1, 3)
    for got, want in zip(flat(out, h, c), ANCHOR["lstm"]):
        np.testing.assert_allclose(got, want, atol=2e-12)


def test_gru_and_rnn_match_pytorchs_stored_outputs():
    m = GRU(2, 3, num_layers=2)
    rng, _ = torch_like(m, 2)
    for got, want in zip(flat(*m(tl.tensor(rng.standard_normal((3, 1, 2))))), ANCHOR["gru"]):
        np.testing.assert_allclose(got, want, atol=2e-12)
    m = RNN(2, 3)
    rng, _ = torch_like(m, 3)
    for got, want in zip(flat(*m(tl.tensor(rng.standard_normal((3, 1, 2))))), ANCHOR["rnn"]):
        np.testing.assert_allclose(got, want, atol=2e-12)


@pytest.mark.parametrize("cls, mode, kwargs", [
    (LSTM, "lstm", dict(num_layers=2, bidirectional=True)),
    (LSTM, "lstm", dict(bias=False, batch_first=True)),
    (GRU, "gru", dict(num_layers=3)),
    (GRU, "gru", dict(bidirectional=True, bias=False)),
    (RNN, "tanh", dict(num_layers=2, bidirectional=True)),
    (RNN, "relu", dict(nonlinearity="relu", batch_first=True)),
])
def test_recurrent_layers_follow_the_documented_equations(cls, mode, kwargs):
    m = cls(4, 5, **kwargs)
    rng, sd = torch_like(m, 7)
    L, N, D, layers = 6, 3, 2 if kwargs.get("bidirectional") else 1, kwargs.get("num_layers", 1)
    x = rng.standard_normal((L, N, 4))
    h0 = rng.standard_normal((layers * D, N, 5))
    c0 = rng.standard_normal((layers * D, N, 5))
    want_out, want_h, want_c = np_rnn(mode, sd, x, layers, D == 2, 5, h0, c0)
    xin = tl.tensor(x.transpose(1, 0, 2).copy() if m.batch_first else x)
    hx = (tl.tensor(h0), tl.tensor(c0)) if mode == "lstm" else tl.tensor(h0)
    out, state = m(xin, hx)
    got_out = out.numpy().transpose(1, 0, 2) if m.batch_first else out.numpy()
    np.testing.assert_allclose(got_out, want_out, atol=1e-12)
    if mode == "lstm":
        np.testing.assert_allclose(state[0].numpy(), want_h, atol=1e-12)
        np.testing.assert_allclose(state[1].numpy(), want_c, atol=1e-12)
    else:
        np.testing.assert_allclose(state.numpy(), want_h, atol=1e-12)
    # no initial state means zeros; an unbatched input (L, H_in) gives unbatched outputs
    out0 = m(xin)[0].numpy()
    np.testing.assert_allclose(out0, m(xin, (tl.zeros_like(hx[0]), tl.zeros_like(hx[1])) if mode == "lstm"
                                       else tl.zeros_like(hx))[0].numpy(), atol=0)
    single = m(tl.tensor(x[:, 0]))
    np.testing.assert_allclose(single[0].numpy(), (out0[0] if m.batch_first else out0[:, 0]), atol=1e-12)


def test_pytorch_parameter_names_shapes_and_init():
    m = LSTM(10, 20, num_layers=2, bidirectional=True)
    names = list(m.state_dict())
    assert names[:8] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_ih_l0_reverse",
                         "weight_hh_l0_reverse", "bias_ih_l0_reverse", "bias_hh_l0_reverse"]
    assert m.weight_ih_l0.shape == (80, 10) and m.weight_ih_l1.shape == (80, 40) and m.weight_hh_l1.shape == (80, 20)
    assert GRU(10, 20).weight_ih_l0.shape == (60, 10) and RNN(10, 20).weight_hh_l0.shape == (20, 20)
    assert [n for n, _ in LSTMCell(3, 4).named_parameters()] == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    assert [n for n, _ in GRU(3, 4, bias=False).named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]
    tl.manual_seed(0)
    w = LSTM(50, 400).weight_hh_l0.numpy()                     # uniform(-1/sqrt(400), 1/sqrt(400)) = +-0.05
    assert w.dtype == np.float32 and -0.05 <= w.min() < -0.0499 and 0.0499 < w.max() <= 0.05
    assert abs(w.std() - 0.05 / math.sqrt(3)) < 5 * 0.05 / math.sqrt(3) / math.sqrt(2 * w.size)


@pytest.mark.parametrize("cls, mode", [(LSTMCell, "lstm"), (GRUCell, "gru"), (RNNCell, "tanh")])
def test_cells_follow_the_documented_equations(cls, mode):
    m = cls(3, 4)
    rng, sd = torch_like(m, 11)
    x, h, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    w = [sd[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    want_h, want_c = np_cell(mode, x, h, c, *w)
    if mode == "lstm":
        got_h, got_c = m(tl.tensor(x), (tl.tensor(h), tl.tensor(c)))
        np.testing.assert_allclose(got_c.numpy(), want_c, atol=1e-12)
        unb = m(tl.tensor(x[0]), (tl.tensor(h[0]), tl.tensor(c[0])))[0]
    else:
        got_h = m(tl.tensor(x), tl.tensor(h))
        unb = m(tl.tensor(x[0]), tl.tensor(h[0]))
    np.testing.assert_allclose(got_h.numpy(), want_h, atol=1e-12)
    np.testing.assert_allclose(unb.numpy(), want_h[0], atol=1e-12)
    zero = m(tl.tensor(x))
    zero_h = zero[0] if mode == "lstm" else zero
    np.testing.assert_allclose(zero_h.numpy(), np_cell(mode, x, 0 * h, 0 * c, *w)[0], atol=1e-12)


@pytest.mark.parametrize("make", [
    lambda: LSTM(2, 2, num_layers=2, bidirectional=True, batch_first=True),
    lambda: GRU(2, 3, bidirectional=True),
    lambda: RNN(2, 3, num_layers=2),
    lambda: LSTMCell(2, 3), lambda: GRUCell(2, 3), lambda: RNNCell(2, 3, nonlinearity="relu"),
], ids=["lstm", "gru", "rnn", "lstmcell", "grucell", "rnncell"])
def test_recurrent_gradients(make):
    m = make()
    rng, _ = torch_like(m, 3)
    cell, H = "Cell" in type(m).__name__, m.hidden_size
    x = tl.tensor(rng.standard_normal((2, 2) if cell else (2, 3, 2)), requires_grad=True)
    if cell:
        h = tl.tensor(rng.uniform(0.1, 0.5, (2, H)), requires_grad=True)  # away from relu's kink
        state = (h, tl.tensor(rng.standard_normal((2, H)), requires_grad=True)) if isinstance(m, LSTMCell) else h
        fn = lambda x, *ps: m(x, state)
        extra = list(state) if isinstance(state, tuple) else [state]
    else:
        fn = lambda x, *ps: m(x)
        extra = []
    outs = lambda x, *ps: tuple(o for o in _leaves(fn(x, *ps)))
    assert gradcheck(outs, x, *extra, *m.parameters())


def _leaves(o):
    if isinstance(o, (tuple, list)):
        for v in o:
            yield from _leaves(v)
    else:
        yield o


def test_recurrent_errors_name_the_shapes():
    m = LSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match="input_size=3"):
        m(tl.zeros(5, 2, 7))
    with pytest.raises(ValueError, match=r"expected h_0 of shape \(2, 2, 4\), got \(1, 2, 4\)"):
        m(tl.zeros(5, 2, 3), (tl.zeros(1, 2, 4), tl.zeros(2, 2, 4)))
    with pytest.raises(TypeError, match="tuple \\(h_0, c_0\\)"):
        m(tl.zeros(5, 2, 3), tl.zeros(2, 2, 4))
    with pytest.raises(ValueError, match="unknown nonlinearity 'sigmoid'"):
        RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="proj_size"):
        LSTM(3, 4, proj_size=2)
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        GRU(3, 4, dropout=0.5)
    with pytest.raises(ValueError, match=r"expected input \(N, 3\)"):
        GRUCell(3, 4)(tl.zeros(2, 5))


def test_dropout_between_layers_only_while_training():
    m = GRU(3, 4, num_layers=2, dropout=0.5)
    x = tl.randn(5, 2, 3)
    m.eval()
    a, b = m(x)[0].numpy(), m(x)[0].numpy()
    assert (a == b).all()
    m.train()
    assert not (m(x)[0].numpy() == a).all()


# ---------------------------------------------------------------------------- Conv1d
def test_conv1d_matches_pytorchs_stored_output():
    m = Conv1d(4, 2, 3, stride=2, padding=1, dilation=2, groups=2)
    rng, _ = torch_like(m, 4)
    np.testing.assert_allclose(flat(m(tl.tensor(rng.standard_normal((1, 4, 7)))))[0], ANCHOR["conv"][0], atol=2e-12)


@pytest.mark.parametrize("kwargs", [
    dict(), dict(stride=3, padding=2), dict(dilation=2, padding=1, groups=3), dict(bias=False, padding="same"),
    dict(padding="same", dilation=2, padding_mode="reflect"), dict(padding=2, padding_mode="circular"),
    dict(padding=3, padding_mode="replicate", stride=2), dict(padding="valid"),
])
def test_conv1d_follows_the_definition(kwargs):
    m = Conv1d(6, 9, 4, **kwargs)
    rng, sd = torch_like(m, 5)
    x = rng.standard_normal((2, 6, 13))
    S, Dil = m.stride[0], m.dilation[0]
    want = np_conv1d(x, sd["weight"], sd.get("bias"), S, m._pads(), Dil, m.groups, m.padding_mode)
    np.testing.assert_allclose(m(tl.tensor(x)).numpy(), want, atol=1e-12)
    np.testing.assert_allclose(m(tl.tensor(x[1])).numpy(), want[1], atol=1e-12)   # unbatched (C, L)


def test_conv1d_same_padding_keeps_the_length_and_init_bound():
    tl.manual_seed(0)
    m = Conv1d(16, 32, 5, padding="same")
    assert m(tl.randn(2, 16, 11)).shape == (2, 32, 11)
    bound = 1 / math.sqrt(16 * 5)
    w = m.weight.numpy()
    assert m.weight.shape == (32, 16, 5) and -bound <= w.min() and w.max() <= bound and w.max() > 0.95 * bound
    with pytest.raises(ValueError, match="in_channels=16"):
        m(tl.randn(2, 8, 11))
    with pytest.raises(ValueError, match="divisible by groups 3"):
        Conv1d(4, 6, 3, groups=3)
    with pytest.raises(ValueError, match="strided"):
        Conv1d(4, 6, 3, stride=2, padding="same")


@pytest.mark.parametrize("kwargs", [dict(stride=2, padding=1, dilation=2, groups=2), dict(padding=2,
                                                                                      padding_mode="reflect")])
def test_conv1d_gradients(kwargs):
    m = Conv1d(4, 2, 3, **kwargs)
    rng, _ = torch_like(m, 6)
    x = tl.tensor(rng.standard_normal((2, 4, 7)), requires_grad=True)
    assert gradcheck(lambda x, *ps: m(x), x, *m.parameters())


# ---------------------------------------------------------------------------- BatchNorm1d
def test_batchnorm_matches_pytorchs_stored_training_step():
    m = BatchNorm1d(2, momentum=0.3)
    rng, _ = torch_like(m, 5)
    m.reset_running_stats()
    y = m(tl.tensor(rng.standard_normal((3, 2, 2))))
    for got, want in zip(flat(y, m.running_mean, m.running_var), ANCHOR["bn"]):
        np.testing.assert_allclose(got, want, atol=2e-12)
    assert int(m.num_batches_tracked) == 1


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5)])
def test_batchnorm_train_and_eval_by_formula(shape):
    m = BatchNorm1d(3, momentum=0.2)
    rng, sd = torch_like(m, 9)
    m.reset_running_stats()
    axes = (0,) if len(shape) == 2 else (0, 2)
    bshape = (1, 3) if len(shape) == 2 else (1, 3, 1)
    rm, rv = np.zeros(3), np.ones(3)
    for step in range(3):
        x = rng.standard_normal(shape) * 2 + 1
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        n = x.size // 3
        want = (x - mean.reshape(bshape)) / np.sqrt(var.reshape(bshape) + 1e-5) * sd["weight"].reshape(bshape) \
            + sd["bias"].reshape(bshape)
        np.testing.assert_allclose(m(tl.tensor(x)).numpy(), want, atol=1e-12)
        rm, rv = 0.8 * rm + 0.2 * mean, 0.8 * rv + 0.2 * var * n / (n - 1)     # unbiased running variance
        np.testing.assert_allclose(m.running_mean.numpy(), rm, atol=1e-12)
        np.testing.assert_allclose(m.running_var.numpy(), rv, atol=1e-12)
    m.eval()
    x = rng.standard_normal(shape)
    want = (x - rm.reshape(bshape)) / np.sqrt(rv.reshape(bshape) + 1e-5) * sd["weight"].reshape(bshape) \
        + sd["bias"].reshape(bshape)
    np.testing.assert_allclose(m(tl.tensor(x)).numpy(), want, atol=1e-12)
    np.testing.assert_allclose(m.running_mean.numpy(), rm, atol=1e-12)        # eval leaves them alone
    assert int(m.num_batches_tracked) == 3


def test_batchnorm_cumulative_average_no_affine_and_no_tracking():
    m = BatchNorm1d(2, momentum=None, affine=False)
    assert list(m.state_dict()) == ["running_mean", "running_var", "num_batches_tracked"]
    xs = [np.random.default_rng(i).standard_normal((5, 2)) for i in range(3)]
    for x in xs:
        m(tl.tensor(x, dtype=np.float32))
    np.testing.assert_allclose(m.running_mean.numpy(), np.mean([x.mean(0) for x in xs], axis=0), rtol=1e-5, atol=1e-6)
    free = BatchNorm1d(2, track_running_stats=False).eval()   # batch statistics even in eval
    x = xs[0].astype(np.float32)
    np.testing.assert_allclose(free(tl.tensor(x)).numpy(), (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), atol=1e-5)
    assert list(free.state_dict()) == ["weight", "bias"]
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        BatchNorm1d(2)(tl.zeros(1, 2))
    with pytest.raises(ValueError, match="num_features=2"):
        BatchNorm1d(2)(tl.zeros(4, 3))


def test_batchnorm_gradients():
    m = BatchNorm1d(3)
    rng, _ = torch_like(m, 2)
    x = tl.tensor(rng.standard_normal((4, 3, 2)), requires_grad=True)
    assert gradcheck(lambda x, *ps: m(x), x, *m.parameters())
    m.eval()
    assert gradcheck(lambda x, *ps: m(x), x, *m.parameters())


# ---------------------------------------------------------------------------- losses and shapes
def np_log_softmax(z, axis=-1):
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def test_nll_loss_by_formula_with_weights_ignore_index_and_layouts():
    rng = np.random.default_rng(0)
    logp = np_log_softmax(rng.standard_normal((6, 4)))
    t = np.array([0, 3, 1, -100, 2, 3])
    w = np.array([1.0, 2.0, 0.5, 3.0])
    valid = t != -100
    picked = np.where(valid, -logp[np.arange(6), np.where(valid, t, 0)], 0)
    x = tl.tensor(logp, requires_grad=True)
    assert float(NLLLoss()(x, tl.tensor(t))) == pytest.approx(picked.sum() / valid.sum())
    wt = np.where(valid, w[np.where(valid, t, 0)], 0)
    assert float(NLLLoss(weight=tl.tensor(w))(x, tl.tensor(t))) == pytest.approx((picked * wt).sum() / wt.sum())
    assert float(NLLLoss(reduction="sum")(x, tl.tensor(t))) == pytest.approx(picked.sum())
    np.testing.assert_allclose(NLLLoss(reduction="none")(x, tl.tensor(t)).numpy(), picked)
    x3 = np_log_softmax(rng.standard_normal((2, 4, 5)), axis=1)  # (N, C, d1): PyTorch's layout
    t3 = rng.integers(0, 4, (2, 5))
    want = -np.take_along_axis(x3, t3[:, None, :], axis=1)[:, 0].mean()
    assert float(NLLLoss()(tl.tensor(x3), tl.tensor(t3))) == pytest.approx(want)
    assert gradcheck(lambda x: NLLLoss(weight=tl.tensor(w))(x, tl.tensor(t)), x)
    with pytest.raises(ValueError, match="target 4 is out of bounds for 4 classes"):
        NLLLoss()(x, tl.tensor([4, 0, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="classes on axis 1"):
        NLLLoss()(tl.tensor(x3), tl.tensor(t3.T.copy()))
    assert math.isnan(float(NLLLoss()(x, tl.tensor([-100] * 6))))   # nothing counted: 0 / 0, as PyTorch


def test_cross_entropy_loss_wraps_f_cross_entropy():
    rng = np.random.default_rng(1)
    z, t = rng.standard_normal((5, 3)), np.array([0, 2, 1, 1, -100])
    x = tl.tensor(z, requires_grad=True)
    lp = np_log_softmax(z)
    per = -lp[np.arange(4), t[:4]]
    assert float(CrossEntropyLoss()(x, tl.tensor(t))) == pytest.approx(per.mean())
    assert float(CrossEntropyLoss(reduction="sum")(x, tl.tensor(t))) == pytest.approx(per.sum())
    assert float(CrossEntropyLoss(ignore_index=1)(x, tl.tensor([0, 2, 1, 1, 0]))) == pytest.approx(
        np.mean([-lp[0, 0], -lp[1, 2], -lp[4, 0]]))
    with pytest.warns(UserWarning, match="deprecated"):
        assert CrossEntropyLoss(size_average=False).reduction == "sum"
    assert gradcheck(lambda x: CrossEntropyLoss()(x, tl.tensor(t)), x)


def _f_takes(name):
    import inspect
    return name in inspect.signature(tl.F.cross_entropy).parameters


def test_cross_entropy_loss_passes_weight_and_label_smoothing():
    rng = np.random.default_rng(2)
    z, t, w = rng.standard_normal((4, 3)), np.array([0, 2, 1, 1]), np.array([1.0, 2.0, 0.5])
    lp = np_log_softmax(z)
    want = (w[t] * -lp[np.arange(4), t]).sum() / w[t].sum()
    loss = CrossEntropyLoss(weight=tl.tensor(w))
    assert "weight" in loss.state_dict()                       # a buffer, as PyTorch's
    assert float(loss(tl.tensor(z), tl.tensor(t))) == pytest.approx(want)
    assert _f_takes("label_smoothing")                          # PyTorch's formula: (1 - e) nll + e mean(-log p)
    eps = 0.1
    want = np.mean((1 - eps) * -lp[np.arange(4), t] + eps * -lp.mean(axis=1))
    assert float(CrossEntropyLoss(label_smoothing=eps)(tl.tensor(z), tl.tensor(t))) == pytest.approx(want)


def test_mse_softmax_logsoftmax_flatten():
    a, b = np.arange(6.0).reshape(2, 3), np.ones((2, 3))
    assert float(MSELoss()(tl.tensor(a), tl.tensor(b))) == pytest.approx(((a - b) ** 2).mean())
    assert float(MSELoss(reduction="sum")(tl.tensor(a), tl.tensor(b))) == pytest.approx(((a - b) ** 2).sum())
    z = np.random.default_rng(3).standard_normal((2, 3, 4))
    np.testing.assert_allclose(Softmax(dim=1)(tl.tensor(z)).numpy(), np.exp(np_log_softmax(z, 1)), atol=1e-12)
    np.testing.assert_allclose(LogSoftmax(dim=-1)(tl.tensor(z)).numpy(), np_log_softmax(z, -1), atol=1e-12)
    with pytest.warns(UserWarning, match="Implicit dimension choice"):
        implicit = Softmax()(tl.tensor(z))                     # 3-d: PyTorch's old rule picks axis 0
    np.testing.assert_allclose(implicit.numpy(), np.exp(np_log_softmax(z, 0)), atol=1e-12)
    with pytest.warns(UserWarning):
        np.testing.assert_allclose(LogSoftmax()(tl.tensor(z[0])).numpy(), np_log_softmax(z[0], 1), atol=1e-12)
    assert Flatten()(tl.tensor(z)).shape == (2, 12) and Flatten(0, 1)(tl.tensor(z)).shape == (6, 4)


def test_a_small_lstm_language_model_trains():
    tl.manual_seed(0)
    from tinylm import nn, optim
    text = np.array([0, 1, 2, 3] * 6)                         # a repeating pattern: learnable
    emb, lstm, head = nn.Embedding(4, 8), LSTM(8, 16, batch_first=True), nn.Linear(16, 4)
    params = emb.parameters() + lstm.parameters() + head.parameters()
    opt = optim.Adam(params, lr=0.05)
    x, y = tl.tensor(text[None, :-1]), tl.tensor(text[None, 1:])
    losses = []
    for _ in range(25):
        out, _ = lstm(emb(x))
        loss = CrossEntropyLoss()(head(out).reshape(-1, 4), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.2 * losses[0]


@pytest.mark.parametrize("make, shape", [
    (lambda d: LSTM(4, 3, bidirectional=True, batch_first=True, device=d), (2, 5, 4)),
    (lambda d: GRU(4, 3, num_layers=2, device=d), (5, 2, 4)),
    (lambda d: Conv1d(4, 6, 3, padding=2, padding_mode="reflect", groups=2, device=d), (2, 4, 9)),
    (lambda d: Conv1d(4, 6, 3, stride=2, padding=1, device=d), (2, 4, 9)),
    (lambda d: BatchNorm1d(4, device=d), (6, 4, 3)),
], ids=["lstm", "gru", "conv-reflect", "conv-zeros", "batchnorm"])
def test_layers_give_the_same_numbers_on_every_device(device, make, shape):
    cpu = make("cpu")
    rng, sd = torch_like(cpu, 0)
    other = make(device).double()
    other.load_state_dict(sd)
    x = rng.standard_normal(shape)
    want, got = cpu(tl.tensor(x)), other(tl.tensor(x, device=device))
    for a, b in zip(_leaves(want), _leaves(got)):
        assert b.device == tl.parse_device(device)
        np.testing.assert_allclose(tl.backend.to_numpy(b.data), a.numpy(), atol=1e-12)
    loss = sum(o.sum() for o in _leaves(got))
    loss.backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in other.parameters())


def test_losses_on_every_device(device):
    rng = np.random.default_rng(4)
    z, t = rng.standard_normal((5, 3)), np.array([0, 2, 1, -100, 1])
    for loss in (NLLLoss(weight=tl.tensor([1.0, 2.0, 0.5], dtype=np.float64).to(device)), CrossEntropyLoss()):
        inp = tl.tensor(np_log_softmax(z) if isinstance(loss, NLLLoss) else z, device=device)
        want = loss.to("cpu")(tl.tensor(np_log_softmax(z) if isinstance(loss, NLLLoss) else z), tl.tensor(t))
        loss.to(device)
        assert float(loss(inp, tl.tensor(t, device=device))) == pytest.approx(float(want))


@pytest.mark.parametrize("layer", [Softmax(dim=1), LogSoftmax(dim=-1), Flatten(), Flatten(0, 1)],
                         ids=["softmax", "log_softmax", "flatten", "flatten01"])
def test_shape_layer_gradients(layer):
    x = tl.tensor(np.random.default_rng(5).standard_normal((2, 3, 4)), requires_grad=True)
    assert gradcheck(layer, x)


def test_mse_loss_gradient():
    rng = np.random.default_rng(6)
    x, y = (tl.tensor(rng.standard_normal((3, 4)), requires_grad=True) for _ in range(2))
    for reduction in ("mean", "sum", "none"):
        assert gradcheck(lambda a, b: MSELoss(reduction=reduction)(a, b), x, y)
