"""MarketplaceV2 against a brute-force computation that loops over every path explicitly."""
import itertools

import numpy as np
import pytest

import sigma
from sigma import nn
from sigma.io import checkpoint
from sigma_marketplace import MarketplaceV2, Stages, draw_seeds, uniform_delta


def tiny_network(dtype="float64"):
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, dtype=dtype), nn.ReLU(), nn.InstanceNorm2d(2), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(18, 4, dtype=dtype), nn.Tanh(),
        nn.Linear(4, 3, dtype=dtype))


def batch(dtype="float64", size=6):
    rng = np.random.default_rng(1)
    return (sigma.tensor(rng.standard_normal((size, 1, 8, 8)), dtype=dtype),
            sigma.tensor(rng.integers(0, 3, size)))


def brute_force_direction(network, ends, x, y, vendors, lr, probe_scale, seed, step, normalise):
    """Every path evaluated with the plain network, direction summed path by path."""
    stages = Stages.split(network, ends)
    params = [stage.parameters for stage in stages]
    originals = [[p.data.copy() for p in stage] for stage in params]
    deltas = []
    for s, stage in enumerate(params):
        seeds = draw_seeds(seed, step, s, vendors)
        deltas.append([[uniform_delta(int(seeds[v]), i, p.shape, lr * probe_scale, p.dtype)
                        for i, p in enumerate(stage)] for v in range(vendors)])
    paths = list(itertools.product(range(vendors), repeat=len(params)))
    losses = []
    for path in paths:
        for s, vendor in enumerate(path):
            for i, p in enumerate(params[s]):
                p.data[...] = originals[s][i] + deltas[s][vendor][i]
        losses.append(float(nn.CrossEntropyLoss()(network(x), y).item()))
    for s, stage in enumerate(params):
        for i, p in enumerate(stage):
            p.data[...] = originals[s][i]
    losses = np.array(losses)
    z = -(losses - losses.mean()) / losses.std()
    direction = [[np.zeros(p.shape) for p in stage] for stage in params]
    for path, weight in zip(paths, z):
        for s, vendor in enumerate(path):
            for i in range(len(params[s])):
                direction[s][i] += weight * deltas[s][vendor][i]
    norms = [np.sqrt(sum((g ** 2).sum() for g in stage)) for stage in direction]
    if normalise == "whole":
        norms = [np.sqrt(sum(n ** 2 for n in norms))] * len(norms)
    return [[g / n for g in stage] for stage, n in zip(direction, norms)], losses


@pytest.mark.parametrize("normalise", ["whole", "per_spec"])
@pytest.mark.parametrize("cache_deltas", [True, False])
def test_direction_equals_brute_force_over_every_path(normalise, cache_deltas):
    network = tiny_network()
    x, y = batch()
    lr, probe_scale, vendors, seed = 0.2, 0.05, 3, 11
    expected, expected_losses = brute_force_direction(network, [5, 7], x, y, vendors, lr, probe_scale, seed, 1,
                                                      normalise)
    stages = Stages.split(network, [5, 7])
    before = [p.data.copy() for p in stages.parameters()]
    optimiser = MarketplaceV2(stages, lr=lr, vendors=vendors, probe_scale=probe_scale, seed=seed,
                              normalise=normalise, cache_deltas=cache_deltas)
    leader_loss = optimiser.step(optimiser.make_handle(network, nn.CrossEntropyLoss(), x, y))
    assert optimiser.last_step.paths.tolist() == [list(p) for p in itertools.product(range(3), repeat=3)]
    np.testing.assert_allclose(optimiser.last_step.losses, expected_losses, rtol=1e-12)
    assert leader_loss == pytest.approx(expected_losses[0], rel=1e-12)
    moved = [(p.data - b) / lr for p, b in zip(stages.parameters(), before)]
    flat_expected = [g for stage in expected for g in stage]
    for got, want in zip(moved, flat_expected):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    norm = np.sqrt(sum((g ** 2).sum() for g in moved))
    assert norm == pytest.approx(1.0 if normalise == "whole" else np.sqrt(3), rel=1e-9)


