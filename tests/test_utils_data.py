"""Tests for tinylm/utils/data.py: PyTorch's Dataset/DataLoader/sampler behaviour, in one process."""
from collections import namedtuple

import numpy as np
import pytest

import tinylm as tl
from tinylm.utils.data import (BatchSampler, ConcatDataset, DataLoader, Dataset, IterableDataset, RandomSampler,
                               SequentialSampler, Subset, SubsetRandomSampler, TensorDataset, default_collate,
                               get_worker_info, random_split)


class Squares(Dataset):
    def __init__(self, n):
        self.n = n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return i, i * i

    def __len__(self):
        return self.n


class Stream(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))


def test_tensor_dataset_indexes_every_tensor_along_the_first_axis():
    x, y = tl.arange(12).reshape(6, 2).float(), tl.arange(6)
    ds = TensorDataset(x, y)
    assert len(ds) == 6
    xi, yi = ds[4]
    assert xi.tolist() == [8.0, 9.0] and int(yi) == 4
    with pytest.raises(ValueError, match=r"size mismatch.*\(6,\), \(5,\)"):
        TensorDataset(x, tl.arange(5))


def test_sequential_loader_batches_and_keeps_the_last_short_batch():
    x, y = tl.arange(10).reshape(5, 2).float(), tl.arange(5)
    batches = list(DataLoader(TensorDataset(x, y), batch_size=2))
    assert [b[1].tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    assert isinstance(batches[0], list) and batches[0][0].shape == (2, 2) and batches[0][0].dtype == np.float32
    assert len(DataLoader(TensorDataset(x, y), batch_size=2)) == 3
    dropped = DataLoader(TensorDataset(x, y), batch_size=2, drop_last=True)
    assert [b[1].tolist() for b in dropped] == [[0, 1], [2, 3]] and len(dropped) == 2


def test_default_collate_follows_pytorchs_rules():
    Point = namedtuple("Point", "x y")
    b = default_collate([{"a": 1, "b": 2.5, "s": "x", "v": np.array([1.0, 2.0], np.float32), "p": Point(1, 2)},
                         {"a": 3, "b": 0.5, "s": "y", "v": np.array([3.0, 4.0], np.float32), "p": Point(3, 4)}])
    assert b["a"].dtype == np.int64 and b["a"].tolist() == [1, 3]
    assert b["b"].dtype == np.float64 and b["b"].tolist() == [2.5, 0.5]        # Python floats: float64, as PyTorch
    assert b["s"] == ["x", "y"]
    assert b["v"].dtype == np.float32 and b["v"].tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert isinstance(b["p"], Point) and b["p"].x.tolist() == [1, 3]
    assert [t.tolist() for t in default_collate([(1, 2), (3, 4)])] == [[1, 3], [2, 4]]   # tuples -> a list
    assert default_collate([True, False]).dtype == np.bool_
    assert default_collate([np.float32(1.5), np.float32(2)]).dtype == np.float32
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [3]])
    with pytest.raises(TypeError, match="found object"):
        default_collate([object(), object()])


def test_collated_tensors_keep_their_gradient():
    w = tl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    batch = default_collate([w * 2, w * 3])                     # (2, 3)
    batch.sum().backward()
    assert w.grad.tolist() == [5.0, 5.0, 5.0]


def test_shuffle_visits_every_example_once_per_epoch_and_repeats_with_a_seed():
    ds = Squares(20)

    def epoch(loader):
        return [i for b in loader for i in b[0].tolist()]

    tl.manual_seed(3)
    loader = DataLoader(ds, batch_size=6, shuffle=True)
    first, second = epoch(loader), epoch(loader)
    assert sorted(first) == sorted(second) == list(range(20))
    assert first != second and first != list(range(20))         # a new order each epoch
    tl.manual_seed(3)
    assert epoch(DataLoader(ds, batch_size=6, shuffle=True)) == first
    g1, g2 = tl.Generator().manual_seed(7), tl.Generator().manual_seed(7)
    assert epoch(DataLoader(ds, batch_size=4, shuffle=True, generator=g1)) == \
        epoch(DataLoader(ds, batch_size=4, shuffle=True, generator=g2))


def test_random_sampler_with_and_without_replacement():
    ds = Squares(5)
    g = tl.Generator().manual_seed(0)
    draws = list(RandomSampler(ds, replacement=True, num_samples=200, generator=g))
    assert len(draws) == 200 and set(draws) == set(range(5))
    chained = list(RandomSampler(ds, num_samples=12, generator=g))
    assert sorted(chained[:5]) == sorted(chained[5:10]) == list(range(5)) and len(chained) == 12
    assert len(RandomSampler(ds, num_samples=12)) == 12 and len(RandomSampler(ds)) == 5
    with pytest.raises(ValueError, match="num_samples should be a positive integer"):
        RandomSampler(ds, num_samples=0)
    with pytest.raises(TypeError, match="replacement should be a boolean"):
        RandomSampler(ds, replacement=1)
    with pytest.raises(TypeError, match="tinylm Generator"):
        RandomSampler(ds, generator=np.random.default_rng(0))
    assert sorted(SubsetRandomSampler([7, 3, 9], generator=g)) == [3, 7, 9]


