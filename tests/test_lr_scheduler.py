"""Tests for the PyTorch schedulers in tinylm/optim.py (tinylm.optim.lr_scheduler): each gives
PyTorch's learning-rate sequence.

Expected values come from the closed forms in PyTorch's lr_scheduler documentation, written
out here step by step, and (where marked) from sequences printed by PyTorch 2.13.0+cpu
(torch.optim.lr_scheduler with an SGD(lr=0.1, momentum=0.9) or AdamW(lr=0.1) optimizer, one
`opt.step(); sched.step()` per step, `get_last_lr()` read before each step), rounded to 15
decimals. torch is not needed to run these tests.
"""
import json
import math

import pytest

import tinylm as tl
from tinylm import optim

N = 30


def make_opt(kind="sgd"):
    """Two groups: the optimizer's lr 0.1 and a group of its own at 0.01 (each scales from its own)."""
    p, q = tl.zeros(2, requires_grad=True), tl.zeros(2, requires_grad=True)
    groups = [{"params": [p]}, {"params": [q], "lr": 0.01}]
    return optim.SGD(groups, lr=0.1, momentum=0.9) if kind == "sgd" else optim.AdamW(groups, lr=0.1)


def run(opt, sched, n=N):
    """[get_last_lr() before each of n steps], checking the optimizer's groups agree."""
    out = []
    for _ in range(n):
        assert sched.get_last_lr() == [g["lr"] for g in opt.param_groups]
        out.append(sched.get_last_lr())
        opt.step()
        sched.step()
    return out


def close(got, want):
    assert len(got) == len(want)
    for step, (g, w) in enumerate(zip(got, want)):
        assert g == pytest.approx(w, rel=1e-12, abs=1e-15), f"step {step}: {g} vs {w}"


def per_group(factor):
    """[[0.1 f(t), 0.01 f(t)] for t in 0..N-1]: both groups scale from their own initial lr."""
    return [[0.1 * factor(t), 0.01 * factor(t)] for t in range(N)]


def test_the_pytorch_import_paths_work():
    import tinylm.optim.lr_scheduler as mod
    from tinylm.optim.lr_scheduler import (CosineAnnealingLR, ExponentialLR, LinearLR, MultiStepLR, OneCycleLR,
                                           SequentialLR, StepLR)
    assert mod.StepLR is StepLR is optim.StepLR is tl.optim.lr_scheduler.StepLR
    assert {"LambdaLR", "CosineLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR",
            "OneCycleLR", "SequentialLR"} <= set(mod.__all__)
    assert all(issubclass(c, optim.LRScheduler) for c in (CosineAnnealingLR, ExponentialLR, LinearLR,
                                                          MultiStepLR, OneCycleLR, SequentialLR))


