"""CSV (and other delimited text) tables: header, column selection, type inference, missing values.

``read_csv`` returns the table as ``{column name: numpy array}``: a column
is int64 if every value is an integer, float64 if every value is a number,
and a string array otherwise. ``csv_sections`` turns a table into the
``inputs`` / ``targets`` sections a dataset holds.

Example:
    >>> from sigma.data.extractors.csv_files import parse_csv
    >>> table = parse_csv("size,colour,price\\n3,red,1.5\\n4,blue,2\\n")
    >>> {name: column.dtype.kind for name, column in table.items()}
    {'size': 'i', 'colour': 'U', 'price': 'f'}
    >>> table["price"].tolist()
    [1.5, 2.0]
"""
from __future__ import annotations

import csv
import io
import math
import os
import pathlib
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from sigma.data.errors import DataFormatError
from sigma.data.sources import read_bytes

MISSING_MARKERS = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "?")
MISSING_POLICIES = ("error", "drop", "fill")
Column = Union[str, int]


def read_csv(path: "str | os.PathLike", *, columns: Optional[Sequence[Column]] = None,
             header: "bool | str" = "auto", delimiter: Optional[str] = None, missing: str = "error",
             fill_value: float = math.nan, missing_markers: Sequence[str] = MISSING_MARKERS,
             encoding: str = "utf-8") -> Dict[str, np.ndarray]:
    """Read a delimited text file (gzip/bzip2/xz-compressed or not) into ``{column: array}``.

    Args:
        columns: names (or 0-based positions) of the columns to keep, in order; all if ``None``.
        header: ``True`` if the first row names the columns, ``False`` if it is data (columns are
            then called ``column0``, ``column1``, ...), ``"auto"``: a header if none of its cells is a number.
        delimiter: one character; ``None`` picks the first of ``,`` ``;`` tab ``|`` found in the first line.
        missing: what to do with a cell in ``missing_markers``: ``"error"`` raises, ``"drop"`` drops
            the row, ``"fill"`` puts ``fill_value`` in number columns and ``""`` in string columns.

    Raises ``DataFormatError`` with the file and line for ragged rows, undecodable bytes,
    unbalanced quotes and (with ``missing="error"``) missing values.

    Example:
        >>> import pathlib, tempfile
        >>> from sigma.data.extractors.csv_files import read_csv
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
        >>> _ = path.write_text("a;b\\n1;\\n2;5\\n")
        >>> read_csv(path, missing="fill", fill_value=-1)["b"].tolist()
        [-1, 5]
    """
    path = pathlib.Path(path)
    blob = read_bytes(path)
    try:
        text = blob.decode(encoding)
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path}, line {_line_of(blob, error.start)}: byte {error.start} is not "
                              f"valid {encoding} text ({error.reason}); "
                              f"pass encoding= if the file uses another encoding") from None
    except LookupError:
        raise ValueError(f"unknown text encoding {encoding!r}") from None
    return parse_csv(text, source=str(path), columns=columns, header=header, delimiter=delimiter,
                     missing=missing, fill_value=fill_value, missing_markers=missing_markers)


def parse_csv(text: str, *, source: str = "<text>", columns: Optional[Sequence[Column]] = None,
              header: "bool | str" = "auto", delimiter: Optional[str] = None, missing: str = "error",
              fill_value: float = math.nan,
              missing_markers: Sequence[str] = MISSING_MARKERS) -> Dict[str, np.ndarray]:
    """Like :func:`read_csv`, on text already in memory; ``source`` names it in errors."""
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {MISSING_POLICIES}, got {missing!r}")
    if header not in (True, False, "auto"):
        raise ValueError(f"header must be True, False or 'auto', got {header!r}")
    text = text.lstrip("\ufeff")
    if delimiter is None:
        delimiter = _guess_delimiter(text)
    elif len(delimiter) != 1 or delimiter in "\r\n\"":
        raise ValueError(f"delimiter must be one character other than a quote or newline, got {delimiter!r}")
    rows = _rows(text, delimiter, source)
    if not rows:
        raise DataFormatError(f"{source}: no rows: the file is empty or holds only blank lines")
    first_line, first = rows[0]
    has_header = header if header != "auto" else not any(_is_number(cell) for cell in first)
    if has_header:
        names = [cell.strip() or f"column{i}" for i, cell in enumerate(first)]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise DataFormatError(f"{source}, line {first_line}: the header names columns {duplicates} twice")
        rows = rows[1:]
    else:
        names = [f"column{i}" for i in range(len(first))]
    width = len(names)
    for line, row in rows:
        if len(row) != width:
            where = "the header" if has_header else "the first row"
            raise DataFormatError(f"{source}, line {line}: {len(row)} fields, expected {width} as in {where} "
                                  f"(line {first_line})")
    keep = _selected(names, columns, source)
    markers = set(missing_markers)
    cells = [[row[i].strip() for i in keep] for _, row in rows]
    lines = [line for line, _ in rows]
    missing_rows = set()
    for r, values in enumerate(cells):
        for c, value in enumerate(values):
            if value in markers:
                if missing == "error":
                    raise DataFormatError(f"{source}, line {lines[r]}: column {names[keep[c]]!r} is missing "
                                          f"(value {value!r}); pass missing='drop' or missing='fill'")
                missing_rows.add(r)
    if missing == "drop" and missing_rows:
        cells = [values for r, values in enumerate(cells) if r not in missing_rows]
    table: Dict[str, np.ndarray] = {}
    for c, index in enumerate(keep):
        table[names[index]] = _column([values[c] for values in cells], markers, fill_value)
    return table


