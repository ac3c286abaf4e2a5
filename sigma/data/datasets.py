"""Datasets: named sections (``inputs``, ``targets``, ...) of equally many samples, on the host.

A dataset answers ``len(dataset)`` and ``dataset.batch(indices)`` (a dict
of numpy arrays, one row per index). ``dataset["inputs"]`` is a whole
section, ``dataset[3]`` one sample, ``dataset[10:20]`` a batch. Subsets,
concatenations and relabellings are views: they copy nothing until a
batch is asked for.

Example:
    >>> import numpy as np
    >>> from sigma.data.datasets import InMemoryDataset
    >>> digits = InMemoryDataset(inputs=np.zeros((5, 2)), targets=np.array([0, 1, 2, 3, 4]))
    >>> dresses = InMemoryDataset(inputs=np.ones((3, 2)), targets=np.array([3, 3, 3]))
    >>> mixed = digits.concat(dresses.relabel(10))
    >>> len(mixed), mixed["targets"].tolist()
    (8, [0, 1, 2, 3, 4, 10, 10, 10])
    >>> mixed.where(targets=[3, 10]).batch([0, 1])["targets"].tolist()
    [3, 10]
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from sigma.data.errors import DataFormatError

Sections = Dict[str, np.ndarray]


def as_indices(indices: Any, length: int, what: str = "dataset") -> np.ndarray:
    """``indices`` (int, slice, sequence, bool mask or array) as int64 positions in ``range(length)``."""
    if isinstance(indices, slice):
        return np.arange(length, dtype=np.int64)[indices]
    array = np.asarray(indices)
    if array.dtype == bool:
        if array.shape != (length,):
            raise IndexError(f"a boolean mask over a {what} of {length} samples must have shape ({length},), "
                             f"got {array.shape}")
        return np.flatnonzero(array).astype(np.int64)
    if array.size == 0:
        return np.zeros(array.shape, dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise IndexError(f"{what} indices must be integers, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    low, high = int(array.min()), int(array.max())
    if low < -length or high >= length:
        bad = low if low < -length else high
        raise IndexError(f"index {bad} is out of range for a {what} of {length} samples")
    return np.where(array < 0, array + length, array) if low < 0 else array


class Dataset:
    """Base class: ``len``, ``sections``, ``batch(indices)``; everything else is built on those.

    Subclasses implement ``__len__``, ``sections`` (names in order),
    ``sample_spec`` (per-sample shape and dtype of each section) and
    ``batch``. ``classes`` names the target classes when they have names.

    Example:
        >>> import numpy as np
        >>> from sigma.data.datasets import Dataset
        >>> class Squares(Dataset):
        ...     sections = ("inputs",)
        ...     def __len__(self): return 10
        ...     def sample_spec(self): return {"inputs": ((), np.dtype(np.int64))}
        ...     def batch(self, indices):
        ...         return {"inputs": np.arange(10)[indices] ** 2}
        >>> Squares()[[3, 4]]["inputs"].tolist()
        [9, 16]
    """

    classes: Optional[List[str]] = None
    name: Optional[str] = None

    def __len__(self) -> int:
        raise NotImplementedError

    @property
    def sections(self) -> Tuple[str, ...]:
        raise NotImplementedError

    def sample_spec(self) -> Dict[str, Tuple[Tuple[int, ...], np.dtype]]:
        """``{section: (shape of one sample, dtype)}``."""
        raise NotImplementedError

    def batch(self, indices: Any) -> Sections:
        """The samples at ``indices`` as ``{section: array}``, in the order given."""
        raise NotImplementedError

    # -- access -----------------------------------------------------------------
    def section(self, name: str) -> np.ndarray:
        """One whole section as an array (read entirely, but without the other sections)."""
        self._check_section(name)
        return self.batch(slice(None))[name]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return self.section(key)
        if isinstance(key, (int, np.integer)):
            return {name: values[0] for name, values in self.batch([int(key)]).items()}
        return self.batch(key)

    def __iter__(self):
        raise TypeError("iterate a dataset through sigma.data.MinibatchIterator (or index it: dataset[i])")

    @property
    def inputs(self) -> np.ndarray:
        """The ``inputs`` section."""
        return self.section("inputs")

    @property
    def targets(self) -> np.ndarray:
        """The ``targets`` section."""
        return self.section("targets")

    def __repr__(self) -> str:
        spec = ", ".join(f"{name}: {shape} {dtype}" for name, (shape, dtype) in self.sample_spec().items())
        label = f" {self.name!r}" if self.name else ""
        return f"<{type(self).__name__}{label}: {len(self)} samples; {spec}>"

    def _check_section(self, name: str) -> None:
        if name not in self.sections:
            raise KeyError(f"no section {name!r}; this dataset has {list(self.sections)}")

    # -- views ------------------------------------------------------------------
    def subset(self, indices: Any) -> "Subset":
        """The samples at ``indices`` (a view)."""
        return Subset(self, indices)

    def where(self, **conditions: Any) -> "Subset":
        """Samples whose section values are among those given: ``where(targets=3)``, ``where(targets=[1, 7])``."""
        mask = np.ones(len(self), dtype=bool)
        for name, values in conditions.items():
            column = np.asarray(self.section(name))
            if column.ndim != 1:
                raise ValueError(f"where() compares one value per sample; section {name!r} has shape {column.shape}")
            mask &= np.isin(column, np.atleast_1d(np.asarray(values)))
        return Subset(self, np.flatnonzero(mask))

    def concat(self, *others: "Dataset") -> "Concatenation":
        """This dataset followed by ``others`` (a view)."""
        return Concatenation([self, *others])

    def relabel(self, mapping: Union[int, Mapping[Any, Any], Callable[[np.ndarray], np.ndarray]],
                section: str = "targets", classes: Optional[Sequence[str]] = None) -> "Relabelled":
        """The same samples with new labels (see :class:`Relabelled`)."""
        return Relabelled(self, mapping, section=section, classes=classes)

    def map(self, preprocessor: Callable[[Sections], Sections]) -> "InMemoryDataset":
        """A new in-memory dataset: every sample passed through ``preprocessor`` once (eagerly)."""
        out = preprocessor(self.batch(slice(None)))
        return InMemoryDataset(out, classes=self.classes, name=self.name)

    def to_memory(self) -> "InMemoryDataset":
        """A copy held in memory."""
        return InMemoryDataset(self.batch(slice(None)), classes=self.classes, name=self.name)


class InMemoryDataset(Dataset):
    """Sections held as numpy arrays: ``InMemoryDataset(inputs=x, targets=y)``.

    Example:
        >>> import numpy as np
        >>> from sigma.data.datasets import InMemoryDataset
        >>> d = InMemoryDataset(inputs=np.arange(6).reshape(3, 2), targets=np.array([1, 0, 1]))
        >>> d[1]["inputs"].tolist(), len(d)
        ([2, 3], 3)
    """

    def __init__(self, sections: Optional[Mapping[str, Any]] = None, *, classes: Optional[Sequence[str]] = None,
                 name: Optional[str] = None, **named: Any):
        arrays = dict(sections or {})
        overlap = set(arrays) & set(named)
        if overlap:
            raise ValueError(f"sections {sorted(overlap)} given twice")
        arrays.update(named)
        if not arrays:
            raise ValueError("a dataset needs at least one section, e.g. InMemoryDataset(inputs=x, targets=y)")
        self._arrays: Sections = {}
        length = None
        for section_name, values in arrays.items():
            array = np.asarray(values)
            if array.dtype == object:
                raise DataFormatError(f"section {section_name!r} holds Python objects; sections must be numeric "
                                      f"or string arrays")
            if array.ndim == 0:
                raise DataFormatError(f"section {section_name!r} is a single value; it needs one row per sample")
            if length is None:
                length, first = len(array), section_name
            elif len(array) != length:
                raise DataFormatError(f"section {section_name!r} has {len(array)} samples but section {first!r} "
                                      f"has {length}")
            self._arrays[section_name] = array
        self._length = length
        self.classes = list(classes) if classes is not None else None
        self.name = name

    def __len__(self) -> int:
        return self._length

    @property
    def sections(self) -> Tuple[str, ...]:
        return tuple(self._arrays)

    @property
    def arrays(self) -> Sections:
        """The section arrays themselves (not copies)."""
        return self._arrays

    def sample_spec(self):
        return {name: (a.shape[1:], a.dtype) for name, a in self._arrays.items()}

    def section(self, name: str) -> np.ndarray:
        self._check_section(name)
        return self._arrays[name]

    def batch(self, indices: Any) -> Sections:
        if isinstance(indices, slice):
            return {name: a[indices] for name, a in self._arrays.items()}
        index = as_indices(indices, self._length)
        return {name: a[index] for name, a in self._arrays.items()}


class Subset(Dataset):
    """The samples of ``parent`` at ``indices``, in that order (a view).

    Example:
        >>> import numpy as np
        >>> from sigma.data.datasets import InMemoryDataset, Subset
        >>> d = InMemoryDataset(targets=np.array([5, 6, 7, 8]))
        >>> Subset(d, [3, 1]).section("targets").tolist()
        [8, 6]
    """

    def __init__(self, parent: Dataset, indices: Any):
        self.parent = parent
        self.indices = as_indices(indices, len(parent)).reshape(-1)
        self.classes = parent.classes
        self.name = parent.name

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def sections(self):
        return self.parent.sections

    def sample_spec(self):
        return self.parent.sample_spec()

    def batch(self, indices: Any) -> Sections:
        return self.parent.batch(self.indices[as_indices(indices, len(self.indices), "subset")])

    def section(self, name: str) -> np.ndarray:
        return np.asarray(self.parent.section(name))[self.indices]


class Concatenation(Dataset):
    """Datasets one after another; their sections must match in name, sample shape and dtype.

    ``classes`` is kept when all parts agree on it (or pass ``classes=``).

    Example:
        >>> import numpy as np
        >>> from sigma.data.datasets import Concatenation, InMemoryDataset
        >>> both = Concatenation([InMemoryDataset(targets=np.array([1, 2])), InMemoryDataset(targets=np.array([3]))])
        >>> both.batch([2, 0])["targets"].tolist()
        [3, 1]
    """

    def __init__(self, datasets: Sequence[Dataset], classes: Optional[Sequence[str]] = None):
        datasets = list(datasets)
        if not datasets:
            raise ValueError("concatenation needs at least one dataset")
        spec = datasets[0].sample_spec()
        for i, dataset in enumerate(datasets[1:], start=1):
            other = dataset.sample_spec()
            if list(other) != list(spec):
                raise DataFormatError(f"dataset {i} has sections {list(other)}, dataset 0 has {list(spec)}")
            for name, (shape, dtype) in spec.items():
                if other[name] != (shape, dtype):
                    raise DataFormatError(f"section {name!r}: dataset {i} has samples of shape {other[name][0]} "
                                          f"{other[name][1]}, dataset 0 has {shape} {dtype}; cast or reshape first")
        self.datasets = datasets
        self.offsets = np.cumsum([0] + [len(d) for d in datasets]).astype(np.int64)
        if classes is not None:
            self.classes = list(classes)
        elif all(d.classes == datasets[0].classes for d in datasets):
            self.classes = datasets[0].classes
        self._spec = spec

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def sections(self):
        return tuple(self._spec)

    def sample_spec(self):
        return dict(self._spec)

    def batch(self, indices: Any) -> Sections:
        index = as_indices(indices, len(self), "concatenation").reshape(-1)
        part = np.searchsorted(self.offsets, index, side="right") - 1
        out = {name: np.empty((len(index),) + shape, dtype=dtype) for name, (shape, dtype) in self._spec.items()}
        for p in np.unique(part):
            rows = np.flatnonzero(part == p)
            pieces = self.datasets[p].batch(index[rows] - self.offsets[p])
            for name in out:
                out[name][rows] = pieces[name]
        return out

    def section(self, name: str) -> np.ndarray:
        self._check_section(name)
        return np.concatenate([np.asarray(d.section(name)) for d in self.datasets])


class Relabelled(Dataset):
    """``parent`` with the values of one section (``targets``) replaced.

    ``mapping`` is a number (every sample gets it), a dict (values not in
    it are kept) or a function from the label array to the new one.

    Example:
        >>> import numpy as np
        >>> from sigma.data.datasets import InMemoryDataset, Relabelled
        >>> Relabelled(InMemoryDataset(targets=np.array([0, 1, 2])), {2: 1})["targets"].tolist()
        [0, 1, 1]
    """

    def __init__(self, parent: Dataset, mapping: Any, section: str = "targets",
                 classes: Optional[Sequence[str]] = None):
        parent._check_section(section)
        self.parent, self.mapping, self.label_section = parent, mapping, section
        self.classes = list(classes) if classes is not None else parent.classes
        self.name = parent.name
        if not (callable(mapping) or isinstance(mapping, Mapping) or np.isscalar(mapping)):
            raise TypeError(f"relabel mapping must be a number, a dict or a function, got {type(mapping).__name__}")

    def __len__(self) -> int:
        return len(self.parent)

    @property
    def sections(self):
        return self.parent.sections

    def sample_spec(self):
        return self.parent.sample_spec()

    def batch(self, indices: Any) -> Sections:
        out = dict(self.parent.batch(indices))
        out[self.label_section] = self._relabel(out[self.label_section])
        return out

    def section(self, name: str) -> np.ndarray:
        values = self.parent.section(name)
        return self._relabel(np.asarray(values)) if name == self.label_section else values

    def _relabel(self, labels: np.ndarray) -> np.ndarray:
        if isinstance(self.mapping, Mapping):
            new = labels.copy()
            for old, value in self.mapping.items():
                new[labels == old] = value
        elif callable(self.mapping):
            new = np.asarray(self.mapping(labels))
            if new.shape != labels.shape:
                raise ValueError(f"the relabel function returned shape {new.shape} for labels of shape {labels.shape}")
        else:
            new = np.full_like(labels, self.mapping)
        return new.astype(labels.dtype, copy=False)
