"""Random streams: seeded, and restorable exactly from their saved state."""
import json

import numpy as np
import pytest

import backends


@pytest.fixture
def stream(device):
    return backends.get(device).random


def _host(device, array):
    return backends.get(device).to_host(array)


def test_same_seed_same_numbers(stream, device):
    stream.seed(7)
    a = _host(device, stream.normal((5,)))
    stream.seed(7)
    b = _host(device, stream.normal((5,)))
    stream.seed(8)
    c = _host(device, stream.normal((5,)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_state_round_trips_through_json(stream, device):
    stream.seed(3)
    stream.uniform((10,))
    state = json.loads(json.dumps(stream.get_state()))
    expected = [_host(device, stream.uniform((4,))), _host(device, stream.integers(0, 100, (3,))),
                _host(device, stream.permutation(6))]
    stream.set_state(state)
    got = [_host(device, stream.uniform((4,))), _host(device, stream.integers(0, 100, (3,))),
           _host(device, stream.permutation(6))]
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)


def test_dtypes_and_ranges(stream, device):
    u = _host(device, stream.uniform((1000,), low=-2.0, high=3.0, dtype=np.float64))
    assert u.dtype == np.float64 and u.min() >= -2.0 and u.max() < 3.0
    n = _host(device, stream.normal((4000,), mean=1.0, std=2.0))
    assert n.dtype == np.float32
    assert abs(n.mean() - 1.0) < 0.15 and abs(n.std() - 2.0) < 0.15
    assert sorted(_host(device, stream.permutation(5)).tolist()) == [0, 1, 2, 3, 4]


def test_foreign_state_is_refused(stream):
    with pytest.raises(ValueError, match="state"):
        stream.set_state({"bit_generator": "MT19937", "state": {}})
