"""Hypothesis strategies shared by the tests: shapes (0-d to 4-d, size-1 axes), broadcastable
pairs, and float64 values drawn away from kinks (via a drawn seed, so values are distinct)."""
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinylm as tl

MAX_SIDE = 4


def shapes(min_dims=0, max_dims=4, min_side=1, max_side=MAX_SIDE):
    """Array shapes with 0..4 axes, size-1 axes included, kept small for gradient checks."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcast_pair(min_dims=0, max_dims=4):
    """Two shapes that broadcast together (leading and size-1 axes)."""
    return hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=min_dims, max_dims=max_dims,
                                             max_side=MAX_SIDE).map(lambda r: r.input_shapes)


seeds = st.integers(0, 2**32 - 1)


def values(seed, shape, low=-2.0, high=2.0, away_from_zero=0.0):
    """Distinct float64 values in [low, high]; |x| >= away_from_zero when asked (kinks at 0)."""
    x = np.asarray(np.random.default_rng(seed).uniform(low, high, size=shape))
    if away_from_zero:
        x = np.asarray(np.sign(x) * (away_from_zero + np.abs(x)))
        x[x == 0] = away_from_zero
    return x


def leaf(x, device):
    """A float64 leaf that requires grad on `device`."""
    return tl.tensor(x, dtype=np.float64, device=device, requires_grad=True)
