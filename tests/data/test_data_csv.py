"""CSV extractor: inference, headers, selection, missing values, malformed input, fuzzing."""
import csv
import gzip
import io
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sigma.data.errors import DataFormatError
from sigma.data.extractors.csv_files import csv_sections, parse_csv, read_csv


def test_types_are_inferred_per_column():
    table = parse_csv("id,score,name,flag\n1,0.5,ann,1\n2,1e3,\"bo, b\",0\n-3,7,cy,1\n")
    assert table["id"].dtype == np.int64 and table["id"].tolist() == [1, 2, -3]
    assert table["score"].dtype == np.float64 and table["score"].tolist() == [0.5, 1000.0, 7.0]
    assert table["name"].tolist() == ["ann", "bo, b", "cy"]
    assert table["flag"].dtype == np.int64


def test_header_auto_true_and_false():
    assert list(parse_csv("1,2\n3,4\n")) == ["column0", "column1"]
    assert list(parse_csv("a,b\n3,4\n")) == ["a", "b"]
    assert parse_csv("1,2\n3,4\n", header=True)["1"].tolist() == [3]
    assert parse_csv("a,b\nc,d\n", header=False)["column1"].tolist() == ["b", "d"]


def test_column_selection_by_name_and_position_keeps_the_order_asked():
    table = parse_csv("a,b,c\n1,2,3\n", columns=["c", 0])
    assert list(table) == ["c", "a"] and table["c"].tolist() == [3]
    with pytest.raises(KeyError, match=r"no column 'z'; columns are \['a', 'b', 'c'\]"):
        parse_csv("a,b,c\n1,2,3\n", columns=["z"])


def test_delimiter_is_guessed_from_the_first_line():
    assert parse_csv("a;b\n1,5;2\n")["a"].tolist() == ["1,5"]
    assert parse_csv("a\tb\n1\t2\n")["b"].tolist() == [2]


def test_missing_values_policies():
    text = "a,b\n1,2\n,4\n5,NA\n"
    with pytest.raises(DataFormatError, match=r"line 3: column 'a' is missing \(value ''\)"):
        parse_csv(text)
    dropped = parse_csv(text, missing="drop")
    assert dropped["a"].tolist() == [1] and dropped["b"].tolist() == [2]
    filled = parse_csv(text, missing="fill")
    assert filled["a"].dtype == np.float64 and math.isnan(filled["a"][1])
    assert parse_csv(text, missing="fill", fill_value=0)["b"].tolist() == [2, 4, 0]
    with pytest.raises(ValueError, match="missing must be one of"):
        parse_csv(text, missing="ignore")


def test_ragged_rows_give_the_line_and_field_counts(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b,c\n1,2,3\n\n4,5\n")
    with pytest.raises(DataFormatError, match=r"ragged\.csv, line 4: 2 fields, expected 3 as in the header \(line 1\)"):
        read_csv(path)


def test_unbalanced_quote_nul_and_bad_encoding(tmp_path):
    with pytest.raises(DataFormatError, match="line 2: unexpected end of data"):
        parse_csv('a,b\n"1,2\n')
    with pytest.raises(DataFormatError, match="NUL character at character 4, line 2"):
        parse_csv("a,b\n\x00,1\n")
    path = tmp_path / "latin.csv"
    path.write_bytes(b"name\ncaf\xe9\n")
    with pytest.raises(DataFormatError, match=r"latin\.csv, line 2: byte 8 is not valid utf-8"):
        read_csv(path)
    assert read_csv(path, encoding="latin-1")["name"].tolist() == ["café"]


def test_empty_file_duplicate_header_and_header_only():
    with pytest.raises(DataFormatError, match="no rows"):
        parse_csv("\n\n")
    with pytest.raises(DataFormatError, match=r"names columns \['a'\] twice"):
        parse_csv("a,a\n1,2\n")
    assert parse_csv("a,b\n")["a"].shape == (0,)


def test_compressed_csv_and_byte_order_mark(tmp_path):
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress("\ufeffx,y\n1,2\n".encode()))
    assert read_csv(path)["x"].tolist() == [1]


def test_sections_from_a_table():
    table = parse_csv("w,h,kind\n1,2,b\n3,4,a\n5,6,b\n")
    sections, classes = csv_sections(table, targets="kind")
    assert classes == ["a", "b"] and sections["targets"].tolist() == [1, 0, 1]
    assert sections["inputs"].dtype == np.float32 and sections["inputs"].tolist() == [[1, 2], [3, 4], [5, 6]]
    sections, classes = csv_sections(table, targets="kind", classes=["b", "a"], inputs=["h"])
    assert sections["targets"].tolist() == [0, 1, 0] and sections["inputs"].shape == (3, 1)
    with pytest.raises(DataFormatError, match=r"input columns \['kind'\] hold text"):
        csv_sections(table, inputs=["kind"])
    with pytest.raises(DataFormatError, match=r"target values \['b'\] are not among the classes \['a'\]"):
        csv_sections(table, targets="kind", classes=["a"])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_arbitrary_text_gives_a_table_or_a_format_error(text):
    for missing in ("error", "fill"):
        try:
            table = parse_csv(text, missing=missing)
        except DataFormatError as error:
            assert str(error).startswith("<text>")
        else:
            lengths = {len(column) for column in table.values()}
            assert len(lengths) == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes_in_a_file(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("fuzz") / "f.csv"
    path.write_bytes(blob)
    try:
        read_csv(path, missing="drop")
    except DataFormatError as error:
        assert str(path) in str(error)


cells = st.one_of(st.integers(-10 ** 6, 10 ** 6), st.floats(allow_nan=False, allow_infinity=False, width=32),
                  st.text(alphabet="abc xyz,\"'\n", min_size=1, max_size=6))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(cells, min_size=3, max_size=3), min_size=1, max_size=8))
def test_fuzz_written_tables_read_back(rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["p", "q", "r"])
    writer.writerows(rows)
    try:
        table = parse_csv(buffer.getvalue(), header=True)
    except DataFormatError as error:
        # Only a cell that is blank after trimming is missing, and that is reported.
        assert "is missing" in str(error)
        return
    for j, name in enumerate("pqr"):
        column = table[name]
        for i, row in enumerate(rows):
            value = row[j]
            if column.dtype.kind in "if" and not isinstance(value, str):
                assert column[i] == pytest.approx(float(value))
            elif column.dtype.kind == "U":
                assert column[i] == str(value).strip()
