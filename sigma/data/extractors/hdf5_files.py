"""HDF5 files (h5py): named datasets read whole into memory.

For data larger than memory, open the file as a
:class:`sigma.data.block_cache.BlockCachedDataset` instead.

Example:
    >>> import h5py, numpy as np, pathlib, tempfile
    >>> from sigma.data.extractors.hdf5_files import read_hdf5
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "d.h5"
    >>> with h5py.File(path, "w") as f:
    ...     f["train/x"] = np.ones((4, 2)); f["train/y"] = np.arange(4)
    >>> read_hdf5(path, {"inputs": "train/x", "targets": "train/y"})["targets"].tolist()
    [0, 1, 2, 3]
"""
from __future__ import annotations

import os
import pathlib
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from sigma.data.errors import DataFormatError


def open_hdf5(path: "str | os.PathLike", **options):
    """An ``h5py.File`` opened read-only, or ``DataFormatError`` if the file is not HDF5."""
    import h5py
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no HDF5 file at {path}")
    try:
        return h5py.File(path, "r", **options)
    except OSError as error:
        raise DataFormatError(f"{path}: not a readable HDF5 file ({error})") from None


def dataset_names(handle) -> List[str]:
    """Paths of every array (HDF5 dataset) in an open file, depth first."""
    import h5py
    names: List[str] = []
    handle.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
    return names


def read_hdf5(path: "str | os.PathLike",
              sections: Optional[Union[Sequence[str], Mapping[str, str]]] = None) -> Dict[str, np.ndarray]:
    """Arrays from an HDF5 file as ``{name: array}``.

    ``sections``: ``None`` for every array (keyed by its path in the file),
    a list of paths, or ``{section: path}`` to rename them.
    """
    path = pathlib.Path(path)
    with open_hdf5(path) as handle:
        available = dataset_names(handle)
        if sections is None:
            mapping = {name: name for name in available}
        elif isinstance(sections, Mapping):
            mapping = dict(sections)
        else:
            mapping = {name: name for name in sections}
        absent = [name for name in mapping.values() if name not in available]
        if absent:
            raise KeyError(f"{path}: no datasets {absent}; the file holds {available}")
        out = {}
        for section, name in mapping.items():
            item = handle[name]
            if item.dtype.kind == "O":
                raise DataFormatError(f"{path}, dataset {name!r}: holds variable-length objects, not numbers")
            try:
                out[section] = item[()]
            except (OSError, RuntimeError) as error:
                raise DataFormatError(f"{path}, dataset {name!r}: corrupt or unreadable ({error})") from None
    return out
