"""MarketplaceV1: the best path's vendors become the parameters, exactly; the leader is never lost."""
import numpy as np

import sigma
from sigma import nn
from sigma_marketplace import MarketplaceV1, Stages, draw_seeds, uniform_delta


def setup(seed=0, **settings):
    sigma.manual_seed(seed)
    network = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3))
    optimiser = MarketplaceV1(Stages.split(network, [2, 4]), **settings)
    rng = np.random.default_rng(seed)
    x = sigma.tensor(rng.standard_normal((32, 5)).astype(np.float32))
    y = sigma.tensor(rng.integers(0, 3, 32))
    return network, optimiser, optimiser.make_handle(network, nn.CrossEntropyLoss(), x, y)


def test_parameters_become_exactly_the_best_paths_vendors():
    network, optimiser, handle = setup(lr=0.2, vendors=4, seed=1)
    before = [[p.data.copy() for p in group["params"]] for group in optimiser.param_groups]
    returned = optimiser.step(handle)
    record = optimiser.last_step
    best = int(np.argmin(record.losses))
    assert returned == record.losses[best] == record.losses.min()
    assert returned <= record.leader_loss
    for stage, group in enumerate(optimiser.param_groups):
        vendor = int(record.paths[best, stage])
        seed = int(draw_seeds(0, 1, stage, 4)[vendor])
        for index, (param, old) in enumerate(zip(group["params"], before[stage])):
            expected = old + uniform_delta(seed, index, param.shape, 0.2)
            assert np.array_equal(param.data, expected)      # bit for bit: the vendor itself, not a copy of it
    assert record.paths[best].any()    # with lr 0.2 some vendor beats the leader on this batch


def test_the_leader_is_kept_exactly_when_no_vendor_beats_it():
    network, optimiser, handle = setup(lr=1e3, vendors=3, decay=0.5)
    before = [p.data.copy() for p in network.parameters()]
    returned = optimiser.step(handle)
    assert int(np.argmin(optimiser.last_step.losses)) == 0
    assert returned == optimiser.last_step.leader_loss
    assert all(np.array_equal(p.data, b) for p, b in zip(network.parameters(), before))
    assert optimiser.step_count == 1 and optimiser.param_groups[0]["lr"] == 500.0


def test_the_loss_on_a_fixed_batch_never_rises_and_next_leader_is_last_best():
    network, optimiser, handle = setup(lr=0.1, vendors=3, decay=0.01)
    returned, leaders = [], []
    for _ in range(15):
        returned.append(optimiser.step(handle))
        leaders.append(optimiser.last_step.leader_loss)
    assert all(b <= a + 1e-6 for a, b in zip(returned, returned[1:]))
    assert returned[-1] < returned[0] - 0.05
    # Each step's leader is the previous step's best path, so it scores the same on the batch.
    np.testing.assert_allclose(leaders[1:], returned[:-1], rtol=1e-5)


def test_v1_resumes_bit_identically_from_its_state_dict():
    network, optimiser, handle = setup(lr=0.1, vendors=3, decay=0.01, upstream=[None, 2, 2])
    straight = [optimiser.step(handle) for _ in range(4)]
    expected = [p.data.copy() for p in network.parameters()]

    network, optimiser, handle = setup(lr=0.1, vendors=3, decay=0.01, upstream=[None, 2, 2])
    first = [optimiser.step(handle) for _ in range(2)]
    saved_state, saved_weights = optimiser.state_dict(), [p.data.copy() for p in network.parameters()]
    network, optimiser, handle = setup(seed=0, lr=0.5, vendors=3, decay=0.3, upstream=[None, 2, 2])
    for p, w in zip(network.parameters(), saved_weights):
        p.data[...] = w
    optimiser.load_state_dict(saved_state)
    rest = [optimiser.step(handle) for _ in range(2)]
    assert first + rest == straight
    assert all(np.array_equal(p.data, e) for p, e in zip(network.parameters(), expected))
