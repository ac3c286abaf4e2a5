"""Datasets larger than memory: an HDF5 file read in blocks of rows through a bounded cache.

``write_hdf5`` (or :class:`HDF5Writer`, a piece at a time) stores sections
as HDF5 datasets chunked in blocks of ``block_rows`` samples.
:class:`BlockCachedDataset` reads whole blocks and keeps the most recently
used ones while their bytes fit in ``memory_budget``; a batch touching an
evicted block reads it again. Iterating with ``MinibatchIterator(shuffle=True)``
shuffles block order and samples within groups of blocks that fit the
budget, so each block is read once per epoch.

Example:
    >>> import numpy as np, pathlib, tempfile
    >>> from sigma.data.block_cache import BlockCachedDataset, write_hdf5
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "big.h5"
    >>> _ = write_hdf5(path, {"inputs": np.arange(1000.0).reshape(500, 2), "targets": np.arange(500)}, block_rows=100)
    >>> data = BlockCachedDataset(path, memory_budget=2 * 100 * (16 + 8))
    >>> data.batch([5, 499])["targets"].tolist(), data.number_of_blocks, data.cache_capacity
    ([5, 499], 5, 2)
"""
from __future__ import annotations

import collections
import os
import pathlib
import threading
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from sigma.data.datasets import Dataset, Sections, as_indices
from sigma.data.errors import DataFormatError
from sigma.data.extractors.hdf5_files import open_hdf5

DEFAULT_BLOCK_ROWS = 1024
DEFAULT_MEMORY_BUDGET = 256 * 2 ** 20
_GROUP_ATTRIBUTE = "sigma_sections"


