"""JSON Lines logger: one JSON object of averaged values per report (by default per epoch).

Each line is ``{"epoch": ..., "iteration": ..., "time": ..., "<key>": value, ...}``.
A restored run drops lines written after its checkpoint.

Example:
    >>> import pathlib, tempfile
    >>> from sigma.monitors import JSONLLogger
    >>> JSONLLogger(pathlib.Path(tempfile.mkdtemp()) / "log.jsonl").trigger
    (every(1, 'epoch') | on('stop'))
"""
from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Dict, Optional

from sigma.io.atomic import atomic_write_text
from sigma.io.event_log import EventLog, read_events
from sigma.monitors.reports import default_path, report_row
from sigma.training.condition import Condition
from sigma.training.hooks.base import PRIORITY_READER, Hook
from sigma.training.observation import Averager
from sigma.training.timesteps import every, on


class JSONLLogger(Hook):
    """Appends averaged observations to a JSON Lines file at ``path`` (by default ``metrics.jsonl`` in the
    trainer's run directory)."""

    priority = PRIORITY_READER
    writes_files = True

    def __init__(self, path: "str | os.PathLike | None" = None, trigger: Optional[Condition] = None, name: Optional[str] = None):
        super().__init__(trigger, name=name)
        self.path = None if path is None else pathlib.Path(path)
        self.averager = Averager()
        self.log: Optional[EventLog] = None
        self._restored = False

    def default_trigger(self) -> Condition:
        return every(1, "epoch") | on("stop")

    def setup(self, trainer) -> None:
        self.path = self.path or default_path(trainer, "metrics.jsonl", "JSONLLogger")
        trainer.attach_averager(self.averager)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._restored and self.path.exists():
            rows, _ = read_events(self.path)
            kept = [row for row in rows if row.get("iteration", 0) <= trainer.position.iteration]
            atomic_write_text(self.path, "".join(json.dumps(row) + "\n" for row in kept))
        elif not self._restored:
            self.path.write_text("", encoding="utf-8")
        self._restored = False
        self.log = EventLog(self.path)

    def __call__(self, trainer) -> None:
        values = self.averager.take()
        if values:
            self.log.append(report_row(trainer.position, values))

    def teardown(self, trainer) -> None:
        if self.log is not None:
            self.log.close()

    def state_dict(self) -> Dict[str, Any]:
        return {"averager": self.averager.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.averager.load_state_dict(state.get("averager", {}))
        self._restored = True
