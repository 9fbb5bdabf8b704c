"""tinylm.save / tinylm.load: state dicts and whole checkpoints without pickle."""
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


def test_save_and_load_a_state_dict(tmp_path, device):
    m = tl.nn.Linear(3, 2, device=device)
    path = tl.save(m.state_dict(), tmp_path / "m.npz")
    m2 = tl.nn.Linear(3, 2, device=device)
    m2.load_state_dict(tl.load(path, device=device))
    np.testing.assert_array_equal(m2.weight.numpy(), m.weight.numpy())
    with pytest.raises(TypeError, match="state_dict"):
        tl.save(3, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="cannot save a set"):
        tl.save({"a": {1, 2}}, tmp_path / "x.npz")


def test_save_and_load_a_whole_nanogpt_checkpoint_and_the_disabled_grad_scaler(tmp_path):
    m = tl.nn.Linear(2, 2)
    opt = tl.optim.AdamW(m.parameters())
    scaler = tl.cuda.amp.GradScaler(enabled=False)
    scaler.scale(m(tl.ones(1, 2)).sum()).backward()
    scaler.unscale_(opt)
    scaler.step(opt)
    scaler.update()
    path = tl.save({"model": m.state_dict(), "optimizer": opt.state_dict(), "iter_num": 5,
                    "best_val_loss": tl.tensor(1.5), "config": {"n_layer": 2}}, tmp_path / "ckpt.pt")
    ck = tl.load(path, map_location="strict")
    assert ck["iter_num"] == 5 and float(ck["best_val_loss"]) == 1.5 and ck["config"] == {"n_layer": 2}
    m2 = tl.nn.Linear(2, 2, device="strict")
    m2.load_state_dict(ck["model"])
    opt2 = tl.optim.AdamW(m2.parameters())
    opt2.load_state_dict(ck["optimizer"])
    np.testing.assert_array_equal(m2.weight.numpy(), m.weight.numpy())
    with pytest.warns(UserWarning, match="GradScaler is enabled, but .* Disabling."):   # as PyTorch without CUDA
        assert not tl.amp.GradScaler().is_enabled()
