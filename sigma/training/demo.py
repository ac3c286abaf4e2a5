"""The MNIST demo behind ``sigma demo``: an MLP (or a small CNN) with checkpoints and early stopping.

The full MNIST comes from the data search path (or a download); when
neither works the demo trains on the sample bundled with Sigma
(``sigma/data/bundled/mnist_sample.npz``: 1,600 training and 400 test
digits) and says so.

Example:
    >>> from sigma.training import demo
    >>> network = demo.make_network("mlp")
    >>> network.describe((1, 28, 28)).total_parameters
    101770
"""
from __future__ import annotations

import pathlib
import sys
from typing import Any, Callable, Dict, Tuple

import numpy as np

SAMPLE_PATH = pathlib.Path(__file__).resolve().parents[1] / "data" / "bundled" / "mnist_sample.npz"
MODELS = ("mlp", "cnn")
RUN = {"epochs": 3}  # what `sigma demo` trains for unless told otherwise

# Mean and standard deviation of MNIST's training pixels on the 0-255 scale.
PIXEL_MEAN, PIXEL_STD = 33.32, 78.57


def load_mnist(sample: bool = False) -> Tuple[Any, Any, str]:
    """``(train, test, source)``: the full MNIST if it can be found or downloaded, else the bundled sample.

    ``source`` says in words which one it is, and why the sample was used.
    """
    import sigma.data
    reason = "asked for the sample"
    if not sample:
        try:
            train = sigma.data.load("mnist", split="train")
            test = sigma.data.load("mnist", split="test")
            return train, test, f"MNIST: {len(train):,} training and {len(test):,} test images"
        except (sigma.data.DataError, OSError) as error:
            details = "\n".join("    " + line.strip() for line in str(error).splitlines())
            reason = (f"the full MNIST could not be found or downloaded:\n{details}\n"
                      "  (put MNIST's four files in a folder 'mnist' on SIGMA_DATA to train on all of it)")
    with np.load(SAMPLE_PATH) as bundle:
        train = sigma.data.InMemoryDataset(inputs=bundle["train_inputs"],
                                           targets=bundle["train_targets"].astype(np.int64), name="mnist-sample/train")
        test = sigma.data.InMemoryDataset(inputs=bundle["test_inputs"],
                                          targets=bundle["test_targets"].astype(np.int64), name="mnist-sample/test")
    return train, test, (f"the MNIST sample bundled with Sigma ({len(train):,} training and {len(test):,} test "
                         f"images), because {reason}")


def make_network(model: str = "mlp"):
    """The demo's network for 28x28 digits: ``"mlp"`` (784-128-10) or ``"cnn"`` (two conv layers)."""
    from sigma import nn
    if model == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10))
    if model == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 7 * 7, 10))
    raise ValueError(f"unknown demo model {model!r}; choose from {MODELS}")


def make_trainer(model: str = "mlp", batch_size: int = 128, sample: bool = False, learning_rate: float = 1e-3,
                 checkpoint_every: int = 100, patience: int = 3, seed: int = 0,
                 announce: Callable[[str], None] = None):
    """The demo trainer: Adam, a validation split, early stopping, ``last.h5`` every
    ``checkpoint_every`` steps and at each epoch end, the 3 best checkpoints by validation accuracy,
    and the test set evaluated when training stops. Give it a run directory before ``run()``."""
    import sigma
    import sigma.data
    import sigma.optim
    from sigma import nn
    from sigma.training import Trainer, every, hooks, on
    announce = announce or (lambda text: print(text, file=sys.stderr))
    sigma.manual_seed(seed)
    train, test, source = load_mnist(sample)
    announce(f"data: {source}")
    validation_size = 5000 if len(train) > 20000 else len(train) // 8
    parts = sigma.data.split(train, {"train": len(train) - validation_size, "validation": validation_size}, seed=seed)
    steps = [sigma.data.Normalise(mean=PIXEL_MEAN, std=PIXEL_STD)]
    if model == "cnn":
        steps.append(sigma.data.Reshape("inputs", (1, 28, 28)))
    transform = sigma.data.Pipeline(*steps)

    def batches(dataset, shuffle: bool):
        return sigma.data.MinibatchIterator(dataset, batch_size=batch_size if shuffle else 1000, shuffle=shuffle,
                                            seed=seed, transform=transform)

    network = make_network(model)
    optimiser = sigma.optim.Adam(network.parameters(), lr=learning_rate)
    demo_hooks = [
        hooks.Evaluator("test", batches(test, False), trigger=on("stop")),
        hooks.EarlyStopping("validation/accuracy", mode="max", patience=patience),
        hooks.Checkpoint(every(checkpoint_every, "iterations") | every(1, "epoch") | on("stop"), save_top_k=0,
                         save_last=True, name="last_checkpoint"),
        hooks.Checkpoint(every(1, "epoch"), filename="{epoch:03d}-{validation/accuracy:.4f}.h5",
                         monitor="validation/accuracy", mode="max", save_top_k=3, save_last=False,
                         name="best_checkpoints"),
    ]
    return Trainer(network, nn.CrossEntropyLoss(), optimiser, batches(parts["train"], True),
                   evaluation={"validation": batches(parts["validation"], False)}, hooks=demo_hooks,
                   progress_bar=True)


def recipe(**arguments: Any) -> Dict[str, Any]:
    """How ``sigma resume`` rebuilds a demo trainer (stored in the run description)."""
    return {"kind": "demo", "arguments": arguments}
