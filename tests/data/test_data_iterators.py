"""Iterators: epochs, shuffling, resume exactness, prefetch equality, streams, devices."""
import json
import threading

import numpy as np
import pytest

import sigma
from sigma.data import (HorizontalFlip, InfiniteStream, InMemoryDataset, MinibatchIterator, Normalise, Pipeline,
                        RandomCrop, WholeSetIterator)
from sigma.data.errors import DataError


def _data(n=103):
    rng = np.random.default_rng(0)
    return InMemoryDataset(inputs=rng.integers(0, 255, (n, 1, 6, 6)).astype(np.uint8), targets=np.arange(n))


def _targets(batches):
    return [b["targets"].numpy().tolist() for b in batches]


def test_an_epoch_sees_every_sample_once_as_tensors_on_the_device(device):
    batches = MinibatchIterator(_data(), batch_size=10, seed=0, device=device,
                                transform=Normalise(mean=0.0, std=255.0))
    assert len(batches) == 11
    seen = list(batches)
    assert all(isinstance(b["inputs"], sigma.Tensor) and b["inputs"].device == device for b in seen)
    assert [b["inputs"].shape[0] for b in seen] == [10] * 10 + [3]
    assert seen[0]["inputs"].dtype == np.float32 and seen[0]["targets"].dtype == np.int64
    order = np.concatenate([b["targets"].numpy() for b in seen])
    assert sorted(order.tolist()) == list(range(103)) and order.tolist() != list(range(103))
    data = _data()
    np.testing.assert_allclose(seen[0]["inputs"].numpy(), data.batch(seen[0]["targets"].numpy())["inputs"] / 255.0,
                               rtol=1e-6)
    assert batches.epoch == 1 and batches.position == 0


def test_each_epoch_is_shuffled_anew_and_seeds_repeat():
    a = MinibatchIterator(_data(), batch_size=10, seed=5)
    first, second = _targets(a), _targets(a)
    assert first != second
    b = MinibatchIterator(_data(), batch_size=10, seed=5)
    assert _targets(b) == first and _targets(b) == second
    assert _targets(MinibatchIterator(_data(), batch_size=10, shuffle=False))[0] == list(range(10))


def test_unseeded_iterators_follow_sigma_manual_seed():
    sigma.manual_seed(11)
    a = _targets(MinibatchIterator(_data(), batch_size=10))
    sigma.manual_seed(11)
    b = _targets(MinibatchIterator(_data(), batch_size=10))
    assert a == b


def test_drop_last_and_empty_iterators():
    batches = MinibatchIterator(_data(), batch_size=10, drop_last=True, seed=0)
    assert len(batches) == 10 and all(len(t) == 10 for t in _targets(batches))
    with pytest.raises(DataError, match="no batches: the dataset has 103 samples and batch_size is 200 with drop_last"):
        MinibatchIterator(_data(), batch_size=200, drop_last=True)
    with pytest.raises(TypeError, match="wrap arrays with"):
        MinibatchIterator(np.zeros((3, 2)), batch_size=2)


def _augmenting(data, **options):
    augment = Pipeline(RandomCrop(size=6, padding=1), HorizontalFlip(), Normalise(mean=0.0, std=255.0))
    return MinibatchIterator(data, batch_size=8, seed=3, transform=augment, **options)


def test_resume_mid_epoch_continues_exactly_with_augmentations():
    data = _data()
    reference = _augmenting(data)
    uninterrupted = [b for _ in range(3) for b in reference]
    interrupted = _augmenting(data)
    delivered = []
    for _ in range(2):
        delivered += list(interrupted)
    for batch in interrupted:
        delivered.append(batch)
        if len(delivered) == 2 * 13 + 5:
            break
    state = json.loads(json.dumps(interrupted.state_dict()))   # survives a checkpoint as plain data
    assert (state["epoch"], state["position"]) == (2, 5)
    resumed = _augmenting(data)
    resumed.load_state_dict(state)
    delivered += list(resumed)
    assert len(delivered) == len(uninterrupted) == 39
    for got, want in zip(delivered, uninterrupted):
        np.testing.assert_array_equal(got["targets"].numpy(), want["targets"].numpy())
        np.testing.assert_array_equal(got["inputs"].numpy(), want["inputs"].numpy())
    assert resumed.epoch == 3


