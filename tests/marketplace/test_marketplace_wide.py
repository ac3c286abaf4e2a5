"""The wide forward pass against path-by-path evaluation with the plain network."""
import numpy as np
import pytest

import sigma
from sigma import nn
from sigma.optim import LossHandle
from sigma_marketplace import MarketplaceV2, PathPlan, SeedDeltas, StagedLossHandle, Stages, draw_seeds
from sigma_marketplace import layers as wide_layers


def path_by_path(network, stages, x, y, plan, deltas):
    """Each path's loss from the plain network with that path's parameters set (the brute force)."""
    loss = nn.CrossEntropyLoss()
    params = [stage.parameters for stage in stages]
    losses = []
    for path in plan.paths():
        originals = [[p.data.copy() for p in stage] for stage in params]
        for s, vendor in enumerate(path):
            for i, p in enumerate(params[s]):
                p.data[...] = p.data + deltas.delta(s, int(vendor), i)
        losses.append(loss(network(x), y).item())
        for stage, saved in zip(params, originals):
            for p, original in zip(stage, saved):
                p.data[...] = original
    return np.array(losses)


def check(network, ends, x, y, vendors, upstream=None, chunk_bytes=None, scale=0.05, rtol=1e-5):
    stages = Stages.split(network, ends)
    count = len(stages)
    plan = PathPlan.sample([vendors] * count, upstream or [None] * count, seed=3, step=1)
    deltas = SeedDeltas([s.parameters for s in stages], [draw_seeds(5, 1, s, vendors) for s in range(count)],
                        [scale] * count)
    handle = StagedLossHandle(stages, x, y, nn.CrossEntropyLoss())
    paths, losses = handle.path_losses(plan, deltas, chunk_bytes)
    assert np.array_equal(paths, plan.paths())
    np.testing.assert_allclose(losses, path_by_path(network, stages, x, y, plan, deltas), rtol=rtol, atol=1e-6)
    return stages, losses


def cnn(channels=4, dtype=None):
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, dtype=dtype), nn.ReLU(), nn.InstanceNorm2d(channels), nn.MaxPool2d(2),
        nn.Conv2d(channels, channels, 3, padding=1, dtype=dtype), nn.ReLU(), nn.Flatten(),
        nn.Linear(channels * 9, 5, dtype=dtype))


def images(n=5, size=8, channels=1):
    rng = np.random.default_rng(0)
    return (sigma.tensor(rng.standard_normal((n, channels, size, size)).astype(np.float32)),
            sigma.tensor(rng.integers(0, 5, n)))


def test_full_upstream_cnn_matches_path_by_path():
    x, y = images()
    stages, _ = check(cnn(), [4, 7], x, y, vendors=3)
    assert all(stage.vectorised for stage in stages)


@pytest.mark.parametrize("chunk_bytes", [1, 20_000])
def test_chunking_over_products_gives_the_same_losses(chunk_bytes):
    x, y = images()
    network = cnn()
    _, whole = check(network, [4, 7], x, y, vendors=3)
    _, chunked = check(network, [4, 7], x, y, vendors=3, chunk_bytes=chunk_bytes)
    np.testing.assert_allclose(chunked, whole, rtol=1e-6)


def test_upstream_sampling_matches_path_by_path_over_the_sampled_paths():
    x, y = images()
    network = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(27, 6),
                            nn.ReLU(), nn.Linear(6, 5))
    _, losses = check(network, [4, 6], x, y, vendors=4, upstream=[None, 3, 5])
    assert len(losses) == 4 * 5


@pytest.mark.parametrize("chunk_bytes", [None, 1])
def test_sampled_then_full_stages_and_chunks(chunk_bytes):
    x, y = images()
    network = nn.Sequential(nn.Linear(64, 6), nn.Tanh(), nn.Linear(6, 6), nn.Sigmoid(), nn.Linear(6, 5))
    xf = x.reshape(5, 64)
    _, losses = check(network, [2, 4], xf, y, vendors=3, upstream=[None, 2, None], chunk_bytes=chunk_bytes)
    assert len(losses) == 2 * 3 * 3


