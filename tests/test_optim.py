"""Tests for tinylm/optim.py: update formulas by hand, convergence, decay groups, clipping, schedule, state."""
import copy
import json
import math

import numpy as np
import pytest

import tinylm as tl
from tinylm import optim
from tinylm.backend import device_of, to_device, to_numpy

P0 = [1.0, -2.0, 0.5]
G1 = [0.5, -1.0, 0.25]
G2 = [0.1, 0.3, -0.2]


def _param(values, device):
    return tl.tensor(np.array(values, dtype=np.float32), device=device, requires_grad=True)


def _set_grad(p, values):
    p.grad = to_device(np.array(values, dtype=np.float32), p.device)


def _two_steps(opt, p):
    _set_grad(p, G1)
    opt.step()
    _set_grad(p, G2)
    opt.step()
    return to_numpy(p.data)


def _adam_by_hand(lr, b1, b2, eps, wd, decoupled):
    """Two Adam(W) steps on P0 with gradients G1, G2, in float64 straight from the paper's formulas."""
    p, m, v = [np.float64(x) for x in P0], [0.0] * 3, [0.0] * 3
    for t, grad in ((1, G1), (2, G2)):
        for i in range(3):
            g = grad[i]
            if decoupled:
                p[i] = p[i] - lr * wd * p[i]
            else:
                g = g + wd * p[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat = m[i] / (1 - b1 ** t)
            v_hat = v[i] / (1 - b2 ** t)
            p[i] = p[i] - lr * m_hat / (math.sqrt(v_hat) + eps)
    return np.array(p)


def test_adam_first_step_moves_each_coordinate_by_lr(device):
    # with bias correction, m_hat = g and v_hat = g^2 at step 1, so the step is lr * sign(g)
    p = _param(P0, device)
    opt = optim.Adam([p], lr=0.1)
    _set_grad(p, G1)
    opt.step()
    np.testing.assert_allclose(to_numpy(p.data), np.array(P0) - 0.1 * np.sign(G1), rtol=0, atol=1e-6)


def test_adam_two_steps_match_the_formulas(device):
    p = _param(P0, device)
    got = _two_steps(optim.Adam([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1), p)
    want = _adam_by_hand(0.1, 0.9, 0.999, 1e-8, 0.1, decoupled=False)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_adamw_two_steps_match_the_formulas(device):
    p = _param(P0, device)
    got = _two_steps(optim.AdamW([p], lr=0.1, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.5), p)
    want = _adam_by_hand(0.1, 0.8, 0.99, 1e-8, 0.5, decoupled=True)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert not np.allclose(want, _adam_by_hand(0.1, 0.8, 0.99, 1e-8, 0.5, decoupled=False))  # the two differ


def test_sgd_momentum_two_steps_match_the_formulas(device):
    p = _param(P0, device)
    got = _two_steps(optim.SGD([p], lr=0.1, momentum=0.9), p)
    # buf1 = g1; p1 = p0 - lr g1; buf2 = 0.9 g1 + g2; p2 = p1 - lr buf2
    want = np.array(P0) - 0.1 * np.array(G1) - 0.1 * (0.9 * np.array(G1) + np.array(G2))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_rmsprop_two_steps_match_the_formulas(device):
    p = _param(P0, device)
    got = _two_steps(optim.RMSprop([p], lr=0.01, alpha=0.9, eps=1e-8), p)
    g1, g2 = np.array(G1), np.array(G2)
    sq1 = 0.1 * g1 ** 2
    sq2 = 0.9 * sq1 + 0.1 * g2 ** 2
    want = np.array(P0) - 0.01 * g1 / (np.sqrt(sq1) + 1e-8) - 0.01 * g2 / (np.sqrt(sq2) + 1e-8)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.05),
    "sgd-nesterov": lambda ps: optim.SGD(ps, lr=0.02, momentum=0.9, nesterov=True),
    "adam": lambda ps: optim.Adam(ps, lr=0.1),
    "adamw": lambda ps: optim.AdamW(ps, lr=0.1, weight_decay=0.01),
    "rmsprop": lambda ps: optim.RMSprop(ps, lr=0.02, momentum=0.5),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_optimizer_decreases_a_quadratic(device, name):
    target = tl.tensor(np.array([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]], np.float32), device=device)
    scale = tl.tensor(np.array([1.0, 2.0, 4.0], np.float32), device=device)
    w = tl.zeros(2, 3, device=device, requires_grad=True)
    b = tl.zeros(3, device=device, requires_grad=True)
    opt = OPTIMIZERS[name]([w, b])
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = (((w + b - target) ** 2) * scale).sum()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0], (name, losses[0], losses[-1])
    assert w.dtype == np.float32 and b.dtype == np.float32


