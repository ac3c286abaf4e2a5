"""A tqdm progress bar: epoch, iteration, loss, accuracy, samples/s and the time left.

Between redraws (at most every ``refresh`` seconds) the shown values are
averages over the steps since the last redraw. At the end of each epoch it
prints one line with the epoch's averages and any evaluation results.

Example:
    >>> from sigma.monitors import ProgressBar
    >>> ProgressBar().format_values({"train/loss": 0.12345, "train/accuracy": 0.9, "throughput": 5012.4})
    {'loss': '0.1235', 'acc': '0.9000', 'samples/s': '5,012'}
"""
from __future__ import annotations

import sys
import time
from typing import Dict, Mapping, Optional, TextIO

from sigma.training.condition import Condition
from sigma.training.hooks.base import PRIORITY_READER, Hook
from sigma.training.observation import Averager
from sigma.training.timesteps import every, on

_SHORT = {"train/loss": "loss", "train/accuracy": "acc", "throughput": "samples/s"}


class ProgressBar(Hook):
    """Shows training progress on a terminal (standard error by default)."""

    priority = PRIORITY_READER

    def __init__(self, refresh: float = 0.5, file: Optional[TextIO] = None, trigger: Optional[Condition] = None,
                 name: Optional[str] = None):
        super().__init__(trigger, name=name)
        self.refresh = float(refresh)
        self.file = file
        self.recent = Averager()
        self.epoch_values = Averager()
        self.bar = None
        self._shown_iteration = 0
        self._last_draw: Optional[float] = None  # not 0.0: time.monotonic() may be smaller than `refresh`

    def default_trigger(self) -> Condition:
        return every(1, "iteration") | on("epoch") | on("stop") | on("pause") | on("resume")

    @staticmethod
    def format_values(values: Mapping[str, float]) -> Dict[str, str]:
        shown = {}
        for key, label in _SHORT.items():
            if key in values:
                value = values[key]
                shown[label] = f"{value:,.0f}" if key == "throughput" else f"{value:.4f}"
        return shown

    def setup(self, trainer) -> None:
        from tqdm.auto import tqdm
        trainer.attach_averager(self.recent)
        trainer.attach_averager(self.epoch_values)
        self._shown_iteration = trainer.position.iteration
        self.bar = tqdm(total=trainer.target_iterations, initial=trainer.position.iteration, unit="step",
                        file=self.file if self.file is not None else sys.stderr, dynamic_ncols=True, leave=True)
        self._describe(trainer)

    def _describe(self, trainer) -> None:
        position = trainer.position
        epoch, epochs = position.epoch + 1, ""
        if trainer.target_iterations and position.batches_per_epoch:
            total = -(-trainer.target_iterations // position.batches_per_epoch)
            epoch, epochs = min(epoch, total), f"/{total}"
        state = " (paused)" if trainer.paused else ""
        self.bar.set_description(f"epoch {epoch}{epochs}{state}", refresh=False)

    def __call__(self, trainer) -> None:
        moment = trainer.moment
        now = time.monotonic()
        if moment.event in ("iteration", "epoch"):
            self.bar.update(trainer.position.iteration - self._shown_iteration)
            self._shown_iteration = trainer.position.iteration
        if moment.epoch_ended:
            summary = self.epoch_values.take()
            text = "  ".join(f"{key} {value:.4f}" for key, value in summary.items()
                             if key.endswith(("loss", "accuracy")))
            self.bar.write(f"epoch {trainer.position.epoch}: {text}", file=self.bar.fp)
        if self._last_draw is None or now - self._last_draw >= self.refresh or moment.event != "iteration":
            self._last_draw = now
            self._describe(trainer)
            self.bar.set_postfix(self.format_values(self.recent.take()), refresh=True)

    def teardown(self, trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