def test_grouped_same_padded_dilated_strided_convolutions_and_affine_instance_norm():
    x, y = images(n=3, size=9, channels=2)
    network = nn.Sequential(
        nn.Conv2d(2, 4, 4, padding="same", groups=2), nn.InstanceNorm2d(4, affine=True), nn.LeakyReLU(0.1),
        nn.Conv2d(4, 4, 3, stride=2, dilation=2, groups=4), nn.GELU(), nn.AvgPool2d(2),
        nn.Conv2d(4, 6, 1, groups=2, bias=False), nn.GlobalAvgPool2d(), nn.Linear(6, 5), nn.LogSoftmax())
    check(network, [3, 6], x, y, vendors=3)


def test_float64_models_match_to_rounding():
    x, y = images()
    x = x.to(dtype="float64")
    check(cnn(dtype="float64"), [4, 7], x, y, vendors=3, rtol=1e-12)


class Residual(nn.Module):
    """A block the wide pass does not know: it runs once per vendor."""

    def __init__(self, features):
        super().__init__()
        self.inner = nn.Linear(features, features)
        self.norm = nn.LayerNorm(features)

    def forward(self, x):
        return self.norm(x + self.inner(x).relu())


def test_unknown_blocks_run_once_per_vendor_and_match_path_by_path():
    x, y = images()
    network = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), Residual(8), nn.Linear(8, 5))
    for upstream in (None, [None, 2, None]):
        stages, _ = check(network, [2, 3], x, y, vendors=3, upstream=upstream)
        assert [stage.vectorised for stage in stages] == [True, False, True]


def test_each_layer_runs_once_per_chunk_not_once_per_path(monkeypatch):
    calls = []
    original = wide_layers.conv2d_array

    def counting(*args, **kwargs):
        calls.append(args[1].shape[0])          # samples in this call
        return original(*args, **kwargs)

    monkeypatch.setattr(wide_layers, "conv2d_array", counting)
    x, y = images()
    network = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3),
                            nn.Conv2d(2, 2, 3), nn.ReLU(),
                            nn.Conv2d(2, 2, 1), nn.Flatten(), nn.Linear(2 * 4, 5))
    check(network, [3, 5], x, y, vendors=4)
    # 4 x 4 x 4 = 64 paths. A stage's first convolution runs once for all its vendors on a shared input
    # (5, then 4 x 5, then 16 x 5 samples); a later one once per vendor: 7 calls in all, none per path.
    assert calls == [5, 5, 5, 5, 5, 20, 80]


def test_the_leader_path_is_the_unperturbed_network():
    x, y = images()
    network = cnn()
    stages, losses = check(network, [4, 7], x, y, vendors=2)
    assert losses[0] == pytest.approx(nn.CrossEntropyLoss()(network(x), y).item(), rel=1e-6)


def test_path_plan_orders_products_vendor_last_and_samples_without_repeats():
    plan = PathPlan([2, 2, 3])
    assert plan.product_counts == [2, 4, 12]
    assert plan.paths()[:4].tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 1, 0]]
    sampled = PathPlan.sample([4, 4, 4], [None, 3, 5], seed=1, step=2)
    assert sampled.product_counts == [4, 12, 20]
    for table in sampled.tables[1:]:
        assert table[0, 0] == 0
        assert all(len(set(row)) == len(row) for row in table.tolist())
    assert (sampled.paths()[0] == 0).all()
    assert np.array_equal(PathPlan.sample([4, 4, 4], [None, 3, 5], 1, 2).tables[2], sampled.tables[2])
    assert not np.array_equal(PathPlan.sample([4, 4, 4], [None, 3, 5], 1, 3).tables[2], sampled.tables[2])


def test_path_plan_errors_name_the_problem():
    with pytest.raises(ValueError, match="stage 0 reads the batch"):
        PathPlan.sample([3, 3], [2, None], 0, 1)
    with pytest.raises(ValueError, match="stage 1 asks each vendor for 7 upstream products, but stage 0 makes only 3"):
        PathPlan.sample([3, 3], [None, 7], 0, 1)
    with pytest.raises(ValueError, match=r"upstream table has shape \(2, 2\); it needs \(3, k\)"):
        PathPlan([3, 3], [None, np.zeros((2, 2))])


