"""An MLP on MNIST: 784-512-512-10 with dropout, Adam, a few epochs.

    python examples/mnist_mlp.py            # the full run: >= 98% test accuracy
    python examples/mnist_mlp.py --quick    # the CI version: one epoch
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import sigma
import sigma.data
from sigma import nn, optim


def mnist_arrays(split: str):
    data = sigma.data.load("mnist", split=split)
    images = data.inputs.reshape(-1, 784).astype(np.float32) / 255.0
    return (images - 0.1307) / 0.3081, data.targets.astype(np.int64)


def model() -> nn.Module:
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(512, 512), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(512, 10))


def accuracy(net: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    net.eval()
    with sigma.no_grad():
        predicted = net(sigma.tensor(images)).argmax(axis=1).numpy()
    net.train()
    return float((predicted == labels).mean())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--quick", action="store_true", help="CI version: one epoch")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs = 1
    sigma.manual_seed(args.seed)
    train_x, train_y = mnist_arrays("train")
    test_x, test_y = mnist_arrays("test")
    net = model()
    optimiser = optim.Adam(net.parameters(), lr=args.lr)
    schedule = optim.CosineAnnealingLR(optimiser, T_max=args.epochs) if args.epochs > 1 else None
    rng = np.random.default_rng(args.seed)
    history = []
    start = time.perf_counter()
    for epoch in range(args.epochs):
        order = rng.permutation(len(train_x))
        for begin in range(0, len(order), args.batch):
            index = order[begin:begin + args.batch]
            optimiser.zero_grad()
            loss = sigma.softmax_cross_entropy(net(sigma.tensor(train_x[index])), sigma.tensor(train_y[index]))
            loss.backward()
            optimiser.step()
        if schedule is not None:
            schedule.step()
        history.append(accuracy(net, test_x, test_y))
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}, test accuracy {history[-1]:.4f}")
    seconds = time.perf_counter() - start
    print(f"test accuracy {history[-1]:.4f} ({seconds:.1f} s)")
    return {"test_accuracy": history[-1], "history": history, "seconds": seconds}


if __name__ == "__main__":
    main()
