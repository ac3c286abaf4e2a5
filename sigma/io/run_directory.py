"""Run directories: ``runs/<name>/`` holds everything one training run leaves behind.

=================  ============================================================
``run.json``       the run description: name, status, how to rebuild the
                   trainer (``recipe``), how long to train (``stop``), network
                   and optimiser summary, times; rewritten atomically
``events.jsonl``   the event log (:mod:`sigma.io.event_log`): one JSON record
                   per line, appended while the run goes, readable live
``checkpoints/``   HDF5 checkpoints; ``last.h5`` is the newest
=================  ============================================================

Event records have a ``kind`` (``"start"``, ``"metrics"``, ``"stop"``,
``"pause"``, ``"resume"``, ``"error"``, ``"command"``, ``"checkpoint"``,
``"restored"``, ``"message"``), the wall ``time`` and the run's ``epoch``
and ``iteration``. After a ``"restored"`` record, records of the run before
it with a higher ``iteration`` belong to a timeline that was abandoned
(the run crashed after them and resumed from an earlier checkpoint).

This is what the GUI reads, live or after the run.

Example:
    >>> import tempfile
    >>> from sigma.io.run_directory import RunDirectory, list_runs
    >>> root = tempfile.mkdtemp()
    >>> run = RunDirectory.create("mnist-mlp", root=root)
    >>> _ = run.update_description(status="running")
    >>> run.events.append({"kind": "start", "iteration": 0}); run.events.close()
    >>> [r.name for r in list_runs(root)], run.read_description()["status"]
    (['mnist-mlp'], 'running')
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import time
from typing import Any, Dict, List, Optional, Tuple

from sigma.io.atomic import atomic_write_text
from sigma.io.event_log import EventLog, read_events
from sigma.version import __version__

DESCRIPTION_FILE = "run.json"
EVENTS_FILE = "events.jsonl"
CHECKPOINT_FOLDER = "checkpoints"
LAST_CHECKPOINT = "last.h5"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class RunDirectoryError(ValueError):
    """A folder is not a Sigma run directory, or its description cannot be read."""


class RunDirectory:
    """One run's folder: description, event log, checkpoints."""

    def __init__(self, path: "str | os.PathLike"):
        self.path = pathlib.Path(path)
        self._events: Optional[EventLog] = None

    # -- making and opening ---------------------------------------------------
    @classmethod
    def create(cls, name: Optional[str] = None, root: "str | os.PathLike" = "runs") -> "RunDirectory":
        """Make ``root/<name>/`` (a fresh name with a ``-2``, ``-3`` suffix if taken; a timestamp if none)."""
        base = name or time.strftime("%Y%m%d-%H%M%S")
        if not _NAME.match(base):
            raise ValueError(f"run name {base!r}: use letters, digits, '.', '_', '+' and '-', starting with a "
                             "letter or digit")
        root = pathlib.Path(root)
        root.mkdir(parents=True, exist_ok=True)
        candidate, number = base, 1
        while True:
            try:
                (root / candidate).mkdir()
                break
            except FileExistsError:
                number += 1
                candidate = f"{base}-{number}"
        run = cls(root / candidate)
        run.checkpoints.mkdir()
        run.write_description({"name": candidate, "created": time.time(), "sigma_version": __version__,
                               "status": "created"})
        return run

    @classmethod
    def open(cls, path: "str | os.PathLike") -> "RunDirectory":
        """An existing run directory; a clear error if ``path`` is not one."""
        path = pathlib.Path(path)
        if not path.is_dir():
            raise RunDirectoryError(f"{path} is not a folder, so not a run directory")
        run = cls(path)
        if not run.description_path.is_file():
            raise RunDirectoryError(f"{path} is not a Sigma run directory: it has no {DESCRIPTION_FILE}")
        run.read_description()
        return run

    # -- paths ------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def description_path(self) -> pathlib.Path:
        return self.path / DESCRIPTION_FILE

    @property
    def events_path(self) -> pathlib.Path:
        return self.path / EVENTS_FILE

    @property
    def checkpoints(self) -> pathlib.Path:
        return self.path / CHECKPOINT_FOLDER

    @property
    def events(self) -> EventLog:
        """The event log, opened for appending on first write."""
        if self._events is None:
            self._events = EventLog(self.events_path)
        return self._events

    # -- description --------------------------------------------------------------
    def read_description(self) -> Dict[str, Any]:
        try:
            text = self.description_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RunDirectoryError(f"{self.path} has no {DESCRIPTION_FILE}") from None
        try:
            description = json.loads(text)
        except ValueError as error:
            raise RunDirectoryError(f"{self.description_path} is not valid JSON: {error}") from None
        if not isinstance(description, dict):
            raise RunDirectoryError(f"{self.description_path} must hold a JSON object, "
                                    f"found {type(description).__name__}")
        return description

    def write_description(self, description: Dict[str, Any]) -> None:
        atomic_write_text(self.description_path, json.dumps(description, indent=2, default=str) + "\n")

    def update_description(self, **fields: Any) -> Dict[str, Any]:
        """Merge ``fields`` into ``run.json`` (atomically) and return the new description."""
        description = self.read_description()
        description.update(fields)
        description["updated"] = time.time()
        self.write_description(description)
        return description

    # -- events and checkpoints ---------------------------------------------------------
    def read_events(self, offset: int = 0) -> Tuple[List[Dict[str, Any]], int]:
        """Complete event records from ``offset`` on, and the offset to continue from."""
        return read_events(self.events_path, offset)

    def list_checkpoints(self) -> List[pathlib.Path]:
        """Checkpoint files, oldest first (``last.h5`` included)."""
        if not self.checkpoints.is_dir():
            return []
        files = [p for p in self.checkpoints.iterdir() if p.suffix == ".h5" and p.is_file()]
        return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))

    def last_checkpoint(self) -> Optional[pathlib.Path]:
        """``checkpoints/last.h5`` if present, else the newest checkpoint, else ``None``."""
        last = self.checkpoints / LAST_CHECKPOINT
        if last.is_file():
            return last
        files = self.list_checkpoints()
        return files[-1] if files else None

    def close(self) -> None:
        if self._events is not None:
            self._events.close()

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"


def list_runs(root: "str | os.PathLike" = "runs") -> List[RunDirectory]:
    """The run directories directly under ``root``, oldest first; folders without ``run.json`` are skipped."""
    root = pathlib.Path(root)
    if not root.is_dir():
        return []
    runs = [RunDirectory(p) for p in root.iterdir() if (p / DESCRIPTION_FILE).is_file()]
    return sorted(runs, key=lambda run: (run.description_path.stat().st_mtime, run.name))
