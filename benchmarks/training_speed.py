"""Training throughput and step memory: Sigma's `nn` + `optim` against PyTorch CPU.

Models (batch 128 unless --batch says otherwise):
  mlp-large  784-512-512-10, Adam
  cnn        the beautiful-MNIST CNN (conv 5x5 x2, batch norm, pool, conv 3x3 x2, batch norm, pool, linear), Adam

Each (framework, model) runs in a fresh subprocess, so peak memory is its own;
rounds alternate the frameworks so that machine noise hits both alike. The
speed ratio is of each framework's best round; the paired ratio is the median
of the rounds' own ratios (each round's two runs are seconds apart). Step
memory is the peak RSS during the timed steps above the RSS before them,
taken in one more run of each framework whose glibc mmap threshold is pinned
at 64 KiB, so that every large array is returned to the system when freed:
otherwise glibc raises the threshold as it sees large frees and keeps freed
blocks, and the growth measured depends on what the allocator happened to keep
from the warm-up. (The speed runs keep glibc's defaults: with the threshold
pinned, every large array is fresh pages and each step pays page faults.)

    python benchmarks/training_speed.py [--models mlp-large cnn] [--steps 30] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from benchmarks.common import machine, table  # noqa: E402


def cnn_flops_per_sample() -> float:
    """Multiply-adds of the CNN's convolutions and linear layer, x2 for FLOPs, x3 for
    forward + both backward products (input and weight gradients; the first
    layer's input gradient is not needed, which this ignores: <1%)."""
    layers = [(1, 32, 5, 24), (32, 32, 5, 20), (32, 64, 3, 8), (64, 64, 3, 6)]
    macs = sum(cin * cout * k * k * out * out for cin, cout, k, out in layers) + 576 * 10
    return 2 * 3 * macs


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _data(batch: int, model: str, steps: int):
    rng = np.random.default_rng(0)
    shape = (batch, 784) if model.startswith("mlp") else (batch, 1, 28, 28)
    xs = [rng.random(shape, dtype=np.float32) for _ in range(min(steps, 8))]
    ys = [rng.integers(0, 10, batch) for _ in range(min(steps, 8))]
    return xs, ys


def build(nn, model: str):
    """The benchmark network from either library's ``nn`` (they share the layer names)."""
    if model == "mlp-large":
        return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    return nn.Sequential(
        nn.Conv2d(1, 32, 5), nn.ReLU(), nn.Conv2d(32, 32, 5), nn.ReLU(), nn.BatchNorm2d(32), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.BatchNorm2d(64), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(576, 10))


def _sigma_worker(model: str, batch: int, steps: int) -> dict:
    import sigma
    import sigma.nn as nn
    import sigma.optim as optim
    sigma.manual_seed(0)
    net = build(nn, model)
    opt = optim.Adam(net.parameters(), lr=1e-3)
    xs, ys = _data(batch, model, steps)
    xs = [sigma.tensor(x) for x in xs]
    ys = [sigma.tensor(y) for y in ys]

    def step(i):
        opt.zero_grad()
        loss = sigma.softmax_cross_entropy(net(xs[i % len(xs)]), ys[i % len(ys)])
        loss.backward()
        opt.step()
        return loss

    return _timed(step, steps)


def _torch_worker(model: str, batch: int, steps: int) -> dict:
    import torch
    torch.set_num_threads(2)
    torch.manual_seed(0)
    nn = torch.nn
    net = build(nn, model)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xs, ys = _data(batch, model, steps)
    xs = [torch.from_numpy(x) for x in xs]
    ys = [torch.from_numpy(y) for y in ys]

    def step(i):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(xs[i % len(xs)]), ys[i % len(ys)])
        loss.backward()
        opt.step()
        return loss

    return _timed(step, steps)


def _timed(step, steps: int) -> dict:
    step(0)  # warm-up: compilation, allocator, thread pools
    before = _rss_mb()
    start = time.perf_counter()
    for i in range(steps):
        loss = step(i)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "steps": steps, "step_memory_mb": max(peak - before, 0.0),
            "loss": float(loss.item())}


def _blas_gflops() -> float:
    a = np.random.rand(1024, 1024).astype(np.float32)
    a @ a
    start = time.perf_counter()
    for _ in range(10):
        a @ a
    return 10 * 2 * 1024 ** 3 / (time.perf_counter() - start) / 1e9


def _run_child(framework: str, model: str, batch: int, steps: int, pin_allocator: bool = False) -> dict:
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"} if pin_allocator else dict(os.environ)
    out = subprocess.run([sys.executable, __file__, "--worker", framework, "--models", model,
                          "--batch", str(batch), "--steps", str(steps)],
                         capture_output=True, text=True, check=True, cwd=ROOT, env=environment)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mlp-large", "cnn"], choices=["mlp-large", "cnn"])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", choices=["sigma", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker = _sigma_worker if args.worker == "sigma" else _torch_worker
        print(json.dumps(worker(args.models[0], args.batch, args.steps)))
        return ""
    blas = _blas_gflops()
    rows = []
    for model in args.models:
        best, paired = {}, []
        for _ in range(args.rounds):
            seconds = {}
            for framework in ("sigma", "torch"):
                result = _run_child(framework, model, args.batch, args.steps)
                seconds[framework] = result["seconds"]
                if framework not in best or result["seconds"] < best[framework]["seconds"]:
                    best[framework] = result
            # This round's ratio: both frameworks ran within seconds of each other, so the machine's
            # drift from minute to minute (10-40% here) cancels out more than in the ratio of bests.
            paired.append(seconds["torch"] / seconds["sigma"])
        memory = {framework: _run_child(framework, model, args.batch, min(args.steps, 10), pin_allocator=True)
                  for framework in ("sigma", "torch")}
        for framework in best:
            best[framework]["step_memory_mb"] = memory[framework]["step_memory_mb"]
        rate = {f: args.batch * r["steps"] / r["seconds"] for f, r in best.items()}
        flops = f"{rate['sigma'] * cnn_flops_per_sample() / 1e9 / blas:.0%}" if model == "cnn" else "-"
        rows.append([model, f"{rate['sigma']:,.0f}", f"{rate['torch']:,.0f}", f"{rate['sigma'] / rate['torch']:.2f}",
                     f"{statistics.median(paired):.2f} ({min(paired):.2f}-{max(paired):.2f})",
                     f"{best['sigma']['step_memory_mb']:.0f}", f"{best['torch']['step_memory_mb']:.0f}",
                     f"{best['sigma']['step_memory_mb'] / max(best['torch']['step_memory_mb'], 1):.2f}", flops])
    text = (f"Training speed, batch {args.batch}, {args.steps} steps, best of {args.rounds} "
            f"({machine()}; BLAS 1024^2 float32 matmul: {blas:.0f} GFLOP/s)\n\n"
            + table(["model", "Sigma samples/s", "PyTorch samples/s", "speed ratio (higher is better)",
                     "paired ratio, median of rounds (range)", "Sigma step MB", "PyTorch step MB", "memory ratio (lower is better)",
                     "Sigma share of BLAS FLOP/s"], rows))
    print(text)
    return text


if __name__ == "__main__":
    main()
