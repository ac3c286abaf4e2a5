"""The ``Checkpoint`` hook: save the whole training state on a time step, keep the best k and the last.

File names come from a template filled with ``epoch``, ``iteration`` and
the observation's keys: ``"{epoch:03d}-{validation/accuracy:.4f}.h5"``.
Keys missing from this step's observation are taken from the last value
seen. With ``save_top_k`` only the k best files by ``monitor`` are kept
(a file that would not be among them is not written), and ``save_last``
keeps ``last.h5`` pointing at the newest state, which is what
``sigma resume`` continues from.

Example:
    >>> from sigma.training import every
    >>> from sigma.training.hooks import Checkpoint
    >>> hook = Checkpoint(every(500, "iterations"), monitor="validation/accuracy", mode="max", save_top_k=3)
    >>> hook.format_filename({"epoch": 2, "iteration": 1000, "validation/accuracy": 0.98125})
    'epoch002-iteration00001000.h5'
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
from typing import Any, Dict, List, Mapping, Optional

from sigma.io.atomic import atomic_write_path
from sigma.io.run_directory import LAST_CHECKPOINT
from sigma.training.condition import Condition
from sigma.training.hooks.base import PRIORITY_READER, Hook
from sigma.training.hooks.guards import NonFiniteError, check_parameters_finite
from sigma.training.timesteps import every

DEFAULT_FILENAME = "epoch{epoch:03d}-iteration{iteration:08d}.h5"


def _replace_with_link(source: pathlib.Path, target: pathlib.Path) -> None:
    """Make ``target`` a second name of ``source`` (a copy where hard links fail), atomically."""
    with atomic_write_path(target) as temporary:
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)


class Checkpoint(Hook):
    """Writes checkpoints (by default at the end of every epoch).

    Args:
        trigger: when to save, e.g. ``every(1, "epoch")`` or ``every(200, "iterations") | on("stop")``.
        directory: where; by default the run directory's ``checkpoints/``.
        filename: the template for file names.
        monitor: the observation key that ranks checkpoints for ``save_top_k``.
        mode: ``"max"`` (higher ``monitor`` is better) or ``"min"``.
        save_top_k: keep only the k best files (``None``: keep all; ``0``: only ``last.h5``).
        save_last: also keep ``last.h5``, the newest state.
    """

    priority = PRIORITY_READER
    writes_files = True

    def __init__(self, trigger: Optional[Condition] = None, directory: "str | os.PathLike | None" = None,
                 filename: str = DEFAULT_FILENAME, monitor: Optional[str] = None, mode: str = "max",
                 save_top_k: Optional[int] = None, save_last: bool = True, name: Optional[str] = None):
        super().__init__(trigger, name=name)
        if mode not in ("min", "max"):
            raise ValueError(f"Checkpoint: mode must be 'min' or 'max', got {mode!r}")
        if save_top_k is not None and (not isinstance(save_top_k, int) or save_top_k < 0):
            raise ValueError(f"Checkpoint: save_top_k must be None or a whole number >= 0, got {save_top_k!r}")
        if save_top_k and monitor is None:
            raise ValueError("Checkpoint: save_top_k ranks checkpoints by a monitored key; give monitor=, "
                             "e.g. monitor='validation/accuracy'")
        if not filename.endswith(".h5"):
            raise ValueError(f"Checkpoint: filename template must end in .h5, got {filename!r}")
        if filename.format_map(_Probe()) == LAST_CHECKPOINT:
            raise ValueError(f"Checkpoint: {LAST_CHECKPOINT} is reserved for the newest checkpoint")
        self.directory = None if directory is None else pathlib.Path(directory)
        self.filename = filename
        self.monitor = monitor
        self.mode = mode
        self.save_top_k = save_top_k
        self.save_last = save_last
        self.kept: List[Dict[str, Any]] = []  # {"file": name, "value": monitored value, "iteration": n}

    def default_trigger(self) -> Condition:
        return every(1, "epoch")

    def format_filename(self, values: Mapping[str, Any]) -> str:
        """The file name for these values; a clear error naming a key the template needs but lacks."""
        try:
            return self.filename.format_map(values)
        except KeyError as error:
            raise KeyError(f"Checkpoint filename {self.filename!r} needs {error.args[0]!r}, which has not been "
                           f"observed; known keys: {sorted(values)}") from None

    def setup(self, trainer) -> None:
        if self.directory is None:
            if trainer.run_directory is None:
                raise ValueError("Checkpoint: give directory=, or give the trainer a run directory "
                                 "(Trainer(run_directory='runs/name'))")
            self.directory = trainer.run_directory.checkpoints
        self.directory.mkdir(parents=True, exist_ok=True)

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b

    def __call__(self, trainer) -> None:
        broken = check_parameters_finite(trainer)
        if broken is not None:
            raise NonFiniteError(f"Checkpoint: parameter {broken} holds NaN or infinity at iteration "
                                 f"{trainer.position.iteration}; not saved, so the last checkpoint stays good")
        values = {**trainer.latest, **trainer.observation, "epoch": trainer.position.epoch,
                  "iteration": trainer.position.iteration}
        evicted: List[str] = []
        file_name: Optional[str] = self.format_filename(values)
        if self.save_top_k == 0:
            file_name = None
        elif self.save_top_k is not None:
            if self.monitor not in values:
                raise KeyError(f"Checkpoint ranks by {self.monitor!r}, which has not been observed by iteration "
                               f"{trainer.position.iteration}; known keys: {sorted(values)}")
            value = float(values[self.monitor])
            ranked = [entry for entry in self.kept if entry["file"] != file_name]
            ranked.sort(key=lambda e: e["value"], reverse=self.mode == "max")
            if len(ranked) >= self.save_top_k and not self._better(value, ranked[self.save_top_k - 1]["value"]):
                file_name = None
            else:
                ranked.append({"file": file_name, "value": value, "iteration": trainer.position.iteration})
                ranked.sort(key=lambda e: e["value"], reverse=self.mode == "max")
                evicted = [entry["file"] for entry in ranked[self.save_top_k:]]
                self.kept = ranked[:self.save_top_k]
        # The hook's own state, saved inside the file, already lists the file being written.
        written = None
        if file_name is not None:
            written = trainer.save_checkpoint(self.directory / file_name)
        if self.save_last:
            last = self.directory / LAST_CHECKPOINT
            if written is not None:
                _replace_with_link(written, last)
            else:
                trainer.save_checkpoint(last)
        for name in evicted:
            if name != file_name:
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / name).unlink()

    def state_dict(self) -> Dict[str, Any]:
        return {"kept": [dict(entry) for entry in self.kept]}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.kept = [dict(entry) for entry in state.get("kept", [])]


class _Probe(dict):
    """Fills any template field with zeros, to check a template's shape without real values."""

    def __missing__(self, key: str) -> int:
        return 0