def test_wide_errors_for_layouts_that_would_mix_vendors():
    x, y = images()
    network = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(0, -1))
    stages = Stages([network])
    handle = StagedLossHandle(stages, x, y, lambda out, target: out)
    deltas = SeedDeltas([stages[0].parameters], [draw_seeds(0, 1, 0, 2)], [0.1])
    with pytest.raises(ValueError, match=r"only Flatten\(1, -1\) .* is supported in a stage"):
        handle.path_losses(PathPlan([2]), deltas)


def test_per_sample_loss_must_keep_the_samples():
    x, y = images()
    stages = Stages([nn.Sequential(nn.Flatten(), nn.Linear(64, 5))])
    handle = StagedLossHandle(stages, x, y, lambda out, target: out.mean(axis=0))
    deltas = SeedDeltas([stages[0].parameters], [draw_seeds(0, 1, 0, 2)], [0.1])
    with pytest.raises(ValueError, match="reduction='none'"):
        handle.path_losses(PathPlan([2]), deltas)


def test_staged_handle_is_an_ordinary_loss_handle_too():
    x, y = images()
    network = cnn()
    stages = Stages.split(network, [4, 7])
    handle = StagedLossHandle(stages, x, y, nn.CrossEntropyLoss())
    zero = [np.zeros((2,) + p.shape, dtype=np.float32) for p in handle.parameters]
    losses = handle.evaluate(zero)
    plain = LossHandle(lambda: nn.CrossEntropyLoss()(network(x), y), stages.parameters())
    np.testing.assert_allclose(losses, plain.evaluate(zero), rtol=1e-7)
    assert losses[0] == pytest.approx(handle.loss(), rel=1e-7)


def test_v2_on_a_conv_net_matches_its_path_by_path_version():
    x, y = images()
    results = []
    for wide in (True, False):
        sigma.manual_seed(2)
        network = cnn()
        stages = Stages.split(network, [4, 7])
        optimiser = MarketplaceV2(stages if wide else stages.param_groups(), lr=0.2, vendors=3, probe_scale=0.1)
        handle = optimiser.make_handle(network, nn.CrossEntropyLoss(), x, y) if wide else \
            (lambda: nn.CrossEntropyLoss()(network(x), y))
        optimiser.step(handle)
        results.append([p.data.copy() for p in network.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_the_handle_keeps_the_leaders_outputs_of_the_wide_pass():
    x, y = images()
    network = cnn()
    stages = Stages.split(network, [4, 7])
    optimiser = MarketplaceV2(stages, vendors=3, upstream=[None, 2, 4])
    handle = optimiser.make_handle(network, nn.CrossEntropyLoss(), x, y)
    expected = network(x).numpy()
    optimiser.step(handle)
    np.testing.assert_allclose(handle.leader_outputs.numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("groups,split", [(1, None), (1, 3), (2, None)])
def test_conv2d_array_in_chunks_over_two_block_threads_equals_the_plain_convolution(monkeypatch, groups, split):
    import backends
    cpu = backends.get("cpu")
    monkeypatch.setattr(wide_layers, "PATCH_CHUNK_BYTES", 1)           # one sample per chunk
    monkeypatch.setattr(cpu.block_pool, "workers", lambda blocks: 2)    # two threads even on one core
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 4, 7, 6)).astype(np.float32)
    weight = rng.standard_normal((6, 4 // groups, 3, 2)).astype(np.float32)
    out = wide_layers.conv2d_array(cpu, x, weight, groups, (1, 2), (1, 0), (1, 1), split=split)
    expected = sigma.conv2d(sigma.tensor(x), sigma.tensor(weight), stride=(1, 2), padding=(1, 0),
                            groups=groups).numpy()
    if split:   # (V, N, OC/V, OH, OW): the vendors' output channels side by side
        expected = expected.reshape(5, split, 6 // split, *expected.shape[2:]).transpose(1, 0, 2, 3, 4)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
