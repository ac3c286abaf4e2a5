"""Sources: the search path, compressed files, archives, and downloads from a local HTTP server."""
import bz2
import gzip
import hashlib
import http.server
import io
import lzma
import os
import pathlib
import tarfile
import threading
import zipfile

import numpy as np
import pytest

from sigma.data import search_path, sources
from sigma.data.errors import ChecksumError, DataFormatError, DatasetNotFoundError, DownloadError

PAYLOAD = np.random.default_rng(7).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
MD5 = hashlib.md5(PAYLOAD).hexdigest()
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


# -- search path ----------------------------------------------------------------
def test_search_path_order_is_sigma_data_then_cache_then_system(tmp_path, monkeypatch):
    first, second, cache = tmp_path / "a", tmp_path / "b", tmp_path / "cache"
    monkeypatch.setenv("SIGMA_DATA", f"{first}{os.pathsep}{second}")
    monkeypatch.setenv("SIGMA_CACHE", str(cache))
    folders = search_path.folders()
    assert folders[:3] == [first, second, cache]
    assert pathlib.Path("/usr/share/datasets") in folders[3:]


def test_cache_dir_follows_xdg_when_sigma_cache_is_unset(tmp_path, monkeypatch):
    monkeypatch.delenv("SIGMA_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert search_path.cache_dir() == tmp_path / "sigma"


def test_find_prefers_earlier_folders_and_find_any_checks_folders_before_names(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        (folder / "set").mkdir(parents=True)
    (second / "set" / "x.gz").write_bytes(b"2")
    (first / "set" / "x").write_bytes(b"1")
    monkeypatch.setenv("SIGMA_DATA", f"{first}{os.pathsep}{second}")
    monkeypatch.setenv("SIGMA_CACHE", str(tmp_path / "cache"))
    assert search_path.find("set/x.gz") == second / "set" / "x.gz"
    assert search_path.find_any(["set/x.gz", "set/x"]) == first / "set" / "x"
    assert search_path.find("set/none") is None


# -- local files ------------------------------------------------------------------
@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress, lambda b: b])
def test_read_bytes_decompresses_by_content_not_name(tmp_path, compress):
    path = tmp_path / "blob.bin"
    path.write_bytes(compress(b"the data" * 100))
    assert sources.read_bytes(path) == b"the data" * 100


def test_truncated_gzip_is_a_format_error_naming_the_file(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(PAYLOAD)[:5000])
    with pytest.raises(DataFormatError, match=r"cut\.gz: the gzip stream is corrupt or truncated"):
        sources.read_bytes(path)


def test_verify_names_algorithm_actual_and_expected(tmp_path):
    path = tmp_path / "p.bin"
    path.write_bytes(PAYLOAD)
    sources.verify(path, md5=MD5, sha256=SHA256)
    with pytest.raises(ChecksumError, match=f"sha256 is {SHA256}, expected {'a' * 64}"):
        sources.verify(path, sha256="a" * 64)
    with pytest.raises(ValueError, match="md5 checksum must be 32 hex digits"):
        sources.verify(path, md5="xyz")


# -- archives ---------------------------------------------------------------------
def test_unpack_zip_tar_and_single_gzip(tmp_path):
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
        z.writestr("inner/one.txt", "1")
    with tarfile.open(tmp_path / "b.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("inner/two.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"2"))
    (tmp_path / "c.csv.gz").write_bytes(gzip.compress(b"x,y\n"))
    assert (sources.unpack(tmp_path / "a.zip") / "inner" / "one.txt").read_text() == "1"
    assert (sources.unpack(tmp_path / "b.tar.gz") / "inner" / "two.txt").read_text() == "2"
    single = sources.unpack(tmp_path / "c.csv.gz")
    assert single == tmp_path / "c.csv" and single.read_bytes() == b"x,y\n"
    leftovers = [p.name for p in tmp_path.iterdir() if "unpacking" in p.name]
    assert leftovers == []


def test_unpack_refuses_members_escaping_the_folder(tmp_path):
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as z:
        z.writestr("../outside.txt", "x")
    with pytest.raises(DataFormatError, match=r"member '\.\./outside\.txt' would be written outside"):
        sources.unpack(tmp_path / "evil.zip", tmp_path / "out")
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "out").exists()


def test_unpack_of_a_corrupt_archive_is_a_format_error_and_leaves_nothing(tmp_path):
    good = io.BytesIO()
    with tarfile.open(fileobj=good, mode="w:gz") as tar:
        info = tarfile.TarInfo("big.bin")
        info.size = len(PAYLOAD)
        tar.addfile(info, io.BytesIO(PAYLOAD))
    (tmp_path / "cut.tar.gz").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    with pytest.raises(DataFormatError, match=r"cut\.tar\.gz"):
        sources.unpack(tmp_path / "cut.tar.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.tar.gz"]
    (tmp_path / "plain.txt").write_text("not an archive")
    with pytest.raises(DataFormatError, match="not a zip, tar, gzip"):
        sources.unpack(tmp_path / "plain.txt")


