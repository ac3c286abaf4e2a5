"""What loggers write: one row per report, with the position, the wall time and averaged values;
and where, by default.

Example:
    >>> from sigma.monitors.reports import report_row
    >>> from sigma.training.position import Position
    >>> row = report_row(Position(epoch=1, iteration=100), {"train/loss": 0.5})
    >>> sorted(row)
    ['epoch', 'iteration', 'time', 'train/loss']
"""
from __future__ import annotations

import pathlib
import time
from typing import Any, Dict, Mapping

from sigma.training.position import Position


def report_row(position: Position, values: Mapping[str, float]) -> Dict[str, Any]:
    """``{"epoch", "iteration", "time", **values}`` for the moment ``position``."""
    return {"epoch": position.epoch_detail, "iteration": position.iteration, "time": time.time(), **values}


def default_path(trainer, name: str, hook: str) -> pathlib.Path:
    """``name`` in the trainer's run directory; an error naming ``hook`` if there is none."""
    if trainer.run_directory is None:
        raise ValueError(f"{hook}: give a path, or give the trainer a run directory (Trainer(run_directory=...))")
    return trainer.run_directory.path / name