def test_updates_are_in_place_and_float32(device):
    p = _param(P0, device)
    before = p.data
    opt = optim.AdamW([p], lr=0.1)
    _two_steps(opt, p)
    assert p.data is before
    assert p.dtype == np.float32
    assert all(a.dtype == np.float32 for k, a in opt.state[p].items() if k != "step")


def test_param_groups_helper_splits_by_ndim():
    named = {"wte.weight": tl.zeros(5, 4, requires_grad=True), "fc.weight": tl.zeros(4, 4, requires_grad=True),
             "fc.bias": tl.zeros(4, requires_grad=True), "ln.weight": tl.ones(4, requires_grad=True),
             "frozen": tl.zeros(3, 3)}
    decay, no_decay = optim.param_groups(named, 0.1)
    assert [p.shape for p in decay["params"]] == [(5, 4), (4, 4)] and decay["weight_decay"] == 0.1
    assert [p.shape for p in no_decay["params"]] == [(4,), (4,)] and no_decay["weight_decay"] == 0.0
    assert optim.param_groups(list(named.items()), 0.1)[0]["params"][0] is named["wte.weight"]


def test_weight_decay_skips_no_decay_groups(device):
    w = _param([[1.0, 2.0], [3.0, 4.0]], device)
    b = _param([1.0, 2.0], device)
    opt = optim.AdamW(optim.param_groups([("w", w), ("b", b)], 0.5), lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.1]
    for p in (w, b):
        _set_grad(p, np.zeros(p.shape))  # zero gradient: the Adam part does nothing, only decay acts
    opt.step()
    np.testing.assert_allclose(to_numpy(w.data), [[0.95, 1.9], [2.85, 3.8]], rtol=1e-6)
    np.testing.assert_array_equal(to_numpy(b.data), [1.0, 2.0])


def test_clip_grad_norm_returns_the_norm_and_scales(device):
    a, b = _param([0.0, 0.0], device), _param([0.0], device)
    _set_grad(a, [3.0, 4.0])
    _set_grad(b, [12.0])
    total = optim.clip_grad_norm_([a, b], max_norm=6.5)
    assert isinstance(total, float) and total == pytest.approx(13.0, rel=1e-6)
    np.testing.assert_allclose(to_numpy(a.grad), [1.5, 2.0], rtol=1e-5)
    np.testing.assert_allclose(to_numpy(b.grad), [6.0], rtol=1e-5)
    assert optim.clip_grad_norm_([a, b], max_norm=100.0) == pytest.approx(6.5, rel=1e-5)
    np.testing.assert_allclose(to_numpy(a.grad), [1.5, 2.0], rtol=1e-5)  # under the limit: untouched
    assert a.grad.dtype == np.float32


def test_cosine_schedule_hits_warmup_peak_and_min():
    lr = lambda s: optim.cosine_lr(s, max_lr=1.0, warmup=10, total=110, min_lr=0.1)  # noqa: E731
    assert lr(0) == pytest.approx(1 / 11) and lr(9) == pytest.approx(10 / 11)
    assert lr(10) == 1.0
    assert lr(60) == pytest.approx(0.55)  # halfway down the cosine: midway between max and min
    assert lr(110) == 0.1 and lr(10_000) == 0.1
    values = [lr(s) for s in range(120)]
    assert all(x < y for x, y in zip(values[:10], values[1:11]))
    assert all(x >= y for x, y in zip(values[10:], values[11:]))
    assert optim.cosine_lr(0, 1.0, 0, 10) == 1.0  # no warmup: the peak at step 0


def test_cosine_scheduler_sets_every_group():
    sched = optim.CosineLR(max_lr=0.5, warmup=2, total=10, min_lr=0.05)
    opt = optim.AdamW(optim.param_groups({"w": tl.zeros(2, 2, requires_grad=True),
                                          "b": tl.zeros(2, requires_grad=True)}, 0.1))
    assert sched.apply(opt, 2) == 0.5
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.5]
    with pytest.raises(ValueError, match="warmup 10 and total 10"):
        optim.CosineLR(1.0, 10, 10)


