"""The fused CUDA kernels (tinylm/cuda_kernels.py), checked without a GPU.

1. NVRTC compiles the whole kernel source for sm_80 and sm_90 with the options CuPy adds.
2. g++ builds the same source for the CPU (tests/cuda_harness), and every fused op, run
   through the core ops on the strict device with the kernels switched on, matches the
   generic NumPy path (the switch off) within float32 rounding, edge values included.
   Where CuPy finds a GPU, the same tests also run the kernels there against the generic CuPy path.
3. A deliberately broken kernel fails both: a compile error, and wrong numbers.
Skips, with the reason, where CuPy/NVRTC or g++ are missing (`.ci/kernels.sh` installs them).
"""
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinylm as tl
from tinylm import F, backend, cuda_kernels, ops, strict
from tinylm.optim import Adam, AdamW

sys.path.insert(0, str(Path(__file__).parent))
from cuda_harness import harness  # noqa: E402

EPS32 = float(np.finfo(np.float32).eps)
NO_NVRTC = harness.nvrtc_available()
NO_GXX = harness.gxx_available()
needs_nvrtc = pytest.mark.skipif(bool(NO_NVRTC), reason=NO_NVRTC)
needs_gxx = pytest.mark.skipif(bool(NO_GXX), reason=NO_GXX)
pytestmark = pytest.mark.filterwarnings("ignore:.*encountered:RuntimeWarning")  # the edge values overflow on purpose
EDGE = np.array([0.0, -0.0, 1e30, -1e30, 88.0, -88.0, 20.5, -20.5, np.inf, -np.inf, np.nan, 1e-3], np.float32)


# where the kernels run: on the CPU (g++ build, strict device arrays), and on a real GPU when there is one
KERNEL_DEVICES = ["strict"] + (["cuda:0"] if tl.gpu_available() else [])
DEV = "strict"                  # the device the helpers below make arrays on, set by the `target` fixture


@pytest.fixture(scope="module")
def cpu_launcher(tmp_path_factory):
    if NO_GXX:
        pytest.skip(NO_GXX)
    return harness.build(cuda_kernels.SOURCE, tmp_path_factory.mktemp("kernels"))


@pytest.fixture(params=KERNEL_DEVICES)
def target(request):
    """(launcher, array type) of a device the kernels run on; the helpers make arrays there."""
    global DEV
    DEV = request.param
    if DEV == "strict":
        return request.getfixturevalue("cpu_launcher"), strict.StrictArray
    import cupy
    return cuda_kernels.CupyLauncher(), cupy.ndarray


@pytest.fixture
def fused(target):
    """Run `fn()` with the kernels off and on; both results, as NumPy."""
    return lambda fn, seed=0: _off_and_on(fn, *target, seed)


def _off_and_on(fn, launcher, array_type, seed=0):
    launched = []

    def counted(*args):
        launched.append(args[0])
        launcher(*args)
    results = []
    for on in (False, True):
        cuda_kernels.use_fused_kernels(on, launcher=counted, array_type=array_type)
        tl.manual_seed(seed)
        try:
            out = fn()
        finally:
            cuda_kernels.use_fused_kernels(False)
        results.append([backend.to_numpy(getattr(o, "data", o)) if o is not None else None for o in out])
    assert launched, "the fused path launched no kernel"
    return results


