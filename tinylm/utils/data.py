"""PyTorch's `torch.utils.data`: datasets, samplers and the DataLoader, in one process.

Owns the step from "a collection of examples" to "batches of tensors", with PyTorch's names,
arguments and errors, so teaching code written for `torch.utils.data` runs unchanged:

  Dataset, IterableDataset, TensorDataset, Subset, ConcatDataset, random_split
  Sampler, SequentialSampler, RandomSampler, BatchSampler
  DataLoader, default_collate, default_convert, get_worker_info

A map-style dataset has `__getitem__(i)` and `__len__()`; an iterable one has `__iter__()`.
The DataLoader draws indices from a sampler (in order, or shuffled), groups them with a
BatchSampler and merges each group with `collate_fn`; `default_collate` stacks Tensors and
NumPy arrays along a new first axis, makes int64 tensors of ints and float64 tensors of floats
(as PyTorch does), keeps strings as lists, and recurses into dicts, tuples (giving lists, as
PyTorch) and named tuples.

Random order comes from tinylm's generators: a `generator=` (`tl.Generator().manual_seed(0)`)
or, without one, the CPU generator that `tl.manual_seed` seeds, so a seeded run repeats. The
orders differ from PyTorch's for the same seed (a different algorithm). PyTorch's submodule
paths work too: `from tinylm.utils.data.dataloader import DataLoader` (makemore, minGPT),
`.dataset`, `.sampler`.

Leaves out: worker processes. `num_workers`, `pin_memory`, `timeout`, `worker_init_fn`,
`prefetch_factor` and `persistent_workers` are accepted (and checked as PyTorch checks them),
but every batch is loaded in the calling process, as PyTorch does with num_workers=0 (the
batches are the same; only the overlap of loading and computing is lost), and
`get_worker_info()` is always None. Also left out: WeightedRandomSampler, DistributedSampler,
ChainDataset, StackDataset.
Reference: the torch.utils.data documentation (names, arguments, errors, collation rules).
"""
import bisect
import itertools
import math
import numbers
import sys
import types
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from .. import backend
from .. import functional as F
from ..tensor import Tensor


# ---------------------------------------------------------------------------- datasets
class Dataset:
    """A map-style dataset: subclasses give `__getitem__(index)` and (for samplers) `__len__()`."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index)")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A dataset read as a stream: subclasses give `__iter__()`; the DataLoader batches what it yields."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__()")

    def __getitem__(self, index):
        raise TypeError(f"{type(self).__name__} is an IterableDataset: iterate over it, it has no [index]")


def _length(t):
    return t.shape[0] if getattr(t, "ndim", 1) else None


class TensorDataset(Dataset):
    """Examples cut along the first axis of equally long tensors: `ds[i]` is `(x[i], y[i], ...)`."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        for i, t in enumerate(tensors):
            if not hasattr(t, "shape") or not hasattr(t, "__getitem__"):
                raise TypeError(f"TensorDataset: argument {i} is a {type(t).__name__}, not a Tensor")
        sizes = [_length(t) for t in tensors]
        if None in sizes or len(set(sizes)) != 1:
            raise ValueError("TensorDataset: size mismatch between tensors: first axes "
                             + ", ".join(str(tuple(t.shape)[:1] or "(scalar)") for t in tensors))
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The examples of `dataset` at `indices`, in that order: `Subset(ds, [4, 0])[1]` is `ds[0]`."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    """Map-style datasets one after another (`ds1 + ds2`); negative indices count from the end."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset does not take an IterableDataset")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError(f"ConcatDataset: index {idx} is out of range for length {len(self)}")
            idx += len(self)
        d = bisect.bisect_right(self.cumulative_sizes, idx)
        if d == len(self.datasets):
            raise IndexError(f"ConcatDataset: index {idx} is out of range for length {len(self)}")
        return self.datasets[d][idx - (self.cumulative_sizes[d - 1] if d else 0)]


# ---------------------------------------------------------------------------- random order
def _check_generator(generator, where):
    if generator is not None and not isinstance(generator, backend.Generator):
        raise TypeError(f"{where}: generator must be a tinylm Generator (tl.Generator().manual_seed(0)), "
                        f"got {type(generator).__name__}")
    return generator


def _randperm(n, generator):
    """A random permutation of range(n) (a list of ints) from `generator` or the seeded CPU generator."""
    gen = generator if generator is not None else backend.get_generator("cpu")
    keys = backend.to_numpy(gen.uniform((n,), np.float64))    # argsort of uniform keys: a uniform permutation
    return np.argsort(keys, kind="stable").tolist()


def _randint(n, size, generator):
    gen = generator if generator is not None else backend.get_generator("cpu")
    return backend.to_numpy(gen.integers(0, n, (size,))).tolist()


