"""Hostile files, tried as an attacker would: each loader gives a ValueError (TypeError for a wrong
type) naming the file and the field, in bounded time and memory; and nothing is lost when a
process is killed while saving (best.npz, GPT-2 folders).

Cases that could allocate gigabytes if a check were missing run in a child process (started with
sys.executable) under a memory cap (resource.RLIMIT_AS) and a time limit. The fuzz tests over
every loader are in tests/test_fuzz_loaders.py.
"""
import csv
import io
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import tinylm as tl
from tinylm import optim
from tinylm.backend import to_numpy
from tinylm.checkpoint import load_checkpoint, save_checkpoint
from tinylm.data import TokenDataset
from tinylm.model import GPT, GPTConfig
from tinylm.safetensors import read_safetensors, write_safetensors
from tinylm.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
TINY = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
needs_rlimit = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc: Linux only")


def run_capped(code, extra_mb=512, timeout=60, env=None):
    """Run `code` in a fresh interpreter allowed `extra_mb` MiB of address space beyond what importing
    tinylm took, for at most `timeout` s. Returns the CompletedProcess (stdout, stderr as text)."""
    preamble = textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {str(REPO)!r})
        import numpy as np, tinylm
        def _vm():
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (_vm() + {extra_mb} * 2**20, resource.RLIM_INFINITY))
    """)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-c", preamble + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def expect_error(code, path, kinds=("ValueError",), **kw):
    """`code` (which sets up and calls one loader) raises one of `kinds` whose message names `path`."""
    r = run_capped(f"""
        try:
{textwrap.indent(textwrap.dedent(code), ' ' * 12)}
        except Exception as e:
            print("RAISED", type(e).__name__, str(e).replace(chr(10), " "))
        else:
            print("RAISED nothing")
    """, **kw)
    assert r.returncode == 0, f"the child died (rc {r.returncode}): {r.stderr[-2000:]}"
    line = r.stdout.strip().splitlines()[-1]
    assert line.split()[1] in kinds and str(path) in line, line[:500]
    return line


def _deep(n):
    return "[" * n + "]" * n


def _safetensors(path, header, data=b""):
    text = (header if isinstance(header, str) else json.dumps(header)).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


# ---------------------------------------------------------------------------- safetensors
@pytest.mark.parametrize("case", ["deep_header", "shape_5000_digits", "shape_2_64_by_0", "dims_65",
                                  "offsets_5000_digits", "header_not_utf8"])
def test_safetensors_hostile_headers_name_the_file(tmp_path, case):
    p = tmp_path / f"{case}.safetensors"
    if case == "deep_header":
        _safetensors(p, '{"w": ' + _deep(5000) + "}")
    elif case == "shape_5000_digits":
        _safetensors(p, '{"w": {"dtype": "F32", "shape": [' + "9" * 5000 + '], "data_offsets": [0, 0]}}')
    elif case == "offsets_5000_digits":
        _safetensors(p, '{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, ' + "9" * 5000 + "]}}")
    elif case == "shape_2_64_by_0":
        _safetensors(p, {"w": {"dtype": "F32", "shape": [2**64, 0], "data_offsets": [0, 0]}})
    elif case == "dims_65":
        _safetensors(p, {"w": {"dtype": "F32", "shape": [1] * 65, "data_offsets": [0, 4]}}, bytes(4))
    elif case == "header_not_utf8":
        text = b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "\xff": 1}'
        p.write_bytes(struct.pack("<Q", len(text)) + text + bytes(4))
    with pytest.raises(ValueError, match="not a valid safetensors file") as e:
        read_safetensors(p)
    assert str(p) in str(e.value)


def test_safetensors_64_dims_still_load(tmp_path):
    """The limit is NumPy's: 64 dimensions load, 65 are refused (test above)."""
    p = _safetensors(tmp_path / "d64.safetensors", {"w": {"dtype": "F32", "shape": [1] * 64, "data_offsets": [0, 4]}},
                     np.float32(2.5).tobytes())
    assert read_safetensors(p)["w"].reshape(()) == 2.5


