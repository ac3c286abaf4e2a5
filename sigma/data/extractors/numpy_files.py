"""NPY and NPZ files, never unpickling: arrays of Python objects are refused.

Example:
    >>> import numpy as np, pathlib, tempfile
    >>> from sigma.data.extractors.numpy_files import read_npz
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "d.npz"
    >>> np.savez(path, inputs=np.zeros((2, 3)), targets=np.array([0, 1]))
    >>> {name: a.shape for name, a in read_npz(path).items()}
    {'inputs': (2, 3), 'targets': (2,)}
"""
from __future__ import annotations

import os
import pathlib
import zipfile
from typing import Dict, Mapping, Optional, Sequence, Union

import numpy as np

from sigma.data.errors import DataFormatError

_NPY_MAGIC = b"\x93NUMPY"


def read_npy(path: "str | os.PathLike", memory_map: bool = False) -> np.ndarray:
    """The array in a ``.npy`` file; ``memory_map=True`` reads it lazily from disk.

    Example:
        >>> import numpy as np, pathlib, tempfile
        >>> from sigma.data.extractors.numpy_files import read_npy
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.npy"
        >>> np.save(path, np.arange(3))
        >>> read_npy(path).tolist()
        [0, 1, 2]
    """
    path = pathlib.Path(path)
    with open(path, "rb") as f:
        head = f.read(6)
    if head != _NPY_MAGIC:
        hint = " (it is a zip: use read_npz)" if head[:2] == b"PK" else ""
        raise DataFormatError(f"{path}: not an NPY file: expected the bytes {_NPY_MAGIC!r} at offset 0, "
                              f"found {head!r}{hint}")
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if memory_map else None)
    except ValueError as error:
        raise DataFormatError(f"{path}: {_explain(error)}") from None
    except (OSError, EOFError) as error:
        raise DataFormatError(f"{path}: corrupt or truncated NPY file ({error})") from None


def read_npz(path: "str | os.PathLike",
             sections: Optional[Union[Sequence[str], Mapping[str, str]]] = None) -> Dict[str, np.ndarray]:
    """The arrays in a ``.npz`` file as ``{name: array}``.

    ``sections`` picks arrays: a list of names, or ``{section: name in the
    file}`` to rename them (``{"inputs": "x_train", "targets": "y_train"}``).
    """
    path = pathlib.Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise DataFormatError(f"{path}: not a readable NPZ file ({error})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataFormatError(f"{path}: an NPY file (one array), not an NPZ archive: use read_npy")
    with archive:
        mapping = _mapping(sections, archive.files, path)
        out = {}
        for section, name in mapping.items():
            try:
                out[section] = archive[name]
            except ValueError as error:
                raise DataFormatError(f"{path}, array {name!r}: {_explain(error)}") from None
            except (OSError, EOFError, zipfile.BadZipFile, KeyError) as error:
                raise DataFormatError(f"{path}, array {name!r}: corrupt or truncated ({error})") from None
    return out


def _mapping(sections, available, path) -> Dict[str, str]:
    if sections is None:
        return {name: name for name in available}
    mapping = dict(sections) if isinstance(sections, Mapping) else {name: name for name in sections}
    absent = [name for name in mapping.values() if name not in available]
    if absent:
        raise KeyError(f"{path}: no arrays {absent}; the file holds {list(available)}")
    return mapping


def _explain(error: ValueError) -> str:
    if "allow_pickle" in str(error):
        return "the array holds Python objects (a pickle); Sigma never loads pickles: save plain numeric arrays"
    return f"corrupt or unreadable array ({error})"