def random_split(dataset, lengths, generator=None):
    """Split `dataset` at random into non-overlapping Subsets of the given lengths (PyTorch's).

    `lengths` are counts adding up to len(dataset), or fractions adding up to 1: each gets
    floor(fraction * n) and the examples left over go one each to the first splits.
    """
    _check_generator(generator, "random_split")
    lengths, n = list(lengths), len(dataset)
    if lengths and all(isinstance(f, numbers.Real) and not isinstance(f, bool) for f in lengths) \
            and math.isclose(sum(lengths), 1) and sum(lengths) <= 1:     # PyTorch's test: [1, 0] is fractions too
        if any(not 0 <= f <= 1 for f in lengths):
            raise ValueError(f"random_split: fractions must be in [0, 1], got {lengths}")
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):                       # the remainder, round-robin from the first
            counts[i % len(counts)] += 1
        for i, c in enumerate(counts):
            if c == 0:
                warnings.warn(f"random_split: the split at index {i} has length 0 (an empty dataset)", stacklevel=2)
        lengths = counts
    for f in lengths:
        if isinstance(f, bool) or not isinstance(f, numbers.Integral) or f < 0:
            raise ValueError(f"random_split: lengths must be non-negative ints or fractions summing to 1, "
                             f"got {lengths}")
    if sum(lengths) != n:
        raise ValueError(f"random_split: the lengths {lengths} add up to {sum(lengths)}, "
                         f"not to the length of the dataset ({n})")
    order = _randperm(n, generator)
    return [Subset(dataset, order[end - length:end])
            for end, length in zip(itertools.accumulate(lengths), lengths)]


# ---------------------------------------------------------------------------- samplers
class Sampler:
    """Yields the indices (or, for a batch sampler, lists of indices) of the examples to load."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__()")


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """Indices in random order: a fresh permutation per pass (each index once), or with
    replacement=True `num_samples` independent draws. Without replacement, num_samples larger
    than the dataset chains whole permutations, as PyTorch does."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        if not isinstance(replacement, bool):
            raise TypeError(f"RandomSampler: replacement should be a boolean value, got {replacement!r}")
        self.data_source, self.replacement, self._num_samples = data_source, replacement, num_samples
        self.generator = _check_generator(generator, "RandomSampler")
        n = self.num_samples
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
            raise ValueError(f"RandomSampler: num_samples should be a positive integer, got {n!r}")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n, total = len(self.data_source), self.num_samples
        if self.replacement:                                   # in chunks: minGPT asks for num_samples=1e10
            for start in range(0, total, 1024):
                yield from _randint(n, min(1024, total - start), self.generator)
            return
        for _ in range(total // n):
            yield from _randperm(n, self.generator)
        yield from _randperm(n, self.generator)[:total % n]

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in random order, without replacement."""

    def __init__(self, indices, generator=None):
        self.indices, self.generator = list(indices), _check_generator(generator, "SubsetRandomSampler")

    def __iter__(self):
        return (self.indices[i] for i in _randperm(len(self.indices), self.generator))

    def __len__(self):
        return len(self.indices)


class BatchSampler(Sampler):
    """Lists of `batch_size` indices from `sampler`; the last one shorter unless drop_last."""

    def __init__(self, sampler, batch_size, drop_last):
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
            raise ValueError(f"BatchSampler: batch_size should be a positive integer, got {batch_size!r}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"BatchSampler: drop_last should be a boolean value, got {drop_last!r}")
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), drop_last

    def __iter__(self):
        batch = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


# ---------------------------------------------------------------------------- collation
def default_collate(batch):
    """Merge a list of examples into a batch, by PyTorch's rules (see the module docstring)."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        return F.stack(list(batch), axis=0)                     # (B, *elem.shape)
    if isinstance(elem, np.ndarray) and elem.dtype.kind not in "OSUV":
        return Tensor(np.stack(batch))                          # NumPy's dtype kept, as torch.as_tensor
    if isinstance(elem, (np.number, np.bool_)):
        return Tensor(np.asarray(batch))
    if isinstance(elem, bool):
        return Tensor(np.asarray(batch, dtype=bool))
    if isinstance(elem, numbers.Integral):
        return Tensor(np.asarray(batch, dtype=np.int64))
    if isinstance(elem, numbers.Real):
        return Tensor(np.asarray(batch, dtype=np.float64))      # PyTorch collates Python floats as float64
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, Mapping):
        merged = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            return type(elem)(merged)
        except TypeError:                                       # a mapping that cannot be built from a dict
            return merged
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):    # a named tuple keeps its type
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, Sequence):
        if any(len(e) != len(elem) for e in batch):
            raise RuntimeError("default_collate: each element in list of batch should be of equal size, got "
                               f"lengths {sorted({len(e) for e in batch})}")
        columns = [default_collate(list(s)) for s in zip(*batch)]
        if isinstance(elem, tuple):
            return columns                                      # a list, as PyTorch
        try:
            return type(elem)(columns)
        except TypeError:
            return columns
    raise TypeError("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
                    f"found {type(elem).__name__}")