def test_cosine_schedule_scales_each_group_from_its_initial_lr():
    a, b = tl.zeros(2, 2, requires_grad=True), tl.zeros(2, requires_grad=True)
    opt = optim.AdamW([{"params": [a]}, {"params": [b], "lr": 1e-4}], lr=1e-3)
    sched = optim.CosineLR(max_lr=2e-3, warmup=2, total=10, min_lr=2e-4)
    for step in range(12):
        assert sched.apply(opt, step) == optim.cosine_lr(step, 2e-3, 2, 10, 2e-4)
        lr0, lr1 = (g["lr"] for g in opt.param_groups)
        assert lr0 == sched(step)                    # bit for bit: the group at the optimizer's lr
        assert lr1 == pytest.approx(sched(step) / 10, rel=1e-12)  # a tenth of the lr stays a tenth
    # initial_lr is how the optimizer was built, not state: a fresh one loaded mid-run scales the same
    sd = opt.state_dict()
    assert all("initial_lr" not in g for g in sd["param_groups"])
    opt2 = optim.AdamW([{"params": [a]}, {"params": [b], "lr": 1e-4}], lr=1e-3)
    opt2.load_state_dict(sd)
    sched.apply(opt, 5)
    sched.apply(opt2, 5)
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]


def test_cosine_scheduler_steps_through_the_same_lrs():
    # PyTorch's loop: making the scheduler sets step 0's lr, sched.step() after opt.step() moves on
    a, b = tl.zeros(2, 2, requires_grad=True), tl.zeros(2, requires_grad=True)
    opt = optim.AdamW([{"params": [a]}, {"params": [b], "lr": 3e-4}], lr=3e-3)
    sched = optim.CosineLR(opt, warmup=2, total=10, min_lr=3e-4)
    for step in range(12):
        want = optim.cosine_lr(step, 3e-3, 2, 10, 3e-4)
        assert sched.get_last_lr() == [g["lr"] for g in opt.param_groups]
        assert sched.get_last_lr()[0] == want                  # bit for bit, as the stateless apply(opt, step)
        assert sched.get_last_lr()[1] == pytest.approx(want / 10, rel=1e-12)
        opt.step()
        sched.step()
    assert sched.state_dict() == {"last_epoch": 12}


def test_lambda_lr_scales_each_group_from_its_initial_lr():
    a, b = tl.zeros(2, requires_grad=True), tl.zeros(2, requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.01}], lr=0.1)
    sched = optim.LambdaLR(opt, lambda step: 1.0 / (step + 1))
    assert sched.get_last_lr() == [0.1, 0.01]
    sched.step()
    assert sched.get_last_lr() == [0.05, 0.005] == [g["lr"] for g in opt.param_groups]


@pytest.mark.parametrize("kind", ["cosine", "lambda"])
def test_a_scheduler_resumes_from_its_json_state(kind):
    from tinylm.optim.lr_scheduler import CosineLR, LambdaLR  # PyTorch's path works too

    def make():
        opt = optim.AdamW([tl.zeros(2, requires_grad=True)], lr=0.5)
        return opt, CosineLR(opt, 2, 10, 0.05) if kind == "cosine" else LambdaLR(opt, lambda step: 0.9 ** step)

    opt, sched = make()
    for _ in range(5):
        sched.step()
    saved = json.loads(json.dumps(sched.state_dict()))     # plain JSON: checkpoints never pickle
    opt2, sched2 = make()
    sched2.load_state_dict(saved)
    assert sched2.get_last_lr() == sched.get_last_lr() == [g["lr"] for g in opt2.param_groups]
    sched.step()
    sched2.step()
    assert sched2.get_last_lr() == sched.get_last_lr()
    with pytest.raises(ValueError, match="expected {'last_epoch': int >= 0}"):
        sched2.load_state_dict({"last_epoch": -3})


