"""The data pipeline: how fast batches come, and how little memory streaming takes.

1. Samples/s iterating MNIST train (60,000 images) in shuffled batches of
   128, normalised to float32: Sigma's MinibatchIterator (with and without
   a prefetch thread) against torch.utils.data.DataLoader over the same
   arrays in the same run (per-sample indexing as usual, and a batch
   sampler that indexes whole batches).
2. Peak RSS growth while a block-cached HDF5 dataset three times its
   memory budget streams through two shuffled epochs (measured in a fresh
   process), against the budget.

    python benchmarks/data_pipeline.py [--epochs 3] [--budget-mib 64]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np

import sigma
import sigma.data
from benchmarks.common import import_torch, machine, table

BATCH = 128


def mnist_train():
    """MNIST train from the search path (``../shared/datasets`` beside the checkout, as in the tests)."""
    shared = ROOT.parent / "shared" / "datasets"
    if "SIGMA_DATA" not in os.environ and shared.is_dir():
        os.environ["SIGMA_DATA"] = str(shared)
    return sigma.data.load("mnist", split="train", download=False)


def run_sigma(train, normalise, epochs, prefetch):
    batches = sigma.data.MinibatchIterator(train, batch_size=BATCH, seed=0, transform=normalise, prefetch=prefetch)
    samples, checksum = 0, 0.0
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in batches:
            samples += batch["targets"].shape[0]
        checksum += float(batch["inputs"].data[0, 0, 0])
    return samples / (time.perf_counter() - start)


def run_torch(torch, images, labels, mean, std, epochs, batched_sampler):
    utils = torch.utils.data
    dataset = utils.TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))
    generator = torch.Generator().manual_seed(0)
    if batched_sampler:
        sampler = utils.BatchSampler(utils.RandomSampler(dataset, generator=generator), BATCH, drop_last=False)
        loader = utils.DataLoader(dataset, sampler=sampler, batch_size=None)
    else:
        loader = utils.DataLoader(dataset, batch_size=BATCH, shuffle=True, generator=generator)
    samples = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            x = (x.float() - mean) / std
            samples += y.shape[0]
    return samples / (time.perf_counter() - start)


def stream_child(path: str, budget: int) -> None:
    """In a fresh process: warm up, reset the peak RSS, stream two epochs, print the numbers as JSON."""
    def status(field):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))

    normalise = sigma.data.Normalise(mean=0.0, std=1.0)
    small_path = path + ".small.h5"
    sigma.data.write_hdf5(small_path, {"inputs": np.ones((512, 8), np.float32), "targets": np.arange(512)},
                          block_rows=64)
    for _ in sigma.data.MinibatchIterator(sigma.data.BlockCachedDataset(small_path, memory_budget=10 ** 5),
                                          batch_size=BATCH, prefetch=2, transform=normalise):
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak (VmHWM) restarts from the current resident size
    baseline = status("VmRSS")
    data = sigma.data.BlockCachedDataset(path, memory_budget=budget)
    batches = sigma.data.MinibatchIterator(data, batch_size=BATCH, seed=0, prefetch=2, transform=normalise)
    start = time.perf_counter()
    samples = 0
    for _ in range(2):
        for batch in batches:
            samples += batch["targets"].shape[0]
    seconds = time.perf_counter() - start
    print(json.dumps({"baseline": baseline, "peak": status("VmHWM"), "samples_per_second": samples / seconds,
                      "blocks_read": data.misses, "blocks": data.number_of_blocks}))


def run_streaming(budget_mib: int):
    budget = budget_mib * 2 ** 20
    rows = 3 * budget // (784 * 4 + 8) + 1024
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "stream.h5")
        rng = np.random.default_rng(0)
        with sigma.data.HDF5Writer(path, block_rows=512) as writer:
            for start in range(0, rows, 8192):
                n = min(8192, rows - start)
                writer.append({"inputs": rng.random((n, 784), dtype=np.float32),
                               "targets": rng.integers(0, 10, n)})
        size = os.path.getsize(path)
        done = subprocess.run([sys.executable, __file__, "--stream-child", path, str(budget)],
                              capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(size=size, budget=budget)
    return result


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="alternate the contestants this many times")
    parser.add_argument("--budget-mib", type=int, default=64)
    parser.add_argument("--stream-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stream_child:
        stream_child(args.stream_child[0], int(args.stream_child[1]))
        return ""
    torch = import_torch(threads=2)
    train = mnist_train()
    normalise = sigma.data.Normalise().fit(train)
    mean, std = float(normalise.mean), float(normalise.std)
    images, labels = train["inputs"], train["targets"]
    contestants = {
        "Sigma MinibatchIterator": lambda: run_sigma(train, normalise, args.epochs, prefetch=0),
        "Sigma MinibatchIterator, prefetch=2": lambda: run_sigma(train, normalise, args.epochs, prefetch=2),
    }
    if torch:
        contestants["PyTorch DataLoader (per-sample, default)"] = \
            lambda: run_torch(torch, images, labels, mean, std, args.epochs, batched_sampler=False)
        contestants["PyTorch DataLoader (BatchSampler, whole batches)"] = \
            lambda: run_torch(torch, images, labels, mean, std, args.epochs, batched_sampler=True)
    best = {name: 0.0 for name in contestants}
    for _ in range(args.rounds):
        for name, run in contestants.items():
            best[name] = max(best[name], run())
    reference = best.get("PyTorch DataLoader (per-sample, default)")
    rows = [[name, f"{rate:,.0f}", f"{rate / reference:.1f}" if reference else "-"] for name, rate in best.items()]
    text = (f"MNIST train, batch {BATCH}, shuffle + normalise to float32, {args.epochs} epochs, best of "
            f"{args.rounds} ({machine()})\n\n"
            + table(["pipeline", "samples/s", "vs DataLoader default"], rows))
    streaming = run_streaming(args.budget_mib)
    growth = streaming["peak"] - streaming["baseline"]
    mib = 2 ** 20
    text += ("\n\nBlock-cached HDF5 streaming, two shuffled epochs, batch 128, prefetch 2\n\n"
             + table(["data on disk", "memory budget", "peak RSS growth", "growth / budget", "blocks read / epoch",
                      "samples/s"],
                     [[f"{streaming['size'] / mib:.0f} MiB", f"{streaming['budget'] / mib:.0f} MiB",
                       f"{growth / mib:.1f} MiB", f"{growth / streaming['budget']:.2f}",
                       f"{streaming['blocks_read'] / 2:.0f} of {streaming['blocks']}",
                       f"{streaming['samples_per_second']:,.0f}"]]))
    print(text)
    return text


if __name__ == "__main__":
    main()
