"""Train the MNIST CNN with Marketplace (forward passes only, no backward code), in 3 stages with instance norm.

    python examples/marketplace_mnist.py             # the reference's base model: V2, 16 vendors, batch 512,
                                                     # lr 0.3, decay 1e-5, probe_scale 0.01, 'whole', 2,000 steps
    python examples/marketplace_mnist.py --quick     # the CI version: a narrow CNN, 4 vendors, 150 steps of 64
    python examples/marketplace_mnist.py --vendors 4 --batch 128 --steps 500 --log runs/market.csv

Stages (as in the Marketplace reference implementation):
  0: conv 1->32 5x5, relu, conv 32->32 5x5, relu, instance norm, max-pool 2
  1: conv 32->64 3x3, relu, conv 64->64 3x3, relu, instance norm, max-pool 2, flatten
  2: linear 576->10
(``--channels 8 16`` makes a narrower copy.) MNIST is found through Sigma's data search path.
"""
from __future__ import annotations

import argparse
import csv
import pathlib
import sys
import time

import numpy as np

try:
    import sigma_marketplace
except ImportError:  # run from a checkout where the plug-in is not installed yet
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    import sigma_marketplace

import sigma
import sigma.data
from sigma import nn


def mnist_arrays(split: str):
    """Images as float32 (N, 1, 28, 28) normalised with MNIST's mean and std, labels as int64."""
    data = sigma.data.load("mnist", split=split)
    images = data.inputs.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    return (images - 0.1307) / 0.3081, data.targets.astype(np.int64)


def model(channels=(32, 64)) -> nn.Sequential:
    first, second = channels
    return nn.Sequential(
        nn.Conv2d(1, first, 5), nn.ReLU(), nn.Conv2d(first, first, 5), nn.ReLU(),
        nn.InstanceNorm2d(first), nn.MaxPool2d(2),
        nn.Conv2d(first, second, 3), nn.ReLU(), nn.Conv2d(second, second, 3), nn.ReLU(),
        nn.InstanceNorm2d(second), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(second * 9, 10))


STAGE_ENDS = [6, 13]


def accuracy(net: nn.Module, images: np.ndarray, labels: np.ndarray, batch: int = 1000) -> float:
    correct = 0
    with sigma.no_grad():
        for start in range(0, len(images), batch):
            logits = net(sigma.tensor(images[start:start + batch]))
            correct += int((logits.argmax(axis=1).numpy() == labels[start:start + batch]).sum())
    return correct / len(images)


def make_optimiser(args, stages):
    settings = dict(lr=args.lr, vendors=args.vendors, decay=args.decay, seed=args.seed,
                    upstream=[None] + [args.upstream] * (len(stages) - 1), cache_deltas=not args.regenerate_deltas)
    if args.version == "v1":
        return sigma_marketplace.MarketplaceV1(stages, **settings)
    return sigma_marketplace.MarketplaceV2(stages, probe_scale=args.probe_scale, normalise=args.normalise,
                                           meta_lr=args.meta_lr, **settings)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", choices=["v1", "v2"], default="v2")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--vendors", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.3)
    parser.add_argument("--decay", type=float, default=1e-5)
    parser.add_argument("--probe-scale", type=float, default=0.01)
    parser.add_argument("--normalise", choices=["whole", "per_spec"], default="whole")
    parser.add_argument("--meta-lr", type=float, default=None, help="meta-learning-rate mode with this range")
    parser.add_argument("--upstream", type=int, default=None, help="each vendor reads k random upstream products")
    parser.add_argument("--channels", type=int, nargs=2, default=[32, 64])
    parser.add_argument("--regenerate-deltas", action="store_true", help="regenerate probes from seeds, not cache")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--test-samples", type=int, default=10000)
    parser.add_argument("--log", type=pathlib.Path, default=None, help="write step, loss, accuracy, seconds as CSV")
    parser.add_argument("--quick", action="store_true",
                        help="CI version: channels 4 8, 4 vendors, 150 steps of 64, lr 0.5, 2,000 test images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.channels, args.vendors, args.steps, args.batch = [4, 8], 4, 150, 64
        args.lr, args.decay, args.test_samples, args.eval_every = 0.5, 0.0, 2000, 50
    sigma.manual_seed(args.seed)
    train_x, train_y = mnist_arrays("train")
    test_x, test_y = mnist_arrays("test")
    test_x, test_y = test_x[:args.test_samples], test_y[:args.test_samples]
    net = model(tuple(args.channels))
    stages = sigma_marketplace.Stages.split(net, STAGE_ENDS)
    optimiser = make_optimiser(args, stages)
    loss_function = nn.CrossEntropyLoss()
    rng = np.random.default_rng(args.seed)
    print(f"Marketplace {args.version}: {args.vendors} vendors, {optimiser.plan_for(1).path_count} paths per step, "
          f"batch {args.batch}, {args.steps} steps")
    losses, evaluations = [], []
    log_rows = []
    training_seconds = 0.0
    for step in range(1, args.steps + 1):
        index = rng.integers(0, len(train_x), args.batch)
        started = time.perf_counter()
        handle = optimiser.make_handle(net, loss_function, sigma.tensor(train_x[index]), sigma.tensor(train_y[index]))
        losses.append(optimiser.step(handle))
        training_seconds += time.perf_counter() - started
        if step % args.eval_every == 0 or step == args.steps:
            test_accuracy = accuracy(net, test_x, test_y)
            evaluations.append((step, test_accuracy))
            log_rows.append((step, losses[-1], test_accuracy, training_seconds))
            print(f"step {step:5d}  loss {losses[-1]:.4f}  test accuracy {test_accuracy:.4f}  "
                  f"{training_seconds / step:.3f} s/step", flush=True)
    if args.log is not None:
        args.log.parent.mkdir(parents=True, exist_ok=True)
        with open(args.log, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["step", "loss", "test_accuracy", "training_seconds"])
            writer.writerows(log_rows)
    result = {"test_accuracy": evaluations[-1][1], "evaluations": evaluations, "losses": losses,
              "seconds": training_seconds, "seconds_per_step": training_seconds / args.steps}
    print(f"test accuracy {result['test_accuracy']:.4f} after {args.steps} steps "
          f"({result['seconds_per_step']:.3f} s per step)")
    return result


if __name__ == "__main__":
    main()
