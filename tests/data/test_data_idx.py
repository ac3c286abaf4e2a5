"""IDX extractor: round trips, corrupt files with precise errors, and fuzzing."""
import gzip
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sigma.data.errors import DataFormatError
from sigma.data.extractors.idx import encode_idx, parse_idx, read_idx, write_idx

DTYPES = ["uint8", "int8", "int16", "int32", "float32", "float64"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (7,), (3, 4), (2, 3, 5), (1, 2, 1, 3)])
def test_round_trip_every_dtype_and_rank(tmp_path, dtype, shape):
    values = (np.arange(int(np.prod(shape))) * 37 - 50).astype(dtype).reshape(shape)
    path = tmp_path / "x-idx.gz"
    write_idx(path, values)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == shape
    np.testing.assert_array_equal(back, values)
    assert back.flags.writeable


def test_header_is_big_endian_as_in_mnist():
    blob = encode_idx(np.zeros((2, 28, 28), np.uint8))
    assert struct.unpack(">iiii", blob[:16]) == (2051, 2, 28, 28)
    blob = encode_idx(np.array([258], np.int16))
    assert blob[-2:] == b"\x01\x02"


def test_truncated_body_names_the_file_size_and_shape(tmp_path):
    blob = encode_idx(np.zeros((10, 28, 28), np.uint8))
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(blob[:-100])
    with pytest.raises(DataFormatError) as error:
        read_idx(path)
    message = str(error.value)
    assert str(path) in message and "truncated" in message
    assert "shape (10, 28, 28)" in message and f"needs {len(blob)} bytes" in message
    assert f"ends at byte {len(blob) - 100}" in message


def test_truncated_gzip_idx_is_a_format_error(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(encode_idx(np.arange(5000, dtype=np.int32)))[:-40])
    with pytest.raises(DataFormatError, match="labels.gz: the gzip stream is corrupt or truncated"):
        read_idx(path)


def test_truncated_header():
    with pytest.raises(DataFormatError, match="truncated header: rank 3 needs 16 header bytes, the data ends at byte 9"):
        parse_idx(b"\x00\x00\x08\x03\x00\x00\x00\x02\x00")
    with pytest.raises(DataFormatError, match="too short for an IDX header: 4 bytes expected at offset 0"):
        parse_idx(b"\x00\x00")


def test_wrong_magic_number():
    png_like = b"\x89PNG\r\n\x1a\n" + bytes(20)
    with pytest.raises(DataFormatError, match=r"photo\.png: wrong magic number 0x89504e47 at offset 0"):
        parse_idx(png_like, source="photo.png")


def test_unknown_type_code_lists_the_known_ones():
    with pytest.raises(DataFormatError, match=r"unknown IDX type code 0x0a at offset 2 \(expected one of: 0x08 uint8"):
        parse_idx(b"\x00\x00\x0a\x01\x00\x00\x00\x00")


def test_trailing_bytes_and_rank_mismatch():
    blob = encode_idx(np.arange(3, dtype=np.uint8))
    with pytest.raises(DataFormatError, match="2 unexpected bytes after the end of the data at byte 11"):
        parse_idx(blob + b"xx")
    with pytest.raises(DataFormatError, match="rank 1, expected rank 3"):
        parse_idx(blob, rank=3)


def test_huge_declared_shape_fails_fast_without_allocating():
    header = b"\x00\x00\x0e\x04" + b"\xff\xff\xff\xff" * 4
    with pytest.raises(DataFormatError, match="truncated"):
        parse_idx(header + bytes(8))


def test_encode_refuses_dtypes_idx_cannot_hold():
    with pytest.raises(ValueError, match="IDX cannot hold int64"):
        encode_idx(np.zeros(2, np.int64))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64))
def test_fuzz_arbitrary_bytes_give_an_array_or_a_format_error(blob):
    try:
        array = parse_idx(blob)
    except DataFormatError as error:
        assert str(error).startswith("<bytes>: ")
    else:
        assert isinstance(array, np.ndarray)


@settings(max_examples=300, deadline=None)
@given(code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF]), rank=st.integers(0, 4),
       dims=st.lists(st.integers(0, 6), min_size=4, max_size=4), body=st.binary(max_size=300),
       cut=st.integers(0, 400))
def test_fuzz_plausible_headers_with_wrong_sizes(code, rank, dims, body, cut):
    blob = (bytes([0, 0, code, rank]) + b"".join(d.to_bytes(4, "big") for d in dims[:rank]) + body)[:cut]
    try:
        array = parse_idx(blob)
    except DataFormatError:
        return
    assert array.shape == tuple(dims[:rank])


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(st.sampled_from([np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]),
                  hnp.array_shapes(min_dims=0, max_dims=4, max_side=5)))
def test_fuzz_round_trip(values):
    back = parse_idx(encode_idx(values))
    np.testing.assert_array_equal(back, values)
    assert back.dtype == values.dtype
