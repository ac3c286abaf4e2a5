"""Sources: local files (plain or compressed), URL downloads into the user cache, archives.

Downloads show a progress bar, resume a partial file with an HTTP ``Range``
request, verify MD5 / SHA-256 checksums, and appear under their final name
only once complete and verified (written as ``NAME.part``, then renamed), so
no reader ever sees half a file. A failed checksum removes the download; a
dropped connection keeps the bytes received in ``NAME.part`` so the next
call resumes from there.

Example:
    >>> import gzip, pathlib, tempfile
    >>> from sigma.data import sources
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "hello.txt.gz"
    >>> _ = path.write_bytes(gzip.compress(b"hello"))
    >>> sources.read_bytes(path)
    b'hello'
    >>> sources.checksum(path, "sha256") == sources.checksum(path, "sha256")
    True
"""
from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import http.client
import lzma
import os
import pathlib
import shutil
import socket
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from typing import Callable, Dict, Optional

from sigma.data.errors import ChecksumError, DataFormatError, DownloadError

CHUNK_BYTES = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_BZIP2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"


# -- reading local files ---------------------------------------------------------
def compression_of(path: "str | os.PathLike") -> Optional[str]:
    """``"gzip"``, ``"bzip2"``, ``"xz"`` or ``None``, judged by the file's first bytes, not its name.

    Example:
        >>> import gzip, pathlib, tempfile
        >>> from sigma.data.sources import compression_of
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "x"
        >>> _ = path.write_bytes(gzip.compress(b"abc"))
        >>> compression_of(path)
        'gzip'
    """
    with open(path, "rb") as f:
        head = f.read(6)
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_BZIP2_MAGIC):
        return "bzip2"
    if head.startswith(_XZ_MAGIC):
        return "xz"
    return None


def read_bytes(path: "str | os.PathLike") -> bytes:
    """The bytes of a file, decompressed if it is gzip, bzip2 or xz (recognised by content).

    Raises ``FileNotFoundError`` for a missing file and ``DataFormatError``
    for a corrupt or truncated compressed stream.
    """
    path = pathlib.Path(path)
    kind = compression_of(path)
    if kind is None:
        return path.read_bytes()
    opener = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}[kind]
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, lzma.LZMAError, ValueError) as error:
        raise DataFormatError(f"{path}: the {kind} stream is corrupt or truncated ({error})") from None


