"""Files -> datasets in one call: a CSV, a folder of images, IDX pairs, NPZ, HDF5, text.

Example:
    >>> import pathlib, tempfile
    >>> import sigma.data
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "flowers.csv"
    >>> _ = path.write_text("width,height,kind\\n1.0,2.0,rose\\n3.0,1.5,tulip\\n")
    >>> flowers = sigma.data.from_csv(path, targets="kind")
    >>> flowers["inputs"].shape, flowers["targets"].tolist(), flowers.classes
    ((2, 2), [0, 1], ['rose', 'tulip'])
"""
from __future__ import annotations

import os
import pathlib
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

from sigma.data.datasets import InMemoryDataset
from sigma.data.errors import DataFormatError
from sigma.data.extractors.csv_files import csv_sections, read_csv
from sigma.data.extractors.hdf5_files import read_hdf5
from sigma.data.extractors.idx import read_idx
from sigma.data.extractors.image_folder import read_image_folder
from sigma.data.extractors.numpy_files import read_npz
from sigma.data.extractors.text import Vocabulary, next_token_windows, read_text

PathLike = Union[str, "os.PathLike"]


def from_csv(path: PathLike, targets: Optional[str] = None, inputs: Optional[Sequence[str]] = None,
             classes: Optional[Sequence[str]] = None, **csv_options: Any) -> InMemoryDataset:
    """A dataset from a CSV: ``inputs`` (float32, one column per feature) and ``targets`` (class ids or values).

    ``csv_options`` go to :func:`sigma.data.extractors.read_csv` (header, delimiter, missing, ...).
    """
    table = read_csv(path, **csv_options)
    sections, class_names = csv_sections(table, targets=targets, inputs=inputs, classes=classes, source=str(path))
    return InMemoryDataset(sections, classes=class_names, name=pathlib.Path(path).stem)


def from_image_folder(root: PathLike, size: Optional[Tuple[int, int]] = None, mode: Optional[str] = None,
                      on_error: str = "raise") -> InMemoryDataset:
    """A dataset from ``root/<class>/<image>``: ``inputs`` uint8 (N, C, H, W), ``targets`` int64; ``classes`` named.

    Example:
        >>> import numpy as np, pathlib, tempfile
        >>> from PIL import Image
        >>> import sigma.data
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> (root / "cat").mkdir()
        >>> Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(root / "cat" / "a.png")
        >>> sigma.data.from_image_folder(root)["inputs"].shape
        (1, 3, 3, 3)
    """
    images, labels, class_names = read_image_folder(root, size=size, mode=mode, on_error=on_error)
    return InMemoryDataset(inputs=images, targets=labels, classes=class_names, name=pathlib.Path(root).name)


def from_idx(images: PathLike, labels: PathLike, classes: Optional[Sequence[str]] = None) -> InMemoryDataset:
    """A dataset from an IDX pair such as MNIST's (``inputs`` as stored, ``targets`` int64).

    Example:
        >>> import numpy as np, pathlib, tempfile
        >>> import sigma.data
        >>> from sigma.data.extractors import write_idx
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> write_idx(folder / "images", np.zeros((2, 3, 3), np.uint8))
        >>> write_idx(folder / "labels", np.array([4, 2], np.uint8))
        >>> sigma.data.from_idx(folder / "images", folder / "labels")["targets"].tolist()
        [4, 2]
    """
    inputs, targets = read_idx(images), read_idx(labels, rank=1)
    if len(inputs) != len(targets):
        raise DataFormatError(f"{images} holds {len(inputs)} samples but {labels} holds {len(targets)} labels")
    return InMemoryDataset(inputs=inputs, targets=targets.astype("int64"), classes=classes,
                           name=pathlib.Path(images).name)


def from_npz(path: PathLike, sections: Optional[Union[Sequence[str], Mapping[str, str]]] = None,
             classes: Optional[Sequence[str]] = None) -> InMemoryDataset:
    """A dataset from an NPZ archive; ``sections`` maps section names to arrays in it.

    Example:
        >>> import numpy as np, pathlib, tempfile
        >>> import sigma.data
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "d.npz"
        >>> np.savez(path, x_train=np.zeros((4, 2)), y_train=np.arange(4))
        >>> len(sigma.data.from_npz(path, {"inputs": "x_train", "targets": "y_train"}))
        4
    """
    return InMemoryDataset(read_npz(path, sections), classes=classes, name=pathlib.Path(path).stem)


def from_hdf5(path: PathLike, sections: Optional[Union[Sequence[str], Mapping[str, str]]] = None,
              classes: Optional[Sequence[str]] = None) -> InMemoryDataset:
    """A dataset read whole from HDF5 (for data larger than memory use ``BlockCachedDataset``).

    Example:
        >>> import h5py, numpy as np, pathlib, tempfile
        >>> import sigma.data
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "d.h5"
        >>> with h5py.File(path, "w") as f:
        ...     f["x"] = np.zeros((3, 2))
        >>> sigma.data.from_hdf5(path, {"inputs": "x"}).sections
        ('inputs',)
    """
    return InMemoryDataset(read_hdf5(path, sections), classes=classes, name=pathlib.Path(path).stem)


def from_text(path: PathLike, length: int, level: str = "char", vocabulary: Optional[Vocabulary] = None,
              **text_options: Any) -> InMemoryDataset:
    """Next-token windows of a text file: ``inputs`` and ``targets`` (int64 ids, shifted by one).

    The vocabulary is the dataset's ``vocabulary`` attribute (and its tokens its ``classes``).

    Example:
        >>> import pathlib, tempfile
        >>> import sigma.data
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.txt"
        >>> _ = path.write_text("hello")
        >>> sigma.data.from_text(path, length=2)["targets"].shape
        (2, 2)
    """
    ids, vocabulary = read_text(path, level, vocabulary=vocabulary, **text_options)
    dataset = InMemoryDataset(next_token_windows(ids, length), classes=vocabulary.tokens,
                              name=pathlib.Path(path).stem)
    dataset.vocabulary = vocabulary
    return dataset
