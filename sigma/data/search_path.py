"""Where Sigma looks for data files: ``SIGMA_DATA``, then the user cache, then system folders.

``SIGMA_DATA`` holds folders separated by ``os.pathsep`` (``:`` on Linux).
The user cache is ``$SIGMA_CACHE`` if set, else ``$XDG_CACHE_HOME/sigma``,
else ``~/.cache/sigma``; downloads go there. System folders are
``/usr/local/share/datasets`` and ``/usr/share/datasets`` (where Debian's
``dataset-*`` packages install).

Example:
    >>> import os, tempfile, pathlib
    >>> from sigma.data import search_path
    >>> folder = tempfile.mkdtemp()
    >>> _ = (pathlib.Path(folder) / "digits.csv").write_text("a,b\\n1,2\\n")
    >>> os.environ["SIGMA_DATA"], saved = folder, os.environ.get("SIGMA_DATA")
    >>> search_path.find("digits.csv") == pathlib.Path(folder) / "digits.csv"
    True
    >>> if saved is None: del os.environ["SIGMA_DATA"]
    ... else: os.environ["SIGMA_DATA"] = saved
"""
from __future__ import annotations

import os
import pathlib
from typing import Iterable, List, Optional

SYSTEM_FOLDERS = (pathlib.Path("/usr/local/share/datasets"), pathlib.Path("/usr/share/datasets"))


def cache_dir() -> pathlib.Path:
    """The user cache folder where downloads are kept (not created here).

    Example:
        >>> from sigma.data.search_path import cache_dir
        >>> cache_dir().name in ("sigma",) or "SIGMA_CACHE" in __import__("os").environ
        True
    """
    explicit = os.environ.get("SIGMA_CACHE")
    if explicit:
        return pathlib.Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = pathlib.Path(xdg).expanduser() if xdg else pathlib.Path.home() / ".cache"
    return base / "sigma"


def folders() -> List[pathlib.Path]:
    """The folders searched for data, in order: ``SIGMA_DATA``'s, the user cache, system folders.

    Example:
        >>> from sigma.data.search_path import folders, cache_dir
        >>> cache_dir() in folders()
        True
    """
    folders: List[pathlib.Path] = []
    for entry in os.environ.get("SIGMA_DATA", "").split(os.pathsep):
        if entry.strip():
            folders.append(pathlib.Path(entry.strip()).expanduser())
    folders.append(cache_dir())
    folders.extend(SYSTEM_FOLDERS)
    unique: List[pathlib.Path] = []
    for folder in folders:
        if folder not in unique:
            unique.append(folder)
    return unique


def find(relative: "str | os.PathLike", within: Optional[Iterable[pathlib.Path]] = None) -> Optional[pathlib.Path]:
    """The first existing ``folder / relative`` on the search path (or in ``within``), or ``None``.

    An absolute ``relative`` is returned as is when it exists.

    Example:
        >>> import pathlib, tempfile
        >>> from sigma.data.search_path import find
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "a.txt").write_text("x")
        >>> find("a.txt", within=[folder]) == folder / "a.txt", find("b.txt", within=[folder])
        (True, None)
    """
    relative = pathlib.Path(relative)
    if relative.is_absolute():
        return relative if relative.exists() else None
    for folder in (folders() if within is None else within):
        candidate = folder / relative
        if candidate.exists():
            return candidate
    return None


def find_any(candidates: Iterable["str | os.PathLike"]) -> Optional[pathlib.Path]:
    """The first of several relative names found, searching folder by folder.

    Folders take priority over names: ``SIGMA_DATA``'s folders are all
    searched before the cache, whichever spelling of the name they hold.

    Example:
        >>> from sigma.data.search_path import find_any
        >>> find_any(["no-such-file-anywhere.bin"]) is None
        True
    """
    names = [pathlib.Path(name) for name in candidates]
    for folder in folders():
        for name in names:
            candidate = folder / name
            if candidate.exists():
                return candidate
    return None


def describe() -> str:
    """The search path as one line per folder, for error messages."""
    return "\n".join(f"  {folder}{'' if folder.is_dir() else ' (absent)'}" for folder in folders())
