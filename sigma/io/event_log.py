"""An append-only JSON Lines event log that another process can read while it grows.

Each record is one JSON object on one line, written with a single
``write`` call on a file opened for appending, so a reader sees whole lines
or nothing of a line; :func:`read_events` returns only complete lines and
the byte offset to continue from. A line cut short by a crash is closed off
by the next writer, and a reader reports it as an ``"unreadable"`` record
rather than failing.

Python's ``json`` writes NaN and infinities as ``NaN`` and ``Infinity``, and
reads them back.

Example:
    >>> import pathlib, tempfile
    >>> from sigma.io.event_log import EventLog, read_events
    >>> log = EventLog(pathlib.Path(tempfile.mkdtemp()) / "events.jsonl")
    >>> log.append({"kind": "metrics", "iteration": 1, "values": {"train/loss": 2.3}})
    >>> records, offset = read_events(log.path)
    >>> records[0]["values"]["train/loss"], read_events(log.path, offset)[0]
    (2.3, [])
    >>> log.close()
"""
from __future__ import annotations

import json
import os
import pathlib
import threading
from typing import Any, Dict, List, Mapping, Tuple


class EventLog:
    """Appends records to a JSON Lines file; safe to call from several threads."""

    def __init__(self, path: "str | os.PathLike"):
        self.path = pathlib.Path(path)
        self._lock = threading.Lock()
        self._descriptor = None

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(descriptor).st_size
        if size:
            with open(self.path, "rb") as handle:
                handle.seek(size - 1)
                if handle.read(1) != b"\n":  # an earlier writer died mid-line: end that line first
                    os.write(descriptor, b"\n")
        return descriptor

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one record as one line."""
        line = (json.dumps(record, separators=(",", ":"), default=_json_value) + "\n").encode("utf-8")
        with self._lock:
            if self._descriptor is None:
                self._descriptor = self._open()
            written = os.write(self._descriptor, line)
            while written < len(line):  # only on exotic file systems
                written += os.write(self._descriptor, line[written:])

    def close(self) -> None:
        with self._lock:
            if self._descriptor is not None:
                os.close(self._descriptor)
                self._descriptor = None

    def __enter__(self) -> "EventLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _json_value(value: Any) -> Any:
    """What a record holds that JSON has no type for: numpy scalars and small arrays become numbers and lists;
    anything else its short ``repr``, so that an odd value (a command's argument, say) never loses the line."""
    size = getattr(value, "size", None)
    if hasattr(value, "tolist") and size is not None and size <= 1024:
        return value.tolist()
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def read_events(path: "str | os.PathLike", offset: int = 0) -> Tuple[List[Dict[str, Any]], int]:
    """Complete records from byte ``offset`` on, and the offset after the last complete line.

    Call again with the returned offset to read what was appended since.
    A missing file reads as no records.
    """
    path = pathlib.Path(path)
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    records = []
    position = offset
    for raw in data[:end].split(b"\n"):
        if raw.strip():
            try:
                records.append(json.loads(raw))
            except ValueError as error:
                records.append({"kind": "unreadable", "offset": position, "error": str(error),
                                "text": raw[:200].decode("utf-8", "replace")})
        position += len(raw) + 1
    return records, offset + end + 1
