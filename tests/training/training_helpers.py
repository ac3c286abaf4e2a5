"""Small models and data for the trainer tests, also imported by their subprocesses."""
from __future__ import annotations

import numpy as np

import sigma
import sigma.data
import sigma.optim
from sigma import nn
from sigma.training import Trainer


def blobs(samples: int = 100, features: int = 6, classes: int = 3, seed: int = 0) -> sigma.data.InMemoryDataset:
    """Gaussian clusters, one per class: learnable in a few epochs by a tiny MLP."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(classes, features))
    targets = rng.integers(0, classes, size=samples)
    inputs = centres[targets] + rng.normal(size=(samples, features))
    return sigma.data.InMemoryDataset(inputs=inputs.astype(np.float32), targets=targets.astype(np.int64))


def make_network(features: int = 6, classes: int = 3, dropout: float = 0.2):
    return nn.Sequential(nn.Linear(features, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, classes))


def make_trainer(*, init_seed: int = 0, batch_size: int = 16, samples: int = 100, dropout: float = 0.2,
                 lr: float = 0.01, evaluation: bool = True, **options) -> Trainer:
    """An Adam-trained MLP on blobs: 100 samples in batches of 16 are 7 batches per epoch (the last of 4)."""
    sigma.manual_seed(init_seed)
    data = blobs(samples)
    network = make_network(dropout=dropout)
    optimiser = sigma.optim.Adam(network.parameters(), lr=lr)
    train = sigma.data.MinibatchIterator(data, batch_size=batch_size, seed=init_seed + 1)
    validation = {"validation": sigma.data.MinibatchIterator(blobs(40, seed=0), batch_size=20, shuffle=False)} \
        if evaluation else None
    return Trainer(network, nn.CrossEntropyLoss(), optimiser, train, evaluation=validation, **options)


def parameters(trainer) -> dict:
    """Copies of the network's parameters and buffers, by name."""
    return {name: tensor.numpy().copy() for name, tensor in trainer.network.state_dict().items()}


def optimiser_arrays(trainer) -> dict:
    """Every array in the optimiser's state, by (parameter index, name)."""
    state = trainer.optimiser.state_dict()["state"]
    return {(index, name): np.asarray(value) for index, entries in state.items() for name, value in entries.items()}
