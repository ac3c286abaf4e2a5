"""The adding problem (Hochreiter & Schmidhuber, 1997): an LSTM must remember
two marked values from a long sequence and output their sum.

Each step of the input carries (value, marker); exactly two markers are 1.
A model that sees one step at a time with no memory can do no better than
predicting the mean, 1.0 (mean squared error 1/6 ~ 0.167, since the sum of
two independent U(0, 1) values has variance 1/6). The LSTM learns the task
and drives the error far below that baseline; this script prints its
learning curve next to a memoryless feed-forward network trained the same way.

    python examples/lstm_adding.py            # full: length 50
    python examples/lstm_adding.py --quick    # CI: length 20, fewer steps
"""
from __future__ import annotations

import argparse

import numpy as np

import sigma
from sigma import nn, optim

BASELINE_MSE = 1.0 / 6.0


def adding_batch(rng: np.random.Generator, batch: int, length: int):
    values = rng.random((batch, length))
    markers = np.zeros((batch, length))
    first = rng.integers(0, length // 2, batch)
    second = rng.integers(length // 2, length, batch)
    markers[np.arange(batch), first] = 1
    markers[np.arange(batch), second] = 1
    inputs = np.stack([values, markers], axis=2).astype(np.float32)        # (batch, length, 2)
    targets = (values * markers).sum(axis=1, keepdims=True).astype(np.float32)
    return inputs, targets


class LSTMRegressor(nn.Module):
    """LSTM over the sequence, then a linear read-out of the last hidden state."""

    def __init__(self, hidden: int):
        super().__init__()
        self.lstm = nn.LSTM(2, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        outputs, (h, c) = self.lstm(x)
        return self.head(outputs[:, -1])


class MemorylessFeedForward(nn.Module):
    """A feed-forward net that, like the LSTM's read-out, answers at the last step,
    but carries nothing over from earlier steps: the memory is what it lacks.
    (A net that pooled all steps could solve this task by summing marked values,
    so it would be no baseline for memory.)"""

    def __init__(self, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x[:, -1])


def train(net: nn.Module, steps: int, length: int, batch: int, lr: float, seed: int):
    rng = np.random.default_rng(seed)
    optimiser = optim.Adam(net.parameters(), lr=lr)
    loss_fn = nn.MSELoss()
    curve = []
    for _ in range(steps):
        x, y = adding_batch(rng, batch, length)
        optimiser.zero_grad()
        loss = loss_fn(net(sigma.tensor(x)), sigma.tensor(y))
        loss.backward()
        optim.clip_grad_norm(net.parameters(), 1.0)
        optimiser.step()
        curve.append(loss.item())
    x, y = adding_batch(np.random.default_rng(seed + 1), 1000, length)
    with sigma.no_grad():
        test_mse = float(((net(sigma.tensor(x)).numpy() - y) ** 2).mean())
    return curve, test_mse


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--quick", action="store_true", help="CI version: length 20, 400 steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.length, args.steps = 20, 400
    sigma.manual_seed(args.seed)
    lstm_curve, lstm_mse = train(LSTMRegressor(args.hidden), args.steps, args.length, args.batch, args.lr, args.seed)
    sigma.manual_seed(args.seed)
    ff_curve, ff_mse = train(MemorylessFeedForward(args.hidden), args.steps, args.length, args.batch, args.lr,
                             args.seed)
    window = max(1, args.steps // 10)
    print(f"{'steps':>8} {'LSTM loss':>10} {'feed-forward loss':>18}   (mean predictor: {BASELINE_MSE:.3f})")
    for end in range(window, args.steps + 1, window):
        print(f"{end:8d} {np.mean(lstm_curve[end - window:end]):10.4f} {np.mean(ff_curve[end - window:end]):18.4f}")
    print(f"test MSE: LSTM {lstm_mse:.4f}, feed-forward {ff_mse:.4f}, mean predictor {BASELINE_MSE:.4f}")
    return {"lstm_mse": lstm_mse, "feedforward_mse": ff_mse, "lstm_curve": lstm_curve, "feedforward_curve": ff_curve}


if __name__ == "__main__":
    main()
