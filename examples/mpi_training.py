"""Data-parallel training of an MNIST network on MPI ranks: one script, any number of processes.

    mpirun -n 2 python examples/mpi_training.py                   # two ranks on this machine
    mpirun -n 2 python examples/mpi_training.py --quick           # the CI version: a few seconds
    mpirun -n 8 -H node1:4,node2:4 python examples/mpi_training.py   # four ranks on each of two machines
    python examples/mpi_training.py --quick                       # without mpirun: one rank

(Add ``--allow-run-as-root`` to ``mpirun`` as root, ``--oversubscribe`` for
more ranks than cores, and set ``OMP_NUM_THREADS=1`` so the ranks' BLAS
threads do not fight over the cores.)

Every rank builds the same trainer with ``operator=MPI()``: each trains on
its shard of every global batch, the gradients are summed across ranks in
one all-reduce per step, and every rank makes the same update, so the
ranks' parameters stay identical. Rank 0 alone prints progress and writes
the checkpoint (``OUT/mnist-mlp.h5``). Every rank writes a checksum of its
parameters to ``OUT/parameters-rank<r>.sha256``, so anyone can check that the
ranks agree. ``--quick`` trains on a slice of MNIST (the digits bundled
with Sigma when MNIST is not on the data search path) and exits with
status 1 when the test accuracy is below ``--floor``.
"""
from __future__ import annotations

import argparse
import hashlib
import pathlib
import sys
from typing import Dict, Mapping

import numpy as np

try:
    import sigma
except ImportError:  # run from a checkout where Sigma is not installed
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    import sigma
import sigma.data
import sigma.optim
from sigma import nn
from sigma.distributed import MPICommunicator, SingleProcess, launched_by_mpi
from sigma.training import Trainer, every, hooks, on
from sigma.training.demo import PIXEL_MEAN, PIXEL_STD, load_mnist
from sigma.training.operators import MPI

QUICK_FLOOR = 0.80  # the quick run reaches about 0.9; chance is 0.1
QUICK = {"steps": 120, "batch": 128, "train_samples": 6_000, "test_samples": 1_000, "floor": QUICK_FLOOR}


def model() -> nn.Module:
    """784-256-10 with dropout: each rank draws its own dropout masks from its own stream."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.1), nn.Linear(256, 10))


def parameter_checksum(parameters: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of every parameter's name, shape, dtype and bytes, in name order: equal only for equal parameters."""
    digest = hashlib.sha256()
    for name in sorted(parameters):
        array = np.ascontiguousarray(parameters[name])
        digest.update(f"{name}:{array.shape}:{array.dtype};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def make_operator() -> MPI:
    """``MPI()`` over ``MPI.COMM_WORLD`` under mpirun/srun; a group of one rank otherwise (no mpi4py needed)."""
    if launched_by_mpi():
        return MPI(communicator=MPICommunicator())  # made now, so that the rank is known before training
    return MPI(communicator=SingleProcess(), abort_on_error=False)


def main(argv=None) -> Dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=3, help="epochs over the training set (fractions allowed)")
    parser.add_argument("--steps", type=int, help="train this many steps instead of --epochs")
    parser.add_argument("--batch", type=int, help="the global batch, split among the ranks (default 256)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--train-samples", type=int, help="train on the first N digits only")
    parser.add_argument("--test-samples", type=int, help="test on the first N digits only")
    parser.add_argument("--floor", type=float, help="exit with status 1 if the test accuracy is lower")
    parser.add_argument("--quick", action="store_true", help="CI version: " + ", ".join(
        f"--{name.replace('_', '-')} {value}" for name, value in QUICK.items()) + " unless given")
    parser.add_argument("--sample", action="store_true", help="train on the 2,000 digits bundled with Sigma")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/mpi_training"),
                        help="where rank 0 writes the checkpoint and every rank its parameter checksum")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else {"batch": 256}).items():
        if getattr(args, name) is None:
            setattr(args, name, value)

    operator = make_operator()
    say = print if operator.writes_output else (lambda *text, **options: None)

    # Every rank loads the same data and seeds alike, so every rank iterates the same global batches.
    sigma.manual_seed(args.seed)
    train, test, source = load_mnist(sample=args.sample)
    if args.train_samples:
        train = train.subset(range(min(args.train_samples, len(train))))
    if args.test_samples:
        test = test.subset(range(min(args.test_samples, len(test))))
    normalise = sigma.data.Normalise(mean=PIXEL_MEAN, std=PIXEL_STD)
    training_batches = sigma.data.MinibatchIterator(train, batch_size=args.batch, shuffle=True, seed=args.seed,
                                                    transform=normalise)
    test_batches = sigma.data.MinibatchIterator(test, batch_size=1000, transform=normalise)

    network = model()
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = args.out / "mnist-mlp.h5"

    def report_progress(trainer: Trainer) -> None:
        say(f"step {trainer.position.iteration:4d}  epoch {trainer.position.epoch}  "
            f"loss {trainer.latest['train/loss']:.4f}  accuracy {trainer.latest['train/accuracy']:.3f}", flush=True)

    trainer = Trainer(
        network, nn.CrossEntropyLoss(), sigma.optim.Adam(network.parameters(), lr=args.lr), training_batches,
        operator=operator, seed=args.seed,
        hooks=[hooks.Evaluator("test", test_batches, trigger=on("stop")),
               hooks.Lambda(report_progress, trigger=every(20, "iterations")),
               # writes_files: the trainer runs it on rank 0 only
               hooks.Checkpoint(on("stop"), directory=args.out, filename=checkpoint.name, save_last=False)])
    say(f"{operator.describe()}; data: {source}; global batch {args.batch}", flush=True)
    result = trainer.run(iterations=args.steps) if args.steps else trainer.run(epochs=args.epochs)

    parameters = {name: tensor.numpy() for name, tensor in network.state_dict().items()}
    checksum = parameter_checksum(parameters)
    (args.out / f"parameters-rank{operator.rank}.sha256").write_text(checksum + "\n")
    accuracy = result.metrics["test/accuracy"]
    say(f"{result.reason} after {result.iteration} steps on {operator.size} rank(s): "
        f"test accuracy {accuracy:.4f}; checkpoint {checkpoint}", flush=True)
    passed = args.floor is None or accuracy >= args.floor
    if not passed:
        say(f"test accuracy {accuracy:.4f} is below the floor {args.floor}", flush=True)
    return {"test_accuracy": accuracy, "iterations": result.iteration, "ranks": operator.size,
            "rank": operator.rank, "checksum": checksum, "checkpoint": checkpoint, "passed": passed}


if __name__ == "__main__":
    sys.exit(0 if main()["passed"] else 1)
