"""Per-op Python overhead: microseconds per forward + backward on tiny arrays,
Sigma vs PyTorch CPU in the same run.

    python benchmarks/core_overhead.py
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

import sigma
from benchmarks.common import best_of, import_torch, machine, table


def cases(a, b, ones):
    """The four measured ops; Sigma and PyTorch tensors share this API."""
    def add():
        a.grad = b.grad = None
        (a + b).backward(ones)

    def matmul():
        a.grad = b.grad = None
        (a @ b).backward(ones)

    def relu():
        a.grad = None
        a.relu().backward(ones)

    def total():
        a.grad = None
        a.sum().backward()

    return {"add": add, "matmul": matmul, "relu": relu, "sum": total}


def sigma_cases(shape):
    a, b = (sigma.tensor(np.random.rand(*shape).astype(np.float32), requires_grad=True) for _ in range(2))
    return cases(a, b, sigma.ones(*shape))


def torch_cases(torch, shape):
    a, b = (torch.rand(*shape, requires_grad=True) for _ in range(2))
    return cases(a, b, torch.ones(*shape))


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=2000, help="calls per timing")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    torch = import_torch(threads=2)
    shape = (4, 4)
    ours = sigma_cases(shape)
    theirs = torch_cases(torch, shape) if torch else {}
    rows = []
    for name, run in ours.items():
        run()
        us = best_of(run, args.repeats, args.number) * 1e6
        if name in theirs:
            theirs[name]()
            them = best_of(theirs[name], args.repeats, args.number) * 1e6
            rows.append([name, f"{us:.2f}", f"{them:.2f}", f"{us / them:.2f}"])
        else:
            rows.append([name, f"{us:.2f}", "-", "-"])
    text = (f"Per-op overhead, forward + backward on {shape} float32 ({machine()}); "
            f"torch {torch.__version__ if torch else 'absent'}, 2 threads\n\n"
            + table(["op", "Sigma µs", "PyTorch µs", "ratio (Sigma/PyTorch, lower is better)"], rows))
    print(text)
    return text


if __name__ == "__main__":
    main()