def assert_close32(actual, expected, ulps=8, what="", scale=None):
    """|actual - expected| <= ulps float32 roundings of (|expected| + scale); nan and inf exactly where expected.

    `scale` is the magnitude the values were computed from: by default the largest finite
    |expected| of each row (the last axis, what a row reduction mixes); elementwise ops pass
    their own (|x| for GELU's output, |g| for its gradient).
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, (what, actual.shape, expected.shape)
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg=f"{what}: nan positions")
    np.testing.assert_array_equal(actual[~finite], expected[~finite], err_msg=f"{what}: non-finite values")
    magnitude = np.abs(np.where(finite, expected, 0)).astype(np.float64)
    if scale is None:
        scale = magnitude.max(axis=-1, keepdims=True) if magnitude.ndim else magnitude
    bound = ulps * EPS32 * (magnitude + np.broadcast_to(np.abs(scale), magnitude.shape))
    with np.errstate(invalid="ignore"):                 # inf - inf where both are inf: checked above
        err = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    bad = finite & ~(err <= bound)
    assert not bad.any(), (f"{what}: {bad.sum()} of {bad.size} values off by more than {ulps} float32 roundings; "
                           f"first at {np.argwhere(bad)[0].tolist()}: {actual[bad][0]!r} vs {expected[bad][0]!r}")


def _dev(a, requires_grad=False):
    return tl.Tensor(np.asarray(a), device=DEV, requires_grad=requires_grad)


def _on_dev(a):
    return backend.to_device(np.asarray(a), DEV)


def _inputs(shape, seed, scale=3.0, edge=True):
    """Random float32 values, with EDGE values written over the first ones."""
    x = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)
    if edge:
        flat = x.reshape(-1)
        flat[:min(len(EDGE), flat.size)] = EDGE[:flat.size]
    return x


def _forward_backward(make, *xs, grad_seed=1):
    """make(*tensors) -> y; returns y and every input's gradient for a random output gradient."""
    ts = [_dev(x, requires_grad=True) for x in xs]
    y = make(*ts)
    g = np.random.default_rng(grad_seed).standard_normal(y.shape).astype(np.float32)
    y.backward(_dev(g))
    return [y] + [t.grad for t in ts]


# ---------------------------------------------------------------------------- 1. NVRTC
@needs_nvrtc
@pytest.mark.parametrize("arch", [80, 90])
def test_every_kernel_compiles_with_nvrtc(arch):
    cubin = harness.nvrtc_compile(cuda_kernels.SOURCE, arch, cuda_kernels.OPTIONS)
    missing = [k for k in cuda_kernels.KERNELS if k.encode() not in cubin]
    assert not missing, f"kernels not in the sm_{arch} cubin: {missing}"
    assert sorted(harness.kernels_of(cuda_kernels.SOURCE)) == sorted(cuda_kernels.KERNELS)


# ---------------------------------------------------------------------------- 2. numbers, on the CPU
def check_gelu(both):
    x = _inputs((7, 53), seed=0)
    g = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)   # _forward_backward's
    plain, fast = both(lambda: _forward_backward(lambda t: F.gelu(t, approximate="tanh"), x))   # GPT-2's form
    for name, a, b, scale in zip(("y", "grad"), fast, plain, (np.where(np.isfinite(x), x, 0), g)):
        assert_close32(a, b, what=f"gelu {name}", scale=scale)


def test_gelu_tanh_matches_generic(fused):
    check_gelu(fused)


def test_gelu_erf_matches_float64_formula(target):
    kernels = cuda_kernels._Fused(*target)
    x = _inputs((5, 41), seed=2)
    g = np.random.default_rng(3).standard_normal(x.shape).astype(np.float32)
    y = backend.to_numpy(kernels.gelu_erf(_on_dev(x)))
    gx = backend.to_numpy(kernels.gelu_erf_backward(_on_dev(x), _on_dev(g)))
    erf = np.vectorize(math.erf, otypes=[np.float64])
    with np.errstate(invalid="ignore", over="ignore"):
        x64 = x.astype(np.float64)
        cdf = 0.5 * (1.0 + erf(x64 / math.sqrt(2.0)))
        y_ref = (x64 * cdf).astype(np.float32)
        gx_ref = (g * (cdf + x64 * np.exp(-0.5 * x64 * x64) / math.sqrt(2.0 * math.pi))).astype(np.float32)
    assert_close32(y, y_ref, what="gelu_erf y", scale=np.where(np.isfinite(x), x, 0))
    assert_close32(gx, gx_ref, what="gelu_erf grad", scale=g)


