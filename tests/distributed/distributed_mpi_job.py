"""A small training job for the MPI tests: run it with ``mpirun -n R python distributed_mpi_job.py OUT ...``.

The same script runs inline (``--inline``), under ``mpirun -n 1`` and under
``mpirun -n 2``; every process writes its final parameters to
``OUT/rank<r>.npz`` so the tests can compare them.
"""
import argparse
import json
import os
import pathlib
import sys
import threading
import time

import numpy as np

import sigma
import sigma.data
import sigma.optim
from sigma import nn
from sigma.training import Trainer, every, hooks
from sigma.training.operators import MPI, Inline, ModelAveraging


def blobs(samples=128, features=8, classes=3):
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=2.0, size=(classes, features))
    targets = rng.integers(0, classes, size=samples)
    inputs = centres[targets] + rng.normal(size=(samples, features))
    return sigma.data.InMemoryDataset(inputs=inputs.astype(np.float32), targets=targets.astype(np.int64))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--inline", action="store_true")
    parser.add_argument("--average", type=int, default=0, help="model averaging every N iterations")
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--restore")
    parser.add_argument("--checkpoint-at", type=int, default=0)
    parser.add_argument("--fail-on-rank", type=int, default=-1)
    parser.add_argument("--slow", action="store_true", help="sleep in every step (the kill test)")
    parser.add_argument("--commands-on-rank-0", action="store_true",
                        help="rank 0 alone pauses, changes the learning rate and is stopped from another thread")
    options = parser.parse_args()
    out = pathlib.Path(options.out)

    # Ranks seed differently on purpose: the operator's broadcast must make them start equal.
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    sigma.manual_seed(rank)
    network = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    if options.inline:
        operator = Inline()
    else:
        operator = MPI(merge=ModelAveraging(every=options.average) if options.average else "all_reduce")
    extra = []
    if options.checkpoint_at:
        extra.append(hooks.Checkpoint(every(options.checkpoint_at, "iterations"), directory=out,
                                      filename="step-{iteration}.h5"))
    if options.fail_on_rank >= 0 or options.slow:
        def trouble(trainer):
            if options.slow:
                (out / f"pid{operator_rank()}").write_text(str(os.getpid()))
                time.sleep(0.2)
            if trainer.position.iteration == 3 and operator_rank() == options.fail_on_rank:
                raise RuntimeError(f"rank {options.fail_on_rank} failed on purpose")
        extra.append(hooks.Lambda(trouble))

    if options.commands_on_rank_0:
        def command_from_a_gui(trainer):
            if operator_rank() != 0:
                return
            if trainer.position.iteration == 3:
                trainer.pause()
                threading.Timer(0.5, trainer.resume).start()
            elif trainer.position.iteration == 4:
                trainer.send("set_lr", value=0.001)
            elif trainer.position.iteration == 7:
                stopper = threading.Thread(target=trainer.stop, args=("stopped on rank 0",))
                stopper.start()
                stopper.join()
        extra.append(hooks.Lambda(command_from_a_gui))

    def operator_rank():
        return getattr(operator, "rank", 0)

    trainer = Trainer(network, nn.CrossEntropyLoss(), sigma.optim.Adam(network.parameters(), lr=0.01),
                      sigma.data.MinibatchIterator(blobs(), batch_size=32, seed=1), operator=operator, hooks=extra,
                      seed=0, run_directory=out / "run", progress_bar=True)
    if options.restore:
        trainer.restore(options.restore)
    result = trainer.run(iterations=options.iterations)
    if options.commands_on_rank_0:
        (out / f"rank{operator_rank()}.json").write_text(json.dumps(
            {"reason": result.reason, "iteration": result.iteration, "lr": trainer.optimiser.param_groups[0]["lr"]}))
    np.savez(out / f"rank{operator_rank()}.npz",
             **{name: tensor.numpy() for name, tensor in network.state_dict().items()})
    if operator_rank() == 0:
        trainer.save_checkpoint(out / "final.h5")
    print(f"rank {operator_rank()} done: loss {trainer.latest['train/loss']:.4f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
