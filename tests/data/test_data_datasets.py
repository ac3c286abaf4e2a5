"""Datasets: in memory, subsets, concatenation, relabelling, splits."""
import numpy as np
import pytest

from sigma.data import Concatenation, InMemoryDataset, split
from sigma.data.errors import DataFormatError


def _digits(n=30, offset=0):
    return InMemoryDataset(inputs=np.arange(n * 4, dtype=np.uint8).reshape(n, 2, 2) + offset,
                           targets=np.arange(n) % 10, classes=[str(d) for d in range(10)], name="digits")


def test_in_memory_dataset_indexing():
    data = _digits()
    assert len(data) == 30 and data.sections == ("inputs", "targets")
    assert data["targets"] is data.targets
    assert data[3]["inputs"].tolist() == [[12, 13], [14, 15]]
    assert data[-1]["targets"] == 9
    assert data[5:8]["targets"].tolist() == [5, 6, 7]
    assert data[[2, 0]]["targets"].tolist() == [2, 0]
    assert data[np.arange(30) == 4]["targets"].tolist() == [4]
    assert "30 samples" in repr(data) and "(2, 2) uint8" in repr(data)
    with pytest.raises(IndexError, match="index 30 is out of range for a dataset of 30 samples"):
        data[[30]]
    with pytest.raises(KeyError, match=r"no section 'labels'; this dataset has \['inputs', 'targets'\]"):
        data["labels"]
    with pytest.raises(TypeError, match="MinibatchIterator"):
        iter(data)


def test_in_memory_dataset_validation():
    with pytest.raises(DataFormatError, match="section 'targets' has 3 samples but section 'inputs' has 4"):
        InMemoryDataset(inputs=np.zeros((4, 2)), targets=np.zeros(3))
    with pytest.raises(DataFormatError, match="holds Python objects"):
        InMemoryDataset(inputs=np.array([{}, {}], dtype=object))
    with pytest.raises(ValueError, match="at least one section"):
        InMemoryDataset()


def test_subset_and_where():
    data = _digits()
    sevens = data.where(targets=7)
    assert len(sevens) == 3 and sevens["targets"].tolist() == [7, 7, 7]
    assert sevens.indices.tolist() == [7, 17, 27]
    inner = data.subset([5, 1, 9]).subset([2, 0])
    assert inner["targets"].tolist() == [9, 5] and inner.classes == data.classes
    assert data.where(targets=[1, 2])["targets"].tolist() == [1, 2, 1, 2, 1, 2]


def test_mixing_digits_with_dresses_under_a_new_label():
    digits = _digits(20)
    fashion = InMemoryDataset(inputs=np.full((12, 2, 2), 200, np.uint8), targets=np.arange(12) % 4)
    dresses = fashion.where(targets=3).relabel(10)
    mixed = digits.concat(dresses)
    assert isinstance(mixed, Concatenation) and len(mixed) == 23
    assert mixed["targets"][-3:].tolist() == [10, 10, 10]
    batch = mixed.batch([21, 0, 20, 5])
    assert batch["targets"].tolist() == [10, 0, 10, 5]
    assert batch["inputs"][0].tolist() == [[200, 200], [200, 200]]
    assert batch["inputs"][3].tolist() == digits[5]["inputs"].tolist()


def test_relabel_with_dict_and_function():
    data = _digits(10)
    assert data.relabel({1: 0, 2: 0})["targets"].tolist() == [0, 0, 0, 3, 4, 5, 6, 7, 8, 9]
    assert data.relabel(lambda t: t % 2, classes=["even", "odd"]).classes == ["even", "odd"]
    assert data.relabel(lambda t: t % 2)["targets"].tolist() == [0, 1] * 5


def test_concatenation_checks_sections_shapes_and_dtypes():
    a = InMemoryDataset(inputs=np.zeros((2, 3), np.float32), targets=np.zeros(2, np.int64))
    with pytest.raises(DataFormatError, match=r"section 'inputs': dataset 1 has samples of shape \(4,\) float32"):
        a.concat(InMemoryDataset(inputs=np.zeros((2, 4), np.float32), targets=np.zeros(2, np.int64)))
    with pytest.raises(DataFormatError, match=r"\(3,\) float64, dataset 0 has \(3,\) float32; cast or reshape first"):
        a.concat(InMemoryDataset(inputs=np.zeros((2, 3)), targets=np.zeros(2, np.int64)))
    with pytest.raises(DataFormatError, match=r"dataset 1 has sections \['inputs'\]"):
        a.concat(InMemoryDataset(inputs=np.zeros((2, 3), np.float32)))


def test_split_by_fraction_is_disjoint_complete_and_seeded():
    data = _digits(101)
    parts = split(data, [0.6, 0.2, 0.2], seed=3)
    assert [len(p) for p in parts] == [61, 20, 20]
    joined = np.concatenate([p.indices for p in parts])
    assert sorted(joined.tolist()) == list(range(101))
    again = split(data, [0.6, 0.2, 0.2], seed=3)
    assert all((a.indices == b.indices).all() for a, b in zip(parts, again))
    other = split(data, [0.6, 0.2, 0.2], seed=4)
    assert (parts[0].indices != other[0].indices).any()
    assert all((np.diff(p.indices) > 0).all() for p in parts)


def test_split_by_count_without_shuffle_cuts_at_indices():
    parts = split(_digits(60), {"train": 50, "validation": 10}, shuffle=False)
    assert parts["train"].indices.tolist() == list(range(50))
    assert parts["validation"].indices.tolist() == list(range(50, 60))
    with pytest.raises(ValueError, match="sum to at most 60 samples"):
        split(_digits(60), [50, 20])
    with pytest.raises(ValueError, match="sum to at most 1"):
        split(_digits(60), [0.7, 0.7])


def test_stratified_split_keeps_class_proportions():
    labels = np.r_[np.zeros(600, int), np.ones(300, int), np.full(100, 2)]
    data = InMemoryDataset(inputs=np.zeros((1000, 1)), targets=labels)
    parts = split(data, {"train": 0.7, "validation": 0.2, "test": 0.1}, seed=0, stratify="targets")
    assert np.bincount(parts["train"]["targets"]).tolist() == [420, 210, 70]
    assert np.bincount(parts["validation"]["targets"]).tolist() == [120, 60, 20]
    assert np.bincount(parts["test"]["targets"]).tolist() == [60, 30, 10]
    odd = InMemoryDataset(targets=np.r_[np.zeros(7, int), np.ones(5, int)])
    for part in split(odd, [0.5, 0.5], stratify="targets", seed=1):
        counts = np.bincount(part["targets"], minlength=2)
        assert abs(counts[0] - 3.5) <= 1 and abs(counts[1] - 2.5) <= 1