# -- downloads from a local server ----------------------------------------------------
class _Server:
    """A threaded HTTP server on 127.0.0.1 whose behaviour each test sets."""

    def __init__(self):
        self.files = {}
        self.drop_at = None        # stop sending at this absolute byte offset, then close
        self.drop_times = None     # drop only this many responses (None: always)
        self.honour_range = True
        self.requests = []         # (path, Range header or None)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                header = self.headers.get("Range")
                if header and server.honour_range:
                    start = int(header.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                end = len(body)
                dropping = server.drop_at is not None and (server.drop_times is None or server.drop_times > 0)
                if dropping and end > server.drop_at:
                    end = max(start, server.drop_at)
                    if server.drop_times is not None:
                        server.drop_times -= 1
                self.wfile.write(body[start:end])
                self.wfile.flush()
                if end < len(body):
                    self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    s.files["/data/payload.bin"] = PAYLOAD
    yield s
    s.close()


def _cache_contents(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_download_verifies_checksums_and_writes_atomically(server, tmp_path):
    out = sources.download(server.url + "/data/payload.bin", tmp_path / "cache" / "payload.bin", md5=MD5,
                           sha256=SHA256, progress=False)
    assert out.read_bytes() == PAYLOAD
    assert _cache_contents(tmp_path / "cache") == ["payload.bin"]
    # A second call finds the verified file and sends no request.
    count = len(server.requests)
    sources.download(server.url + "/data/payload.bin", out, sha256=SHA256, progress=False)
    assert len(server.requests) == count


def test_wrong_checksum_is_a_clear_error_and_leaves_no_file(server, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match=f"md5 is {MD5}, expected {'0' * 32}.*download was deleted"):
        sources.download(server.url + "/data/payload.bin", cache / "payload.bin", md5="0" * 32, progress=False)
    assert _cache_contents(cache) == []


def test_connection_dropped_mid_file_is_a_clear_error_and_leaves_no_half_file(server, tmp_path):
    server.drop_at = 100_000
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match=r"connection dropped after 100000 of 300000 bytes.*3 attempts"):
        sources.download(server.url + "/data/payload.bin", cache / "payload.bin", sha256=SHA256, progress=False)
    # Under its real name there is nothing; the bytes received wait in NAME.part for a resume.
    assert _cache_contents(cache) == ["payload.bin.part"]
    assert (cache / "payload.bin.part").read_bytes() == PAYLOAD[:100_000]
    with pytest.raises(DownloadError, match="nothing was kept"):
        sources.download(server.url + "/data/payload.bin", cache / "payload.bin", sha256=SHA256, resume=False,
                         progress=False)
    assert _cache_contents(cache) == []


def test_download_resumes_a_partial_file_with_a_range_request(server, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "payload.bin.part").write_bytes(PAYLOAD[:123_456])
    out = sources.download(server.url + "/data/payload.bin", cache / "payload.bin", sha256=SHA256, progress=False)
    assert out.read_bytes() == PAYLOAD
    assert server.requests == [("/data/payload.bin", "bytes=123456-")]
    assert _cache_contents(cache) == ["payload.bin"]


def test_a_dropped_connection_is_retried_from_where_it_stopped(server, tmp_path):
    server.drop_at, server.drop_times = 150_000, 1
    out = sources.download(server.url + "/data/payload.bin", tmp_path / "payload.bin", md5=MD5, progress=False)
    assert out.read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == [None, "bytes=150000-"]


def test_a_server_ignoring_range_restarts_the_file(server, tmp_path):
    server.honour_range = False
    (tmp_path / "payload.bin.part").write_bytes(b"stale bytes from elsewhere")
    out = sources.download(server.url + "/data/payload.bin", tmp_path / "payload.bin", sha256=SHA256, progress=False)
    assert out.read_bytes() == PAYLOAD


def test_http_error_names_the_status_and_url(server, tmp_path):
    with pytest.raises(DownloadError, match=r"missing\.bin: HTTP 404"):
        sources.download(server.url + "/missing.bin", tmp_path / "m.bin", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_validate_hook_rejects_and_removes_the_download(server, tmp_path):
    def reject(path):
        raise ChecksumError(f"{path}: content is not what we wanted")

    with pytest.raises(ChecksumError, match="content is not what we wanted"):
        sources.download(server.url + "/data/payload.bin", tmp_path / "p.bin", validate=reject, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_registry_downloads_mnist_labels_with_published_checksums(server, tmp_path, monkeypatch):
    from sigma.data import registry
    shared = pathlib.Path(__file__).resolve().parents[3] / "shared" / "datasets" / "mnist"
    labels = shared / "t10k-labels-idx1-ubyte.gz"
    if not labels.exists():
        pytest.skip(f"MNIST files are not at {shared}")
    server.files["/mnist/t10k-labels-idx1-ubyte.gz"] = labels.read_bytes()
    monkeypatch.setenv("SIGMA_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("SIGMA_CACHE", str(tmp_path / "cache"))
    file = registry.MNIST_FILES["test"][1]
    content = registry.fetch(["mnist-test-only"], file, [server.url + "/nowhere/", server.url + "/mnist/"])
    assert hashlib.sha256(content).hexdigest() == file.content_sha256
    assert _cache_contents(tmp_path / "cache") == ["mnist-test-only/t10k-labels-idx1-ubyte.gz"]
    # A tampered copy served under the right name is refused by the published checksum.
    server.files["/bad/t10k-labels-idx1-ubyte.gz"] = gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x00")
    with pytest.raises(DatasetNotFoundError, match="md5 is .* expected ec29112dd5afa0611ce80d1b7f02629c"):
        registry.fetch(["other"], file, [server.url + "/bad/"])
    assert not (tmp_path / "cache" / "other" / "t10k-labels-idx1-ubyte.gz").exists()
    with pytest.raises(DatasetNotFoundError, match="download=False"):
        registry.fetch(["absent"], file, [server.url + "/mnist/"], download=False)


def test_simultaneous_downloads_of_one_file_fetch_it_once(server, tmp_path):
    results, errors = [], []

    def fetch():
        try:
            path = sources.download(server.url + "/data/payload.bin", tmp_path / "payload.bin", sha256=SHA256,
                                    progress=False)
            results.append(path.read_bytes() == PAYLOAD)
        except Exception as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and results == [True, True, True]
    assert len(server.requests) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["payload.bin"]
