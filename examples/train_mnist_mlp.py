"""An MLP on MNIST, trained by the Trainer: the script `sigma train` runs.

    sigma train examples/train_mnist_mlp.py               # 5 epochs into runs/train_mnist_mlp/
    sigma train examples/train_mnist_mlp.py --epochs 1    # shorter
    sigma resume runs/train_mnist_mlp                     # continue after an interruption (even kill -9)
    python examples/train_mnist_mlp.py                    # the same without the sigma command

`sigma train` imports this file, calls make_trainer(), gives the trainer a run
directory (event log, checkpoints, metrics.csv) and trains for RUN unless
told otherwise on the command line. MNIST is found on the data search path
(SIGMA_DATA, ~/.cache/sigma, /usr/share/datasets) or downloaded.
"""
import sigma
import sigma.data
import sigma.optim
from sigma import nn
from sigma.io import RunDirectory
from sigma.monitors import CSVLogger
from sigma.training import Trainer, every, hooks, on

RUN = {"epochs": 5}


def make_trainer() -> Trainer:
    sigma.manual_seed(0)
    train = sigma.data.load("mnist", split="train")
    test = sigma.data.load("mnist", split="test")
    parts = sigma.data.split(train, {"train": 55_000, "validation": 5_000}, seed=0)
    normalise = sigma.data.Normalise(mean=33.32, std=78.57)  # MNIST's pixel mean and deviation (0-255 scale)

    def batches(dataset, batch_size=128, shuffle=False):
        return sigma.data.MinibatchIterator(dataset, batch_size=batch_size, shuffle=shuffle, seed=0,
                                            transform=normalise)

    network = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.2),
                            nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    optimiser = sigma.optim.Adam(network.parameters(), lr=1e-3)
    return Trainer(
        network, nn.CrossEntropyLoss(), optimiser, batches(parts["train"], shuffle=True),
        evaluation={"validation": batches(parts["validation"], 1000)},
        schedule=sigma.optim.StepLR(optimiser, step_size=2, gamma=0.5),
        hooks=[
            hooks.Evaluator("test", batches(test, 1000), trigger=on("stop")),
            hooks.EarlyStopping("validation/loss", patience=2),
            hooks.GradientNorm(trigger=every(50, "iterations")),
            hooks.Checkpoint(every(200, "iterations") | every(1, "epoch") | on("stop"), save_top_k=0,
                             name="last_checkpoint"),
            hooks.Checkpoint(every(1, "epoch"), filename="{epoch:02d}-{validation/accuracy:.4f}.h5",
                             monitor="validation/accuracy", mode="max", save_top_k=2, save_last=False,
                             name="best_checkpoints"),
            CSVLogger(),
        ],
        progress_bar=True)


if __name__ == "__main__":
    trainer = make_trainer()
    trainer.attach_run_directory(RunDirectory.create("train_mnist_mlp"))
    result = trainer.run(**RUN)
    print(f"{result.reason}: test accuracy {100 * result.metrics['test/accuracy']:.2f}%, "
          f"run directory {trainer.run_directory.path}")
