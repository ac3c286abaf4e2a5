"""Scaling out on one machine: samples/s of the large MLP (784-512-512-10, Adam) with 1 and 2 workers,
threads (MultiWorker) and processes (MPI ranks), and the MPI all-reduce overhead per step.

Each worker trains on 128 samples per step (2 workers: a global batch of
256), on MNIST-shaped random data, through the operators' ``train_step``.

    python benchmarks/scaling.py [--steps 30] [--repeats 3] [--no-mpi]

The MPI rows start ``mpirun --allow-run-as-root -n 2`` on this script.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

PER_WORKER_BATCH = 128


def make_network():
    from sigma import nn
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


def make_batches(global_batch: int, count: int = 8):
    import sigma
    rng = np.random.default_rng(0)
    return [{"inputs": sigma.tensor(rng.random((global_batch, 784), dtype=np.float32)),
             "targets": sigma.tensor(rng.integers(0, 10, global_batch))} for _ in range(count)]


def samples_per_second(operator, global_batch: int, steps: int, repeats: int):
    """Median samples/s over ``repeats`` runs of ``steps`` training steps (after 5 warm-up steps), and the
    cores the process kept busy (CPU seconds over wall seconds: 2.0 is both cores of this machine)."""
    import sigma
    import sigma.optim
    from sigma import nn
    sigma.manual_seed(0)
    network = make_network()
    operator.setup(network, nn.CrossEntropyLoss(), sigma.optim.Adam(network.parameters(), lr=1e-3))
    batches = make_batches(global_batch)
    for step in range(5):
        operator.train_step(batches[step % len(batches)])
    rates, busy = [], []
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        for step in range(steps):
            operator.train_step(batches[step % len(batches)])
        wall = time.perf_counter() - started
        rates.append(steps * global_batch / wall)
        busy.append((time.process_time() - cpu_started) / wall)
    operator.teardown()
    return float(np.median(rates)), float(np.median(busy))


class TimedCommunicator:
    """Wraps a communicator and adds up the seconds spent in ``all_reduce``."""

    def __init__(self, inner):
        self.inner = inner
        self.seconds = 0.0
        self.calls = 0

    def all_reduce(self, buffer, op="sum"):
        started = time.perf_counter()
        result = self.inner.all_reduce(buffer, op)
        self.seconds += time.perf_counter() - started
        self.calls += 1
        return result

    def __getattr__(self, name):
        return getattr(self.inner, name)


def mpi_rank_main(steps: int, repeats: int) -> None:
    """Run inside ``mpirun``: throughput, and how much of a step the all-reduce takes."""
    from threadpoolctl import threadpool_limits
    from sigma.distributed import MPICommunicator
    from sigma.training.operators import MPI
    threadpool_limits(1)
    communicator = MPICommunicator()
    timed = TimedCommunicator(communicator)
    operator = MPI(communicator=timed)
    global_batch = PER_WORKER_BATCH * communicator.size
    rate, busy = samples_per_second(operator, global_batch, steps, repeats)
    step_seconds = global_batch / rate
    in_all_reduce = timed.seconds / timed.calls
    # The same buffer reduced back to back after a barrier: the transfer alone, without waiting for a slower rank.
    buffer = operator.flat.array.copy()
    communicator.barrier()
    started = time.perf_counter()
    for _ in range(50):
        communicator.all_reduce(buffer)
    transfer = (time.perf_counter() - started) / 50
    results = communicator.gather({"rate": rate, "busy": busy, "step": step_seconds, "in_all_reduce": in_all_reduce,
                                   "transfer": transfer, "bytes": int(buffer.nbytes)})
    if communicator.rank == 0:
        print("RESULT " + json.dumps({**results[0], "busy": sum(r["busy"] for r in results)}), flush=True)


def run_mpi(ranks: int, steps: int, repeats: int):
    command = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-n", str(ranks), sys.executable,
               os.path.abspath(__file__), "--mpi-rank", "--steps", str(steps), "--repeats", str(repeats)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    output = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    for line in output.stdout.splitlines():
        if "RESULT " in line:  # mpirun may put terminal escapes before it
            return json.loads(line.split("RESULT ", 1)[1])
    raise RuntimeError(f"the MPI run printed no result:\n{output.stdout[-2000:]}\n{output.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-mpi", action="store_true")
    parser.add_argument("--mpi-rank", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.mpi_rank:
        mpi_rank_main(options.steps, options.repeats)
        return
    from threadpoolctl import threadpool_limits
    from benchmarks.common import machine, table
    from sigma.training.operators import Inline, MultiWorker

    rows = []

    def row(name, batch, rate, busy):
        rows.append([name, batch, f"{rate:,.0f}", f"{rate / one:.2f}x", f"{busy:.2f}", f"{rate / busy:,.0f}"])

    with threadpool_limits(1):
        one, busy = samples_per_second(Inline(), PER_WORKER_BATCH, options.steps, options.repeats)
        row("Inline, 1 BLAS thread", PER_WORKER_BATCH, one, busy)
        row("MultiWorker(2) threads, 1 BLAS thread each", 2 * PER_WORKER_BATCH,
            *samples_per_second(MultiWorker(2), 2 * PER_WORKER_BATCH, options.steps, options.repeats))
    with threadpool_limits(2):
        for batch in (PER_WORKER_BATCH, 2 * PER_WORKER_BATCH):
            row("Inline, 2 BLAS threads", batch, *samples_per_second(Inline(), batch, options.steps, options.repeats))
    mpi = None
    if not options.no_mpi and shutil.which("mpirun"):
        mpi = run_mpi(2, options.steps, options.repeats)
        row("MPI 2 ranks (processes), 1 BLAS thread each", 2 * PER_WORKER_BATCH, mpi["rate"], mpi["busy"])
    print(f"Large MLP 784-512-512-10, Adam, {PER_WORKER_BATCH} samples per worker per step; {machine()}; "
          f"load average before: {os.getloadavg()[0]:.1f}\n")
    print(table(["configuration", "global batch", "samples/s", "vs 1 worker, 1 thread", "cores busy",
                 "samples per CPU-second"], rows))
    print("\n'cores busy' is CPU seconds over wall seconds (2.00: both cores of a 2-core machine). Below 2 for "
          "two workers, the machine was shared and the speed-up column measures the sharing, not Sigma; "
          "samples per CPU-second compares the configurations' efficiency regardless.")
    if mpi:
        print(f"\nMPI, 2 ranks: step {mpi['step'] * 1e3:.1f} ms; all_reduce of {mpi['bytes'] / 1e6:.2f} MB "
              f"{mpi['in_all_reduce'] * 1e3:.2f} ms per step inside training "
              f"({100 * mpi['in_all_reduce'] / mpi['step']:.1f}% of the step, waiting for the slower rank "
              f"included), {mpi['transfer'] * 1e3:.2f} ms back to back "
              f"({100 * mpi['transfer'] / mpi['step']:.1f}% of the step)")


if __name__ == "__main__":
    main()
