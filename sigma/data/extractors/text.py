"""Text: character- or word-level tokens, a vocabulary, and next-token training windows.

Example:
    >>> from sigma.data.extractors.text import Vocabulary, tokenize
    >>> tokens = tokenize("the cat saw the dog.", level="word")
    >>> tokens
    ['the', 'cat', 'saw', 'the', 'dog', '.']
    >>> vocabulary = Vocabulary.build(tokens)
    >>> vocabulary.decode(vocabulary.encode(["the", "zebra"]))
    ['the', '<unk>']
"""
from __future__ import annotations

import collections
import os
import pathlib
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from sigma.data.errors import DataFormatError
from sigma.data.sources import read_bytes

LEVELS = ("char", "word")
UNKNOWN = "<unk>"
_WORD = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str, level: str = "char", lowercase: bool = False) -> List[str]:
    """Split text into characters (``"char"``) or words and punctuation marks (``"word"``)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    if lowercase:
        text = text.lower()
    return list(text) if level == "char" else _WORD.findall(text)


class Vocabulary:
    """Tokens <-> integer ids; id 0 is ``<unk>``, given to tokens not in the vocabulary.

    Example:
        >>> from sigma.data.extractors.text import Vocabulary
        >>> v = Vocabulary.build("abracadabra", min_count=2)
        >>> v.tokens
        ['<unk>', 'a', 'b', 'r']
        >>> v.encode("cab").tolist()
        [0, 1, 2]
    """

    def __init__(self, tokens: Sequence[str]):
        tokens = list(tokens)
        if not tokens or tokens[0] != UNKNOWN:
            tokens = [UNKNOWN] + [t for t in tokens if t != UNKNOWN]
        if len(set(tokens)) != len(tokens):
            repeated = sorted({t for t in tokens if tokens.count(t) > 1})
            raise ValueError(f"vocabulary tokens must be unique, repeated: {repeated[:10]}")
        self.tokens: List[str] = tokens
        self.index: Dict[str, int] = {token: i for i, token in enumerate(tokens)}

    @classmethod
    def build(cls, tokens: Iterable[str], min_count: int = 1, max_size: Optional[int] = None) -> "Vocabulary":
        """The vocabulary of ``tokens``: most frequent first (ties alphabetical), ``<unk>`` first of all."""
        counts = collections.Counter(tokens)
        ordered = sorted((t for t, n in counts.items() if n >= min_count and t != UNKNOWN),
                         key=lambda t: (-counts[t], t))
        if max_size is not None:
            if max_size < 1:
                raise ValueError(f"max_size must be at least 1 (room for {UNKNOWN}), got {max_size}")
            ordered = ordered[: max_size - 1]
        return cls([UNKNOWN] + ordered)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens)"

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        """int64 ids of ``tokens`` (0 for unknown ones)."""
        get = self.index.get
        return np.array([get(t, 0) for t in tokens], dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> List[str]:
        """Tokens of ``ids``; raises ``IndexError`` for an id outside the vocabulary."""
        out = []
        for i in np.asarray(list(ids) if not hasattr(ids, "__array__") else ids).reshape(-1).tolist():
            if not 0 <= i < len(self.tokens):
                raise IndexError(f"token id {i} is outside the vocabulary of {len(self.tokens)} tokens")
            out.append(self.tokens[i])
        return out


def read_text(path: "str | os.PathLike", level: str = "char", *, vocabulary: Optional[Vocabulary] = None,
              lowercase: bool = False, min_count: int = 1, max_size: Optional[int] = None,
              encoding: str = "utf-8") -> Tuple[np.ndarray, Vocabulary]:
    """Token ids of a text file (compressed or not) and the vocabulary (built from it unless given).

    Example:
        >>> import pathlib, tempfile
        >>> from sigma.data.extractors.text import read_text
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.txt"
        >>> _ = path.write_text("to be or not to be")
        >>> ids, vocabulary = read_text(path, level="word")
        >>> vocabulary.decode(ids[:2])
        ['to', 'be']
    """
    path = pathlib.Path(path)
    blob = read_bytes(path)
    try:
        text = blob.decode(encoding)
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path}, line {_line_of(blob, error.start)}: byte {error.start} is not "
                              f"valid {encoding} text ({error.reason})") from None
    tokens = tokenize(text, level, lowercase)
    if vocabulary is None:
        vocabulary = Vocabulary.build(tokens, min_count=min_count, max_size=max_size)
    return vocabulary.encode(tokens), vocabulary


def next_token_windows(ids: np.ndarray, length: int, stride: Optional[int] = None) -> Dict[str, np.ndarray]:
    """Sections for next-token prediction: ``inputs`` windows of ``length`` ids, ``targets`` shifted by one.

    Example:
        >>> import numpy as np
        >>> from sigma.data.extractors.text import next_token_windows
        >>> w = next_token_windows(np.arange(7), length=3)
        >>> w["inputs"].tolist(), w["targets"].tolist()
        ([[0, 1, 2], [3, 4, 5]], [[1, 2, 3], [4, 5, 6]])
    """
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    stride = length if stride is None else stride
    if length < 1 or stride < 1:
        raise ValueError(f"length and stride must be positive, got length={length}, stride={stride}")
    if ids.size < length + 1:
        raise DataFormatError(f"{ids.size} tokens are too few for one window of {length} plus its target")
    starts = np.arange(0, ids.size - length, stride)
    offsets = np.arange(length)
    return {"inputs": ids[starts[:, None] + offsets], "targets": ids[starts[:, None] + offsets + 1]}


def _line_of(blob: bytes, offset: int) -> int:
    """The 1-based line holding byte ``offset``."""
    return blob.count(b"\n", 0, offset) + 1
