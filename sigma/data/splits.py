"""Train / validation / test splits by fraction or by count, optionally stratified by class.

Example:
    >>> import numpy as np
    >>> from sigma.data.datasets import InMemoryDataset
    >>> from sigma.data.splits import split
    >>> data = InMemoryDataset(inputs=np.arange(100.0), targets=np.arange(100) % 4)
    >>> parts = split(data, {"train": 0.8, "validation": 0.2}, seed=0, stratify="targets")
    >>> len(parts["train"]), len(parts["validation"])
    (80, 20)
    >>> np.bincount(parts["validation"]["targets"]).tolist()
    [5, 5, 5, 5]
"""
from __future__ import annotations

import numbers
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from sigma.data.datasets import Dataset, Subset

Parts = Union[Sequence[float], Mapping[str, float]]


def split(dataset: Dataset, parts: Parts, *, shuffle: bool = True, seed: int = 0,
          stratify: Optional[str] = None) -> Union[List[Subset], Dict[str, Subset]]:
    """Cut ``dataset`` into disjoint subsets.

    Args:
        parts: sizes as fractions (floats summing to at most 1) or sample
            counts (ints summing to at most ``len(dataset)``), in a list or a
            ``{name: size}`` dict (the result is then a dict too). Without
            shuffling, counts are index boundaries: ``[50000, 10000]`` gives
            samples 0-49999 and 50000-59999.
        shuffle: draw the samples of each part at random (seeded by ``seed``).
        stratify: a section of one class label per sample; each part then
            holds the classes in the same proportions as the whole (to within
            one sample per class).

    Each subset's indices are sorted, so reading them stays local on disk.

    Example:
        >>> import numpy as np
        >>> from sigma.data.datasets import InMemoryDataset
        >>> from sigma.data.splits import split
        >>> train, validation = split(InMemoryDataset(targets=np.arange(10)), [8, 2], shuffle=False)
        >>> validation["targets"].tolist()
        [8, 9]
    """
    names = list(parts) if isinstance(parts, Mapping) else None
    sizes = list(parts.values()) if isinstance(parts, Mapping) else list(parts)
    counts = _counts(sizes, len(dataset))
    order = _order(dataset, shuffle, seed, stratify)
    subsets, start = [], 0
    for count in counts:
        subsets.append(Subset(dataset, np.sort(order[start:start + count])))
        start += count
    return dict(zip(names, subsets)) if names is not None else subsets


def _counts(sizes: List[float], length: int) -> List[int]:
    if not sizes:
        raise ValueError("split needs at least one part size")
    if all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in sizes):
        if min(sizes) < 0 or sum(sizes) > length:
            raise ValueError(f"split counts {sizes} must be non-negative and sum to at most {length} samples")
        return [int(s) for s in sizes]
    fractions = [float(s) for s in sizes]
    if min(fractions) < 0 or sum(fractions) > 1 + 1e-9:
        raise ValueError(f"split fractions {sizes} must be non-negative and sum to at most 1 (they sum to "
                         f"{sum(fractions):g})")
    exact = np.array(fractions) * length
    counts = np.floor(exact).astype(np.int64)
    # Largest remainders get the samples left over, so the parts add up to round(sum * length).
    left_over = int(round(min(sum(fractions), 1.0) * length)) - int(counts.sum())
    for i in np.argsort(-(exact - counts), kind="stable")[:max(left_over, 0)]:
        counts[i] += 1
    return counts.tolist()


def _order(dataset: Dataset, shuffle: bool, seed: int, stratify: Optional[str]) -> np.ndarray:
    length = len(dataset)
    generator = np.random.default_rng(seed)
    if stratify is None:
        return generator.permutation(length) if shuffle else np.arange(length)
    labels = np.asarray(dataset.section(stratify))
    if labels.shape != (length,):
        raise ValueError(f"stratify needs one label per sample; section {stratify!r} has shape {labels.shape}")
    # Spread each class evenly along [0, 1): member j of a class of n sits at (j + offset) / n.
    # Sorting by that position interleaves the classes, so any run of consecutive samples
    # holds each class in its overall proportion, to within one sample.
    position = np.empty(length, dtype=np.float64)
    _, codes = np.unique(labels, return_inverse=True)
    for code in range(codes.max() + 1 if length else 0):
        members = np.flatnonzero(codes == code)
        if shuffle:
            members = generator.permutation(members)
        offset = generator.random() if shuffle else 0.5
        position[members] = (np.arange(len(members)) + offset) / len(members)
    tie_break = generator.permutation(length) if shuffle else np.arange(length)
    return np.lexsort((tie_break, position))
