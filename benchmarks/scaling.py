"""Scaling out on one machine: samples/s of the large MLP (784-512-512-10, Adam) with 1 and 2 workers,
threads (MultiWorker), processes (MultiWorker(processes=True), MPI ranks), and the MPI all-reduce
overhead per step.

Each worker trains on 128 samples per step (2 workers: a global batch of
256), on MNIST-shaped random data, through the operators' ``train_step``.

    python benchmarks/scaling.py [--steps 30] [--repeats 9] [--no-mpi]

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


class Configuration:
    """An operator set up on the large MLP with its batches, ready to time in bursts of steps."""

    def __init__(self, name: str, operator, global_batch: int, blas_threads: int, cores: int):
        import sigma
        import sigma.optim
        from sigma import nn
        from threadpoolctl import threadpool_limits
        self.name, self.operator, self.global_batch, self.blas_threads = name, operator, global_batch, blas_threads
        self.cores = cores  # numba's threads (the optimiser's kernels, the operator's workers' share of them)
        sigma.manual_seed(0)
        network = make_network()
        operator.setup(network, nn.CrossEntropyLoss(), sigma.optim.Adam(network.parameters(), lr=1e-3))
        self.batches = make_batches(global_batch)
        self.step = 0
        with threadpool_limits(blas_threads):
            self.run(5)  # warm-up: kernels compiled, buffers allocated
        self.rates, self.busy = [], []

    def run(self, steps: int):
        """Samples/s over ``steps`` steps, and the cores the process kept busy (CPU seconds over wall seconds)."""
        import numba
        from threadpoolctl import threadpool_limits
        previous = numba.get_num_threads()
        numba.set_num_threads(min(self.cores, numba.config.NUMBA_NUM_THREADS))
        try:
            with threadpool_limits(self.blas_threads):
                started, cpu_started = time.perf_counter(), cpu_seconds(self.operator)
                for _ in range(steps):
                    self.operator.train_step(self.batches[self.step % len(self.batches)])
                    self.step += 1
                wall = time.perf_counter() - started
        finally:
            numba.set_num_threads(previous)
        return steps * self.global_batch / wall, (cpu_seconds(self.operator) - cpu_started) / wall


def cpu_seconds(operator) -> float:
    """CPU seconds of this process and of the operator's worker processes (where it has any)."""
    total = time.process_time()
    helpers = getattr(operator, "helpers", None)
    for process in (helpers.processes[1:] if helpers is not None else []):
        with open(f"/proc/{process.pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return total


def samples_per_second(operator, global_batch: int, steps: int, repeats: int):
    """Median samples/s over ``repeats`` runs of ``steps`` training steps (after 5 warm-up steps), and the
    cores the process kept busy (CPU seconds over wall seconds: 2.0 is both cores of this machine)."""
    configuration = Configuration("", operator, global_batch, blas_threads=1, cores=1)
    rates, busy = zip(*(configuration.run(steps) for _ in range(repeats)))
    operator.teardown()
    return float(np.median(rates)), float(np.median(busy))


def interleaved(configurations, steps: int, rounds: int) -> None:
    """Time every configuration in turn, ``rounds`` times over (the order rotating), so that the machine's drift
    from minute to minute falls on all of them alike; each keeps its rates and busy cores per round."""
    for round_number in range(rounds):
        shift = round_number % len(configurations)
        for configuration in configurations[shift:] + configurations[:shift]:
            # OpenBLAS's threads spin for a while after a multi-threaded product: let the last configuration's
            # park before timing the next (otherwise a one-thread run shows 1.5 cores busy, half of it spinning).
            time.sleep(0.5)
            rate, busy = configuration.run(steps)
            configuration.rates.append(rate)
            configuration.busy.append(busy)


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
    parser.add_argument("--repeats", type=int, default=9,
                        help="rounds (interleaved configurations; for MPI, runs)")
    parser.add_argument("--no-mpi", action="store_true")
    parser.add_argument("--mpi-rank", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.mpi_rank:
        mpi_rank_main(options.steps, options.repeats)
        return
    from threadpoolctl import threadpool_limits
    from benchmarks.common import machine, table
    from sigma.training.operators import Inline, MultiWorker

    configurations = [
        Configuration("Inline, 1 thread", Inline(), PER_WORKER_BATCH, 1, cores=1),
        Configuration("MultiWorker(2) threads, 1 BLAS thread each", MultiWorker(2), 2 * PER_WORKER_BATCH, 1, cores=2),
        Configuration("MultiWorker(2) processes, 1 BLAS thread each", MultiWorker(2, processes=True),
                      2 * PER_WORKER_BATCH, 1, cores=2),
        Configuration("Inline, 2 threads", Inline(), PER_WORKER_BATCH, 2, cores=2),
        Configuration("Inline, 2 threads", Inline(), 2 * PER_WORKER_BATCH, 2, cores=2),
    ]
    interleaved(configurations, options.steps, options.repeats)
    baseline = configurations[0]
    rows = []
    for configuration in configurations:
        configuration.operator.teardown()
        rate, busy = float(np.median(configuration.rates)), float(np.median(configuration.busy))
        paired = float(np.median([r / b for r, b in zip(configuration.rates, baseline.rates)]))
        spread = f"{min(configuration.rates) / max(baseline.rates):.2f}-{max(configuration.rates) / min(baseline.rates):.2f}"
        rows.append([configuration.name, configuration.global_batch, f"{rate:,.0f}", f"{paired:.2f}x", spread,
                     f"{busy:.2f}", f"{rate / busy:,.0f}"])
    one = float(np.median(baseline.rates))
    mpi = None
    if not options.no_mpi and shutil.which("mpirun"):
        mpi = run_mpi(2, options.steps, options.repeats)
        rows.append(["MPI 2 ranks (processes), 1 BLAS thread each", 2 * PER_WORKER_BATCH, f"{mpi['rate']:,.0f}",
                     f"{mpi['rate'] / one:.2f}x (not paired)", "", f"{mpi['busy']:.2f}",
                     f"{mpi['rate'] / mpi['busy']:,.0f}"])
    print(f"Large MLP 784-512-512-10, Adam, {PER_WORKER_BATCH} samples per worker per step; {machine()}; "
          f"load average before: {os.getloadavg()[0]:.1f}\n")
    print(table(["configuration", "global batch", "samples/s (median)", "vs 1 worker on 1 core (paired)",
                 "worst-best", "cores busy", "samples per CPU-second"], rows))
    print(f"\n{options.repeats} rounds of {options.steps} steps per configuration, interleaved. The paired ratio is "
          "the median over rounds of the configuration's samples/s over the first row's in the same round; "
          "worst-best spans its slowest run against the baseline's fastest, and the other way round.")
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
