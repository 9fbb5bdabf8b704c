"""Tests for tinylm/checkpoint.py: round trip, atomic saves, damaged or hostile files, config checks."""
import dataclasses
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import tinylm as tl
from tinylm import optim
from tinylm.backend import to_device, to_numpy
from tinylm.checkpoint import Checkpoint, check_config, load_checkpoint, save_checkpoint

CONFIG = {"vocab_size": 65, "block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 16, "dropout": 0.0,
          "bias": True}
TOKENIZER = {"type": "char", "chars": "abc\n"}


def _model_state(device):
    return {"wte.weight": tl.randn(5, 4, device=device).data, "ln_f.bias": tl.zeros(4, device=device).data,
            "h.0.attn.c_attn.weight": tl.randn(12, 4, device=device).data}


def _adamw_after_steps(params, grads):
    opt = optim.AdamW(optim.param_groups(params.items(), 0.1), lr=0.01)
    for g in grads:
        for p, gp in zip(params.values(), g):
            p.grad = to_device(gp, p.device)
        opt.step()
    return opt


def _files(directory):
    return sorted(p.name for p in directory.iterdir())


def test_round_trip_and_resume(device, tmp_path):
    rng = np.random.default_rng(0)
    params = {"w": tl.randn(3, 4, device=device, requires_grad=True),
              "b": tl.zeros(4, device=device, requires_grad=True)}
    grads = [[rng.standard_normal(p.shape).astype(np.float32) for p in params.values()] for _ in range(4)]
    opt = _adamw_after_steps(params, grads[:2])
    state = _model_state(device)
    path = tmp_path / "ckpt.npz"
    cfg = {**CONFIG, "betas": (0.9, 0.95)}
    assert save_checkpoint(path, state, opt.state_dict(), cfg, TOKENIZER, step=2,
                           extra={"best_val_loss": np.float32(1.5), "args": {"lr": 0.01}}, seed=42) == os.fspath(path)
    assert _files(tmp_path) == ["ckpt.npz"]

    ck = load_checkpoint(path)
    assert isinstance(ck, Checkpoint) and ck.path == os.fspath(path)
    assert ck.step == 2 and ck.seed == 42 and ck.tokenizer == TOKENIZER
    assert ck.config == {**CONFIG, "betas": [0.9, 0.95]}
    assert ck.extra == {"best_val_loss": 1.5, "args": {"lr": 0.01}}
    assert list(ck.model) == list(state)
    for name, a in state.items():
        assert isinstance(ck.model[name], np.ndarray) and ck.model[name].dtype == np.float32
        np.testing.assert_array_equal(ck.model[name], to_numpy(a))

    # a fresh optimizer loaded from the file continues exactly like the original
    params2 = {k: tl.tensor(p.numpy(), device=device, requires_grad=True) for k, p in params.items()}
    opt2 = optim.AdamW(optim.param_groups(params2.items(), 0.1), lr=0.01)
    opt2.load_state_dict(ck.optimizer)
    for opt_, ps in ((opt, params), (opt2, params2)):
        for g in grads[2:]:
            for p, gp in zip(ps.values(), g):
                p.grad = to_device(gp, p.device)
            opt_.step()
    for k in params:
        np.testing.assert_array_equal(params[k].numpy(), params2[k].numpy())


def test_defaults_and_dataclass_config(tmp_path):
    @dataclasses.dataclass
    class Cfg:
        n_layer: int = 2
        n_embd: int = 16

    tl.manual_seed(123)
    save_checkpoint(tmp_path / "c.npz", {"w": np.ones(2, np.float32)}, config=Cfg())
    ck = load_checkpoint(tmp_path / "c.npz", config=Cfg())
    assert (ck.step, ck.seed, ck.optimizer, ck.tokenizer, ck.extra) == (0, 123, None, None, {})
    assert ck.config == {"n_layer": 2, "n_embd": 16}


def test_check_config_names_the_difference(tmp_path):
    check_config(CONFIG, dict(CONFIG))
    with pytest.raises(ValueError, match=r"n_head: saved 2, current 4; n_layer: saved 2, current 4"):
        check_config(CONFIG, {**CONFIG, "n_layer": 4, "n_head": 4})
    with pytest.raises(ValueError, match="flash: not in the checkpoint, current True"):
        check_config(CONFIG, {**CONFIG, "flash": True})
    check_config(CONFIG, {**CONFIG, "dropout": 0.2}, ignore=("dropout",))
    save_checkpoint(tmp_path / "c.npz", {"w": np.ones(2, np.float32)}, config=CONFIG)
    with pytest.raises(ValueError, match="n_embd: saved 16, current 32"):
        load_checkpoint(tmp_path / "c.npz", config={**CONFIG, "n_embd": 32})


