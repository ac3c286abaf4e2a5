"""Short training runs: Marketplace lifts MNIST accuracy far above chance (10%) with forward passes only."""
import importlib.util
import pathlib

import numpy as np
import pytest

import sigma
import sigma.data
from sigma import nn
from sigma_marketplace import MarketplaceV2, Stages

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "marketplace_mnist.py"


def mnist(split, count):
    try:
        data = sigma.data.load("mnist", split=split, download=False)
    except sigma.data.DataError as error:
        pytest.skip(f"MNIST is not on the data search path here: {error}")
    images = (data.inputs[:count].reshape(-1, 784).astype(np.float32) / 255.0 - 0.1307) / 0.3081
    return images, data.targets[:count].astype(np.int64)


def test_v2_trains_an_mlp_on_mnist_without_backward():
    train_x, train_y = mnist("train", 20000)
    test_x, test_y = mnist("test", 2000)
    sigma.manual_seed(0)
    network = nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))
    optimiser = MarketplaceV2(Stages.split(network, [2, 4]), lr=1.0, vendors=4, probe_scale=0.01)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(400):
        index = rng.integers(0, len(train_x), 128)
        handle = optimiser.make_handle(network, nn.CrossEntropyLoss(), train_x[index], train_y[index])
        losses.append(optimiser.step(handle))
    with sigma.no_grad():
        accuracy = float((network(sigma.tensor(test_x)).argmax(axis=1).numpy() == test_y).mean())
    # 400 steps of 64 paths reach ~62% (8 vendors: ~74%); chance is 10%.
    assert accuracy >= 0.45
    assert np.mean(losses[-20:]) < np.mean(losses[:20]) - 1.0
    assert all(p.grad is None for p in network.parameters())     # nothing was differentiated


def test_example_quick_trains_the_staged_cnn():
    mnist("test", 1)
    spec = importlib.util.spec_from_file_location("marketplace_mnist", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main(["--quick"])
    # 150 steps of 64 samples x 64 paths on a 4/8-channel CNN reach ~55%; chance is 10%.
    assert result["test_accuracy"] >= 0.35
    assert np.mean(result["losses"][-20:]) < np.mean(result["losses"][:20]) - 0.5
