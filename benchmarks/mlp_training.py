"""MLP 784-128-10 with plain SGD on MNIST-shaped data, written with the raw
autodiff: samples/s for Sigma, PyTorch CPU (2 threads) and a hand-written
numpy loop, in the same run.

    python benchmarks/mlp_training.py [--steps 300]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

import sigma
from benchmarks.common import import_torch, machine, table

BATCH = 128
HIDDEN = 128
LR = 0.1


def make_data(n=60000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n)
    return x, y


def initial_weights(seed=1):
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((784, HIDDEN)) * np.sqrt(2 / 784)).astype(np.float32)
    w2 = (rng.standard_normal((HIDDEN, 10)) * np.sqrt(2 / HIDDEN)).astype(np.float32)
    return w1, np.zeros(HIDDEN, np.float32), w2, np.zeros(10, np.float32)


def batches(x, y, steps):
    n = x.shape[0] // BATCH
    for i in range(steps):
        j = i % n
        yield x[j * BATCH:(j + 1) * BATCH], y[j * BATCH:(j + 1) * BATCH]


def run_sigma(x, y, steps):
    params = [sigma.tensor(a, requires_grad=True) for a in initial_weights()]
    w1, b1, w2, b2 = params
    data = [(sigma.tensor(xb), sigma.tensor(yb)) for xb, yb in batches(x, y, steps)]
    start = time.perf_counter()
    for xb, yb in data:
        loss = sigma.softmax_cross_entropy((xb @ w1 + b1).relu() @ w2 + b2, yb)
        loss.backward()
        for p in params:
            p.data -= LR * p.grad.data
            p.grad = None
    return time.perf_counter() - start, loss.item()


def run_torch(torch, x, y, steps):
    params = [torch.tensor(a, requires_grad=True) for a in initial_weights()]
    w1, b1, w2, b2 = params
    data = [(torch.from_numpy(xb), torch.from_numpy(yb)) for xb, yb in batches(x, y, steps)]
    functional = torch.nn.functional
    start = time.perf_counter()
    for xb, yb in data:
        loss = functional.cross_entropy((xb @ w1 + b1).relu() @ w2 + b2, yb)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= LR * p.grad
                p.grad = None
    return time.perf_counter() - start, loss.item()


def run_numpy(x, y, steps):
    w1, b1, w2, b2 = initial_weights()
    start = time.perf_counter()
    for xb, yb in batches(x, y, steps):
        h_pre = xb @ w1 + b1
        h = np.maximum(h_pre, 0)
        logits = h @ w2 + b2
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        probs = e / e.sum(axis=1, keepdims=True)
        loss = np.mean(np.log(e.sum(axis=1)) - shifted[np.arange(BATCH), yb])
        g = probs
        g[np.arange(BATCH), yb] -= 1
        g /= BATCH
        gw2 = h.T @ g
        gb2 = g.sum(axis=0)
        gh = (g @ w2.T) * (h_pre > 0)
        gw1 = xb.T @ gh
        gb1 = gh.sum(axis=0)
        w1 -= LR * gw1
        b1 -= LR * gb1
        w2 -= LR * gw2
        b2 -= LR * gb2
    return time.perf_counter() - start, float(loss)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="alternate the contestants this many times")
    args = parser.parse_args(argv)
    torch = import_torch(threads=2)
    x, y = make_data()
    contestants = {"Sigma": lambda: run_sigma(x, y, args.steps), "numpy by hand": lambda: run_numpy(x, y, args.steps)}
    if torch:
        contestants["PyTorch"] = lambda: run_torch(torch, x, y, args.steps)
    best = {name: float("inf") for name in contestants}
    losses = {}
    for name, run in contestants.items():
        run()  # warm-up: numba compiles, BLAS threads start
    for _ in range(args.rounds):
        for name, run in contestants.items():
            seconds, losses[name] = run()
            best[name] = min(best[name], seconds)
    reference = best.get("PyTorch")
    rows = []
    for name, seconds in best.items():
        rate = args.steps * BATCH / seconds
        ratio = f"{reference / seconds:.2f}" if reference else "-"
        rows.append([name, f"{rate:,.0f}", ratio, f"{losses[name]:.4f}"])
    text = (f"MLP 784-{HIDDEN}-10, SGD lr {LR}, batch {BATCH}, {args.steps} steps, best of {args.rounds} "
            f"({machine()})\n\n"
            + table(["implementation", "samples/s", "speed vs PyTorch (higher is better)", "final loss"], rows))
    print(text)
    return text


if __name__ == "__main__":
    main()
