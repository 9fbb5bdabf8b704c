"""Tests for tinylm/utils/tensorboard.py: events written by SummaryWriter read back with TensorBoard's
own EventAccumulator (skipped where the `tensorboard` extra is not installed)."""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import tinylm as tl


def test_without_tensorboard_the_import_error_names_the_extra():
    code = ("import sys; sys.modules['tensorboard'] = None\n"
            "try:\n    import tinylm.utils.tensorboard\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'tinylm[tensorboard]'" in out
    import tinylm.utils.data                                   # the rest of tinylm.utils never needs it
    assert tinylm.utils.data.DataLoader


# the rest needs the extra; the test above runs either way
pytestmark_tb = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                   reason="the tensorboard extra is not installed (pip install 'tinylm[tensorboard]')")


def read(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


@pytestmark_tb
def test_scalars_texts_and_histograms_read_back(tmp_path):
    from tinylm.utils.tensorboard import SummaryWriter
    values = np.random.default_rng(0).standard_normal(1000)
    with SummaryWriter(tmp_path) as w:
        for step in range(5):
            w.add_scalar("loss/train", 1.0 / (step + 1), step)
        w.add_scalar("lr", tl.tensor(0.25), 7)                  # a 0-d Tensor, as loss.item() would be
        w.add_text("notes", "hello *world*", 3)
        w.add_histogram("weights", tl.tensor(values, dtype=np.float64), 2)
        w.add_histogram("few", np.array([0.5, 1.5, 1.5, 3.5]), 0, bins=[0.0, 1.0, 2.0, 3.0, 4.0])
        assert w.get_logdir() == os.fspath(tmp_path)
    acc = read(tmp_path)
    loss = acc.Scalars("loss/train")
    assert [e.step for e in loss] == [0, 1, 2, 3, 4]
    assert [e.value for e in loss] == pytest.approx([1.0, 0.5, 1 / 3, 0.25, 0.2], rel=1e-6)   # stored as float32
    assert [(e.step, e.value) for e in acc.Scalars("lr")] == [(7, 0.25)]
    text = acc.Tensors("notes/text_summary")
    assert text[0].step == 3 and text[0].tensor_proto.string_val == [b"hello *world*"]
    h = acc.Histograms("weights")[0]
    assert h.step == 2
    hv = h.histogram_value
    assert hv.num == 1000 and hv.min == values.min() and hv.max == values.max()
    assert hv.sum == pytest.approx(values.sum()) and hv.sum_squares == pytest.approx(values @ values)
    assert sum(hv.bucket) == 1000
    few = acc.Histograms("few")[0].histogram_value           # buckets (0, 1], (1, 2], (2, 3], (3, 4] (left edge 0)
    assert list(few.bucket_limit) == [0.0, 1.0, 2.0, 3.0, 4.0] and list(few.bucket) == [0, 1, 2, 0, 1]


@pytestmark_tb
def test_add_scalars_writes_one_run_per_key(tmp_path):
    from tinylm.utils.tensorboard import SummaryWriter
    w = SummaryWriter(tmp_path)
    for step in range(3):
        w.add_scalars("loss", {"train": 2.0 - step, "val": 3.0 - step}, step)
    w.close()
    for key, start in (("train", 2.0), ("val", 3.0)):
        run = read(tmp_path / f"loss_{key}").Scalars("loss")
        assert [(e.step, e.value) for e in run] == [(0, start), (1, start - 1), (2, start - 2)]


@pytestmark_tb
def test_default_log_dir_and_flush(tmp_path, monkeypatch):
    from tinylm.utils.tensorboard import SummaryWriter
    monkeypatch.chdir(tmp_path)
    w = SummaryWriter(comment="_exp")
    w.add_scalar("x", 1.0, 0)
    w.flush()
    assert w.get_logdir().startswith("runs" + os.sep) and w.get_logdir().endswith("_exp")
    assert [e.value for e in read(w.get_logdir()).Scalars("x")] == [1.0]   # readable before close
    w.close()
    w.add_scalar("x", 2.0, 1)                                   # a closed writer reopens, as PyTorch's
    w.close()
    assert [e.value for e in read(w.get_logdir()).Scalars("x")] == [1.0, 2.0]


@pytestmark_tb
def test_bad_values_are_named(tmp_path):
    from tinylm.utils.tensorboard import SummaryWriter
    with SummaryWriter(tmp_path) as w:
        with pytest.raises(ValueError, match="add_scalar: expected one number, got shape \\(3,\\)"):
            w.add_scalar("x", tl.ones(3), 0)
        with pytest.raises(TypeError, match="add_text: expected a str"):
            w.add_text("t", 5)
        with pytest.raises(ValueError, match="add_histogram: the values are empty"):
            w.add_histogram("h", np.zeros(0))
        with pytest.raises(TypeError, match="tag must be a non-empty str"):
            w.add_scalar(3, 1.0)
