"""Where a run's records come from: a run directory's event log (live or finished), or a queue in this process.

Both sources have one method, ``poll(limit)``, returning the records that
arrived since the last call (at most ``limit``), and neither touches Qt:
the window calls ``poll`` from a timer on the GUI thread.

:class:`RunDirectorySource` tails ``events.jsonl`` by byte offset, a few
megabytes per poll so that opening a long run never freezes the window,
and turns ``run.json`` (whenever it changes) and the checkpoint files into
records too. :class:`QueueSource` drains the queue a
:class:`sigma_gui.feed.QueueFeed` hook fills from the training thread.

Example:
    >>> import tempfile
    >>> from sigma.io import RunDirectory
    >>> from sigma_gui.sources import RunDirectorySource
    >>> run = RunDirectory.create("example", root=tempfile.mkdtemp())
    >>> run.events.append({"kind": "metrics", "time": 1.0, "epoch": 0, "iteration": 1, "values": {"loss": 2.0}})
    >>> source = RunDirectorySource(run.path)
    >>> [record["kind"] for record in source.poll()]
    ['description', 'metrics']
    >>> source.poll()
    []
"""
from __future__ import annotations

import json
import os
import pathlib
import queue
from typing import Any, Dict, List, Optional

from sigma.io.run_directory import RunDirectory, RunDirectoryError

# Bytes of event log parsed per poll: about 25,000 metric records, well under a frame's worth of work per
# second at 20 polls a second, so a long finished run streams in over a few seconds with the window alive.
READ_CHUNK_BYTES = 4 * 1024 * 1024


class RunSourceError(ValueError):
    """A folder or file cannot be shown as a Sigma run: missing, foreign or damaged."""


def _check_event_log(path: pathlib.Path) -> None:
    """Raise if ``path`` exists and its first line is not a Sigma event record."""
    try:
        with open(path, "rb") as handle:
            first = handle.readline(65536)
    except FileNotFoundError:
        return
    except OSError as error:
        raise RunSourceError(f"{path} cannot be read: {error}") from None
    if not first.strip():
        return
    try:
        record = json.loads(first)
    except ValueError:
        if not first.endswith(b"\n"):
            return  # a first line still being written
        raise RunSourceError(f"{path} is not a Sigma event log: its first line is not JSON "
                             f"({first[:80]!r})") from None
    if not isinstance(record, dict) or "kind" not in record:
        raise RunSourceError(f"{path} is not a Sigma event log: its first line is {first[:80]!r}, not a record "
                             "with a 'kind'")


def open_run_directory(path: "str | os.PathLike") -> RunDirectory:
    """The run directory at ``path`` after checking that it is a readable Sigma run; else a RunSourceError."""
    path = pathlib.Path(path)
    if not path.exists():
        raise RunSourceError(f"{path} does not exist")
    try:
        run = RunDirectory.open(path)
        description = run.read_description()
    except RunDirectoryError as error:
        raise RunSourceError(str(error)) from None
    if "sigma_version" not in description and "status" not in description:
        raise RunSourceError(f"{run.description_path} is not a Sigma run description (it has neither "
                             f"'sigma_version' nor 'status'; its keys are {sorted(description)[:10]})")
    _check_event_log(run.events_path)
    return run


def _network_description(checkpoint: pathlib.Path) -> Optional[Dict[str, Any]]:
    """The network's ``describe()`` data stored in a checkpoint, or ``None`` if it cannot be read."""
    from sigma.io import CheckpointError, checkpoint_summary
    try:
        description = checkpoint_summary(checkpoint).get("description")
    except (CheckpointError, OSError):
        return None  # being written, or damaged: the checkpoints panel reports it
    return description if isinstance(description, dict) and "layers" in description else None


class RunDirectorySource:
    """Records from a run directory: its description, its event log (tailed) and its checkpoint files."""

    def __init__(self, path: "str | os.PathLike", chunk_bytes: int = READ_CHUNK_BYTES):
        self.run = open_run_directory(path)
        self.path = self.run.path
        self.name = self.run.name
        self.chunk_bytes = int(chunk_bytes)
        self.offset = 0
        self._description_stamp: Optional[tuple] = None
        self._known_checkpoints: set = set()
        self._network_found = False

    def poll(self, limit: Optional[int] = None) -> List[Dict[str, Any]]:
        """Records new since the last poll: the description first when ``run.json`` changed."""
        records: List[Dict[str, Any]] = []
        description = self._description_if_changed()
        if description is not None:
            records.append(description)
        records.extend(self._read_events(limit))
        if description is not None or any(r.get("kind") == "checkpoint" for r in records):
            records.extend(self._new_checkpoint_files())
        return records

    @property
    def at_end(self) -> bool:
        """Whether everything written to the event log so far has been read."""
        try:
            return self.offset >= self.run.events_path.stat().st_size
        except FileNotFoundError:
            return True

    def _description_if_changed(self) -> Optional[Dict[str, Any]]:
        try:
            stat = self.run.description_path.stat()
        except FileNotFoundError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamp == self._description_stamp:
            return None
        try:
            description = self.run.read_description()
        except RunDirectoryError:
            return None  # caught between two writes of another process; the next poll reads it
        self._description_stamp = stamp
        return {"kind": "description", **description}

    def _read_events(self, limit: Optional[int]) -> List[Dict[str, Any]]:
        try:
            with open(self.run.events_path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read(self.chunk_bytes)
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            if len(data) >= self.chunk_bytes:  # one line longer than a chunk: skip it rather than stall
                self.offset += len(data)
                return [{"kind": "unreadable", "offset": self.offset, "error": "a line longer than "
                         f"{self.chunk_bytes} bytes was skipped"}]
            return []
        records = []
        position = self.offset
        for raw in data[:end].split(b"\n"):
            if limit is not None and len(records) >= limit:
                break
            line_end = position + len(raw) + 1
            if raw.strip():
                try:
                    record = json.loads(raw)
                    if not isinstance(record, dict):
                        raise ValueError(f"a JSON {type(record).__name__}, not an object")
                except ValueError as error:
                    record = {"kind": "unreadable", "offset": position, "error": str(error)}
                records.append(record)
            position = line_end
        self.offset = position
        return records

    def _new_checkpoint_files(self) -> List[Dict[str, Any]]:
        records = []
        for path in self.run.list_checkpoints():
            if path in self._known_checkpoints:
                continue
            self._known_checkpoints.add(path)
            records.append({"kind": "checkpoint_found", "path": str(path), "time": path.stat().st_mtime})
        if records and not self._network_found:
            # The event log holds the network's description only when the run had the GUI's event-log feed;
            # every checkpoint holds it.
            network = _network_description(pathlib.Path(records[-1]["path"]))
            if network is not None:
                self._network_found = True
                records.append({"kind": "network", "description": network})
        return records


class QueueSource:
    """Records put on a ``queue.SimpleQueue`` (by a :class:`sigma_gui.feed.QueueFeed` in the training thread)."""

    def __init__(self, records: "queue.SimpleQueue", name: str = "this process"):
        self.queue = records
        self.name = name

    def poll(self, limit: Optional[int] = None) -> List[Dict[str, Any]]:
        records = []
        while limit is None or len(records) < limit:
            try:
                records.append(self.queue.get_nowait())
            except queue.Empty:
                break
        return records


__all__ = ["RunSourceError", "RunDirectorySource", "QueueSource", "open_run_directory"]