def check_layer_norm(both, c=300, affine=True):
    x = _inputs((3, 5, c), seed=4, edge=False)
    x[0, 0] = 7.0                                       # a constant row: variance 0
    x[0, 1, :len(EDGE)] = EDGE[:c]                      # inf and nan in one row
    x[0, 2] *= 1e15                                     # squares near float32's top
    w = _inputs((c,), seed=5, edge=False)
    b = _inputs((c,), seed=6, edge=False)
    if affine:
        run = lambda: _forward_backward(lambda x, w, b: ops.LayerNorm.apply(x, w, b, eps=1e-5), x, w, b)  # noqa: E731
    else:
        run = lambda: _forward_backward(lambda x: ops.LayerNorm.apply(x, None, None, eps=1e-5), x)  # noqa: E731
    plain, fast = both(run)
    rows = np.ones((3, 5), bool)
    rows[0, 1] = False                                  # nan row: compared on its own below
    for name, a, b in zip(("y", "gx", "gw", "gb"), fast, plain):
        if name in ("gw", "gb"):                        # sums over every row, the nan row included
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
            a, b = _layer_norm_param_grad(run, name, both)
        elif a.ndim == 3:
            np.testing.assert_array_equal(np.isnan(a[0, 1]), np.isnan(b[0, 1]), err_msg=f"layer_norm {name} nan row")
            a, b = a[rows], b[rows]
        assert_close32(a, b, ulps=16, what=f"layer_norm {name}")


def _layer_norm_param_grad(run, name, both):
    """Weight/bias gradients without the nan row (which makes them all nan)."""
    x = _inputs((3, 5, 300), seed=4, edge=False)
    w, b = _inputs((300,), seed=5, edge=False), _inputs((300,), seed=6, edge=False)
    plain, fast = both(lambda: _forward_backward(lambda x, w, b: ops.LayerNorm.apply(x, w, b, eps=1e-5), x, w, b))
    i = {"gw": 2, "gb": 3}[name]
    return fast[i], plain[i]


def test_layer_norm_matches_generic(fused):
    check_layer_norm(fused)
    check_layer_norm(fused, c=7, affine=False)


@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_matches_generic(fused, axis):
    x = _inputs((6, 130), seed=7, edge=False)
    x[0, :3] = [np.inf, 1.0, 2.0]                       # inf - inf: a nan row, as NumPy
    x[1, :] = -np.inf                                   # all -inf: nan (the Softmax op has no mask rule)
    x[2, :3] = [1e30, -1e30, 0.0]
    x[3, 5] = np.nan
    plain, fast = fused(lambda: _forward_backward(lambda t: t.softmax(axis), x))
    for name, a, b in zip(("y", "grad"), fast, plain):
        assert_close32(a, b, what=f"softmax axis {axis} {name}")


@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
@pytest.mark.parametrize("mask_kind", ["causal", "broadcast", "none"])
def test_attention_matches_generic(fused, dropout_p, mask_kind):
    B, nh, T, S, hs = 2, 3, 5, 9, 8
    q, k, v = (_inputs(s, seed=i, edge=False) for i, s in enumerate([(B, nh, T, hs), (B, nh, S, hs), (B, nh, S, hs)]))
    if mask_kind == "causal":
        mask = ops.causal_mask(T, S, DEV, additive=True)
    elif mask_kind == "broadcast":                      # (1, S): not the kernel's (T, S), added first
        m = np.zeros((1, S), np.float32)
        m[0, 2] = -np.inf
        mask = _on_dev(m)
    else:
        mask = None
    if mask is not None:                                # a row masked everywhere: zeros, not nan
        m = backend.to_numpy(mask).copy() if mask_kind == "causal" else np.zeros((T, S), np.float32)
        m[1, :] = -np.inf
        mask = _on_dev(m) if mask_kind != "broadcast" else mask
    make = lambda q, k, v: ops.Attention.apply(q, k, v, mask, scale=1 / math.sqrt(hs), dropout_p=dropout_p)  # noqa: E731
    plain, fast = fused(lambda: _forward_backward(make, q, k, v))
    for name, a, b in zip(("out", "gq", "gk", "gv"), fast, plain):
        # the gradients are sums of products that cancel (softmax backward, then a matmul): their
        # rounding is that of the whole array's magnitude (no edge values here), not each row's
        assert_close32(a, b, ulps=16, what=f"attention {name}", scale=np.abs(b).max())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_generic(fused, reduction):
    n, v = 12, 65
    logits = _inputs((n, v), seed=8, edge=False)
    logits[0, :3] = [1e30, -1e30, 0.0]
    logits[1, 4] = -np.inf
    targets = np.random.default_rng(9).integers(0, v, n)
    targets[[2, 5]] = -100                              # ignored rows
    targets[1] = 3

    def run():
        t = _dev(logits, requires_grad=True)
        loss = F.cross_entropy(t, tl.Tensor(targets, device=DEV), reduction=reduction)
        g = np.random.default_rng(1).standard_normal(loss.shape).astype(np.float32)
        loss.backward(_dev(g))
        return [loss, t.grad]
    plain, fast = fused(run)
    for name, a, b in zip(("loss", "grad"), fast, plain):
        assert_close32(a, b, ulps=16, what=f"cross_entropy {reduction} {name}")