def test_step_lr_decays_every_step_size_steps():
    opt = make_opt()
    close(run(opt, optim.StepLR(opt, step_size=7, gamma=0.5)), per_group(lambda t: 0.5 ** (t // 7)))
    opt = make_opt()                                            # PyTorch's docs: 0.05 for 30 epochs, then 0.005
    lrs = run(opt, optim.StepLR(opt, 30), n=61)
    assert lrs[0][0] == lrs[29][0] == 0.1 and lrs[30][0] == pytest.approx(0.01) and lrs[60][0] == pytest.approx(1e-3)


def test_multistep_lr_counts_milestones_passed_and_repeats():
    opt = make_opt()
    got = run(opt, optim.MultiStepLR(opt, [20, 3, 10, 10], gamma=0.3))   # unsorted, 10 twice
    passed = lambda t: (t >= 3) + 2 * (t >= 10) + (t >= 20)
    close(got, per_group(lambda t: 0.3 ** passed(t)))
    assert got[9][0] == pytest.approx(0.03) and got[10][0] == pytest.approx(0.1 * 0.3 ** 3)


def test_exponential_lr():
    opt = make_opt()
    close(run(opt, optim.ExponentialLR(opt, gamma=0.9)), per_group(lambda t: 0.9 ** t))


def test_cosine_annealing_lr_follows_the_cosine_and_goes_on_past_t_max():
    opt = make_opt()
    got = run(opt, optim.CosineAnnealingLR(opt, T_max=12, eta_min=0.001))
    want = [[eta + (base - eta) * (1 + math.cos(math.pi * t / 12)) / 2 for base, eta in ((0.1, 0.001), (0.01, 0.001))]
            for t in range(N)]
    close(got, want)
    assert got[12] == pytest.approx([0.001, 0.001]) and got[24] == pytest.approx([0.1, 0.01])   # PyTorch's period


def test_linear_lr_warms_up_then_holds():
    opt = make_opt()
    got = run(opt, optim.LinearLR(opt, start_factor=0.25, end_factor=0.9, total_iters=8))
    close(got, per_group(lambda t: 0.25 + (0.9 - 0.25) * min(t, 8) / 8))
    opt = make_opt()
    defaults = run(opt, optim.LinearLR(opt), n=7)               # 1/3 -> 1 over 5 steps
    assert [g[0] for g in defaults] == pytest.approx([0.1 / 3 + 0.1 * (2 / 3) * min(t, 5) / 5 for t in range(7)])


def one_cycle(max_lr, total, pct=0.3, div=25.0, final_div=1e4, three_phase=False, cos=True, lo=0.85, hi=0.95):
    """PyTorch's documented 1cycle, written out: (lr, momentum) at each step 0..total-1."""
    start, end = max_lr / div, max_lr / div / final_div
    up = pct * total - 1
    if three_phase:
        phases = [(up, start, max_lr, hi, lo), (2 * pct * total - 2, max_lr, start, lo, hi),
                  (total - 1, start, end, hi, hi)]
    else:
        phases = [(up, start, max_lr, hi, lo), (total - 1, max_lr, end, lo, hi)]

    def anneal(a, b, f):
        return b + (a - b) / 2 * (1 + math.cos(math.pi * f)) if cos else a + (b - a) * f

    out = []
    for t in range(total):
        begin = 0.0
        for i, (stop, a, b, ma, mb) in enumerate(phases):
            if t <= stop or i == len(phases) - 1:
                f = (t - begin) / (stop - begin)
                out.append((anneal(a, b, f), anneal(ma, mb, f)))
                break
            begin = stop
    return out


def test_one_cycle_lr_cos_two_phases_with_momentum():
    opt = make_opt()
    sched = optim.OneCycleLR(opt, max_lr=[1.0, 0.5], total_steps=N)
    moms = []
    got = []
    for _ in range(N):
        got.append(sched.get_last_lr())
        moms.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    want = [[a[0], b[0]] for a, b in zip(one_cycle(1.0, N), one_cycle(0.5, N))]
    close(got, want)
    assert moms == pytest.approx([m for _, m in one_cycle(1.0, N)], rel=1e-12)
    # PyTorch 2.13.0 printed these (group 0, steps 0, 1, 8, 15, 22, 29)
    torch_lrs = [0.04, 0.076537824394582, 1.0, 0.750001, 0.250003, 4e-06]
    assert [got[t][0] for t in (0, 1, 8, 15, 22, 29)] == pytest.approx(torch_lrs, rel=1e-12, abs=1e-15)
    assert moms[:3] == pytest.approx([0.95, 0.946193976625564, 0.935355339059327], rel=1e-12)
    with pytest.raises(ValueError, match="total_steps is 30"):
        sched.step()                                           # step 30: once more than total_steps


def test_one_cycle_lr_three_phase_linear():
    opt = make_opt()
    sched = optim.OneCycleLR(opt, 1.0, total_steps=N, three_phase=True, anneal_strategy="linear")
    got = run(opt, sched)
    close([g[0] for g in got], [lr for lr, _ in one_cycle(1.0, N, three_phase=True, cos=False)])
    # PyTorch 2.13.0 printed these (steps 0, 4, 8, 12, 16, 17, 29)
    torch_lrs = [0.04, 0.52, 1.0, 0.52, 0.04, 0.036923384615385, 4e-06]
    assert [got[t][0] for t in (0, 4, 8, 12, 16, 17, 29)] == pytest.approx(torch_lrs, rel=1e-12, abs=1e-15)
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.95)


def test_one_cycle_lr_cycles_adams_beta1_and_takes_epochs():
    opt = make_opt("adamw")
    sched = optim.OneCycleLR(opt, 1.0, epochs=5, steps_per_epoch=6, pct_start=0.25)
    betas = []
    for _ in range(N):
        betas.append(opt.param_groups[0]["betas"])
        opt.step()
        sched.step() if len(betas) < N else None
    assert [b[0] for b in betas] == pytest.approx([m for _, m in one_cycle(1.0, N, pct=0.25)], rel=1e-12)
    assert all(b[1] == 0.999 for b in betas)                   # beta2 untouched
    assert betas[7][0] == pytest.approx(0.850121797487009, rel=1e-12)   # PyTorch 2.13.0


def test_one_cycle_lr_refuses_bad_arguments():
    opt = make_opt()
    with pytest.raises(ValueError, match="total_steps, or both epochs"):
        optim.OneCycleLR(opt, 1.0)
    with pytest.raises(ValueError, match="2 parameter groups"):
        optim.OneCycleLR(opt, [1.0], total_steps=10)
    with pytest.raises(ValueError, match="anneal_strategy"):
        optim.OneCycleLR(opt, 1.0, total_steps=10, anneal_strategy="cosine")
    with pytest.raises(ValueError, match="pct_start"):
        optim.OneCycleLR(opt, 1.0, total_steps=10, pct_start=1.5)
    p = tl.zeros(2, requires_grad=True)

    class NoMomentum(optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, dict(lr=0.1, weight_decay=0.0))
    with pytest.raises(ValueError, match="cycle_momentum=False"):
        optim.OneCycleLR(NoMomentum([p]), 1.0, total_steps=10)
    optim.OneCycleLR(NoMomentum([p]), 1.0, total_steps=10, cycle_momentum=False)


def test_sequential_lr_restarts_each_scheduler_at_its_milestone():
    opt = make_opt()
    warm = optim.LinearLR(opt, start_factor=0.1, total_iters=5)
    decay = optim.ExponentialLR(opt, gamma=0.8)
    cos = optim.CosineAnnealingLR(opt, T_max=10)
    sched = optim.SequentialLR(opt, [warm, decay, cos], milestones=[5, 12])
    got = run(opt, sched)

    def factor(t):
        if t < 5:
            return 0.1 + 0.9 * t / 5
        if t < 12:
            return 0.8 ** (t - 5)
        return (1 + math.cos(math.pi * (t - 12) / 10)) / 2
    close(got, per_group(factor))
    # PyTorch 2.13.0 printed these (group 0, steps 0, 4, 5, 6, 11, 12, 13, 22, 29)
    torch_lrs = [0.01, 0.082, 0.1, 0.08, 0.0262144, 0.1, 0.097552825814758, 0.0, 0.079389262614624]
    assert [got[t][0] for t in (0, 4, 5, 6, 11, 12, 13, 22, 29)] == pytest.approx(torch_lrs, rel=1e-12, abs=1e-15)
    assert cos.get_last_lr() == sched.get_last_lr() and cos.last_epoch == 30 - 12   # run() stepped 30 times


def test_sequential_lr_hands_over_one_cycles_momentum():
    opt = make_opt()
    warm = optim.LinearLR(opt, 0.5, 0.5, total_iters=1)     # half the lr for 3 steps
    cycle = optim.OneCycleLR(opt, 1.0, total_steps=10)
    sched = optim.SequentialLR(opt, [warm, cycle], milestones=[3])
    seen = []
    for _ in range(13):
        seen.append((sched.get_last_lr()[0], opt.param_groups[0]["momentum"]))
        opt.step()
        sched.step()
    want = one_cycle(1.0, 10)
    # PyTorch 2.13.0 gives 0.02, not 0.05: OneCycleLR sets initial_lr to max_lr / 25 = 0.04, which the warmup scales
    assert [lr for lr, _ in seen[:3]] == pytest.approx([0.02] * 3)
    assert [v for pair in seen[3:] for v in pair] == pytest.approx([v for pair in want for v in pair], rel=1e-12)


def test_sequential_lr_refuses_bad_arguments():
    opt, other = make_opt(), make_opt()
    a, b = optim.StepLR(opt, 3), optim.ExponentialLR(opt, 0.9)
    with pytest.raises(ValueError, match="2 schedulers need 1 milestones, got 2"):
        optim.SequentialLR(opt, [a, b], [3, 4])
    with pytest.raises(ValueError, match=r"schedulers\[1\]"):
        optim.SequentialLR(opt, [a, optim.StepLR(other, 3)], [3])
    with pytest.raises(ValueError, match="increasing"):
        optim.SequentialLR(opt, [a, b, optim.StepLR(opt, 2)], [5, 2])


@pytest.mark.parametrize("make", [
    lambda o: optim.StepLR(o, 4, 0.5),
    lambda o: optim.MultiStepLR(o, [2, 6]),
    lambda o: optim.ExponentialLR(o, 0.9),
    lambda o: optim.CosineAnnealingLR(o, 10, 1e-3),
    lambda o: optim.LinearLR(o, 0.2, total_iters=4),
    lambda o: optim.OneCycleLR(o, 1.0, total_steps=20),
    lambda o: optim.SequentialLR(o, [optim.LinearLR(o, 0.5, total_iters=3), optim.ExponentialLR(o, 0.7)], [3]),
], ids=["step", "multistep", "exp", "cosann", "linear", "onecycle", "sequential"])
def test_each_scheduler_resumes_from_its_json_state(make):
    opt, sched = make_opt(), None
    sched = make(opt)
    for _ in range(7):
        opt.step()
        sched.step()
    saved = json.loads(json.dumps(sched.state_dict()))
    opt2 = make_opt()
    sched2 = make(opt2)
    sched2.load_state_dict(saved)
    assert sched2.get_last_lr() == sched.get_last_lr() == [g["lr"] for g in opt2.param_groups]
    assert opt2.param_groups[0]["momentum"] == opt.param_groups[0]["momentum"]
    for _ in range(3):
        sched.step()
        sched2.step()
        assert sched2.get_last_lr() == sched.get_last_lr()


def test_bad_scheduler_arguments_name_the_argument():
    opt = make_opt()
    with pytest.raises(TypeError, match="step_size must be an int"):
        optim.StepLR(opt, 2.5)
    with pytest.raises(ValueError, match="step_size must be >= 1"):
        optim.StepLR(opt, 0)
    with pytest.raises(ValueError, match="gamma"):
        optim.ExponentialLR(opt, -0.5)
    with pytest.raises(ValueError, match="T_max must be >= 1"):
        optim.CosineAnnealingLR(opt, 0)
    with pytest.raises(ValueError, match="start_factor"):
        optim.LinearLR(opt, start_factor=0.0)
    with pytest.raises(ValueError, match="end_factor"):
        optim.LinearLR(opt, end_factor=1.5)
    with pytest.raises(TypeError, match="milestones"):
        optim.MultiStepLR(opt, 5)
    with pytest.raises(TypeError, match="expected an optimizer"):
        optim.StepLR([tl.zeros(2)], 3)
