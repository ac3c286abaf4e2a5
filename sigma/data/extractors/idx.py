"""IDX files: the format of MNIST and its family (any dtype and rank, big-endian).

Layout (LeCun et al., http://yann.lecun.com/exdb/mnist/): two zero bytes,
a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
0x0E float64), the rank, then one big-endian uint32 per dimension, then the
values row-major and big-endian. MNIST's "magic numbers" 2049 (labels) and
2051 (images) are this header read as one integer: type 0x08, rank 1 or 3.

Example:
    >>> import numpy as np
    >>> from sigma.data.extractors.idx import encode_idx, parse_idx
    >>> blob = encode_idx(np.arange(6, dtype=np.int16).reshape(2, 3))
    >>> blob[:4].hex()
    '00000b02'
    >>> parse_idx(blob).tolist()
    [[0, 1, 2], [3, 4, 5]]
"""
from __future__ import annotations

import math
import os
import pathlib
from typing import Optional

import numpy as np

from sigma.data.errors import DataFormatError
from sigma.data.sources import read_bytes

TYPE_CODES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODE_OF = {dtype.newbyteorder("="): code for code, dtype in TYPE_CODES.items()}


def parse_idx(data: bytes, source: str = "<bytes>", rank: Optional[int] = None) -> np.ndarray:
    """The array held by the IDX bytes ``data`` (native byte order, writable).

    ``source`` names the data in error messages; ``rank``, if given, is the
    number of dimensions the caller expects. Raises ``DataFormatError``
    naming the offset and what was expected for a wrong magic number, an
    unknown type code, a truncated header or body, or trailing bytes.

    Example:
        >>> from sigma.data.extractors.idx import parse_idx
        >>> parse_idx(b"\\x00\\x00\\x08\\x01\\x00\\x00\\x00\\x02\\x07\\x09").tolist()
        [7, 9]
        >>> parse_idx(b"\\x00\\x00\\x08\\x01\\x00\\x00\\x00\\x03\\x07\\x09", source="labels.idx")
        Traceback (most recent call last):
        ...
        sigma.data.errors.DataFormatError: labels.idx: truncated: the header (shape (3,), uint8) needs 11 bytes, the data ends at byte 10
    """
    size = len(data)
    if size < 4:
        raise DataFormatError(f"{source}: too short for an IDX header: 4 bytes expected at offset 0, "
                              f"the data has {size}")
    if data[0] != 0 or data[1] != 0:
        magic = int.from_bytes(bytes(data[:4]), "big")
        raise DataFormatError(f"{source}: wrong magic number 0x{magic:08x} at offset 0: an IDX file starts with "
                              f"two zero bytes, a type code and the rank (MNIST: 0x00000801 or 0x00000803)")
    code, ndim = data[2], data[3]
    if code not in TYPE_CODES:
        known = ", ".join(f"0x{c:02x} {d.name}" for c, d in TYPE_CODES.items())
        raise DataFormatError(f"{source}: unknown IDX type code 0x{code:02x} at offset 2 (expected one of: {known})")
    if rank is not None and ndim != rank:
        raise DataFormatError(f"{source}: the header at offset 3 says rank {ndim}, expected rank {rank}")
    header_bytes = 4 + 4 * ndim
    if size < header_bytes:
        raise DataFormatError(f"{source}: truncated header: rank {ndim} needs {header_bytes} header bytes, "
                              f"the data ends at byte {size}")
    shape = tuple(int.from_bytes(bytes(data[4 + 4 * i: 8 + 4 * i]), "big") for i in range(ndim))
    dtype = TYPE_CODES[code]
    needed = header_bytes + math.prod(shape) * dtype.itemsize
    if size < needed:
        raise DataFormatError(f"{source}: truncated: the header (shape {shape}, {dtype.name}) needs {needed} "
                              f"bytes, the data ends at byte {size}")
    if size > needed:
        raise DataFormatError(f"{source}: {size - needed} unexpected bytes after the end of the data at byte "
                              f"{needed} (header says shape {shape}, {dtype.name})")
    values = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=header_bytes)
    return values.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def read_idx(path: "str | os.PathLike", rank: Optional[int] = None) -> np.ndarray:
    """The array in an IDX file, gzip/bzip2/xz-compressed or not (judged by content).

    Example:
        >>> import numpy as np, pathlib, tempfile
        >>> from sigma.data.extractors.idx import read_idx, write_idx
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "labels-idx1-ubyte.gz"
        >>> write_idx(path, np.array([5, 0, 4], dtype=np.uint8))
        >>> read_idx(path, rank=1).tolist()
        [5, 0, 4]
    """
    path = pathlib.Path(path)
    return parse_idx(read_bytes(path), source=str(path), rank=rank)


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes of ``array`` (uint8, int8, int16, int32, float32 or float64; rank below 256)."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODE_OF:
        supported = ", ".join(sorted(d.name for d in _CODE_OF))
        raise ValueError(f"IDX cannot hold {array.dtype}; supported dtypes: {supported}")
    if array.ndim > 255:
        raise ValueError(f"IDX holds at most 255 dimensions, the array has {array.ndim}")
    if any(n >= 2 ** 32 for n in array.shape):
        raise ValueError(f"IDX dimensions must be below 2**32, got shape {array.shape}")
    header = bytes([0, 0, _CODE_OF[native], array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + np.ascontiguousarray(array, dtype=native.newbyteorder(">")).tobytes()


def write_idx(path: "str | os.PathLike", array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when the name ends in ``.gz``."""
    path = pathlib.Path(path)
    blob = encode_idx(array)
    if path.suffix == ".gz":
        import gzip
        blob = gzip.compress(blob, compresslevel=6, mtime=0)
    path.write_bytes(blob)
