"""Reading files tinylm did not write: JSON with a size limit and a depth limit.

Every loader of a file that may come from a stranger (safetensors headers, checkpoint meta,
tokenizer files, GPT-2's config.json and encoder.json) parses its JSON here, so that a hostile
file gets a ValueError naming the file instead of a RecursionError, a MemoryError or a hang.
The depth is counted on the brackets outside strings before `json` sees the text, so a file
nested 100,000 deep is refused in linear time without recursing.

Also the checks the loaders share: ints and numbers in a range (`check_int`, `check_number`), a
shape's byte count before anything is allocated (`check_shape`: at most 64 dimensions, each and
the total below 2**63), and an optimizer state before `load_state_dict` trusts it
(`check_optimizer_state`).

Leaves out: each file kind's own fields (checked by its loader, which names the file and the field).
"""
import json
import math
import re

import numpy as np

MAX_JSON_BYTES = 256 * 2**20   # encoder.json is 1 MB, a checkpoint's meta.json a few KB
MAX_JSON_DEPTH = 64            # tinylm's own files nest at most 6 deep

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def parse_json(text, where, max_depth=MAX_JSON_DEPTH):
    """`text` (str, or bytes as UTF-8) -> a Python object; a ValueError naming `where` otherwise."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    depth = 0
    for b in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if b in "[{" else -1
        if depth > max_depth:
            raise ValueError(f"{where}: JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:    # JSONDecodeError, or an int of more than 4300 digits
        raise ValueError(f"{where}: not valid JSON ({e})") from None


def read_json(path, max_bytes=MAX_JSON_BYTES, max_depth=MAX_JSON_DEPTH):
    """The JSON file at `path`, read with a size limit and parsed with a depth limit."""
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{path}: larger than the {max_bytes}-byte limit for a JSON file")
    return parse_json(data, str(path), max_depth)


# ---------------------------------------------------------------------------- numbers and shapes
MAX_NDIM = 64                  # NumPy 2's limit on dimensions
MAX_DIM = 2**63 - 1            # a dimension, and a whole array's byte count, must fit NumPy's intp


def is_size(x):
    """A non-negative int (a Python or NumPy int, not a bool)."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x >= 0


def check_int(value, where, low=0, high=MAX_DIM):
    """`value` as an int in [low, high]: TypeError for a non-int (or a bool), ValueError out of range."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{where} must be an int, got {type(value).__name__} {brief(value)}")
    if not low <= value <= high:
        raise ValueError(f"{where} must be an int in [{low}, {high}], got {brief(value)}")
    return int(value)


def check_number(value, where, low=-math.inf, high=math.inf, finite=True):
    """`value` as a float in [low, high] (finite unless finite=False): TypeError for a non-number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where} must be a number, got {type(value).__name__} {brief(value)}")
    try:
        f = float(value)
    except OverflowError:                        # an int too large for a float
        raise ValueError(f"{where} must be a number in [{low}, {high}], got {brief(value)}") from None
    if math.isnan(f) or (finite and not math.isfinite(f)) or not low <= f <= high:
        raise ValueError(f"{where} must be a {'finite ' if finite else ''}number in [{low}, {high}], "
                         f"got {brief(value)}")
    return f


def check_dict(value, where):
    """`value` if it is a dict; a TypeError naming `where` otherwise."""
    if not isinstance(value, dict):
        raise TypeError(f"{where} must be a dict (a JSON object), got {type(value).__name__} {brief(value)}")
    return value


def check_shape(shape, itemsize, where):
    """The byte count of an array of `shape` (a list or tuple of ints) and `itemsize`, checked before
    anything is allocated: at most MAX_NDIM non-negative dimensions, each and the total within intp."""
    if not isinstance(shape, (list, tuple)):
        raise ValueError(f"{where}: the shape must be a list of ints, got {brief(shape)}")
    if len(shape) > MAX_NDIM:
        raise ValueError(f"{where}: {len(shape)} dimensions, more than NumPy's {MAX_NDIM}")
    if not all(is_size(d) and d <= MAX_DIM for d in shape):
        raise ValueError(f"{where}: the shape must be non-negative ints below 2**63, got {brief(shape)}")
    nbytes = itemsize
    for d in shape:
        nbytes *= int(d)
    if any(d == 0 for d in shape):
        return 0
    if nbytes > MAX_DIM:
        raise ValueError(f"{where}: shape {brief(shape)} holds more than 2**63 bytes")
    return nbytes


def brief(value, n=80):
    """repr(value), cut to n characters (a hostile file's value may be huge)."""
    try:
        text = repr(value)
    except ValueError:                           # an int of more digits than str() allows
        text = f"<an int of about {int(value.bit_length() * 0.30103)} digits>"
    return text if len(text) <= n else text[:n - 3] + "..."


# ---------------------------------------------------------------------------- optimizer state
# The arrays each optimizer keeps per parameter once it has stepped (by class name; a subclass
# needs its parent's). An entry holds all of them, or (SGD without momentum) only "step".
STATE_ARRAYS = {"Adam": ("exp_avg", "exp_avg_sq"), "RMSprop": ("square_avg",)}
MAX_STEP = 2**53               # b ** step stays a float; no run takes this many steps


def check_optimizer_state(state_dict, optimizer):
    """ValueError (TypeError for a wrong type) naming the first field of an optimizer `state_dict` that
    `optimizer.state_dict()` could not have written: what load_state_dict needs, checked up front."""
    name = type(optimizer).__name__
    where = f"{name}.load_state_dict"
    check_dict(state_dict, f"{where}: the state")
    if set(state_dict) != {"state", "param_groups"}:
        raise ValueError(f"{where}: expected a dict with 'state' and 'param_groups', got keys "
                         f"{brief(sorted(map(str, state_dict)))}")
    groups, states = state_dict["param_groups"], state_dict["state"]
    for key, value in (("param_groups", groups), ("state", states)):
        if not isinstance(value, list):
            raise TypeError(f"{where}: '{key}' must be a list, got {type(value).__name__}")
    for i, g in enumerate(groups):
        check_dict(g, f"{where}: param_groups[{i}]")
        params = g.get("params")
        if not isinstance(params, list) or not all(is_size(j) for j in params):
            raise ValueError(f"{where}: param_groups[{i}]['params'] must be a list of parameter indices, "
                             f"got {brief(params)}")
    needed = next((STATE_ARRAYS[c.__name__] for c in type(optimizer).__mro__ if c.__name__ in STATE_ARRAYS), ())
    for i, st in enumerate(states):
        check_dict(st, f"{where}: state[{i}]")
        for key, value in st.items():
            field = f"{where}: state[{i}][{key!r}]"
            if key == "step":
                check_int(value, field, 0, MAX_STEP)
            elif not hasattr(value, "shape") or not hasattr(value, "dtype") or getattr(value.dtype, "kind", "") != "f":
                raise TypeError(f"{field} must be a floating-point array, got {type(value).__name__} "
                                f"{brief(getattr(value, 'dtype', value))}")
        if st and "step" not in st:
            raise ValueError(f"{where}: state[{i}] has no 'step'")
        group = next((g for g in groups if i in g["params"]), {})
        wanted = needed + (("momentum_buffer",) if name == "RMSprop" and group.get("momentum") else ())
        missing = [k for k in wanted if k not in st]
        if st and missing:
            raise ValueError(f"{where}: state[{i}] has no {missing[0]!r} (a {name} state holds "
                             f"{', '.join(wanted)} and step)")