def test_cross_entropy_refuses_a_target_outside_the_vocabulary(target):
    cuda_kernels.use_fused_kernels(True, launcher=target[0], array_type=target[1])
    try:
        with pytest.raises(ValueError, match=r"target id 70 is outside the vocabulary \[0, 65\)"):
            F.cross_entropy(_dev(_inputs((4, 65), 0, edge=False)), tl.Tensor(np.array([1, 70, 2, 3]), device=DEV))
    finally:
        cuda_kernels.use_fused_kernels(False)


@pytest.mark.parametrize("opt_class,wd", [(AdamW, 0.1), (Adam, 0.05), (Adam, 0.0)])
def test_adam_step_matches_generic(fused, opt_class, wd):
    w0 = _inputs((37, 11), seed=10, edge=False)
    grads = [_inputs((37, 11), seed=11 + i, edge=False) for i in range(3)]

    def run():
        p = tl.nn.Parameter(_dev(w0))
        opt = opt_class([p], lr=1e-2, weight_decay=wd)
        for g in grads:
            p.grad = _on_dev(g)
            opt.step()
        return [p, opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"]]
    plain, fast = fused(run)
    for name, a, b in zip(("w", "m", "v"), fast, plain):
        assert_close32(a, b, ulps=16, what=f"{opt_class.__name__} {name}")


def test_a_gpt_training_step_matches_generic(fused):
    cfg = tl.GPTConfig(vocab_size=29, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.1)
    ids = np.random.default_rng(12).integers(0, 29, (3, 17))

    def run():  # the loss and every gradient (Adam has its own test: it turns rounding noise, such as the
        model = tl.GPT(cfg, device=DEV)  # key bias's gradient, which is 0 in exact arithmetic, into steps of lr)
        x, y = tl.Tensor(ids[:, :-1], device=DEV), tl.Tensor(ids[:, 1:], device=DEV)
        _, loss = model(x, y)
        loss.backward()
        return [loss] + [p.grad for p in model.parameters()]
    plain, fast = fused(run)
    assert len(fast) == len(plain)
    for i, (a, b) in enumerate(zip(fast, plain)):
        assert_close32(a, b, ulps=64, what=f"GPT step output {i}")


# ---------------------------------------------------------------------------- 3. a broken kernel fails
BROKEN_SYNTAX = cuda_kernels.SOURCE.replace("y[i] = v / d;", "y[i] = v / dd;", 1)
BROKEN_GELU = cuda_kernels.SOURCE.replace("d = expf(fminf(d, 88.0f)) + 1.0f;", "d = expf(fminf(d, 88.0f)) + 1.001f;", 1)
BROKEN_SUM = cuda_kernels.SOURCE.replace("if (t < s) buf[t] += buf[t + s];", "if (t < s / 2) buf[t] += buf[t + s];", 1)


def test_the_broken_sources_differ_from_the_real_one():
    assert len({cuda_kernels.SOURCE, BROKEN_SYNTAX, BROKEN_GELU, BROKEN_SUM}) == 4


@needs_nvrtc
def test_nvrtc_reports_a_broken_kernel():
    with pytest.raises(harness.NVRTCCompileError, match="identifier \"dd\" is undefined"):
        harness.nvrtc_compile(BROKEN_SYNTAX, 90, cuda_kernels.OPTIONS)


@needs_gxx
def test_gxx_reports_a_broken_kernel(tmp_path):
    with pytest.raises(RuntimeError, match="dd. was not declared"):
        harness.build(BROKEN_SYNTAX, tmp_path)


@needs_gxx
@pytest.mark.parametrize("source,check", [(BROKEN_GELU, check_gelu), (BROKEN_SUM, check_layer_norm)],
                         ids=["gelu body", "block sum"])
def test_wrong_numbers_from_a_broken_kernel_are_caught(tmp_path, source, check, cpu_launcher):
    global DEV
    DEV = "strict"
    broken = harness.build(source, tmp_path)
    check(lambda fn, seed=0: _off_and_on(fn, cpu_launcher, strict.StrictArray, seed))    # the real kernels pass
    with pytest.raises(AssertionError):
        check(lambda fn, seed=0: _off_and_on(fn, broken, strict.StrictArray, seed))


# ---------------------------------------------------------------------------- the switch
def test_the_switch_is_off_by_default_and_the_core_never_imports_the_kernels():
    code = ("import tinylm; from tinylm import ops, optim; "
            "print(tinylm.cuda_kernels.enabled(), tinylm.use_fused_kernels is tinylm.cuda_kernels.use_fused_kernels, "
            "ops.Gelu.forward.__module__, optim.Adam._update.__module__)")
    env = {k: v for k, v in os.environ.items() if k != "TINYLM_FUSED"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["False", "True", "tinylm.ops", "tinylm.optim"]
    pkg = Path(tl.__file__).parent                     # only the package's __init__ imports them (the core never)
    for path in sorted(pkg.rglob("*.py")):
        if path.relative_to(pkg).as_posix() in ("__init__.py", "cuda_kernels.py"):
            continue
        imports = re.findall(r"^\s*(?:from|import)\b.*cuda_kernels.*$", path.read_text(), re.M)
        assert not imports, f"{path.relative_to(pkg.parent)} imports the kernels: {imports}"


def test_the_switch_routes_float32_arrays_of_its_type_and_puts_the_generic_methods_back(cpu_launcher):
    generic = {(owner, attr): getattr(owner, attr) for owner, attr, _, _ in cuda_kernels._ROUTES}
    launched = []
    cuda_kernels.use_fused_kernels(True, launcher=lambda *a: launched.append(a[0]) or cpu_launcher(*a),
                                   array_type=strict.StrictArray)
    try:
        assert cuda_kernels.enabled()
        assert all(getattr(owner, attr) is not generic[(owner, attr)] for owner, attr in generic)
        for dtype in (np.float64, np.float32):          # float64 strict arrays: the generic path
            tl.functional.gelu(tl.Tensor(np.ones(3, dtype), device="strict"), approximate="tanh")
        tl.functional.gelu(tl.Tensor(np.ones(3, np.float32)), approximate="tanh")   # NumPy: generic too
        assert launched == ["gelu_tanh_fwd"]
        assert cuda_kernels.use_fused_kernels(True, launcher=cpu_launcher, array_type=strict.StrictArray) is True
    finally:
        assert cuda_kernels.use_fused_kernels(False) is True
    assert not cuda_kernels.enabled()
    assert all(getattr(owner, attr) is generic[(owner, attr)] for owner, attr in generic)


def test_tinylm_fused_must_be_0_or_1():
    env = dict(os.environ, TINYLM_FUSED="yes")
    out = subprocess.run([sys.executable, "-c", "import tinylm"], capture_output=True, text=True, env=env)
    assert out.returncode != 0 and "TINYLM_FUSED must be 0 or 1, got 'yes'" in out.stderr


def test_tinylm_fused_without_cupy_warns_and_stays_off():
    env = dict(os.environ, TINYLM_FUSED="1")
    code = "import sys; sys.modules['cupy'] = None; import tinylm; print(tinylm.cuda_kernels.enabled())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["False"]
    assert "TINYLM_FUSED=1 ignored: use_fused_kernels(True) needs CuPy" in out.stderr
