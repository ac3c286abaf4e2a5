"""Marketplace over several ranks: they share the paths and exchange only the path losses."""
import threading

import numpy as np
import pytest

import sigma
from sigma import nn
from sigma.distributed import LocalGroup
from sigma_marketplace import MarketplaceV1, MarketplaceV2, Stages


def network(seed):
    sigma.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.InstanceNorm2d(3), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(27, 8), nn.Tanh(), nn.Linear(8, 4))


def batches(count):
    rng = np.random.default_rng(0)
    return [(rng.standard_normal((6, 1, 8, 8)).astype(np.float32), rng.integers(0, 4, 6)) for _ in range(count)]


def train(optimiser_class, communicator=None, net=None, steps=3, **settings):
    net = network(0) if net is None else net
    optimiser = optimiser_class(Stages.split(net, [5, 7]), communicator=communicator, **settings)
    losses = [optimiser.step(optimiser.make_handle(net, nn.CrossEntropyLoss(), x, y)) for x, y in batches(steps)]
    return net, optimiser, losses


def on_ranks(size, function):
    group = LocalGroup(size, timeout=60)
    results = [None] * size
    errors = []

    def run(rank):
        try:
            results[rank] = function(group.communicators[rank])
        except Exception as error:  # surface a rank's failure in the test, not as a hang
            errors.append(error)
            group.abort(str(error))

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("optimiser_class, settings", [
    (MarketplaceV2, {"vendors": 3, "lr": 0.2, "probe_scale": 0.1}),
    (MarketplaceV2, {"vendors": 4, "lr": 0.2, "probe_scale": 0.1, "meta_lr": 0.5}),
    (MarketplaceV1, {"vendors": 3, "lr": 0.1}),
])
def test_two_ranks_make_the_single_process_update_and_exchange_only_losses(optimiser_class, settings):
    single, single_optimiser, single_losses = train(optimiser_class, **settings)
    # Rank 1 starts from other weights: the optimiser broadcasts rank 0's. (Networks are built before the
    # threads start: sigma.manual_seed is process-wide.)
    nets = [network(0), network(1)]
    ranks = on_ranks(2, lambda comm: train(optimiser_class, comm, nets[comm.rank], **settings))
    paths = single_optimiser.last_step.paths.shape[0]
    evaluations = 2 if settings.get("meta_lr") else 1
    for net, optimiser, losses in ranks:
        np.testing.assert_allclose(losses, single_losses, rtol=1e-6)
        for mine, reference in zip(net.parameters(), single.parameters()):
            np.testing.assert_allclose(mine.data, reference.data, rtol=1e-5, atol=1e-6)
        assert optimiser.communicated_bytes == 3 * evaluations * paths * 8
    # The ranks hold bit-identical parameters: same losses, same seeds, same arithmetic.
    for a, b in zip(ranks[0][0].parameters(), ranks[1][0].parameters()):
        assert np.array_equal(a.data, b.data)


def test_more_ranks_than_first_stage_vendors_and_sampling_refused():
    nets = [network(0) for _ in range(3)]
    ranks = on_ranks(3, lambda comm: train(MarketplaceV2, comm, nets[comm.rank], steps=1, vendors=2, lr=0.2,
                                           probe_scale=0.1))
    single, _, _ = train(MarketplaceV2, steps=1, vendors=2, lr=0.2, probe_scale=0.1)
    for net, _, _ in ranks:              # rank 2 owns no vendor; it still follows the update
        for mine, reference in zip(net.parameters(), single.parameters()):
            np.testing.assert_allclose(mine.data, reference.data, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="needs full upstream"):
        nets = [network(0), network(0)]
        on_ranks(2, lambda comm: train(MarketplaceV2, comm, nets[comm.rank], steps=1, vendors=3,
                                       upstream=[None, 2, None]))