def test_safetensors_shape_must_match_the_bytes_present(tmp_path):
    p = _safetensors(tmp_path / "lie.safetensors", {"w": {"dtype": "F32", "shape": [10**6, 10**6],
                                                         "data_offsets": [0, 16]}}, bytes(16))
    with pytest.raises(ValueError, match=r"lie\.safetensors.*expected 4000000000000 bytes"):
        read_safetensors(p)


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_written_files_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        write_safetensors(tmp_path / "a.safetensors", {"w": np.zeros(2, np.float32)})
        save_checkpoint(tmp_path / "c.npz", {"w": np.zeros(2, np.float32)}, seed=0)
        GPT(TINY).save_pretrained(tmp_path / "hf")
    finally:
        os.umask(old)
    want = 0o666 & ~mask
    for f in (tmp_path / "a.safetensors", tmp_path / "c.npz", tmp_path / "hf" / "config.json",
              tmp_path / "hf" / "model.safetensors"):
        assert f.stat().st_mode & 0o777 == want, (f, oct(f.stat().st_mode))
    assert (tmp_path / "hf").stat().st_mode & 0o777 == 0o777 & ~mask


# ---------------------------------------------------------------------------- checkpoints
def _npy(shape, dtype="<f4", data=b""):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue() + data


def _meta_bytes(**over):
    meta = {"format": "tinylm-checkpoint", "version": 1, "step": 0, "seed": 0, "model": ["w"], "config": {},
            "tokenizer": None, "extra": {}, "optimizer": None, **over}
    return _npy((len(json.dumps(meta)),), "|u1", json.dumps(meta).encode())


def _zip(path, members, method=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", method) as z:
        for name, raw in members.items():
            z.writestr(name + ".npy", raw)
    return path


@needs_rlimit
@pytest.mark.parametrize("count", [10**13, 10**8])
def test_checkpoint_member_claiming_more_than_it_holds_is_refused_before_allocating(tmp_path, count):
    """A 1 KB file whose .npy header claims 10**13 floats (36 TiB), or 10**8 (400 MB): refused from
    the header, under a 64 MiB cap on new memory."""
    p = _zip(tmp_path / "lie.npz", {"meta.json": _meta_bytes(), "model/w": _npy((count,), "<f4", bytes(64))})
    assert p.stat().st_size < 2048
    expect_error(f"tinylm.checkpoint.load_checkpoint({str(p)!r})", p, extra_mb=64)


def _deflate_bomb(path, inflated=2**30):
    """An .npz whose one member is a float32 .npy of `inflated` bytes of zeros, deflated to about 1 MB."""
    header = _npy(((inflated - 128) // 4,), "<f4")
    assert len(header) == 128
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = 2**20
    head = c.compress(header + bytes(chunk - 128)) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(chunk)) + c.flush(zlib.Z_FULL_FLUSH)
    assert c.compress(bytes(chunk)) + c.flush(zlib.Z_FULL_FLUSH) == block   # history reset: the same bytes
    body = head + block * (inflated // chunk - 1) + c.flush()
    crc = zlib.crc32(header + bytes(chunk - 128))
    zeros = bytes(chunk)
    for _ in range(inflated // chunk - 1):
        crc = zlib.crc32(zeros, crc)
    name = b"model/w.npy"
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(body), inflated, len(name), 0)
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(body), inflated,
                          len(name), 0, 0, 0, 0, 0, 0)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central) + len(name),
                      len(local) + len(name) + len(body), 0)
    path.write_bytes(local + name + body + central + name + end)
    return path


@needs_rlimit
def test_checkpoint_deflate_bomb_is_refused(tmp_path):
    """A 1 MB deflate member that inflates to 1 GiB: refused (more than 100x), under a 256 MiB cap."""
    p = _deflate_bomb(tmp_path / "bomb.npz")
    assert p.stat().st_size < 2 * 2**20
    with zipfile.ZipFile(p) as z:                          # a well-formed zip: the bomb is real
        assert z.infolist()[0].file_size == 2**30
    line = expect_error(f"tinylm.checkpoint.load_checkpoint({str(p)!r})", p, extra_mb=256, timeout=120)
    assert "100x" in line


