"""Small real runs for the GUI tests: a blobs MLP (fast) and the MNIST-sample demo MLP (images, for drawing)."""
from __future__ import annotations

import threading
import time

import numpy as np

import sigma
import sigma.data
import sigma.optim
from sigma import nn
from sigma.io import read_events
from sigma.training import Trainer


def blobs(samples: int = 96, features: int = 6, classes: int = 3, seed: int = 0) -> sigma.data.InMemoryDataset:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(classes, features))
    targets = rng.integers(0, classes, size=samples)
    inputs = centres[targets] + rng.normal(size=(samples, features))
    return sigma.data.InMemoryDataset(inputs=inputs.astype(np.float32), targets=targets.astype(np.int64))


def blobs_trainer(lr: float = 0.01, **options) -> Trainer:
    """An SGD-trained MLP on blobs: 96 samples in batches of 16, 6 steps per epoch."""
    sigma.manual_seed(0)
    network = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    optimiser = sigma.optim.SGD(network.parameters(), lr=lr, momentum=0.9)
    return Trainer(network, nn.CrossEntropyLoss(), optimiser,
                   sigma.data.MinibatchIterator(blobs(), batch_size=16, seed=1),
                   evaluation={"validation": sigma.data.MinibatchIterator(blobs(32, seed=0), batch_size=32,
                                                                          shuffle=False)}, **options)


def metric_values(run_path, key: str):
    """(iterations, values) of ``key`` in a run directory's event log, read directly."""
    records, _ = read_events(run_path / "events.jsonl")
    points = [(r["iteration"], r["values"][key]) for r in records
              if r.get("kind") == "metrics" and key in r.get("values", {})]
    return np.array([p[0] for p in points], dtype=float), np.array([p[1] for p in points], dtype=float)


def wait_for(condition, timeout: float = 20.0, poll=None) -> None:
    """Wait until ``condition()`` is true (calling ``poll()`` meanwhile, e.g. to process Qt events)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {condition}")
        if poll is not None:
            poll()
        time.sleep(0.005)


def start(trainer, **run_arguments) -> threading.Thread:
    """``trainer.run(**run_arguments)`` on a daemon thread."""
    thread = threading.Thread(target=trainer.run, kwargs=run_arguments, daemon=True)
    thread.start()
    return thread
