"""A small residual CNN on Fashion-MNIST, with batch norm and a skip connection
in every block, written as ordinary ``Module``s.

    python examples/residual_fashion_mnist.py            # 2 epochs: ~90% test accuracy
    python examples/residual_fashion_mnist.py --quick    # CI: 60 steps of 64

Fashion-MNIST comes from Debian (`apt-get install dataset-fashion-mnist`) or
a checked download, through Sigma's data search path.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import sigma
import sigma.data
from sigma import nn, optim


class ResidualBlock(nn.Module):
    """conv-bn-relu-conv-bn, plus the input (projected when the shape changes), then relu."""

    def __init__(self, channels_in: int, channels_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.shortcut = None
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(nn.Conv2d(channels_in, channels_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(channels_out))

    def forward(self, x):
        out = self.bn1(self.conv1(x)).relu()
        out = self.bn2(self.conv2(out))
        skip = x if self.shortcut is None else self.shortcut(x)
        return (out + skip).relu()


class ResidualNet(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.blocks = nn.Sequential(ResidualBlock(16, 16), ResidualBlock(16, 32, stride=2),
                                    ResidualBlock(32, 32, stride=2))
        self.head = nn.Linear(32, classes)

    def forward(self, x):
        return self.head(sigma.global_avg_pool2d(self.blocks(self.stem(x))))


def arrays(split: str):
    data = sigma.data.load("fashion_mnist", split=split)
    images = data.inputs.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    return (images - 0.2860) / 0.3530, data.targets.astype(np.int64)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="CI version: 60 steps of 64, 1,000 test images")
    args = parser.parse_args(argv)
    sigma.manual_seed(0)
    train_x, train_y = arrays("train")
    test_x, test_y = arrays("test")
    if args.quick:
        args.batch = 64
        test_x, test_y = test_x[:1000], test_y[:1000]
    net = ResidualNet()
    print(net.describe((1, 1, 28, 28)))
    optimiser = optim.Adam(net.parameters(), lr=2e-3)
    rng = np.random.default_rng(0)
    steps = 60 if args.quick else args.epochs * (len(train_x) // args.batch)
    start = time.perf_counter()
    for step in range(steps):
        index = rng.integers(0, len(train_x), args.batch)
        optimiser.zero_grad()
        loss = sigma.softmax_cross_entropy(net(sigma.tensor(train_x[index])), sigma.tensor(train_y[index]))
        loss.backward()
        optimiser.step()
        if step % 50 == 0:
            print(f"step {step:5d}  loss {loss.item():.4f}")
    net.eval()
    correct = 0
    with sigma.no_grad():
        for begin in range(0, len(test_x), 500):
            logits = net(sigma.tensor(test_x[begin:begin + 500]))
            correct += int((logits.argmax(axis=1).numpy() == test_y[begin:begin + 500]).sum())
    accuracy = correct / len(test_x)
    print(f"Fashion-MNIST test accuracy {accuracy:.4f} after {steps} steps ({time.perf_counter() - start:.0f} s)")
    return {"test_accuracy": accuracy}


if __name__ == "__main__":
    main()