def _saved(tmp_path, name="ckpt.npz"):
    path = tmp_path / name
    save_checkpoint(path, {"w": np.arange(1000, dtype=np.float32)}, config=CONFIG, step=7)
    return path


def test_truncated_file_is_refused(tmp_path):
    path = _saved(tmp_path)
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=r"checkpoint .*ckpt\.npz is damaged"):
            load_checkpoint(path)
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="ckpt.npz"):
        load_checkpoint(path)


def test_edited_bytes_are_refused(tmp_path):
    path = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    i = data.index(np.arange(1000, dtype=np.float32)[500:502].tobytes())
    data[i] ^= 0xFF  # one flipped byte inside the weights: the zip CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"ckpt\.npz is damaged.*CRC"):
        load_checkpoint(path)


def _rewrite(path, **entries):
    """Write an npz by hand (as an attacker or a careless edit would)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, array in entries.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, array, allow_pickle=True)
            zf.writestr(name + ".npy", buf.getvalue())


def _meta(**changes):
    meta = {"format": "tinylm-checkpoint", "version": 1, "step": 1, "seed": 0, "model": ["w"], "config": {},
            "tokenizer": None, "extra": {}, "optimizer": None, **changes}
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


EXECUTED = []


class _Payload:
    """Unpickling this calls EXECUTED.append: the test proves load_checkpoint never does."""

    def __reduce__(self):
        return (EXECUTED.append, ("code ran",))


def test_object_arrays_and_pickles_are_refused_without_running_code(tmp_path):
    path = tmp_path / "evil.npz"
    evil = np.empty(1, dtype=object)
    evil[0] = _Payload()
    _rewrite(path, **{"meta.json": _meta(), "model/w": evil})
    with pytest.raises(ValueError, match=r"evil\.npz is damaged.*allow_pickle"):
        load_checkpoint(path)
    path.write_bytes(pickle.dumps(_Payload()))  # a plain pickle renamed .npz
    with pytest.raises(ValueError, match=r"evil\.npz"):
        load_checkpoint(path)
    assert EXECUTED == []


def test_hand_edited_metadata_is_refused(tmp_path):
    path = tmp_path / "c.npz"
    w = np.ones(2, np.float32)
    cases = [
        ({"model/w": w}, "no meta.json"),
        ({"meta.json": np.frombuffer(b"{not json", np.uint8), "model/w": w}, "damaged"),
        ({"meta.json": _meta(format="other"), "model/w": w}, "does not describe"),
        ({"meta.json": _meta(version=99), "model/w": w}, "version 99"),
        ({"meta.json": _meta()}, "model array 'w' is missing"),
        ({"meta.json": _meta(optimizer={"__array__": "optimizer/x"}), "model/w": w}, "'optimizer/x', which is missing"),
        # fields save_checkpoint never writes: were loaded as they were (step -5, step 2.7 as 2, the
        # name 'w' spelled out letter by letter, a config that is not a dict) or failed as unhashable
        ({"meta.json": _meta(step=-5), "model/w": w}, "'step' must be a non-negative int"),
        ({"meta.json": _meta(step=2.7), "model/w": w}, "'step' must be a non-negative int"),
        ({"meta.json": _meta(seed=True), "model/w": w}, "'seed' must be a non-negative int"),
        ({"meta.json": _meta(model="w"), "model/w": w}, "'model' must be a list of names"),
        ({"meta.json": _meta(config=[1]), "model/w": w}, "'config' must be a dict"),
        ({"meta.json": _meta(tokenizer=5), "model/w": w}, "'tokenizer' must be a dict or null"),
        ({"meta.json": _meta(optimizer={"__array__": ["x"]}), "model/w": w}, r"\['x'\], which is missing"),
    ]
    for entries, message in cases:
        _rewrite(path, **entries)
        with pytest.raises(ValueError, match=message) as e:
            load_checkpoint(path)
        assert "c.npz" in str(e.value)
    np.save(tmp_path / "plain.npy", w)
    with pytest.raises(ValueError, match="not an .npz"):
        load_checkpoint(tmp_path / "plain.npy")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_checkpoint(tmp_path / "missing.npz")


@pytest.mark.parametrize("where", ["savez", "replace"])
def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch, where):
    path = _saved(tmp_path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")
    monkeypatch.setattr(*(np, "savez") if where == "savez" else (os, "replace"), crash)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, {"w": np.zeros(3, np.float32)}, step=8)
    monkeypatch.undo()
    assert path.read_bytes() == before and load_checkpoint(path).step == 7
    assert _files(tmp_path) == ["ckpt.npz"]  # the temporary file is gone


def test_unsaveable_values_are_named(tmp_path):
    with pytest.raises(TypeError, match="extra/when: cannot save a set"):
        save_checkpoint(tmp_path / "c.npz", {}, extra={"when": {1, 2}})
    with pytest.raises(TypeError, match="dict keys must be str"):
        save_checkpoint(tmp_path / "c.npz", {}, extra={1: 2})
    with pytest.raises(TypeError, match="'w' must map a str to an array"):
        save_checkpoint(tmp_path / "c.npz", {"w": [1.0, 2.0]})
    with pytest.raises(ValueError, match="step must be a non-negative int"):
        save_checkpoint(tmp_path / "c.npz", {}, step=-1)
    for seed in (-1, 1.7, "abc"):                               # were saved as -1, 1 and a bare int() error
        with pytest.raises(ValueError, match="seed must be a non-negative int"):
            save_checkpoint(tmp_path / "c.npz", {}, seed=seed)
    with pytest.raises(TypeError, match="optimizer_state must be a dict"):   # saved, then refused by load
        save_checkpoint(tmp_path / "c.npz", {}, optimizer_state=[{"lr": 0.1}])
    assert list(tmp_path.iterdir()) == []


def test_a_resumed_training_run_matches_an_unbroken_one(device, tmp_path):
    """Train 5 steps straight, or 3 steps + save + load into fresh objects + 2 steps: the same weights."""
    model_mod = pytest.importorskip("tinylm.model")
    from tinylm.data import TokenDataset

    cfg = model_mod.GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.1)
    splits = TokenDataset(np.arange(400) % 11, device=device).split(0.9)
    sched = optim.CosineLR(max_lr=1e-2, warmup=2, total=5, min_lr=1e-3)

    def fresh():
        tl.manual_seed(0)  # the same initial weights each time
        model = model_mod.GPT(cfg, device=device)
        return model, optim.AdamW(optim.param_groups(model.named_parameters(), 0.1), lr=sched(0))

    def train(model, opt, steps, seed=3):
        for step in steps:
            tl.manual_seed(seed * 1_000_003 + step)  # reseeded from (run seed, step): resume needs only the step
            x, y = splits.get_batch("train", 4, 8)
            opt.zero_grad()
            _, loss = model(x, y)
            loss.backward()
            optim.clip_grad_norm_(model.parameters(), 1.0)
            sched.apply(opt, step)
            opt.step()

    model, opt = fresh()
    train(model, opt, range(5))
    want = {k: to_numpy(v).copy() for k, v in model.state_dict().items()}

    model, opt = fresh()
    train(model, opt, range(3))
    save_checkpoint(tmp_path / "run.npz", model.state_dict(), opt.state_dict(), cfg, step=3, seed=3)
    del model, opt
    ck = load_checkpoint(tmp_path / "run.npz", config=cfg)
    model, opt = fresh()
    model.load_state_dict(ck.model)
    opt.load_state_dict(ck.optimizer)
    train(model, opt, range(ck.step, 5), seed=ck.seed)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(to_numpy(v), want[k], err_msg=k)


@pytest.mark.parametrize("extra", [{"a/b": np.zeros(2)}, {"__array__": "x"}])
def test_keys_that_would_collide_on_load_are_refused(tmp_path, extra):
    with pytest.raises(ValueError, match="cannot be saved"):
        save_checkpoint(tmp_path / "c.npz", {"w": np.zeros(2)}, extra=extra)
    assert not (tmp_path / "c.npz").exists()


def test_fortran_order_empty_and_0d_arrays_round_trip(tmp_path):
    """read_npz checks each member's header against its size, then NumPy reads it: every layout loads."""
    rng = np.random.default_rng(0)
    arrays = {"f": rng.standard_normal((3, 4)).astype(np.float32).T, "e": np.zeros((0, 5), np.float32),
              "s": np.array(2.5, np.float64), "b": np.array([True, False]), "i": np.arange(6, dtype=">i8")}
    save_checkpoint(tmp_path / "c.npz", arrays, seed=0)
    out = load_checkpoint(tmp_path / "c.npz").model
    for k, v in arrays.items():
        assert out[k].shape == v.shape and out[k].dtype == v.dtype and out[k].flags.writeable, k
        np.testing.assert_array_equal(out[k], v)
