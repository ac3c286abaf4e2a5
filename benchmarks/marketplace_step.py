"""One MarketplaceV2 step against the same forward work done by plain forward passes, in one run.

Model: the MNIST CNN in 3 stages with instance norm (examples/marketplace_mnist.py), full upstream,
'whole', lr 0.3, probe_scale 0.01, batch 512 unless told otherwise.

A step with V vendors pushes V^(s+1) products of the batch through stage s. The baseline does the same
work the ordinary way: for each stage, that many plain forward passes of one batch (no gradients), i.e.
  baseline = sum_s V^(s+1) * t_s,   t_s = median time of one plain forward of stage s on one batch.
The ratio step / baseline says what the vendor batching costs beyond its arithmetic (target <= 1.3).
Also reported: one plain forward of the whole network on one batch, the step's arithmetic rate
(512 * (V*21.4 + V^2*5.01 + V^3*0.0115) MFLOP per step at batch 512, full width) and the peak RSS of a
fresh process that builds the model and takes the steps.

Each vendor count runs in its own subprocess (its own peak memory); inside it, rounds alternate the
step and the baseline so that machine noise hits both alike.

    python benchmarks/marketplace_step.py [--vendors 4 8 16] [--batch 512] [--rounds 3] [--channels 32 64]

Over MPI ranks (each rank evaluates the paths through its share of the stage-0 vendors; the ranks
exchange one vector of path losses per step, nothing else):

    mpirun -n 2 python benchmarks/marketplace_step.py --mpi --vendors 8 --batch 128 --rounds 3
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

from benchmarks.common import machine, table  # noqa: E402


def forward_mflop_per_sample(channels) -> list:
    """Multiply-adds x 2 per sample of each stage, for one vendor."""
    first, second = channels
    stage0 = 24 * 24 * first * 25 + 20 * 20 * first * first * 25
    stage1 = 8 * 8 * second * first * 9 + 6 * 6 * second * second * 9
    stage2 = second * 9 * 10
    return [2 * m / 1e6 for m in (stage0, stage1, stage2)]


def child(vendors: int, batch: int, rounds: int, channels, cache_deltas: bool, chunk_mb) -> dict:
    import numpy as np
    import sigma
    from sigma import nn
    from examples.marketplace_mnist import STAGE_ENDS, model
    from sigma_marketplace import MarketplaceV2, Stages
    from sigma_marketplace.wide import default_chunk_bytes

    sigma.manual_seed(0)
    net = model(tuple(channels))
    stages = Stages.split(net, STAGE_ENDS)
    optimiser = MarketplaceV2(stages, vendors=vendors, lr=0.3, probe_scale=0.01, normalise="whole",
                              cache_deltas=cache_deltas,
                              chunk_bytes=None if chunk_mb is None else int(chunk_mb * 2 ** 20))
    rng = np.random.default_rng(0)
    x = sigma.tensor(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32))
    y = sigma.tensor(rng.integers(0, 10, batch))
    handle = optimiser.make_handle(net, nn.CrossEntropyLoss(), x, y)
    with sigma.no_grad():
        stage_inputs = [x]
        for stage in stages:
            stage_inputs.append(stage.module(stage_inputs[-1]))

    def plain_stage(index):
        with sigma.no_grad():
            stages[index].module(stage_inputs[index])

    def plain_network():
        with sigma.no_grad():
            net(x)

    optimiser.step(handle)                 # compile kernels, warm caches
    for index in range(len(stages)):
        plain_stage(index)
    step_times, stage_times, network_times = [], [[] for _ in stages], []
    for _ in range(rounds):
        start = time.perf_counter()
        optimiser.step(handle)
        step_times.append(time.perf_counter() - start)
        for index in range(len(stages)):
            for _ in range(3):
                start = time.perf_counter()
                plain_stage(index)
                stage_times[index].append(time.perf_counter() - start)
        start = time.perf_counter()
        plain_network()
        network_times.append(time.perf_counter() - start)
    step = statistics.median(step_times)
    per_stage = [statistics.median(times) for times in stage_times]
    baseline = sum(vendors ** (index + 1) * t for index, t in enumerate(per_stage))
    mflop = forward_mflop_per_sample(channels)
    gflop = batch * sum(vendors ** (index + 1) * m for index, m in enumerate(mflop)) / 1e3
    return {"vendors": vendors, "paths": vendors ** len(stages), "batch": batch, "step_s": step,
            "baseline_s": baseline, "ratio": step / baseline, "plain_network_s": statistics.median(network_times),
            "stage_s": per_stage, "gflop": gflop, "gflop_per_s": gflop / step,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "cache_deltas": cache_deltas, "rounds": rounds,
            "chunk_bytes": optimiser.chunk_bytes or default_chunk_bytes(stages.backend)}


def over_mpi(vendors: int, batch: int, rounds: int, channels) -> None:
    """Steps with the ranks of MPI.COMM_WORLD sharing the paths; rank 0 prints time and bytes per step."""
    import numpy as np
    import sigma
    from sigma import nn
    from sigma.distributed import MPICommunicator
    from examples.marketplace_mnist import STAGE_ENDS, model
    from sigma_marketplace import MarketplaceV2, Stages

    communicator = MPICommunicator()
    sigma.manual_seed(0)
    net = model(tuple(channels))
    optimiser = MarketplaceV2(Stages.split(net, STAGE_ENDS), vendors=vendors, lr=0.3, probe_scale=0.01,
                              communicator=communicator)
    rng = np.random.default_rng(0)
    x = sigma.tensor(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32))
    y = sigma.tensor(rng.integers(0, 10, batch))
    handle = optimiser.make_handle(net, nn.CrossEntropyLoss(), x, y)
    optimiser.step(handle)
    times = []
    for _ in range(rounds):
        communicator.barrier()
        start = time.perf_counter()
        optimiser.step(handle)
        times.append(time.perf_counter() - start)
    parameters = sum(p.size for p in net.parameters())
    if communicator.rank == 0:
        per_step = optimiser.communicated_bytes / (rounds + 1)
        print(json.dumps({"ranks": communicator.size, "vendors": vendors, "paths": vendors ** 3, "batch": batch,
                          "step_s": statistics.median(times), "loss_bytes_per_step": per_step,
                          "gradient_bytes_per_step": parameters * 4}))


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vendors", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--channels", type=int, nargs=2, default=[32, 64])
    parser.add_argument("--regenerate-deltas", action="store_true", help="cache_deltas=False")
    parser.add_argument("--chunk-mb", type=float, default=None, help="the wide pass's chunk size (default: its own)")
    parser.add_argument("--mpi", action="store_true", help="run under mpirun: the ranks share each step's paths")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mpi:
        for vendors in args.vendors:
            over_mpi(vendors, args.batch, args.rounds, args.channels)
        return []
    if args.child is not None:
        print(json.dumps(child(args.child, args.batch, args.rounds, args.channels, not args.regenerate_deltas,
                               args.chunk_mb)))
        return []
    results = []
    for vendors in args.vendors:
        command = [sys.executable, os.path.abspath(__file__), "--child", str(vendors), "--batch", str(args.batch),
                   "--rounds", str(args.rounds), "--channels", *map(str, args.channels)]
        if args.regenerate_deltas:
            command.append("--regenerate-deltas")
        if args.chunk_mb is not None:
            command += ["--chunk-mb", str(args.chunk_mb)]
        output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
        print(f"V={vendors} done: {results[-1]['step_s']:.2f} s per step", file=sys.stderr, flush=True)
    print(f"Machine: {machine()}; MNIST CNN channels {args.channels}, batch {args.batch}, "
          f"median of {args.rounds} round(s), deltas {'regenerated' if args.regenerate_deltas else 'cached'}, "
          f"chunks of {results[0]['chunk_bytes'] / 2 ** 20:.0f} MiB\n")
    print(table(["vendors", "paths", "V2 step (s)", "same forwards, plain (s)", "ratio", "plain net, 1 batch (s)",
                 "forward GFLOP", "GFLOP/s", "peak RSS (MB)"],
                [[r["vendors"], r["paths"], f"{r['step_s']:.2f}", f"{r['baseline_s']:.2f}", f"{r['ratio']:.2f}",
                  f"{r['plain_network_s']:.3f}", f"{r['gflop']:.1f}", f"{r['gflop_per_s']:.1f}",
                  f"{r['peak_rss_mb']:.0f}"] for r in results]))
    return results


if __name__ == "__main__":
    main()