# -- checksums ------------------------------------------------------------------
def checksum(path: "str | os.PathLike", algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (as stored, not decompressed)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_checksums(md5: Optional[str] = None, sha256: Optional[str] = None) -> Dict[str, str]:
    """The given checksums as ``{algorithm: lower-case hex}``, validating their length."""
    wanted = {}
    for algorithm, value, length in (("md5", md5, 32), ("sha256", sha256, 64)):
        if value is None:
            continue
        value = value.strip().lower()
        if len(value) != length or any(c not in "0123456789abcdef" for c in value):
            raise ValueError(f"{algorithm} checksum must be {length} hex digits, got {value!r}")
        wanted[algorithm] = value
    return wanted


def verify(path: "str | os.PathLike", md5: Optional[str] = None, sha256: Optional[str] = None,
           what: Optional[str] = None) -> None:
    """Raise ``ChecksumError`` unless the file has the given MD5 and/or SHA-256.

    Example:
        >>> import pathlib, tempfile
        >>> from sigma.data.sources import verify
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "x"
        >>> _ = path.write_bytes(b"abc")
        >>> verify(path, md5="900150983cd24fb0d6963f7d28e17f72")
        >>> verify(path, md5="0" * 32)
        Traceback (most recent call last):
        ...
        sigma.data.errors.ChecksumError: ... md5 is 900150983cd24fb0d6963f7d28e17f72, expected 00000000000000000000000000000000
    """
    for algorithm, value in expected_checksums(md5, sha256).items():
        actual = checksum(path, algorithm)
        if actual != value:
            raise ChecksumError(f"{what or path}: {algorithm} is {actual}, expected {value}")


# -- downloads ------------------------------------------------------------------
def download(url: str, destination: "str | os.PathLike", *, md5: Optional[str] = None,
             sha256: Optional[str] = None, resume: bool = True, attempts: int = 3,
             timeout: float = 30.0, progress: Optional[bool] = None,
             validate: Optional[Callable[[pathlib.Path], None]] = None) -> pathlib.Path:
    """Download ``url`` to ``destination`` atomically, verifying its checksums; return the path.

    An existing ``destination`` with the right checksums is kept as is.
    Bytes arrive in ``destination.part``; if the connection drops, up to
    ``attempts`` requests continue from where it stopped (HTTP ``Range``),
    and a later call resumes too. On a checksum mismatch the download is
    deleted and ``ChecksumError`` raised. ``progress=None`` shows a tqdm bar
    when stderr is a terminal. ``validate``, if given, is called with the
    complete file before it gets its name; whatever it raises rejects (and
    deletes) the download, like a checksum mismatch.

    Example (a ``file://`` URL; real use is ``https://``):
        >>> import pathlib, tempfile
        >>> from sigma.data.sources import download
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "src.bin").write_bytes(b"abc")
        >>> out = download((folder / "src.bin").as_uri(), folder / "copy.bin",
        ...                md5="900150983cd24fb0d6963f7d28e17f72", progress=False)
        >>> out.read_bytes()
        b'abc'
    """
    destination = pathlib.Path(destination)
    wanted = expected_checksums(md5, sha256)
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    with _exclusive_lock(destination):
        if destination.exists():
            if not wanted or _matches(destination, wanted):
                return destination
            destination.unlink()  # a stale or corrupt copy: fetch it again
        if not resume and partial.exists():
            partial.unlink()
        last_error: Optional[str] = None
        for _ in range(attempts):
            try:
                complete = _fetch_into(url, partial, timeout, progress)
            except DownloadError:
                if not resume:
                    _remove(partial)
                raise
            if complete:
                break
            last_error = complete.reason
        else:
            received = partial.stat().st_size if partial.exists() else 0
            if not resume:
                _remove(partial)
                kept = "nothing was kept"
            else:
                kept = f"the {received} bytes received are kept in {partial} and the next call resumes from there"
            raise DownloadError(f"downloading {url}: {last_error} ({attempts} attempts); {kept}")
        for algorithm, value in wanted.items():
            actual = checksum(partial, algorithm)
            if actual != value:
                _remove(partial)
                raise ChecksumError(f"{url}: downloaded file's {algorithm} is {actual}, expected {value}; "
                                    f"the download was deleted (nothing kept in {destination.parent})")
        if validate is not None:
            try:
                validate(partial)
            except BaseException:
                _remove(partial)
                raise
        os.replace(partial, destination)
    return destination


class _Outcome:
    """Whether one request finished the file, and why not."""

    def __init__(self, complete: bool, reason: str = ""):
        self.complete, self.reason = complete, reason

    def __bool__(self) -> bool:
        return self.complete


def _fetch_into(url: str, partial: pathlib.Path, timeout: float, progress: Optional[bool]) -> _Outcome:
    """One request appending to ``partial``; ``DownloadError`` for failures a retry cannot fix."""
    offset = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "sigma-data/1"})
    if offset and url.startswith(("http://", "https://")):
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            # Range not satisfiable: the partial file is as long as (or longer than) the
            # resource; start over rather than trust it.
            partial.unlink()
            return _Outcome(False, "the server refused to resume (HTTP 416); restarting")
        raise DownloadError(f"downloading {url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        return _Outcome(False, f"could not connect ({reason})")
    with response:
        status = getattr(response, "status", None) or 200
        mode = "ab"
        if offset and status == 206:
            start = _content_range_start(response.headers.get("Content-Range", ""))
            if start != offset:
                raise DownloadError(f"downloading {url}: asked to resume at byte {offset}, the server sent "
                                    f"Content-Range {response.headers.get('Content-Range')!r}")
        else:
            mode, offset = "wb", 0  # the server ignored Range (or there was nothing to resume)
        length = response.headers.get("Content-Length")
        expected_total = offset + int(length) if length is not None and length.isdigit() else None
        received = offset
        show = sys.stderr.isatty() if progress is None else progress
        from tqdm import tqdm
        with open(partial, mode) as out, tqdm(total=expected_total, initial=offset, unit="B", unit_scale=True,
                                              unit_divisor=1024, desc=partial.name[:-5], disable=not show,
                                              leave=False) as bar:
            while True:
                try:
                    block = response.read(CHUNK_BYTES)
                except (http.client.IncompleteRead, OSError, socket.timeout, http.client.HTTPException) as error:
                    out.write(getattr(error, "partial", b"") or b"")
                    received = out.tell()
                    return _Outcome(False, f"the connection dropped after {received} of "
                                           f"{expected_total if expected_total is not None else '?'} bytes "
                                           f"({type(error).__name__})")
                if not block:
                    break
                out.write(block)
                received += len(block)
                bar.update(len(block))
    if expected_total is not None and received != expected_total:
        return _Outcome(False, f"the connection dropped after {received} of {expected_total} bytes")
    return _Outcome(True)


def _content_range_start(header: str) -> Optional[int]:
    # "bytes 100-199/200"
    try:
        unit, span = header.split(" ", 1)
        return int(span.split("-", 1)[0]) if unit == "bytes" else None
    except ValueError:
        return None


def _matches(path: pathlib.Path, wanted: Dict[str, str]) -> bool:
    return all(checksum(path, algorithm) == value for algorithm, value in wanted.items())


def _remove(path: pathlib.Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@contextlib.contextmanager
def _exclusive_lock(destination: pathlib.Path):
    """Hold an advisory lock beside ``destination`` so two processes never write the same download."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no locking
        yield
        return
    lock_path = destination.with_name(destination.name + ".lock")
    while True:
        lock = open(lock_path, "w")
        fcntl.flock(lock, fcntl.LOCK_EX)
        # The holder before us removes the lock file when done; a lock on a removed file
        # guards nothing, so take it again on the file that is there now.
        try:
            if os.fstat(lock.fileno()).st_ino == os.stat(lock_path).st_ino:
                break
        except FileNotFoundError:
            pass
        lock.close()
    try:
        yield
    finally:
        _remove(lock_path)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


# -- archives -------------------------------------------------------------------
def unpack(archive: "str | os.PathLike", destination: "str | os.PathLike | None" = None) -> pathlib.Path:
    """Unpack a zip or tar archive (any compression) into a folder, or a single gzip file into a file.

    ``destination`` defaults to the archive's name without its extension,
    beside it. The result appears atomically (unpacked elsewhere, then
    renamed) and an existing ``destination`` is returned untouched. Members
    with absolute paths, ``..`` or links pointing outside are refused.

    Example:
        >>> import pathlib, tempfile, zipfile
        >>> from sigma.data.sources import unpack
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> with zipfile.ZipFile(folder / "pack.zip", "w") as z:
        ...     z.writestr("a/b.txt", "hi")
        >>> (unpack(folder / "pack.zip") / "a" / "b.txt").read_text()
        'hi'
    """
    archive = pathlib.Path(archive)
    if not archive.is_file():
        raise FileNotFoundError(f"no archive at {archive}")
    kind = _archive_kind(archive)
    if destination is None:
        destination = archive.with_name(_strip_archive_suffix(archive.name))
        if destination == archive:
            destination = archive.with_name(archive.name + ".unpacked")
    destination = pathlib.Path(destination)
    if destination.exists():
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=destination.name + ".", suffix=".unpacking",
                                            dir=destination.parent))
    try:
        if kind == "zip":
            _unpack_zip(archive, staging)
            os.replace(staging, destination)
        elif kind == "tar":
            _unpack_tar(archive, staging)
            os.replace(staging, destination)
        else:
            single = staging / destination.name
            with open(single, "wb") as out:
                out.write(read_bytes(archive))
            os.replace(single, destination)
            staging.rmdir()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return destination


def _archive_kind(archive: pathlib.Path) -> str:
    if zipfile.is_zipfile(archive):
        return "zip"
    try:
        if tarfile.is_tarfile(archive):
            return "tar"
    except (OSError, EOFError, tarfile.TarError, lzma.LZMAError):
        pass
    if compression_of(archive) is not None:
        return "compressed file"
    raise DataFormatError(f"{archive}: not a zip, tar, gzip, bzip2 or xz archive "
                          f"(first bytes {archive.open('rb').read(8)!r})")


def _strip_archive_suffix(name: str) -> str:
    for suffix in (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".txz", ".zip", ".tar", ".gz", ".bz2", ".xz"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _safe_member(archive: pathlib.Path, name: str) -> None:
    parts = pathlib.PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise DataFormatError(f"{archive}: member {name!r} would be written outside the destination folder")


def _unpack_zip(archive: pathlib.Path, target: pathlib.Path) -> None:
    try:
        with zipfile.ZipFile(archive) as z:
            for member in z.infolist():
                _safe_member(archive, member.filename)
            z.extractall(target)
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, OSError) as error:
        raise DataFormatError(f"{archive}: corrupt zip archive ({error})") from None


def _unpack_tar(archive: pathlib.Path, target: pathlib.Path) -> None:
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _safe_member(archive, member.name)
                if member.issym() or member.islnk():
                    link = pathlib.PurePosixPath(member.name).parent / member.linkname
                    if member.linkname.startswith("/") or ".." in pathlib.PurePosixPath(
                            os.path.normpath(str(link))).parts:
                        raise DataFormatError(f"{archive}: link {member.name!r} -> {member.linkname!r} "
                                              f"points outside the destination folder")
                elif not (member.isfile() or member.isdir()):
                    raise DataFormatError(f"{archive}: member {member.name!r} is a device or pipe, not a file")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(target, members=members, filter="data")
            else:
                tar.extractall(target, members=members)
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError, zlib.error) as error:
        raise DataFormatError(f"{archive}: corrupt tar archive ({error})") from None