def test_checkpoint_compressed_members_within_the_ratio_load(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(100).astype(np.float32)
    p = tmp_path / "c.npz"
    save_checkpoint(p, {"w": w}, seed=0)
    with zipfile.ZipFile(p) as z:
        members = {i.filename[:-4]: z.read(i) for i in z.infolist()}
    _zip(p, members, zipfile.ZIP_DEFLATED)
    np.testing.assert_array_equal(load_checkpoint(p).model["w"], w)


def test_checkpoint_deep_meta_is_refused(tmp_path):
    raw = ('{"format": "tinylm-checkpoint", "version": 1, "extra": ' + _deep(5000) + "}").encode()
    p = _zip(tmp_path / "deep.npz", {"meta.json": _npy((len(raw),), "|u1", raw)})
    with pytest.raises(ValueError, match="nested deeper") as e:
        load_checkpoint(p)
    assert str(p) in str(e.value)


# ---------------------------------------------------------------------------- optimizer and train state
def _adam_state():
    tl.manual_seed(0)
    w = tl.randn(3, 2, requires_grad=True)
    opt = optim.AdamW([w], lr=0.1)
    w.grad = tl.randn(3, 2).data
    opt.step()
    sd = opt.state_dict()
    return optim.AdamW([w], lr=0.1), sd, w


@pytest.mark.parametrize("edit,field,kind", [
    (lambda sd: sd["state"][0].pop("exp_avg"), "exp_avg", ValueError),
    (lambda sd: sd["state"][0].update(step=-1), r"\['step'\]", ValueError),
    (lambda sd: sd["state"][0].update(step=2.5), r"\['step'\]", TypeError),
    (lambda sd: sd["state"][0].update(step=10**400), r"\['step'\]", ValueError),
    (lambda sd: sd["param_groups"].__setitem__(0, [0]), r"param_groups\[0\]", TypeError),
    (lambda sd: sd["param_groups"].__setitem__(0, "lr"), r"param_groups\[0\]", TypeError),
    (lambda sd: sd["param_groups"][0].update(params=None), r"param_groups\[0\]\['params'\]", ValueError),
    (lambda sd: sd["state"].__setitem__(0, [1, 2]), r"state\[0\]", TypeError),
    (lambda sd: sd["state"][0].update(exp_avg="x"), "exp_avg", TypeError),
    (lambda sd: sd.update(state={"0": {}}), "'state' must be a list", TypeError),
])
def test_malformed_optimizer_state_names_the_field(edit, field, kind):
    opt, sd, w = _adam_state()
    edit(sd)
    with pytest.raises(kind, match=field):
        opt.load_state_dict(sd)
        w.grad = np.ones((3, 2), np.float32)
        opt.step()                                        # where KeyError / ZeroDivisionError came from


def _trained_run(tmp_path, **over):
    tl.manual_seed(0)
    model = GPT(TINY)
    data = TokenDataset((np.arange(400) * 7) % 11).split(0.9)
    cfg = TrainConfig(**{**dict(max_iters=2, batch_size=2, lr=1e-2, min_lr=1e-3, warmup_iters=0, eval_interval=2,
                                eval_iters=1, log_interval=1, out_dir=str(tmp_path), seed=3, plot=False), **over})
    train(model, data, cfg, progress=False)
    return model, data, cfg


@pytest.mark.parametrize("what", ["no_exp_avg", "step_-1", "group_not_a_dict", "train_config_a_list",
                                  "bad_evals_a_str", "best_val_loss_a_list"])
def test_resume_from_a_malformed_state_names_the_file_and_field(tmp_path, what):
    model, data, cfg = _trained_run(tmp_path)
    last = tmp_path / "last.npz"
    ck = load_checkpoint(last)
    opt_state, extra = ck.optimizer, ck.extra
    if what == "no_exp_avg":
        del opt_state["state"][0]["exp_avg"]
    elif what == "step_-1":
        for st in opt_state["state"]:
            st["step"] = -1
    elif what == "group_not_a_dict":
        opt_state["param_groups"][0] = ["params"]
    elif what == "train_config_a_list":
        extra["train_config"] = [1, 2]
    elif what == "bad_evals_a_str":
        extra["bad_evals"] = "3"
    elif what == "best_val_loss_a_list":
        extra["best_val_loss"] = [1.0]
    save_checkpoint(last, ck.model, opt_state, ck.config, ck.tokenizer, step=ck.step, extra=extra, seed=ck.seed)
    field = {"no_exp_avg": "exp_avg", "step_-1": "step", "group_not_a_dict": r"param_groups\[0\]",
             "train_config_a_list": "train_config", "bad_evals_a_str": "bad_evals",
             "best_val_loss_a_list": "best_val_loss"}[what]
    with pytest.raises((ValueError, TypeError), match=field) as e:
        train(GPT(TINY), data, TrainConfig(**{**cfg.__dict__, "max_iters": 4}), resume=True, progress=False)
    assert str(last) in str(e.value)


# ---------------------------------------------------------------------------- GPT-2 folders
def _folder(tmp_path, **config_over):
    d = tmp_path / "gpt2"
    GPT(TINY).save_pretrained(d)
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(config_over)
    (d / "config.json").write_text(json.dumps(cfg))
    return d


@needs_rlimit
def test_from_pretrained_checks_n_layer_against_the_weights_before_building(tmp_path):
    """n_layer 100000 beside 1-layer weights: refused at once (a 64 MiB cap, 30 s), not 100,000 blocks built."""
    d = _folder(tmp_path, n_layer=100000)
    line = expect_error(f"tinylm.GPT.from_pretrained({str(d)!r})", d, extra_mb=64, timeout=30)
    assert "n_layer" in line


@needs_rlimit
@pytest.mark.parametrize("key", ["vocab_size", "n_positions", "n_embd"])
def test_from_pretrained_refuses_huge_sizes_before_building(tmp_path, key):
    d = _folder(tmp_path, **{key: 10**9 if key != "n_embd" else 2 * 10**8, "n_head": 2})
    line = expect_error(f"tinylm.GPT.from_pretrained({str(d)!r})", d, extra_mb=64, timeout=30)
    assert key in line


@pytest.mark.parametrize("key,value,kind", [
    ("layer_norm_epsilon", "x", TypeError), ("layer_norm_epsilon", [1e-5], TypeError),
    ("n_layer", "1", TypeError), ("n_layer", 1.0, TypeError), ("n_layer", True, TypeError),
    ("n_layer", 0, ValueError), ("n_head", -2, ValueError), ("vocab_size", 10**30, ValueError),
    ("n_embd", None, TypeError), ("n_inner", "32", TypeError), ("scale_attn_weights", "yes", TypeError),
    ("activation_function", 5, TypeError), ("n_head", 3, ValueError),
])
def test_from_pretrained_checks_each_config_field(tmp_path, key, value, kind):
    d = _folder(tmp_path, **{key: value})
    with pytest.raises(kind, match=key) as e:
        GPT.from_pretrained(d)
    assert str(d / "config.json") in str(e.value)


@pytest.mark.parametrize("content", [b'{"n_layer": 1, "name": "\xff\xfe"}', b"\xef\xbb\xbf\xff",
                                     ("[" * 5000 + "]" * 5000).encode(), b'{"n_layer": ' + b"9" * 5000 + b"}"])
def test_from_pretrained_refuses_config_that_is_not_json_text(tmp_path, content):
    d = _folder(tmp_path)
    (d / "config.json").write_bytes(content)
    with pytest.raises(ValueError) as e:
        GPT.from_pretrained(d)
    assert str(d / "config.json") in str(e.value)


def test_from_pretrained_refuses_weights_of_the_wrong_kind(tmp_path):
    d = _folder(tmp_path)
    st = {k: np.array(v) for k, v in read_safetensors(d / "model.safetensors").items()}
    ints = {**st, "transformer.wte.weight": st["transformer.wte.weight"].astype(np.int32)}
    write_safetensors(d / "model.safetensors", ints)
    with pytest.raises(ValueError, match="wte.weight.*int32"):
        GPT.from_pretrained(d)
    extra = {**st, "transformer.h.0.attn.extra": np.zeros(2, np.float32)}
    write_safetensors(d / "model.safetensors", extra)
    with pytest.raises(ValueError, match="unexpected keys: h.0.attn.extra"):
        GPT.from_pretrained(d)
    huge = {**st, "transformer.h." + "9" * 5000 + ".ln_1.weight": np.zeros(8, np.float32)}   # a 5,000-digit layer
    write_safetensors(d / "model.safetensors", huge)
    with pytest.raises(ValueError, match="unexpected keys: h.999") as e:
        GPT.from_pretrained(d)
    assert str(d) in str(e.value)


def test_hub_expected_shapes_match_the_model():
    from tinylm.hub import CONV1D, expected_shapes
    cfg = GPTConfig(vocab_size=13, block_size=5, n_layer=3, n_head=2, n_embd=8)
    model = {k: (v.shape[::-1] if k.endswith(CONV1D) else v.shape) for k, v in GPT(cfg).state_dict().items()}
    model.pop("lm_head.weight", None)                     # tied to wte
    assert expected_shapes(cfg) == model


# ---------------------------------------------------------------------------- nothing lost
_KILL_TRAIN = """
import os, signal, sys
import numpy as np
import tinylm as tl, tinylm.train as T
from tinylm.data import TokenDataset
from tinylm.model import GPT, GPTConfig
out, kill_after, max_iters = sys.argv[1], int(sys.argv[2]), 4
real, saves = T.save_checkpoint, []
def save(path, *a, step=0, **k):
    real(path, *a, step=step, **k)
    if step == max_iters:
        saves.append(path)
        if len(saves) == kill_after:                  # the final evaluation's save number `kill_after` is done
            os.kill(os.getpid(), signal.SIGKILL)
T.save_checkpoint = save
tl.manual_seed(0)
model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
data = TokenDataset(np.arange(400) % 11).split(0.9)
cfg = T.TrainConfig(max_iters=max_iters, batch_size=4, lr=3e-2, min_lr=3e-3, warmup_iters=0, eval_interval=4,
                    eval_iters=2, out_dir=out, seed=1, plot=False)
T.train(model, data, cfg, resume=len(sys.argv) > 3, progress=False)
"""


@pytest.mark.parametrize("kill_after", [1, 2])
def test_best_npz_survives_a_kill_at_the_final_evaluation(tmp_path, kill_after):
    """kill -9 right after the first (or second) checkpoint of the final evaluation is written; a
    resumed run then finishes, and best.npz holds the final, best model."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    script = tmp_path / "run.py"
    script.write_text(_KILL_TRAIN)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(script), str(out), str(kill_after)], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    r = subprocess.run([sys.executable, str(script), str(out), "0", "resume"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    best, last = load_checkpoint(out / "best.npz"), load_checkpoint(out / "last.npz")
    with open(out / "log.csv") as f:
        val = {int(r["step"]): float(r["val_loss"]) for r in csv.DictReader(f) if r["val_loss"]}
    assert sorted(val) == [0, 4] and val[4] < val[0]       # the final evaluation is the best one
    assert last.step == 4 and best.step == 4
    for k in last.model:
        np.testing.assert_array_equal(best.model[k], last.model[k])


def test_stale_temporaries_are_removed_when_a_run_starts(tmp_path):
    stale = [tmp_path / ".last.npz.ab12cd34.tmp", tmp_path / ".best.npz.k3j_9x0q.tmp"]
    keep = [tmp_path / "notes.tmp", tmp_path / ".other.npz.ab12cd34.tmp", tmp_path / ".last.npz.tmp"]
    for f in stale + keep:
        f.write_bytes(b"x" * 100)
    _trained_run(tmp_path)
    assert not any(f.exists() for f in stale)
    assert all(f.exists() for f in keep)
    left = [f for f in os.listdir(tmp_path) if f.startswith((".last.npz.", ".best.npz.")) and f != ".last.npz.tmp"]
    assert not left                                       # and the run's own saves left none


_KILL_SAVE = """
import builtins, os, shutil, signal, sys
import tinylm as tl
from tinylm.model import GPT, GPTConfig
folder, snapshots = sys.argv[1], sys.argv[2]
parent = os.path.dirname(os.path.abspath(folder))
tl.manual_seed(1)
old = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
tl.manual_seed(7)
new = GPT(GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=8))
hub = sys.modules.get("tinylm.hub")                       # where GPT.save_pretrained lives
steps = [(os, "open"), (builtins, "open"), (os, "replace"), (os, "rename"), (shutil, "rmtree"),
         (hub, "_rename_exchange")]


