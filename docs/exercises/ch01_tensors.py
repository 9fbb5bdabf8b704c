"""Chapter 1 exercises, solved.

1. Write `broadcast_shape(a, b)`: the shape two shapes broadcast to, from the rule "align from
   the right; two axes fit if they are equal or one of them is 1", raising ValueError otherwise.
2. Write `normalize_rows(a)` (each row of a raw array divided by its Euclidean norm) by the
   one rule, so that it runs on every device, and run it on the `strict` device.
"""
import numpy as np

import tinylm as tl


def broadcast_shape(a, b):
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    out = []
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y and 1 not in (x, y):
            raise ValueError(f"shapes {a} and {b} do not broadcast: axis {i} has {x} and {y}")
        out.append(max(x, y) if 0 not in (x, y) else 0)
    return tuple(out)


def normalize_rows(a):
    xp = tl.get_array_module(a)                # never `np.` on device data
    return a / xp.sqrt((a * a).sum(axis=-1, keepdims=True))


def check():
    for a, b in [((2, 3), (3,)), ((4, 1, 5), (6, 1)), ((), (2, 2)), ((1,), (0,)), ((8, 1), (1, 7))]:
        assert broadcast_shape(a, b) == np.broadcast_shapes(a, b), (a, b)
    for a, b in [((2, 3), (2,)), ((4, 5), (5, 4))]:
        try:
            broadcast_shape(a, b)
        except ValueError:
            pass
        else:
            raise AssertionError(f"{a} and {b} should not broadcast")
    x = tl.randn(3, 4).to("strict")
    y = normalize_rows(x.data)                 # a strict array: np.sqrt on it would raise TypeError
    assert tl.backend.device_of(y) == "strict"
    norms = np.linalg.norm(tl.backend.to_numpy(y), axis=-1)
    assert np.allclose(norms, 1.0, atol=1e-6)


if __name__ == "__main__":
    check()
    print("ch01_tensors: all checks passed")
