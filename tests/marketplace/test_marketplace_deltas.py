"""Vendor perturbations: counter-based, regenerated from seeds, equal to cached ones."""
import numpy as np
import pytest

import sigma
from sigma import nn
from sigma_marketplace import MarketplaceV1, MarketplaceV2, SeedDeltas, Stages, draw_seeds, uniform_delta


def test_uniform_delta_is_philox_keyed_by_seed_and_parameter_index():
    seed, index = 0x1234_5678_9ABC, 3
    generator = np.random.Generator(np.random.Philox(key=np.array([seed, index], dtype=np.uint64)))
    expected = generator.random((4, 5), dtype=np.float32) * np.float32(0.2) - np.float32(0.1)
    assert np.array_equal(uniform_delta(seed, index, (4, 5), 0.1), expected)


def test_uniform_delta_range_mean_and_independence():
    values = uniform_delta(99, 0, (200_000,), 0.25, np.float64)
    assert values.min() >= -0.25 and values.max() < 0.25
    assert abs(values.mean()) < 0.01 and values.std() == pytest.approx(0.25 / np.sqrt(3), rel=0.01)
    other = uniform_delta(99, 1, (200_000,), 0.25, np.float64)
    assert abs(np.corrcoef(values, other)[0, 1]) < 0.01
    assert uniform_delta(99, 0, (3,), 1.0).dtype == np.float32
    assert not uniform_delta(0, 5, (3, 3), 1.0).any()      # the leader's seed: no perturbation


def test_uniform_delta_rejects_out_of_range_seeds():
    with pytest.raises(ValueError, match="seed and index must be in"):
        uniform_delta(-1, 0, (2,), 1.0)


def test_draw_seeds_reserve_zero_for_the_leader_and_depend_on_every_argument():
    seeds = draw_seeds(3, 7, 1, 16)
    assert seeds[0] == 0 and len(set(seeds[1:].tolist())) == 15 and (seeds[1:] != 0).all()
    for other in (draw_seeds(4, 7, 1, 16), draw_seeds(3, 8, 1, 16), draw_seeds(3, 7, 2, 16)):
        assert not set(other[1:].tolist()) & set(seeds[1:].tolist())
    assert np.array_equal(draw_seeds(3, 7, 1, 4), draw_seeds(3, 7, 1, 4))


def _parameters():
    return [[sigma.randn(3, 4), sigma.randn(4)], [sigma.randn(2, 2, 3, 3)]]


def test_regenerated_deltas_equal_cached_ones():
    params = _parameters()
    seeds = [draw_seeds(1, 1, s, 5) for s in range(2)]
    cached = SeedDeltas(params, seeds, [0.1, 0.3], cache=True)
    regenerated = SeedDeltas(params, seeds, [0.1, 0.3], cache=False)
    weights = np.array([0.5, -1.0, 2.0, 0.0, 1.5])
    for stage, stage_params in enumerate(params):
        for index, _ in enumerate(stage_params):
            assert np.array_equal(cached.deltas(stage, index), regenerated.deltas(stage, index))
            for vendor in range(5):
                assert np.array_equal(cached.delta(stage, vendor, index), regenerated.delta(stage, vendor, index))
            assert np.array_equal(cached.combine(stage, index, weights), regenerated.combine(stage, index, weights))
            assert not cached.deltas(stage, index)[0].any()
    # The cache keeps each stacked array: asking twice gives the same object, regenerating gives a new one.
    assert cached.deltas(0, 0) is cached.deltas(0, 0)
    assert regenerated.deltas(0, 0) is not regenerated.deltas(0, 0)


def test_combine_is_the_weighted_sum_of_the_vendors_deltas():
    params = _parameters()
    deltas = SeedDeltas(params, [draw_seeds(2, 1, s, 4) for s in range(2)], [0.1, 0.1])
    weights = [3.0, 0.25, -2.0, 1.0]
    expected = sum(w * deltas.deltas(1, 0)[v].astype(np.float64) for v, w in enumerate(weights))
    np.testing.assert_allclose(deltas.combine(1, 0, weights), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("optimiser_class", [MarketplaceV1, MarketplaceV2])
def test_a_step_with_regenerated_deltas_equals_one_with_cached_deltas(optimiser_class):
    x, y = sigma.randn(16, 6), sigma.randint(0, 3, (16,))
    results = []
    for cache in (True, False):
        sigma.manual_seed(1)
        network = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
        optimiser = optimiser_class(Stages.split(network, [2]), lr=0.1, vendors=4, cache_deltas=cache)
        losses = [optimiser.step(optimiser.make_handle(network, nn.CrossEntropyLoss(), x, y)) for _ in range(3)]
        results.append((losses, [p.data.copy() for p in network.parameters()]))
    assert results[0][0] == results[1][0]
    assert all(np.array_equal(a, b) for a, b in zip(results[0][1], results[1][1]))