def save_and_die_before_step(kill_at):
    calls = [0]
    def killer(fn):                                       # kill -9 before the kill_at-th step in the parent folder
        def wrapped(*a, **k):
            if not a or not isinstance(a[0], (str, os.PathLike)) or os.fspath(a[0]).startswith(parent):
                calls[0] += 1
                if calls[0] == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
            return fn(*a, **k)
        return wrapped
    for mod, name in steps:
        if hasattr(mod, name):
            setattr(mod, name, killer(getattr(mod, name)))
    new.save_pretrained(folder)


kill_at = 1
while True:
    old.save_pretrained(folder)
    with open(os.path.join(folder, "vocab.json"), "w") as f:
        f.write("{}")
    pid = os.fork()                                       # the saver: killed before its kill_at-th step
    if pid == 0:
        try:
            save_and_die_before_step(kill_at)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    snap = os.path.join(snapshots, f"{kill_at}-{'killed' if killed else 'done'}")
    if os.path.isdir(folder):                             # what a reader finds at this moment
        shutil.copytree(folder, snap)
    else:
        os.makedirs(snap + "-missing")
    if not killed:
        break
    kill_at += 1
"""


def test_save_pretrained_survives_kill_9_at_every_step(tmp_path):
    """A folder holds an old model (1 layer) and a tokenizer file. A forked child saves a new model
    (2 layers) over it and is killed before its 1st, 2nd, ... file-system step (open, rename,
    remove): after every kill the folder loads as the whole old model or the whole new one, with
    the tokenizer file kept, and no temporary folder is left once a save completes."""
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    script, snapshots = tmp_path / "save.py", tmp_path / "snapshots"
    script.write_text(_KILL_SAVE)
    snapshots.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    r = subprocess.run([sys.executable, str(script), str(work / "model"), str(snapshots)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    tl.manual_seed(1)
    old_state = {k: to_numpy(v) for k, v in GPT(TINY).state_dict().items()}
    seen = []
    names = sorted(os.listdir(snapshots), key=lambda n: int(n.split("-")[0]))
    for name in names:
        snap = snapshots / name
        assert not name.endswith("-missing"), f"a reader found no folder after the kill before step {name}"
        loaded = GPT.from_pretrained(snap)
        assert (snap / "vocab.json").read_text() == "{}"
        if loaded.config.n_layer == 1:
            for k, v in loaded.state_dict().items():
                np.testing.assert_array_equal(to_numpy(v), old_state[k])
        assert loaded.config.n_layer in (1, 2)
        seen.append(loaded.config.n_layer)
    assert names[-1].endswith("-done") and len(names) >= 4 and seen[0] == 1 and seen[-1] == 2
    assert os.listdir(work) == ["model"]                  # the last, completed save left no temporary folder


@pytest.mark.parametrize("exchange", [True, False])
def test_save_pretrained_replaces_a_folder_keeping_other_files(tmp_path, monkeypatch, exchange):
    """Over an existing folder: the new model in, tokenizer files kept, nothing left beside it; with
    renameat2 unavailable (exchange False) the aside-and-rename path gives the same result."""
    import tinylm.hub as hub
    if not exchange:
        monkeypatch.setattr(hub, "_rename_exchange", lambda a, b: False)
    folder = tmp_path / "m"
    GPT(TINY).save_pretrained(folder)
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "x").write_text("x")
    new = GPT(GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=8))
    assert new.save_pretrained(folder) == str(folder)
    assert GPT.from_pretrained(folder).config.n_layer == 2
    assert (folder / "merges.txt").read_text() == "#version: 0.2\n" and (folder / "sub" / "x").read_text() == "x"
    assert os.listdir(tmp_path) == ["m"]


def test_a_failed_save_pretrained_keeps_the_old_folder(tmp_path, monkeypatch):
    import tinylm.hub as hub
    folder = tmp_path / "m"
    GPT(TINY).save_pretrained(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(hub, "atomic_write", full_disk)
    with pytest.raises(OSError, match="No space"):
        GPT(GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=8)).save_pretrained(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert os.listdir(tmp_path) == ["m"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        GPT(TINY).save_pretrained(tmp_path / "file")
