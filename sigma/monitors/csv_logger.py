"""CSV logger: one row of averaged values per report (by default per epoch), for spreadsheets.

Columns are ``epoch``, ``iteration``, ``time`` and the observed keys in
the order they first appeared; a key that appears later adds a column
(the file is rewritten with the wider header). A restored run drops rows
written after its checkpoint, so the file reads as one uninterrupted run.

Example:
    >>> import pathlib, tempfile
    >>> from sigma.monitors import CSVLogger
    >>> CSVLogger(pathlib.Path(tempfile.mkdtemp()) / "log.csv").writes_files
    True
"""
from __future__ import annotations

import csv
import os
import pathlib
from typing import Any, Dict, List, Optional, Sequence

from sigma.io.atomic import atomic_write_path
from sigma.monitors.reports import default_path, report_row
from sigma.training.condition import Condition
from sigma.training.hooks.base import PRIORITY_READER, Hook
from sigma.training.observation import Averager
from sigma.training.timesteps import every, on

_FIXED = ["epoch", "iteration", "time"]


def read_rows(path: "str | os.PathLike") -> List[Dict[str, str]]:
    """The rows of a CSV log as dicts of strings (empty cells for columns added later)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


class CSVLogger(Hook):
    """Appends averaged observations to a CSV file at ``path`` (by default ``metrics.csv`` in the
    trainer's run directory).

    ``keys`` limits the columns to those keys (all observed keys by default).
    """

    priority = PRIORITY_READER
    writes_files = True

    def __init__(self, path: "str | os.PathLike | None" = None, trigger: Optional[Condition] = None,
                 keys: Optional[Sequence[str]] = None, name: Optional[str] = None):
        super().__init__(trigger, name=name)
        self.path = None if path is None else pathlib.Path(path)
        self.keys = None if keys is None else list(keys)
        self.averager = Averager()
        self.columns: List[str] = []
        self._restored = False

    def default_trigger(self) -> Condition:
        return every(1, "epoch") | on("stop")

    def setup(self, trainer) -> None:
        self.path = self.path or default_path(trainer, "metrics.csv", "CSVLogger")
        trainer.attach_averager(self.averager)
        if self.columns and self._restored and self.path.exists():
            kept = [row for row in read_rows(self.path) if int(row["iteration"]) <= trainer.position.iteration]
            # Columns the abandoned rows added go away with them; those the kept rows use stay.
            used = [key for row in kept for key, value in row.items() if value != "" and key not in self.columns]
            self.columns += list(dict.fromkeys(used))
            self._rewrite(self.columns, [{key: row.get(key, "") for key in self.columns} for row in kept])
        elif not self.columns:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("", encoding="utf-8")
        self._restored = False

    def _rewrite(self, columns: List[str], rows: List[Dict[str, Any]]) -> None:
        with atomic_write_path(self.path) as temporary:
            with open(temporary, "w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns, restval="")
                writer.writeheader()
                writer.writerows(rows)

    def __call__(self, trainer) -> None:
        values = self.averager.take()
        if self.keys is not None:
            values = {key: values[key] for key in self.keys if key in values}
        if not values:
            return
        row = report_row(trainer.position, values)
        new = [key for key in row if key not in self.columns]
        if new:
            old_rows = read_rows(self.path) if self.columns else []
            self.columns = (self.columns or list(_FIXED)) + [key for key in new if key not in _FIXED]
            self._rewrite(self.columns, old_rows + [row])
            return
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            csv.DictWriter(handle, fieldnames=self.columns, restval="").writerow(row)

    def state_dict(self) -> Dict[str, Any]:
        return {"columns": list(self.columns), "averager": self.averager.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.columns = list(state.get("columns", []))
        self.averager.load_state_dict(state.get("averager", {}))
        self._restored = True