def test_scheduler_errors_are_named():
    opt = optim.AdamW([tl.zeros(2, requires_grad=True)])
    with pytest.raises(TypeError, match=r"CosineLR: expected an optimizer such as AdamW\(model.*got Linear"):
        optim.CosineLR(tl.nn.Linear(2, 2), 0, 10)
    with pytest.raises(TypeError, match="needs total"):
        optim.CosineLR(opt, 10)
    with pytest.raises(TypeError, match="lr_lambda must be a function of the step, got float"):
        optim.LambdaLR(opt, 0.5)
    with pytest.raises(ValueError, match=r"invalid lr_lambda\(0\) -1.0"):
        optim.LambdaLR(opt, lambda step: -1.0)
    stateless = optim.CosineLR(max_lr=1.0, warmup=0, total=10)
    with pytest.raises(RuntimeError, match="made without an optimizer"):
        stateless.step()
    assert stateless.last_epoch == -1


@pytest.mark.parametrize("name", ["sgd-nesterov", "adam", "adamw", "rmsprop"])
def test_state_dict_round_trip_continues_identically(device, name):
    grads = [np.random.default_rng(i).standard_normal((3, 2)).astype(np.float32) for i in range(6)]

    def run(opt, p, gs):
        for g in gs:
            p.grad = to_device(g, device)
            opt.step()

    p = tl.tensor(np.arange(6, dtype=np.float32).reshape(3, 2), device=device, requires_grad=True)
    q = tl.tensor(np.ones(2, np.float32), device=device, requires_grad=True)
    opt = OPTIMIZERS[name]([p, q])
    run(opt, p, grads[:3])
    sd = opt.state_dict()
    saved = {"state": [{k: (v if k == "step" else to_numpy(v).copy()) for k, v in s.items()} for s in sd["state"]],
             "param_groups": json.loads(json.dumps(sd["param_groups"]))}  # settings are JSON-able
    p2 = tl.tensor(p.numpy(), device=device, requires_grad=True)
    q2 = tl.tensor(q.numpy(), device=device, requires_grad=True)
    opt2 = OPTIMIZERS[name]([p2, q2])
    opt2.param_groups[0]["lr"] = 123.0  # overwritten by the load
    opt2.load_state_dict(copy.deepcopy(saved))
    run(opt, p, grads[3:])
    run(opt2, p2, grads[3:])
    np.testing.assert_array_equal(p.numpy(), p2.numpy())
    assert saved["state"][1] == {} or name.startswith("sgd")  # q never had a gradient


def test_load_state_dict_refuses_a_mismatch():
    p = tl.zeros(3, 2, requires_grad=True)
    opt = optim.Adam([p])
    p.grad = np.ones((3, 2), np.float32)
    opt.step()
    sd = opt.state_dict()
    other = optim.Adam([tl.zeros(2, 3, requires_grad=True)])
    with pytest.raises(ValueError, match=r"shape \(3, 2\).*shape \(2, 3\)"):
        other.load_state_dict(sd)
    with pytest.raises(ValueError, match="1 parameter group.*this optimizer has 2"):
        optim.Adam([{"params": [p]}, {"params": [tl.zeros(1, requires_grad=True)]}]).load_state_dict(sd)


def test_bad_arguments_are_named():
    p = tl.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="lr -1.0"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="beta2 1.0"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(TypeError, match=r"params\[1\] is a ndarray"):
        optim.AdamW([p, np.zeros(2)])
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.AdamW([])
    with pytest.raises(ValueError, match="more than one group"):
        optim.AdamW([{"params": [p]}, {"params": [p]}])
    with pytest.raises(ValueError, match="step must be a non-negative int"):
        optim.cosine_lr(-1, 1.0, 0, 10)


def test_zero_grad():
    p = tl.zeros(2, requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    p.grad = np.ones(2, np.float32)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad, [0.0, 0.0])
    opt.zero_grad()
    assert p.grad is None
    opt.step()  # no gradient: nothing to do
    np.testing.assert_array_equal(p.data, [0.0, 0.0])


def test_repr_lists_each_groups_settings():
    w, b = tl.zeros(2, 2, requires_grad=True), tl.zeros(2, requires_grad=True)
    opt = optim.AdamW(optim.param_groups({"w": w, "b": b}, 0.1), lr=3e-3, betas=(0.9, 0.95))
    assert repr(opt) == ("AdamW (\n"
                         "Parameter Group 0\n    betas: (0.9, 0.95)\n    eps: 1e-08\n    initial_lr: 0.003\n"
                         "    lr: 0.003\n    weight_decay: 0.1\n"
                         "Parameter Group 1\n    betas: (0.9, 0.95)\n    eps: 1e-08\n    initial_lr: 0.003\n"
                         "    lr: 0.003\n    weight_decay: 0.0\n)")


