"""Marketplace inside sigma.training: the trainer drives it, checkpoints it and resumes it exactly."""
import numpy as np

import sigma
from sigma import nn
from sigma.data import InMemoryDataset, MinibatchIterator
from sigma.training import Trainer
from sigma_marketplace import MarketplaceInline, MarketplaceV2, Stages


def data():
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(256, 4)).astype(np.float32)
    targets = (inputs[:, 0] - inputs[:, 1] > 0).astype(np.int64)
    return InMemoryDataset(inputs=inputs, targets=targets)


def make_trainer(run_directory=None):
    sigma.manual_seed(0)
    network = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 2))
    optimiser = MarketplaceV2(Stages.split(network, [2, 4]), lr=0.3, vendors=4, probe_scale=0.05, decay=1e-3)
    dataset = data()
    return Trainer(network, nn.CrossEntropyLoss(), optimiser, MinibatchIterator(dataset, batch_size=32, seed=0),
                   evaluation={"validation": MinibatchIterator(dataset, batch_size=256, shuffle=False)},
                   operator=MarketplaceInline(), run_directory=run_directory)


def test_the_trainer_trains_with_marketplace_and_resumes_bit_identically(tmp_path):
    trainer = make_trainer()
    result = trainer.run(iterations=80)
    assert result.metrics["validation/accuracy"] >= 0.9             # ~0.97; chance is about 0.5
    assert result.metrics["train/accuracy"] >= 0.8                  # from the wide pass's leader outputs
    expected = [p.data.copy() for p in trainer.network.parameters()]

    first = make_trainer()
    first.run(iterations=40)
    path = first.save_checkpoint(tmp_path / "market.h5")
    resumed = make_trainer()
    for p in resumed.network.parameters():
        p.data[...] = 0.0                                            # everything must come from the file
    resumed.restore(path)
    assert resumed.optimiser.step_count == 40
    resumed.run(iterations=80)
    assert all(np.array_equal(p.data, e) for p, e in zip(resumed.network.parameters(), expected))
