"""Next-token sampling: logits -> token ids, with temperature, top-k, top-p (nucleus) and greedy.

Owns `sample_next(logits, temperature, top_k, top_p, generator)` and its two filters. Everything
runs on the logits' device through `xp`, for all rows at once: no Python loop over batch rows or
over the vocabulary. Random draws come from a `tinylm.backend.Generator` (the device's own by
default), so a fixed seed gives a fixed sample.

Glossary: B rows (sequences), V vocab.
Leaves out: the generation loop and the KV cache (tinylm/model.py: GPT.generate).
Reference: nanoGPT `model.py` generate() (temperature, top-k), Holtzman et al. 2019 (top-p),
HF `TopPLogitsWarper` (the "smallest set whose probability reaches p" rule).
"""
import numpy as np

from . import backend
from .tensor import Tensor


def _raw(logits):
    data = logits.data if isinstance(logits, Tensor) else logits
    if data.ndim != 2:
        raise ValueError(f"expected logits of shape (B, V), got {tuple(data.shape)}")
    return data


def _floats(logits):
    """Integer or boolean logits as float32 (they cannot hold -inf); float dtypes are kept."""
    return logits if logits.dtype.kind == "f" else logits.astype(backend.DEFAULT_DTYPE)


def _real(x):
    """True for a real number that is not a bool (a setting such as temperature or top_p)."""
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def top_k_filter(logits, k):
    """Logits (B, V) with all but each row's k largest set to -inf (exactly k kept; ties broken by index)."""
    logits = _floats(_raw(logits))
    v = logits.shape[-1]
    if k is None:
        return logits
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"top_k must be an int, got {type(k).__name__} {k!r}")
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    if k >= v:
        return logits
    xp = backend.get_array_module(logits)
    top = backend.argsort_stable(-logits)[:, :k]                     # (B, k) ids of the k largest
    keep = xp.zeros(logits.shape, dtype=bool)                       # (B, V)
    keep[xp.arange(logits.shape[0])[:, None], top] = True
    return xp.where(keep, logits, -xp.inf).astype(logits.dtype, copy=False)


def top_p_filter(logits, p):
    """Logits (B, V) keeping each row's smallest set of most likely tokens whose probability reaches p."""
    logits = _floats(_raw(logits))
    if p is None:
        return logits
    if not _real(p):
        raise TypeError(f"top_p must be a number, got {type(p).__name__} {p!r}")
    if not 0.0 < p <= 1.0:                                          # also refuses nan
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    if p == 1.0:
        return logits
    xp = backend.get_array_module(logits)
    order = backend.argsort_stable(-logits)                          # (B, V) most likely first
    rows = xp.arange(logits.shape[0])[:, None]                      # (B, 1)
    probs = _softmax(logits[rows, order])                           # (B, V) sorted probabilities
    before = xp.cumsum(probs, axis=-1) - probs                      # (B, V) mass of the tokens ranked above
    keep_sorted = before < p                                        # the first token is always kept
    keep = xp.zeros(logits.shape, dtype=bool)                       # (B, V)
    keep[rows, order] = keep_sorted
    return xp.where(keep, logits, -xp.inf).astype(logits.dtype, copy=False)


def _softmax(logits):
    """Probabilities in float32 at least: a float16 cumsum over a large vocabulary stops growing."""
    xp = backend.get_array_module(logits)
    logits = logits.astype(np.promote_types(logits.dtype, np.float32), copy=False)
    e = xp.exp(logits - logits.max(axis=-1, keepdims=True))         # (B, V); exp(-inf) = 0
    return e / e.sum(axis=-1, keepdims=True)


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """Token ids (B,) int64, one per row of logits (B, V): temperature 0 is argmax (greedy).

    A Tensor of logits gives a Tensor of ids, an array an array. Probabilities are computed in
    float32 at least (float64 stays float64); integer logits count as float32. A row whose logits
    are all -inf has no token to draw and raises ValueError.
    """
    if isinstance(logits, Tensor):
        return Tensor._make(sample_next(logits.data, temperature, top_k, top_p, generator), logits.device)
    logits = _raw(logits)
    xp = backend.get_array_module(logits)
    if not _real(temperature):
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__} {temperature!r}")
    if not temperature >= 0 or temperature == float("inf"):        # also refuses nan
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(axis=-1).astype(np.int64)
    logits = _floats(logits) * (1.0 / temperature)                 # (B, V), float dtype kept
    dead = (logits == -xp.inf).all(axis=-1)                         # (B,) rows with no possible token
    if bool((xp.isnan(logits) | (logits == xp.inf)).any() | dead.any()):   # one device sync
        if bool(dead.any()):
            raise ValueError(f"sample_next: every logit of row {int(dead.argmax())} is -inf: no token can be drawn")
        raise ValueError(f"sample_next: the logits divided by temperature {temperature} are not finite "
                         "(nan, or overflowing: raise the temperature or use 0 for greedy)")
    logits = top_k_filter(logits, top_k)
    logits = top_p_filter(logits, top_p)
    probs = _softmax(logits)                                        # (B, V)
    gen = generator or backend.get_generator(backend.device_of(logits))
    return draw_from_weights(probs, 1, gen)[:, 0]                   # (B,)


def draw_from_weights(weights, num_samples, gen):
    """(B, num_samples) int64 ids drawn with replacement from non-negative weights (B, V) by the
    inverse CDF: the first id whose cumulative weight reaches u * total (never a zero-weight id)."""
    xp = backend.get_array_module(weights)
    cdf = xp.cumsum(weights, axis=-1)                                            # (B, V)
    u = (1.0 - gen.uniform((weights.shape[0], num_samples), dtype=cdf.dtype)) * cdf[:, -1:]   # (B, n) in (0, total]
    ids = (cdf[:, None, :] < u[:, :, None]).sum(axis=-1)                        # (B, n)
    return xp.minimum(ids, weights.shape[-1] - 1).astype(np.int64)