def test_a_module_instead_of_its_parameters_is_named():
    model = tl.nn.Linear(2, 3)
    with pytest.raises(TypeError, match=r"AdamW: got a Linear module, not its parameters; pass AdamW\(model\.param"):
        optim.AdamW(model)
    with pytest.raises(TypeError, match="SGD: got a Linear module"):
        optim.SGD([{"params": model}], lr=0.1)
    with pytest.raises(TypeError, match=r"pass clip_grad_norm_\(model.parameters"):
        optim.clip_grad_norm_(model, 1.0)
    optim.AdamW(model.parameters())  # the right call


def test_a_tensor_set_as_grad_counts_by_its_data(device):
    # autograd stores arrays, but `p.grad = tl.ones(2)` is what a PyTorch user writes
    p, q = _param(P0, device), _param(P0, device)
    opt_p, opt_q = optim.AdamW([p], lr=0.1), optim.AdamW([q], lr=0.1)
    p.grad = tl.tensor(np.array(G1, np.float32), device=device)
    _set_grad(q, G1)
    assert optim.clip_grad_norm_([p], 1.0) == pytest.approx(optim.clip_grad_norm_([q], 1.0))
    opt_p.step()
    opt_q.step()
    np.testing.assert_array_equal(p.numpy(), q.numpy())
    opt_p.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(to_numpy(p.grad.data), [0.0, 0.0, 0.0])


@pytest.mark.parametrize("name", ["sgd-nesterov", "adamw", "rmsprop"])
@pytest.mark.parametrize("first, then", [("cpu", "strict"), ("strict", "cpu")])
def test_state_follows_a_model_moved_between_steps(name, first, then):
    # the strict device is NumPy underneath, so the moved run must match one that stayed put
    grads = [np.random.default_rng(i).standard_normal((3, 2)).astype(np.float32) for i in range(3)]
    runs = []
    for move in (False, True):
        tl.manual_seed(0)
        model = tl.nn.Linear(2, 3, bias=False).to(first)
        opt = OPTIMIZERS[name](model.parameters())
        for i, g in enumerate(grads):
            if move and i == 1:
                model.to(then)
            model.weight.grad = to_device(g, model.weight.device)
            opt.step()
        buffers = [v for k, v in opt.state[model.weight].items() if k != "step"]
        assert {device_of(v) for v in buffers} == {then if move else first}
        runs.append(model.weight.numpy())
    np.testing.assert_array_equal(runs[0], runs[1])


def test_clip_grad_norm_of_float16_gradients_does_not_overflow(device):
    p = tl.nn.Parameter(tl.zeros(4, dtype=np.float16, device=device))
    p.grad = tl.backend.to_device(np.full(4, 150.0, np.float16), device)      # norm 300: squares overflow float16
    total = tl.optim.clip_grad_norm_([p], 1.0)
    assert abs(total - 300.0) < 0.5
    np.testing.assert_allclose(tl.backend.to_numpy(p.grad).astype(np.float64), 0.5, rtol=1e-3)


def test_a_tensor_lr_is_stored_as_a_float_and_stateless_cosine_uses_the_largest_group_lr():
    p = tl.nn.Parameter(tl.ones(2))
    opt = optim.SGD([p], lr=tl.tensor(0.1))
    assert type(opt.param_groups[0]["lr"]) is float
    p.grad = np.ones(2, np.float32)
    opt.step()
    np.testing.assert_allclose(p.numpy(), 0.9, rtol=1e-6)
    a, b = tl.nn.Parameter(tl.ones(1)), tl.nn.Parameter(tl.ones(1))
    opt = optim.AdamW([{"params": [a], "lr": 6e-4}, {"params": [b], "lr": 6e-5}])
    optim.CosineLR(max_lr=6e-4, warmup=0, total=100).apply(opt, 0)
    assert opt.param_groups[0]["lr"] == 6e-4 and abs(opt.param_groups[1]["lr"] - 6e-5) < 1e-18
