"""Atomic file replacement: write beside the target, flush to disk, rename over it.

A reader (or a crash) sees either the old file or the complete new one,
never a half-written file: ``os.replace`` is atomic on POSIX and Windows
when both names are on the same file system, which writing the temporary
file in the target's own folder guarantees.

Example:
    >>> import pathlib, tempfile
    >>> from sigma.io.atomic import atomic_write_path
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
    >>> with atomic_write_path(target) as temporary:
    ...     _ = temporary.write_text("complete")
    >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
    ('complete', ['note.txt'])
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import secrets
from typing import Iterator

TEMPORARY_SUFFIX = ".partial"


def _fsync_file(path: pathlib.Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_folder(folder: pathlib.Path) -> None:
    # The rename is durable only once the folder entry is on disk; Windows cannot open folders.
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_write_path(target: "str | os.PathLike") -> Iterator[pathlib.Path]:
    """Yield a temporary path to write; on success it replaces ``target`` atomically.

    If the block raises, the temporary file is removed and ``target`` is
    left as it was.
    """
    target = pathlib.Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}"
    try:
        yield temporary
        _fsync_file(temporary)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _fsync_folder(target.parent)


def atomic_write_text(target: "str | os.PathLike", text: str) -> None:
    """Replace ``target`` with ``text`` (UTF-8) atomically."""
    with atomic_write_path(target) as temporary:
        temporary.write_text(text, encoding="utf-8")