def test_resume_at_an_epoch_boundary_and_state_checks():
    data = _data()
    first = MinibatchIterator(data, batch_size=10, seed=1)
    list(first)
    second = MinibatchIterator(data, batch_size=10, seed=1)
    second.load_state_dict(first.state_dict())
    assert _targets(second) == _targets(first)
    with pytest.raises(ValueError, match="iterator state has batch_size=10, this iterator has batch_size=7"):
        MinibatchIterator(data, batch_size=7).load_state_dict(first.state_dict())
    with pytest.raises(ValueError, match="length=103"):
        MinibatchIterator(_data(50), batch_size=10).load_state_dict(first.state_dict())


def test_prefetch_gives_the_same_batches_in_the_same_order():
    data = _data()
    plain = _augmenting(data)
    ahead = _augmenting(data, prefetch=3)
    for _ in range(2):
        for a, b in zip(plain, ahead, strict=True):
            np.testing.assert_array_equal(a["inputs"].numpy(), b["inputs"].numpy())
            np.testing.assert_array_equal(a["targets"].numpy(), b["targets"].numpy())
    assert ahead.state_dict() == plain.state_dict()


def test_prefetch_position_counts_delivered_batches_and_early_exit_stops_the_thread():
    before = threading.active_count()
    ahead = MinibatchIterator(_data(), batch_size=10, seed=0, prefetch=4)
    for i, _ in enumerate(ahead):
        if i == 2:
            break
    assert ahead.position == 3
    assert threading.active_count() == before
    rest = _targets(ahead)
    reference = MinibatchIterator(_data(), batch_size=10, seed=0)
    assert _targets(reference)[3:] == rest


def test_errors_in_the_prefetch_thread_reach_the_loop():
    def broken(sections):
        raise ValueError("bad augmentation")

    with pytest.raises(ValueError, match="bad augmentation"):
        list(MinibatchIterator(_data(), batch_size=10, transform=broken, prefetch=2))


def test_infinite_stream_crosses_epochs_and_resumes():
    data = _data(25)
    stream = InfiniteStream(data, batch_size=10, seed=4, prefetch=2)
    taken = [next(stream)["targets"].numpy().tolist() for _ in range(7)]
    assert [len(t) for t in taken] == [10, 10, 5, 10, 10, 5, 10]
    assert sorted(sum(taken[:3], [])) == list(range(25)) and taken[:3] != taken[3:6]
    assert (stream.epoch, stream.position) == (2, 1)
    state = stream.state_dict()
    following = [next(stream)["targets"].numpy().tolist() for _ in range(3)]
    stream.close()
    again = InfiniteStream(data, batch_size=10, seed=4)
    again.load_state_dict(state)
    assert [next(again)["targets"].numpy().tolist() for _ in range(3)] == following
    epochwise = MinibatchIterator(data, batch_size=10, seed=4)
    assert taken[:6] == _targets(epochwise) + _targets(epochwise)


def test_whole_set_iterator_and_section_selection(device):
    data = _data(12)
    whole = WholeSetIterator(data, device=device, sections=["targets"])
    batches = list(whole)
    assert len(batches) == 1 and list(batches[0]) == ["targets"]
    assert batches[0]["targets"].numpy().tolist() == list(range(12)) and batches[0]["targets"].device == device
    assert whole.state_dict()["epoch"] == 1
    only_inputs = next(iter(MinibatchIterator(data, 4, sections=["inputs"], seed=0)))
    assert list(only_inputs) == ["inputs"]
