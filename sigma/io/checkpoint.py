"""HDF5 checkpoints: one file with everything needed to continue a run exactly.

A checkpoint is an HDF5 file (read it with h5py, ``h5dump`` or
``sigma inspect``) whose root carries the attributes ``@format``
(``"sigma-checkpoint"``), ``@format_version``, ``@sigma_version`` and
``@created``, and whose contents are a nested state (see
:mod:`sigma.io.hdf5_tree` for how dicts, lists and arrays are mapped). The
trainer writes these top-level entries:

=============  ================================================================
``network``    ``parameters/<name>`` and ``buffers/<name>`` datasets;
               ``description`` (the network's ``describe()`` data, JSON)
``optimiser``  the optimiser's ``state_dict()``, and its ``type``
``trainer``    position (epoch, iteration, iteration in epoch), seed, ...
``data``       each data iterator's ``state_dict()`` (position, shuffle RNG)
``hooks``      each hook's state (early stopping's best, top-k list, ...)
``random``     every backend's random-stream state, JSON (``{"cpu": {...}}``)
``metrics``    the last averaged observation, for people reading the file
=============  ================================================================

Files are written to a temporary name beside the target and renamed over
it, so a crash mid-write leaves the previous checkpoint intact.

Example:
    >>> import pathlib, tempfile, numpy as np
    >>> from sigma.io import checkpoint
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.h5"
    >>> _ = checkpoint.save(path, {"network": {"parameters": {"fc.weight": np.eye(2, dtype=np.float32)}}})
    >>> checkpoint.load_weights(path)["fc.weight"].tolist()
    [[1.0, 0.0], [0.0, 1.0]]
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import time
from collections import OrderedDict
from typing import Any, Dict, Iterator, Mapping

import numpy as np

from sigma.io.atomic import atomic_write_path
from sigma.io.hdf5_tree import escape, loads, read_tree, unescape, write_tree
from sigma.version import __version__

FORMAT_NAME = "sigma-checkpoint"
FORMAT_VERSION = 1
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class CheckpointError(ValueError):
    """A file cannot be read as a Sigma checkpoint: foreign, truncated, damaged or too new."""


def save(path: "str | os.PathLike", state: Mapping[str, Any]) -> pathlib.Path:
    """Write ``state`` to ``path`` atomically as a Sigma checkpoint; returns the path."""
    import h5py
    path = pathlib.Path(path)
    with atomic_write_path(path) as temporary:
        with h5py.File(temporary, "w", track_order=True) as handle:
            handle.attrs["@format"] = FORMAT_NAME
            handle.attrs["@format_version"] = FORMAT_VERSION
            handle.attrs["@sigma_version"] = __version__
            handle.attrs["@created"] = time.time()
            write_tree(handle, state)
    return path


def _check_signature(path: pathlib.Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    with open(path, "rb") as handle:
        start = handle.read(8)
    if len(start) == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): not a Sigma checkpoint")
    # HDF5 may put its signature after a user block of 512, 1024, ... bytes; h5py knows where to look.
    import h5py
    if start != _HDF5_SIGNATURE and not h5py.is_hdf5(str(path)):
        raise CheckpointError(f"{path} is not an HDF5 file (it starts with {start!r}), so not a Sigma checkpoint")


@contextlib.contextmanager
def open_checkpoint(path: "str | os.PathLike") -> Iterator[Any]:
    """Open a checkpoint for reading after checking it is one this Sigma understands.

    Yields the open ``h5py.File``. Raises :class:`CheckpointError` for a
    file that is not HDF5, is truncated or damaged, is some other program's
    HDF5 file, or was written in a newer format.
    """
    import h5py
    path = pathlib.Path(path)
    _check_signature(path)
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        size = path.stat().st_size
        raise CheckpointError(f"{path} ({size} bytes) is a truncated or damaged HDF5 file and cannot be opened: "
                              f"{error}") from None
    with handle:
        file_format = handle.attrs.get("@format")
        if file_format != FORMAT_NAME:
            entries = sorted(handle.keys())[:8]
            raise CheckpointError(f"{path} is an HDF5 file but not a Sigma checkpoint (its '@format' attribute is "
                                  f"{file_format!r}, expected {FORMAT_NAME!r}; it holds {entries})")
        version = int(handle.attrs.get("@format_version", -1))
        if version > FORMAT_VERSION:
            raise CheckpointError(f"{path} was written by Sigma {handle.attrs.get('@sigma_version', '?')} in checkpoint "
                                  f"format {version}; this Sigma ({__version__}) reads formats up to {FORMAT_VERSION}. "
                                  "Upgrade Sigma to read it.")
        if version < 1:
            raise CheckpointError(f"{path} has an invalid checkpoint format version {version}")
        try:
            yield handle
        except (OSError, KeyError, RuntimeError) as error:
            raise CheckpointError(f"{path}: part of the checkpoint cannot be read (damaged file?): {error}") from error


def header(path: "str | os.PathLike") -> Dict[str, Any]:
    """The format name, format version, Sigma version and creation time of a checkpoint."""
    with open_checkpoint(path) as handle:
        return {"format": handle.attrs["@format"], "format_version": int(handle.attrs["@format_version"]),
                "sigma_version": str(handle.attrs.get("@sigma_version", "?")),
                "created": float(handle.attrs.get("@created", 0.0))}


def load(path: "str | os.PathLike") -> Dict[str, Any]:
    """Everything in a checkpoint as nested dicts of numpy arrays and plain values."""
    with open_checkpoint(path) as handle:
        return read_tree(handle)


def load_weights(path: "str | os.PathLike") -> "OrderedDict[str, np.ndarray]":
    """The network's parameters and buffers by dotted name, for inference: ``network.load_state_dict(...)``.

    Reads only the ``network`` part of the file, not optimiser or hook state.
    """
    with open_checkpoint(path) as handle:
        if "network" not in handle:
            raise CheckpointError(f"{path} holds no network weights (its entries: {sorted(handle.keys())})")
        network = read_tree(handle["network"])
    weights: "OrderedDict[str, np.ndarray]" = OrderedDict()
    weights.update(network.get("parameters", {}))
    weights.update(network.get("buffers", {}))
    return weights


def _shapes(group) -> Dict[str, Any]:
    import h5py
    return {unescape(name): {"shape": list(node.shape), "dtype": str(node.dtype)}
            for name, node in group.items() if isinstance(node, h5py.Dataset)}


def _names(group) -> list:
    """The keys stored in a group, whether as attributes (plain values) or as children (arrays inside)."""
    return [unescape(name) for name in group.attrs if not name.startswith("@")] + [unescape(name) for name in group]


def _entry(group, key: str, default: Any = None) -> Any:
    """One key of a group, read alone (an attribute's JSON, or a child group or dataset)."""
    name = escape(key)
    if name in group.attrs:
        return loads(group.attrs[name])
    if name in group:
        node = group[name]
        return read_tree(node) if hasattr(node, "keys") else node[()]
    return default


def summary(path: "str | os.PathLike") -> Dict[str, Any]:
    """What is inside a checkpoint, without loading the large arrays: for ``sigma inspect``.

    Returns a dict with ``header``, ``position``, ``metrics``, ``parameters``
    and ``buffers`` (name -> shape and dtype), ``description`` (the
    network's layers), ``optimiser`` (its type and hyperparameters),
    ``hooks`` and ``data`` (names) and ``size_bytes``.
    """
    info: Dict[str, Any] = {"path": str(path), "size_bytes": pathlib.Path(path).stat().st_size,
                            "header": header(path)}
    with open_checkpoint(path) as handle:
        network = handle["network"] if "network" in handle else None
        info["parameters"] = _shapes(network["parameters"]) if network is not None and "parameters" in network else {}
        info["buffers"] = _shapes(network["buffers"]) if network is not None and "buffers" in network else {}
        info["description"] = _entry(network, "description") if network is not None else None
        info["position"] = _entry(handle, "trainer", {}).get("position", {})
        info["metrics"] = _entry(handle, "metrics", {})
        optimiser = handle["optimiser"] if "optimiser" in handle else None
        if optimiser is not None:
            groups = _entry(optimiser, "param_groups", [])
            info["optimiser"] = {"type": _entry(optimiser, "type", "?"),
                                 "param_groups": [{k: v for k, v in g.items() if k != "params"} for g in groups]}
        else:
            info["optimiser"] = None
        info["hooks"] = _names(handle["hooks"]) if "hooks" in handle else list(_entry(handle, "hooks", {}))
        info["data"] = _names(handle["data"]) if "data" in handle else list(_entry(handle, "data", {}))
    return info
