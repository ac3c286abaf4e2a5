"""The beautiful-MNIST CNN: two conv blocks with batch norm, Adam, batch 512, 70 steps.

    python examples/beautiful_mnist.py            # the full run: >= 98% test accuracy
    python examples/beautiful_mnist.py --quick    # the CI version: fewer, smaller steps

MNIST is found through Sigma's data search path (SIGMA_DATA, the user cache,
system folders) or downloaded with checksums.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import sigma
import sigma.data
from sigma import nn, optim


def mnist_arrays(split: str):
    """Images as float32 (N, 1, 28, 28) normalised with MNIST's mean and std, labels as int64."""
    data = sigma.data.load("mnist", split=split)
    images = data.inputs.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    return (images - 0.1307) / 0.3081, data.targets.astype(np.int64)


def model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 5), nn.ReLU(),
        nn.Conv2d(32, 32, 5), nn.ReLU(),
        nn.BatchNorm2d(32), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(),
        nn.Conv2d(64, 64, 3), nn.ReLU(),
        nn.BatchNorm2d(64), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(576, 10))


def accuracy(net: nn.Module, images: np.ndarray, labels: np.ndarray, batch: int = 1000) -> float:
    net.eval()
    correct = 0
    with sigma.no_grad():
        for start in range(0, len(images), batch):
            logits = net(sigma.tensor(images[start:start + batch]))
            correct += int((logits.argmax(axis=1).numpy() == labels[start:start + batch]).sum())
    net.train()
    return correct / len(images)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=70)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--test-samples", type=int, default=10000)
    parser.add_argument("--quick", action="store_true", help="CI version: 40 steps of 128, 2,000 test images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.batch, args.test_samples = 40, 128, 2000
    sigma.manual_seed(args.seed)
    train_x, train_y = mnist_arrays("train")
    test_x, test_y = mnist_arrays("test")
    test_x, test_y = test_x[:args.test_samples], test_y[:args.test_samples]
    net = model()
    optimiser = optim.Adam(net.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed)
    losses = []
    start = time.perf_counter()
    for step in range(args.steps):
        index = rng.integers(0, len(train_x), args.batch)
        optimiser.zero_grad()
        loss = sigma.softmax_cross_entropy(net(sigma.tensor(train_x[index])), sigma.tensor(train_y[index]))
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        if step % 10 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {losses[-1]:.4f}")
    seconds = time.perf_counter() - start
    test_accuracy = accuracy(net, test_x, test_y)
    print(f"test accuracy {test_accuracy:.4f} after {args.steps} steps of {args.batch} "
          f"({seconds:.1f} s, {args.steps * args.batch / seconds:.0f} samples/s)")
    return {"test_accuracy": test_accuracy, "losses": losses, "seconds": seconds}


if __name__ == "__main__":
    main()