def test_batch_sampler_and_sequential_sampler():
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    assert list(BatchSampler(SequentialSampler(range(7)), 3, False)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert len(BatchSampler(range(7), 3, False)) == 3 and len(BatchSampler(range(7), 3, True)) == 2
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        BatchSampler(range(7), 0, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean"):
        BatchSampler(range(7), 2, "yes")


def test_loader_takes_a_sampler_or_a_batch_sampler():
    ds = Squares(6)
    got = [b[0].tolist() for b in DataLoader(ds, batch_size=2, sampler=[5, 4, 3, 2, 1, 0])]
    assert got == [[5, 4], [3, 2], [1, 0]]
    got = [b[1].tolist() for b in DataLoader(ds, batch_sampler=[[0, 5], [2]])]
    assert got == [[0, 25], [4]]
    unbatched = list(DataLoader(ds, batch_size=None))
    assert unbatched[3] == [3, 9]                               # no collation: the example itself (tuple -> list)


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_sampler=[[0]], batch_size=2), "mutually exclusive with batch_size"),
    (dict(batch_sampler=[[0]], shuffle=True), "mutually exclusive with batch_size"),
    (dict(batch_sampler=[[0]], drop_last=True), "mutually exclusive with batch_size"),
    (dict(sampler=[0, 1], shuffle=True), "sampler option is mutually exclusive with shuffle"),
    (dict(batch_size=None, drop_last=True), "batch_size=None option disables auto-batching"),
    (dict(num_workers=-1), "num_workers option should be non-negative"),
    (dict(prefetch_factor=2), "prefetch_factor"),
    (dict(persistent_workers=True), "persistent_workers option needs num_workers > 0"),
    (dict(batch_size=0), "batch_size should be a positive integer"),
])
def test_loader_refuses_pytorchs_bad_combinations(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DataLoader(Squares(4), **kwargs)


def test_num_workers_loads_in_process_with_the_same_batches():
    ds = Squares(9)
    plain = [b[1].tolist() for b in DataLoader(ds, batch_size=4)]
    workers = DataLoader(ds, batch_size=4, num_workers=4, pin_memory=True, persistent_workers=True,
                         prefetch_factor=2)
    assert [b[1].tolist() for b in workers] == plain
    assert get_worker_info() is None


def test_iterable_dataset_batches_its_stream():
    assert [b.tolist() for b in DataLoader(Stream(7), batch_size=3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [b.tolist() for b in DataLoader(Stream(7), batch_size=3, drop_last=True)] == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="IterableDataset: expected unspecified shuffle"):
        DataLoader(Stream(3), shuffle=True)
    with pytest.raises(ValueError, match="IterableDataset: expected unspecified sampler"):
        DataLoader(Stream(3), sampler=[0])
    with pytest.raises(TypeError, match="no \\[index\\]"):
        Stream(3)[0]


def test_subset_and_concat():
    ds = Squares(10)
    sub = Subset(ds, [9, 2, 4])
    assert len(sub) == 3 and sub[0] == (9, 81) and sub[2] == (4, 16)
    both = ds + Squares(3)
    assert isinstance(both, ConcatDataset) and len(both) == 13 and both[11] == (1, 1) and both[-1] == (2, 4)


def test_random_split_by_lengths_and_fractions():
    ds = Squares(10)
    a, b = random_split(ds, [7, 3], generator=tl.Generator().manual_seed(1))
    ids = [a[i][0] for i in range(len(a))] + [b[i][0] for i in range(len(b))]
    assert len(a) == 7 and len(b) == 3 and sorted(ids) == list(range(10))
    a2, _ = random_split(ds, [7, 3], generator=tl.Generator().manual_seed(1))
    assert [a2[i][0] for i in range(7)] == ids[:7]
    parts = random_split(Squares(11), [0.5, 0.3, 0.2])         # floor 5, 3, 2; the one left over to the first
    assert [len(p) for p in parts] == [6, 3, 2]
    with pytest.raises(ValueError, match="add up to 9, not to the length of the dataset \\(10\\)"):
        random_split(ds, [5, 4])
    with pytest.raises(ValueError, match="non-negative"):
        random_split(ds, [12, -2])
    with pytest.warns(UserWarning, match="length 0"):
        random_split(Squares(2), [0.9, 0.1])                    # floor 1, 0; the one left over to the first


def test_the_pytorch_paths_work():
    import tinylm.utils
    import tinylm.utils.data as data
    import tinylm.utils.data.sampler
    from tinylm.utils.data.dataloader import DataLoader as DL          # makemore's and minGPT's import
    from tinylm.utils.data.dataset import Dataset as DS
    assert tinylm.utils.data is data and data.DataLoader is DataLoader is DL and DS is Dataset
    assert tinylm.utils.data.sampler.RandomSampler is RandomSampler


def test_mingpts_endless_sampler_draws_lazily():
    # minGPT's trainer: RandomSampler(ds, replacement=True, num_samples=int(1e10)), then next(iter(loader))
    loader = DataLoader(Squares(7), sampler=RandomSampler(Squares(7), replacement=True, num_samples=int(1e10)),
                        batch_size=4, shuffle=False, pin_memory=True, num_workers=4)
    it = iter(loader)
    first, second = next(it), next(it)
    assert first[0].shape == (4,) and all(0 <= i < 7 for i in first[0].tolist() + second[0].tolist())
    assert len(loader) == 2_500_000_000                       # 1e10 / 4 batches
