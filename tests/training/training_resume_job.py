"""The trainer of the exact-resume tests, and a command line to continue it in a fresh process.

    python training_resume_job.py CHECKPOINT ITERATIONS OUT.npz

builds the trainer with other initial weights (the checkpoint must replace
them), restores CHECKPOINT, trains to ITERATIONS and saves the final state.
"""
import sys

import numpy as np

import sigma
import sigma.optim
from sigma.training import every, hooks

from training_helpers import make_trainer, optimiser_arrays, parameters


def build(init_seed: int = 0, extra_hooks=()):
    """Dropout, Adam, a shuffling iterator with a short last batch, a schedule stepped every 5 steps,
    early stopping (whose best weights live in hook state) and a gradient-norm reporter."""
    trainer = make_trainer(init_seed=init_seed, dropout=0.3, hooks=[
        hooks.EarlyStopping("validation/loss", patience=50), hooks.GradientNorm(), *extra_hooks])
    trainer.add_hook(hooks.LRSchedule(sigma.optim.StepLR(trainer.optimiser, step_size=1, gamma=0.9),
                                      trigger=every(5, "iterations")))
    return trainer


def final_state(trainer) -> dict:
    state = {f"parameter/{name}": value for name, value in parameters(trainer).items()}
    state.update({f"optimiser/{index}/{name}": value for (index, name), value in optimiser_arrays(trainer).items()})
    state["position"] = np.array([trainer.position.epoch, trainer.position.iteration, trainer.position.iteration_in_epoch])
    state["lr"] = np.array(trainer.optimiser.param_groups[0]["lr"])
    state["random"] = sigma.default_backend().random.uniform((4,), dtype=np.float64)
    state["data"] = np.array([trainer.train_data.epoch, trainer.train_data.position])
    return state


if __name__ == "__main__":
    checkpoint, iterations, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    trainer = build(init_seed=99)
    sigma.manual_seed(12345)  # the restore must bring back the random streams too
    trainer.restore(checkpoint)
    trainer.run(iterations=iterations)
    np.savez(out, **final_state(trainer))