def test_direction_through_a_plain_loss_function_equals_the_wide_pass():
    """Without stages the optimiser evaluates path by path through any loss handle; same update."""
    x, y = batch()
    results = []
    for wide in (True, False):
        sigma.manual_seed(3)
        network = tiny_network()
        stages = Stages.split(network, [5, 7])
        target = stages if wide else stages.param_groups()
        optimiser = MarketplaceV2(target, lr=0.1, vendors=3, probe_scale=0.1, seed=4)
        for _ in range(2):
            if wide:
                optimiser.step(optimiser.make_handle(network, nn.CrossEntropyLoss(), x, y))
            else:
                optimiser.step(lambda: nn.CrossEntropyLoss()(network(x), y))
        results.append([p.data.copy() for p in network.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def test_meta_lr_keeps_exactly_the_best_candidate_and_remembers_its_factor():
    network = tiny_network()
    x, y = batch()
    stages = Stages.split(network, [5, 7])
    optimiser = MarketplaceV2(stages, lr=0.5, vendors=3, probe_scale=0.05, meta_lr=1.0, seed=2)
    handle = optimiser.make_handle(network, nn.CrossEntropyLoss(), x, y)
    returned = optimiser.step(handle)
    # The returned loss is the loss of the parameters kept, recomputed with the plain network.
    assert returned == pytest.approx(handle.loss(), rel=1e-12)
    assert returned <= optimiser.last_step.leader_loss
    scales = optimiser.lr_scales()
    assert all(s in (1.0, 2.0, 0.5) for s in scales)
    state = optimiser.state_dict()["state"]
    assert [state[0]["lr_scale"], state[2]["lr_scale"], state[4]["lr_scale"]] == scales


def test_meta_lr_step_is_never_worse_than_the_plain_step_and_shrinks_a_far_too_large_lr():
    x, y = batch()
    results = {}
    for meta_lr in (None, 1.0):
        sigma.manual_seed(0)
        network = tiny_network()
        optimiser = MarketplaceV2(Stages.split(network, [5, 7]), lr=50.0, vendors=3, probe_scale=1e-3,
                                  meta_lr=meta_lr)
        handle = optimiser.make_handle(network, nn.CrossEntropyLoss(), x, y)
        returned = optimiser.step(handle)
        results[meta_lr] = (returned, handle.loss(), optimiser)
    # Factor 1 on every stage (the plain V2 step) is one of the meta pass's paths.
    assert results[1.0][0] <= results[None][1] + 1e-12
    assert results[1.0][2].lr_scales()[2] < 1.0   # the classifier cannot take steps of length 50


def _train(optimiser, network, steps, first_step=0):
    losses = []
    for index in range(first_step, first_step + steps):
        rng = np.random.default_rng(index)   # batch i is the same whenever it is drawn
        x = sigma.tensor(rng.standard_normal((6, 1, 8, 8)))
        y = sigma.tensor(rng.integers(0, 3, 6))
        losses.append(optimiser.step(optimiser.make_handle(network, nn.CrossEntropyLoss(), x, y)))
    return losses


def _fresh(seed=5, **settings):
    sigma.manual_seed(seed)
    network = tiny_network()
    stages = Stages.split(network, [5, 7])
    return network, MarketplaceV2(stages, lr=0.3, vendors=3, probe_scale=0.1, decay=0.01, seed=9, **settings)


@pytest.mark.parametrize("settings", [{}, {"meta_lr": 0.5}, {"upstream": [None, 2, 3]}, {"cache_deltas": False}])
def test_state_round_trips_through_a_checkpoint_and_resumes_bit_identically(tmp_path, settings):
    network, optimiser = _fresh(**settings)
    straight = _train(optimiser, network, 6)
    expected = [p.data.copy() for p in network.parameters()]

    network, optimiser = _fresh(**settings)
    assert _train(optimiser, network, 3) == straight[:3]
    path = checkpoint.save(tmp_path / "market.h5", {
        "network": {name: p.data for name, p in network.named_parameters()},
        "optimiser": optimiser.state_dict()})
    saved = checkpoint.load(path)

    network, optimiser = _fresh(seed=123, **settings)   # other initial weights: everything comes from the file
    for name, param in network.named_parameters():
        param.data[...] = saved["network"][name]
    optimiser.load_state_dict(saved["optimiser"])
    assert optimiser.step_count == 3
    assert optimiser.param_groups[0]["lr"] == 0.3 * 0.99 * 0.99 * 0.99
    assert _train(optimiser, network, 3, first_step=3) == straight[3:]
    for got, want in zip(network.parameters(), expected):
        assert np.array_equal(got.data, want)


def test_a_run_is_reproducible_from_its_seed():
    runs = []
    for _ in range(2):
        network, optimiser = _fresh()
        losses = _train(optimiser, network, 3)
        runs.append((losses, [p.data.copy() for p in network.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(np.array_equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
    network, optimiser = _fresh()
    optimiser.param_groups[0]["seed"] = optimiser.param_groups[1]["seed"] = optimiser.param_groups[2]["seed"] = 10
    other = _train(optimiser, network, 3)
    assert other != runs[0][0]


def test_lr_decays_and_the_state_records_step_and_seeds():
    network, optimiser = _fresh()
    _train(optimiser, network, 2)
    assert [g["lr"] for g in optimiser.param_groups] == [0.3 * 0.99 * 0.99] * 3
    state = optimiser.state_dict()["state"]
    assert state[0]["step"] == 2
    assert np.array_equal(state[0]["seeds"], draw_seeds(9, 2, 0, 3))
    assert np.array_equal(state[4]["seeds"], draw_seeds(9, 2, 2, 3))