def csv_sections(table: Dict[str, np.ndarray], targets: Optional[str] = None,
                 inputs: Optional[Sequence[str]] = None, classes: Optional[Sequence[str]] = None,
                 source: str = "<table>") -> Tuple[Dict[str, np.ndarray], Optional[List[str]]]:
    """Sections ``{"inputs": float32 (N, F), "targets": ...}`` from a table, and the class names.

    ``inputs`` defaults to every column but ``targets``; they must be
    numbers. String targets become int64 class indices (``classes`` gives
    their order, sorted names by default); integer targets stay int64 and
    float targets become float32 (regression).

    Example:
        >>> import numpy as np
        >>> from sigma.data.extractors.csv_files import csv_sections
        >>> table = {"x": np.array([1.0, 2.0]), "kind": np.array(["b", "a"])}
        >>> sections, classes = csv_sections(table, targets="kind")
        >>> sections["targets"].tolist(), classes
        ([1, 0], ['a', 'b'])
    """
    if targets is not None and targets not in table:
        raise KeyError(f"{source}: no column {targets!r}; columns are {list(table)}")
    if inputs is None:
        inputs = [name for name in table if name != targets]
    missing_columns = [name for name in inputs if name not in table]
    if missing_columns:
        raise KeyError(f"{source}: no columns {missing_columns}; columns are {list(table)}")
    strings = [name for name in inputs if table[name].dtype.kind not in "iuf"]
    if strings:
        raise DataFormatError(f"{source}: input columns {strings} hold text, not numbers; "
                              f"encode them or leave them out with inputs=")
    length = len(next(iter(table.values()))) if table else 0
    features = (np.stack([table[name].astype(np.float32) for name in inputs], axis=1) if inputs
                else np.zeros((length, 0), np.float32))
    sections = {"inputs": features}
    class_names = None
    if targets is not None:
        column = table[targets]
        if column.dtype.kind == "U":
            class_names = list(classes) if classes is not None else sorted(set(column.tolist()))
            lookup = {name: i for i, name in enumerate(class_names)}
            unknown = sorted(set(column.tolist()) - set(lookup))
            if unknown:
                raise DataFormatError(f"{source}: target values {unknown} are not among the classes {class_names}")
            sections["targets"] = np.array([lookup[v] for v in column.tolist()], dtype=np.int64)
        elif column.dtype.kind in "iu":
            sections["targets"] = column.astype(np.int64)
        else:
            sections["targets"] = column.astype(np.float32)
    return sections, class_names


def _guess_delimiter(text: str) -> str:
    first_line = text.split("\n", 1)[0]
    for candidate in (",", ";", "\t", "|"):
        if candidate in first_line:
            return candidate
    return ","


def _rows(text: str, delimiter: str, source: str) -> List[Tuple[int, List[str]]]:
    if "\x00" in text:
        offset = text.index("\x00")
        line = text.count("\n", 0, offset) + 1
        raise DataFormatError(f"{source}: NUL character at character {offset}, line {line}; "
                              f"this is a binary file, not CSV text")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows = []
    try:
        start = 1
        for row in reader:
            if row and any(cell.strip() for cell in row):
                rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as error:
        raise DataFormatError(f"{source}, line {reader.line_num}: {error}") from None
    return rows


def _selected(names: List[str], columns: Optional[Sequence[Column]], source: str) -> List[int]:
    if columns is None:
        return list(range(len(names)))
    if isinstance(columns, (str, int)):
        columns = [columns]
    keep = []
    for column in columns:
        if isinstance(column, (int, np.integer)) and not isinstance(column, bool):
            if not -len(names) <= column < len(names):
                raise KeyError(f"{source}: column position {column} is out of range for {len(names)} columns")
            keep.append(int(column) % len(names))
        elif column in names:
            keep.append(names.index(column))
        else:
            raise KeyError(f"{source}: no column {column!r}; columns are {names}")
    return keep


def _is_number(cell: str) -> bool:
    try:
        float(cell.strip())
        return True
    except ValueError:
        return False


def _column(values: List[str], markers: set, fill_value: float) -> np.ndarray:
    """An int64, float64 or string array, whichever holds every present value."""
    present = [v for v in values if v not in markers]
    filled = len(present) != len(values)
    if _all_parse(present, int) and (not filled or _is_int64(fill_value)):
        integers = [int(v) for v in present]
        if all(_is_int64(v) for v in integers):
            fill = int(fill_value) if filled else 0
            return np.array([int(v) if v not in markers else fill for v in values], dtype=np.int64)
    if _all_parse(present, float):
        return np.array([float(v) if v not in markers else fill_value for v in values], dtype=np.float64)
    return np.array([v if v not in markers else "" for v in values], dtype=str)


def _all_parse(values: List[str], kind: type) -> bool:
    try:
        for v in values:
            kind(v)
    except ValueError:
        return False
    return True


def _is_int64(value: float) -> bool:
    return math.isfinite(value) and float(value).is_integer() and -(2 ** 63) <= value < 2 ** 63


def _line_of(blob: bytes, offset: int) -> int:
    """The 1-based line holding byte ``offset``."""
    return blob.count(b"\n", 0, offset) + 1