class HDF5Writer:
    """Append sections piece by piece to a new HDF5 file; it appears under its name on ``close``.

    Example:
        >>> import numpy as np, pathlib, tempfile
        >>> from sigma.data.block_cache import HDF5Writer, BlockCachedDataset
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "d.h5"
        >>> with HDF5Writer(path, block_rows=4) as writer:
        ...     for start in range(0, 10, 5):
        ...         writer.append({"inputs": np.full((5, 3), start, np.float32)})
        >>> len(BlockCachedDataset(path))
        10
    """

    def __init__(self, path: "str | os.PathLike", block_rows: int = DEFAULT_BLOCK_ROWS,
                 compression: Optional[str] = None):
        import h5py
        if block_rows < 1:
            raise ValueError(f"block_rows must be positive, got {block_rows}")
        self.path = pathlib.Path(path)
        self.block_rows = int(block_rows)
        self.compression = compression
        self._partial = self.path.with_name(self.path.name + ".part")
        self._file = h5py.File(self._partial, "w")
        self._order: list = []
        self.length = 0

    def append(self, sections: Mapping[str, Any]) -> None:
        """Add rows; every call must give the same sections with the same sample shapes and dtypes."""
        arrays = {name: np.asarray(v) for name, v in sections.items()}
        lengths = {len(a) for a in arrays.values()}
        if len(lengths) != 1:
            raise DataFormatError(f"sections have different numbers of rows: "
                                  f"{ {n: len(a) for n, a in arrays.items()} }")
        rows = lengths.pop()
        if not self._order:
            for name, array in arrays.items():
                if array.dtype.kind not in "biuf":
                    raise DataFormatError(f"section {name!r} is {array.dtype}; the block cache holds numbers only")
                self._file.create_dataset(name, shape=(0,) + array.shape[1:], maxshape=(None,) + array.shape[1:],
                                          dtype=array.dtype, chunks=(self.block_rows,) + array.shape[1:],
                                          compression=self.compression)
            self._order = list(arrays)
        if list(arrays) != self._order:
            raise DataFormatError(f"sections {list(arrays)} differ from the first piece's {self._order}")
        for name, array in arrays.items():
            target = self._file[name]
            if array.shape[1:] != target.shape[1:] or array.dtype != target.dtype:
                raise DataFormatError(f"section {name!r}: rows of shape {array.shape[1:]} {array.dtype}, the file "
                                      f"holds {target.shape[1:]} {target.dtype}")
            target.resize(self.length + rows, axis=0)
            target[self.length:self.length + rows] = array
        self.length += rows

    def close(self) -> None:
        """Finish the file and move it to its name."""
        if self._file is None:
            return
        self._file.attrs[_GROUP_ATTRIBUTE] = ",".join(self._order)
        self._file.attrs["block_rows"] = self.block_rows
        self._file.close()
        self._file = None
        os.replace(self._partial, self.path)

    def abort(self) -> None:
        """Drop the unfinished file."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._partial.unlink(missing_ok=True)

    def __enter__(self) -> "HDF5Writer":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def write_hdf5(path: "str | os.PathLike", data: "Dataset | Mapping[str, Any]",
               block_rows: int = DEFAULT_BLOCK_ROWS, compression: Optional[str] = None) -> pathlib.Path:
    """Store a dataset (copied block by block) or a dict of arrays as a block-cacheable HDF5 file.

    Example:
        >>> import numpy as np, pathlib, tempfile
        >>> from sigma.data.block_cache import write_hdf5
        >>> write_hdf5(pathlib.Path(tempfile.mkdtemp()) / "d.h5", {"inputs": np.zeros((3, 2))}).name
        'd.h5'
    """
    with HDF5Writer(path, block_rows=block_rows, compression=compression) as writer:
        length = len(data) if isinstance(data, Dataset) else len(next(iter(data.values())))
        for start in range(0, length, block_rows):
            stop = min(start + block_rows, length)
            piece = data.batch(slice(start, stop)) if isinstance(data, Dataset) else \
                {name: np.asarray(v)[start:stop] for name, v in data.items()}
            writer.append(piece)
    return pathlib.Path(path)


class BlockCachedDataset(Dataset):
    """An HDF5 file's sections, read in blocks of rows kept within ``memory_budget`` bytes.

    Args:
        path: an HDF5 file whose sections are datasets of equal length (as ``write_hdf5`` makes).
        sections: the HDF5 datasets to use: a list, or ``{section: path in the file}``; default
            those ``write_hdf5`` stored, else every top-level dataset.
        memory_budget: bytes the cached blocks may hold together.
        block_rows: rows per block; default the file's chunk length.

    Example:
        >>> import numpy as np, pathlib, tempfile
        >>> from sigma.data.block_cache import BlockCachedDataset, write_hdf5
        >>> path = write_hdf5(pathlib.Path(tempfile.mkdtemp()) / "d.h5", {"targets": np.arange(10)}, block_rows=4)
        >>> with BlockCachedDataset(path, memory_budget=64) as data:
        ...     data.batch([9, 0])["targets"].tolist(), data.number_of_blocks, data.cache_capacity
        ([9, 0], 3, 2)
    """

    def __init__(self, path: "str | os.PathLike", sections: Optional[Any] = None,
                 memory_budget: int = DEFAULT_MEMORY_BUDGET, block_rows: Optional[int] = None,
                 classes: Optional[Sequence[str]] = None, name: Optional[str] = None):
        self.path = pathlib.Path(path)
        # h5py's own chunk cache would hold data outside our budget: keep it minimal.
        self._file = open_hdf5(self.path, rdcc_nbytes=0)
        try:
            self._mapping = self._section_mapping(sections)
            self._datasets = {s: self._file[p] for s, p in self._mapping.items()}
        except BaseException:
            self._file.close()
            raise
        lengths = {s: d.shape[0] if d.ndim else None for s, d in self._datasets.items()}
        if None in lengths.values() or len(set(lengths.values())) != 1:
            self._file.close()
            raise DataFormatError(f"{self.path}: sections must share their first dimension, got {lengths}")
        self._length = next(iter(lengths.values()))
        first = next(iter(self._datasets.values()))
        if block_rows is None:
            block_rows = int(self._file.attrs.get("block_rows", 0)) or (first.chunks[0] if first.chunks else
                                                                         DEFAULT_BLOCK_ROWS)
        if block_rows < 1:
            raise ValueError(f"block_rows must be positive, got {block_rows}")
        self.block_rows = int(block_rows)
        self.row_bytes = sum(int(np.prod(d.shape[1:], dtype=np.int64)) * d.dtype.itemsize
                             for d in self._datasets.values())
        self.block_bytes = max(self.block_rows * self.row_bytes, 1)
        self.memory_budget = int(memory_budget)
        self.cache_capacity = self.memory_budget // self.block_bytes
        if self.cache_capacity < 1:
            raise ValueError(f"memory_budget {self.memory_budget} bytes is smaller than one block "
                             f"({self.block_rows} rows x {self.row_bytes} bytes = {self.block_bytes}); "
                             f"raise the budget or lower block_rows")
        self.number_of_blocks = -(-self._length // self.block_rows)
        self._cache: "collections.OrderedDict[int, Sections]" = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0
        self.classes = list(classes) if classes is not None else None
        self.name = name

    def _section_mapping(self, sections) -> Dict[str, str]:
        import h5py
        if sections is None:
            stored = self._file.attrs.get(_GROUP_ATTRIBUTE)
            if stored:
                names = str(stored).split(",")
            else:
                names = [k for k, v in self._file.items() if isinstance(v, h5py.Dataset)]
            mapping = {n: n for n in names}
        elif isinstance(sections, Mapping):
            mapping = dict(sections)
        else:
            mapping = {n: n for n in sections}
        absent = [p for p in mapping.values() if p not in self._file or not isinstance(self._file[p], h5py.Dataset)]
        if absent or not mapping:
            raise KeyError(f"{self.path}: no datasets {absent or '(none found)'}; the file holds {list(self._file)}")
        return mapping

    def __len__(self) -> int:
        return self._length

    @property
    def sections(self):
        return tuple(self._mapping)

    def sample_spec(self):
        return {s: (d.shape[1:], d.dtype) for s, d in self._datasets.items()}

    def block(self, number: int) -> Sections:
        """Block ``number`` (rows ``number * block_rows`` onward) as ``{section: array}``.

        The arrays are read-only views into the cache, valid until the block
        is evicted (its buffers are then reused): copy them to keep them.
        """
        with self._lock:
            return self._block(number)

    def _block(self, number: int) -> Sections:
        if not 0 <= number < self.number_of_blocks:
            raise IndexError(f"block {number} is out of range: {self.path} has {self.number_of_blocks} blocks")
        cached = self._cache.get(number)
        if cached is not None:
            self._cache.move_to_end(number)
            self.hits += 1
            return cached
        self.misses += 1
        # A fixed pool of block buffers, reused on eviction: the cache's memory stays at
        # capacity x block size, with no allocator churn to fragment the heap.
        if len(self._cache) >= self.cache_capacity:
            _, evicted = self._cache.popitem(last=False)
            buffers = {s: a.base for s, a in evicted.items()}
        else:
            buffers = {s: np.empty((self.block_rows,) + d.shape[1:], dtype=d.dtype)
                       for s, d in self._datasets.items()}
        start = number * self.block_rows
        rows = min(self.block_rows, self._length - start)
        try:
            for s, d in self._datasets.items():
                d.read_direct(buffers[s], np.s_[start:start + rows], np.s_[0:rows])
        except (OSError, RuntimeError, TypeError) as error:
            raise DataFormatError(f"{self.path}: cannot read rows {start}-{start + rows - 1} ({error})") from None
        block = {}
        for s, buffer in buffers.items():
            view = buffer[:rows]
            view.flags.writeable = False
            block[s] = view
        self._cache[number] = block
        return block

    @property
    def cached_bytes(self) -> int:
        """Bytes of the block buffers held now."""
        return sum(a.base.nbytes for block in list(self._cache.values()) for a in block.values())

    def batch(self, indices: Any) -> Sections:
        index = as_indices(indices, self._length, "block-cached dataset").reshape(-1)
        spec = self.sample_spec()
        out = {s: np.empty((len(index),) + shape, dtype=dtype) for s, (shape, dtype) in spec.items()}
        blocks = index // self.block_rows
        order = np.argsort(blocks, kind="stable")
        groups = np.split(order, np.flatnonzero(np.diff(blocks[order])) + 1) if len(index) else []
        # Blocks already cached first: copying their rows out before any block is read means a
        # read can only evict blocks this batch no longer needs.
        groups.sort(key=lambda rows: int(blocks[rows[0]]) not in self._cache)
        with self._lock:  # blocks must not be evicted (and overwritten) while rows are copied out
            for rows in groups:
                number = int(blocks[rows[0]])
                block = self._block(number)
                local = index[rows] - number * self.block_rows
                for s in out:
                    out[s][rows] = block[s][local]
        return out

    def section(self, name: str) -> np.ndarray:
        """One whole section read straight from the file (not through the cache): for labels, not images."""
        self._check_section(name)
        with self._lock:
            return self._datasets[name][()]

    def close(self) -> None:
        """Close the file and drop the cache."""
        self._cache.clear()
        if self._file:
            self._file.close()

    def __enter__(self) -> "BlockCachedDataset":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def shuffled_order(self, random: np.random.Generator) -> np.ndarray:
        """A random order that reads each block once: blocks in random order, samples shuffled
        within groups of blocks that fit the budget together."""
        group = max(1, self.cache_capacity)
        blocks = random.permutation(self.number_of_blocks)
        pieces = []
        for start in range(0, len(blocks), group):
            rows = np.concatenate([np.arange(b * self.block_rows, min((b + 1) * self.block_rows, self._length))
                                   for b in blocks[start:start + group]])
            pieces.append(random.permutation(rows))
        return np.concatenate(pieces) if pieces else np.zeros(0, np.int64)