def default_convert(data):
    """Without batching (batch_size=None): NumPy arrays become Tensors, containers are walked, the rest stays."""
    if isinstance(data, np.ndarray) and data.dtype.kind not in "OSUV":
        return Tensor(data)
    if isinstance(data, Mapping):
        return type(data)({k: default_convert(v) for k, v in data.items()})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, list):
        return [default_convert(d) for d in data]
    return data


def get_worker_info():
    """None: tinylm loads every batch in the calling process (no worker processes)."""
    return None


# ---------------------------------------------------------------------------- the loader
class DataLoader:
    """Batches from a dataset, as PyTorch's DataLoader (in one process; see the module docstring).

    `DataLoader(ds, batch_size=32, shuffle=True)`: each pass (`for xb, yb in loader`) visits
    every example once in a new random order. `sampler=` gives the order yourself,
    `batch_sampler=` the batches themselves (then batch_size, shuffle, sampler and drop_last
    must be left alone), `batch_size=None` turns batching off, `collate_fn=` merges a list of
    examples your way. With an IterableDataset the examples come in the dataset's own order.
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
                 pin_memory_device=""):
        if isinstance(num_workers, bool) or not isinstance(num_workers, numbers.Integral) or num_workers < 0:
            raise ValueError("DataLoader: num_workers option should be non-negative; use num_workers=0 to "
                             f"disable multiprocessing (got {num_workers!r})")
        if timeout < 0:
            raise ValueError(f"DataLoader: timeout option should be non-negative, got {timeout!r}")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("DataLoader: prefetch_factor option could only be specified in multiprocessing; "
                             "let num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to None")
        if persistent_workers and num_workers == 0:
            raise ValueError("DataLoader: persistent_workers option needs num_workers > 0")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be a function, got {type(collate_fn).__name__}")
        _check_generator(generator, "DataLoader")
        if isinstance(dataset, IterableDataset):
            if shuffle not in (False, None):
                raise ValueError("DataLoader with IterableDataset: expected unspecified shuffle option, "
                                 f"but got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified sampler option, "
                                 f"but got sampler={sampler!r}")
            if batch_sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified batch_sampler option, "
                                 f"but got batch_sampler={batch_sampler!r}")
        if sampler is not None and shuffle not in (False, None):
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None:
            if drop_last:
                raise ValueError("DataLoader: batch_size=None option disables auto-batching and is mutually "
                                 "exclusive with drop_last")
        elif isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size should be a positive integer or None, got {batch_size!r}")
        if not isinstance(dataset, IterableDataset):
            if sampler is None:
                sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
            if batch_size is not None and batch_sampler is None:
                batch_sampler = BatchSampler(sampler, batch_size, bool(drop_last))
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, bool(drop_last)
        self.sampler, self.batch_sampler, self.generator = sampler, batch_sampler, generator
        self.num_workers, self.pin_memory, self.timeout = num_workers, pin_memory, timeout
        self.worker_init_fn, self.prefetch_factor, self.persistent_workers = (worker_init_fn, prefetch_factor,
                                                                             persistent_workers)
        self.multiprocessing_context, self.pin_memory_device = multiprocessing_context, pin_memory_device
        auto = batch_size is not None or batch_sampler is not None
        self.collate_fn = collate_fn if collate_fn is not None else default_collate if auto else default_convert

    @property
    def _auto_collation(self):
        return self.batch_size is not None or self.batch_sampler is not None

    def __iter__(self):
        if isinstance(self.dataset, IterableDataset):
            yield from self._iter_stream()
        elif self._auto_collation:
            for indices in self.batch_sampler:
                yield self.collate_fn([self.dataset[i] for i in indices])
        else:
            for i in self.sampler:
                yield self.collate_fn(self.dataset[i])

    def _iter_stream(self):
        if self.batch_size is None:
            for example in self.dataset:
                yield self.collate_fn(example)
            return
        it = iter(self.dataset)
        while True:
            batch = list(itertools.islice(it, self.batch_size))
            if not batch or (self.drop_last and len(batch) < self.batch_size):
                return
            yield self.collate_fn(batch)

    def __len__(self):
        if isinstance(self.dataset, IterableDataset):
            n = len(self.dataset)                               # a TypeError if the stream has no length
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self.batch_sampler if self._auto_collation else self.sampler)


# PyTorch's submodule paths, as makemore and minGPT import them:
# `from torch.utils.data.dataloader import DataLoader`, `from torch.utils.data.sampler import RandomSampler`
for _sub, _names in (("dataloader", ["DataLoader", "default_collate", "default_convert", "get_worker_info"]),
                     ("dataset", ["Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset",
                                  "random_split"]),
                     ("sampler", ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
                                  "BatchSampler"])):
    _module = types.ModuleType(f"{__name__}.{_sub}", f"PyTorch's torch.utils.data.{_sub} path: {', '.join(_names)}.")
    _module.__dict__.update({name: globals()[name] for name in _names}, __all__=_names)
    globals()[_sub] = sys.modules[_module.__name__] = _module
del _sub, _names, _module

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset", "random_split", "Sampler",
           "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "BatchSampler", "DataLoader",
           "default_collate", "default_convert", "get_worker_info"]
