"""The errors ``sigma.data`` raises, so callers can catch data problems apart from bugs.

Every message names the file (or URL), where in it the problem is (byte
offset, line, member) and what was expected instead.

Example:
    >>> from sigma.data.errors import DataFormatError
    >>> issubclass(DataFormatError, ValueError)
    True
"""
from __future__ import annotations


class DataError(Exception):
    """Base class of every error raised by ``sigma.data`` for bad data or missing files."""


class DataFormatError(DataError, ValueError):
    """A file or array is malformed: wrong magic number, truncated, ragged, undecodable."""


class ChecksumError(DataError):
    """A file's checksum differs from the published one (the file was removed or not kept)."""


class DownloadError(DataError, OSError):
    """A download failed: the server refused, the connection dropped, or the size is wrong."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """A dataset or one of its files is on no folder of the data search path and cannot be downloaded."""
