"""Timing: how fast training goes, as ``throughput`` (samples/s) and ``time/step`` (seconds).

The trainer measures each step from asking for the batch to the end of the
optimiser's update; hooks, evaluation and pauses are not counted.

Example:
    >>> from sigma.training.hooks import Timer
    >>> Timer().priority
    400
"""
from __future__ import annotations

from sigma.training.hooks.base import PRIORITY_WRITER, Hook


class Timer(Hook):
    """Writes ``throughput`` and ``time/step`` every step (a default hook of every trainer)."""

    priority = PRIORITY_WRITER + 100  # first, so every other hook sees the step's timing

    def __call__(self, trainer) -> None:
        seconds = trainer.step_seconds
        trainer.observation["time/step"] = seconds
        if seconds > 0:
            trainer.observation["throughput"] = trainer.last_batch_size / seconds
