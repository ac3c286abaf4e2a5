"""Preprocessors: chainable steps from one dict of sections to another.

A preprocessor is called as ``step(sections, random)`` and returns new
sections (it never changes its input). Steps that learn from data
(``Normalise``, ``OneHot``) are fitted once, on the training split only,
with ``step.fit(train_sections)``, then applied to every split. Random
steps (``Shuffle``, ``RandomCrop``, ``HorizontalFlip``) draw from the numpy
``Generator`` they are given, so iterators can make them reproducible.

Use them eagerly (``dataset.map(pipeline)``) or per batch
(``MinibatchIterator(..., transform=pipeline)``), where random
augmentations differ every epoch.

Example:
    >>> import numpy as np
    >>> from sigma.data.preprocessing import Cast, Normalise, OneHot, Pipeline
    >>> train = {"inputs": np.array([[0, 10], [20, 30]], np.uint8), "targets": np.array([1, 0])}
    >>> pipeline = Pipeline(Cast("inputs", "float32"), Normalise(), OneHot(classes=3)).fit(train)
    >>> out = pipeline(train)
    >>> round(float(out["inputs"].mean()), 6), out["targets"].tolist()
    (0.0, [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from sigma.data.datasets import Dataset
from sigma.data.errors import DataFormatError

Sections = Dict[str, np.ndarray]
_FIT_CHUNK_ROWS = 4096


class Preprocessor:
    """Base class: override ``apply`` (and ``fit`` for steps that learn from data).

    Example:
        >>> import numpy as np
        >>> from sigma.data.preprocessing import Preprocessor
        >>> class Square(Preprocessor):
        ...     def apply(self, sections, random):
        ...         sections["inputs"] = sections["inputs"] ** 2
        ...         return sections
        >>> Square()({"inputs": np.array([2, 3])})["inputs"].tolist()
        [4, 9]
    """

    #: whether the step draws random numbers (iterators then hand it a seeded generator)
    random = False

    def fit(self, data: "Sections | Dataset") -> "Preprocessor":
        """Learn what the step needs from training data (sections or a dataset); returns ``self``."""
        return self

    def apply(self, sections: Sections, random: np.random.Generator) -> Sections:
        raise NotImplementedError

    def __call__(self, sections: Sections, random: Optional[np.random.Generator] = None) -> Sections:
        if self.random and random is None:
            random = np.random.default_rng()
        return self.apply(dict(sections), random)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


def _section(sections: Sections, name: str, step: str) -> np.ndarray:
    if name not in sections:
        raise KeyError(f"{step}: no section {name!r}; the data has {list(sections)}")
    return sections[name]


class Pipeline(Preprocessor):
    """Steps applied in order; ``fit`` fits each on the output of the ones before it.

    Plain functions are accepted as steps (see :class:`UserFunction`).

    Example:
        >>> import numpy as np
        >>> from sigma.data.preprocessing import Cast, Pipeline, Reshape
        >>> steps = Pipeline(Reshape("inputs", (2, 2)), Cast("inputs", "float32"))
        >>> steps({"inputs": np.arange(8).reshape(2, 4)})["inputs"].shape
        (2, 2, 2)
    """

    def __init__(self, *steps: Union[Preprocessor, Callable]):
        self.steps = [s if isinstance(s, Preprocessor) else UserFunction(s) for s in steps]
        self.random = any(s.random for s in self.steps)

    def fit(self, data: "Sections | Dataset") -> "Pipeline":
        sections = _sections_of(data)
        for step in self.steps:
            step.fit(sections)
            sections = step(sections, np.random.default_rng(0))
        return self

    def apply(self, sections, random):
        for step in self.steps:
            sections = step.apply(dict(sections), random)
        return sections


class UserFunction(Preprocessor):
    """A function ``f(sections) -> sections`` (or ``f(sections, random)`` if it draws random numbers).

    Example:
        >>> import numpy as np
        >>> from sigma.data.preprocessing import UserFunction
        >>> invert = UserFunction(lambda s: {**s, "inputs": 255 - s["inputs"]})
        >>> invert({"inputs": np.array([0, 5], np.uint8)})["inputs"].tolist()
        [255, 250]
    """

    def __init__(self, function: Callable, random: Optional[bool] = None):
        if not callable(function):
            raise TypeError(f"UserFunction needs a callable, got {type(function).__name__}")
        self.function = function
        if random is None:
            try:
                random = len(inspect.signature(function).parameters) >= 2
            except (TypeError, ValueError):
                random = False
        self.random = random

    def apply(self, sections, random):
        out = self.function(sections, random) if self.random else self.function(sections)
        if not isinstance(out, dict):
            raise TypeError(f"preprocessing function {self.function!r} returned {type(out).__name__}, "
                            f"expected the dict of sections")
        return out


class Normalise(Preprocessor):
    """``(x - mean) / std`` in float32, with mean and std fitted on training data or given.

    ``per_feature=True`` keeps one mean and std per feature (reducing over
    samples only); ``axes`` picks the reduced axes explicitly, e.g.
    ``(0, 2, 3)`` for per-channel statistics of (N, C, H, W) images. A
    feature with zero spread gets std 1, so it maps to 0, not to NaN.

    Example:
        >>> import numpy as np
        >>> from sigma.data.preprocessing import Normalise
        >>> Normalise(mean=0.0, std=255.0)({"inputs": np.array([0, 255], np.uint8)})["inputs"].tolist()
        [0.0, 1.0]
    """

    def __init__(self, section: str = "inputs", *, per_feature: bool = False,
                 axes: Optional[Sequence[int]] = None, mean: Any = None, std: Any = None, dtype: Any = "float32"):
        self.section = section
        self.axes = tuple(axes) if axes is not None else ((0,) if per_feature else None)
        self.dtype = np.dtype(dtype)
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = None if std is None else np.asarray(std, dtype=np.float64)
        if (self.mean is None) != (self.std is None):
            raise ValueError("give both mean and std, or neither (then call fit)")
        if self.std is not None and np.any(self.std <= 0):
            raise ValueError(f"std must be positive, got {self.std}")

    def fit(self, data: "Sections | Dataset") -> "Normalise":
        """Learn mean and std from a dict of sections or a dataset (read in chunks of rows)."""
        length, shape, dtype = _describe(data, self.section, "Normalise")
        if dtype.kind not in "biuf":
            raise DataFormatError(f"Normalise: section {self.section!r} is {dtype}, not numbers")
        if length == 0:
            raise DataFormatError(f"Normalise: section {self.section!r} is empty; nothing to fit on")
        ndim = len(shape) + 1
        axes = tuple(range(ndim)) if self.axes is None else tuple(a % ndim for a in self.axes)
        if 0 not in axes:
            raise ValueError(f"Normalise axes {self.axes} must include the sample axis 0")
        # Two passes over row chunks in float64: exact enough, and memory stays at one chunk.
        total = np.zeros(_kept_shape((length,) + shape, axes), np.float64)
        count = np.prod([((length,) + shape)[a] for a in axes])
        for start, chunk in _chunks(data, self.section):
            if chunk.dtype.kind == "f" and not np.isfinite(chunk).all():
                raise DataFormatError(f"Normalise: section {self.section!r} holds NaN or infinite values "
                                      f"(first at sample {start + _first_bad_row(chunk)})")
            total += chunk.sum(axis=axes, dtype=np.float64, keepdims=True)
        mean = total / count
        squares = np.zeros_like(total)
        for _, chunk in _chunks(data, self.section):
            squares += np.square(chunk.astype(np.float64) - mean).sum(axis=axes, keepdims=True)
        std = np.sqrt(squares / count)
        std[std == 0] = 1.0
        if self.axes is None:  # one number for the whole section
            self.mean, self.std = mean.reshape(()), std.reshape(())
        else:
            self.mean, self.std = mean[0], std[0]
        return self

    def apply(self, sections, random):
        if self.mean is None:
            raise RuntimeError("Normalise is not fitted: call fit(training sections) first, or give mean and std")
        x = _section(sections, self.section, "Normalise")
        # x * (1/std) + (-mean/std) in place on one float copy: three quick passes, one allocation.
        out = x.astype(self.dtype, copy=True)
        out *= (1.0 / self.std).astype(self.dtype)
        out += (-self.mean / self.std).astype(self.dtype)
        sections[self.section] = out
        return sections


def _kept_shape(shape: Tuple[int, ...], axes: Tuple[int, ...]) -> Tuple[int, ...]:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _describe(data: "Sections | Dataset", name: str, step: str) -> Tuple[int, Tuple[int, ...], np.dtype]:
    """Length, sample shape and dtype of one section of a dict of arrays or a dataset."""
    if isinstance(data, Dataset):
        data._check_section(name)
        shape, dtype = data.sample_spec()[name]
        return len(data), tuple(shape), np.dtype(dtype)
    x = _section(data, name, step)
    return len(x), x.shape[1:], x.dtype


def _chunks(data: "Sections | Dataset", name: str):
    """(first row, rows) of one section, a chunk at a time (datasets are never read whole)."""
    if isinstance(data, Dataset):
        for start in range(0, len(data), _FIT_CHUNK_ROWS):
            yield start, data.batch(slice(start, start + _FIT_CHUNK_ROWS))[name]
    else:
        x = data[name]
        for start in range(0, len(x), _FIT_CHUNK_ROWS):
            yield start, x[start:start + _FIT_CHUNK_ROWS]


def _sections_of(data: "Sections | Dataset") -> Sections:
    return data.batch(slice(None)) if isinstance(data, Dataset) else data


def _first_bad_row(x: np.ndarray) -> int:
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    return int(np.flatnonzero(bad)[0])


class OneHot(Preprocessor):
    """Integer labels -> one-hot rows (float32); ``classes`` is the number of classes (fitted if not given).

    Example:
        >>> import numpy as np
        >>> from sigma.data.preprocessing import OneHot
        >>> OneHot(classes=3)({"targets": np.array([2, 0])})["targets"].tolist()
        [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """

    def __init__(self, section: str = "targets", classes: Optional[int] = None, dtype: Any = "float32"):
        self.section, self.classes, self.dtype = section, classes, np.dtype(dtype)

    def fit(self, data: "Sections | Dataset") -> "OneHot":
        if self.classes is None:
            sections = {self.section: data.section(self.section)} if isinstance(data, Dataset) else data
            labels = self._labels(sections)
            self.classes = int(labels.max()) + 1 if labels.size else 0
        return self

    def _labels(self, sections) -> np.ndarray:
        labels = _section(sections, self.section, "OneHot")
        if labels.dtype.kind not in "iu":
            raise DataFormatError(f"OneHot: section {self.section!r} must hold integer labels, got {labels.dtype}")
        return labels

    def apply(self, sections, random):
        if self.classes is None:
            raise RuntimeError("OneHot does not know the number of classes: pass classes= or call fit first")
        labels = self._labels(sections)
        if labels.size and (labels.min() < 0 or labels.max() >= self.classes):
            bad = labels[(labels < 0) | (labels >= self.classes)].reshape(-1)[0]
            raise DataFormatError(f"OneHot: label {bad} is outside 0..{self.classes - 1}")
        out = np.zeros(labels.shape + (self.classes,), dtype=self.dtype)
        np.put_along_axis(out, labels[..., None].astype(np.int64), 1, axis=-1)
        sections[self.section] = out
        return sections


class Shuffle(Preprocessor):
    """All sections permuted by one random order (seeded through the generator given).

    Example:
        >>> import numpy as np
        >>> from sigma.data.preprocessing import Shuffle
        >>> out = Shuffle()({"inputs": np.arange(4) * 10, "targets": np.arange(4)}, np.random.default_rng(0))
        >>> bool((out["inputs"] == out["targets"] * 10).all())
        True
    """

    random = True

    def apply(self, sections, random):
        lengths = {len(v) for v in sections.values()}
        if len(lengths) > 1:
            raise DataFormatError(f"Shuffle: sections have different lengths {sorted(lengths)}")
        order = random.permutation(lengths.pop()) if lengths else None
        return {name: values[order] for name, values in sections.items()}


class Cast(Preprocessor):
    """A section converted to ``dtype``.

    Example:
        >>> import numpy as np
        >>> from sigma.data.preprocessing import Cast
        >>> Cast("inputs", "float32")({"inputs": np.array([1, 2], np.uint8)})["inputs"].dtype
        dtype('float32')
    """

    def __init__(self, section: str = "inputs", dtype: Any = "float32"):
        self.section, self.dtype = section, np.dtype(dtype)

    def apply(self, sections, random):
        sections[self.section] = _section(sections, self.section, "Cast").astype(self.dtype)
        return sections


class Reshape(Preprocessor):
    """Each sample of a section reshaped; the sample axis is kept.

    Example:
        >>> import numpy as np
        >>> from sigma.data.preprocessing import Reshape
        >>> Reshape("inputs", (1, 28, 28))({"inputs": np.zeros((5, 784))})["inputs"].shape
        (5, 1, 28, 28)
    """

    def __init__(self, section: str = "inputs", shape: Sequence[int] = (-1,)):
        self.section, self.shape = section, tuple(int(n) for n in shape)

    def apply(self, sections, random):
        x = _section(sections, self.section, "Reshape")
        try:
            sections[self.section] = x.reshape((len(x),) + self.shape)
        except ValueError:
            raise DataFormatError(f"Reshape: samples of shape {x.shape[1:]} cannot become {self.shape}") from None
        return sections


class Permute(Preprocessor):
    """The axes of each sample reordered: ``(2, 0, 1)`` turns height-width-channel images into channels first.

    Example:
        >>> import numpy as np
        >>> from sigma.data.preprocessing import Permute
        >>> Permute("inputs", (2, 0, 1))({"inputs": np.zeros((5, 32, 32, 3))})["inputs"].shape
        (5, 3, 32, 32)
    """

    def __init__(self, section: str = "inputs", axes: Sequence[int] = ()):
        self.section, self.axes = section, tuple(int(a) for a in axes)

    def apply(self, sections, random):
        x = _section(sections, self.section, "Permute")
        if sorted(self.axes) != list(range(x.ndim - 1)):
            raise DataFormatError(f"Permute: axes {self.axes} are not a permutation of a sample's "
                                  f"{x.ndim - 1} axes (samples of shape {x.shape[1:]})")
        sections[self.section] = x.transpose((0,) + tuple(a + 1 for a in self.axes))
        return sections


class RandomCrop(Preprocessor):
    """A random ``size`` window of each image (..., H, W) after zero ``padding`` on every side.

    Example:
        >>> import numpy as np
        >>> from sigma.data.preprocessing import RandomCrop
        >>> x = np.ones((2, 1, 4, 4), np.float32)
        >>> RandomCrop(size=4, padding=1)({"inputs": x}, np.random.default_rng(0))["inputs"].shape
        (2, 1, 4, 4)
    """

    random = True

    def __init__(self, section: str = "inputs", size: Union[int, Tuple[int, int]] = 0, padding: int = 0):
        self.section = section
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.padding = int(padding)
        if min(self.size) < 1 or self.padding < 0:
            raise ValueError(f"RandomCrop needs a positive size and non-negative padding, got size={size}, "
                             f"padding={padding}")

    def apply(self, sections, random):
        x = _section(sections, self.section, "RandomCrop")
        if x.ndim < 3:
            raise DataFormatError(f"RandomCrop: section {self.section!r} of shape {x.shape} is not a batch of images")
        p = self.padding
        padded = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(p, p), (p, p)]) if p else x
        height, width = padded.shape[-2:]
        h, w = self.size
        if h > height or w > width:
            raise DataFormatError(f"RandomCrop: window {h}x{w} is larger than the padded images {height}x{width}")
        n = len(x)
        top = random.integers(0, height - h + 1, n)
        left = random.integers(0, width - w + 1, n)
        rows = top[:, None] + np.arange(h)            # (n, h)
        columns = left[:, None] + np.arange(w)        # (n, w)
        moved = np.moveaxis(padded, (-2, -1), (1, 2))  # (n, H, W, ...)
        crops = moved[np.arange(n)[:, None, None], rows[:, :, None], columns[:, None, :]]
        sections[self.section] = np.ascontiguousarray(np.moveaxis(crops, (1, 2), (-2, -1)))
        return sections


class HorizontalFlip(Preprocessor):
    """Each image (..., H, W) mirrored left-right with ``probability``.

    Example:
        >>> import numpy as np
        >>> from sigma.data.preprocessing import HorizontalFlip
        >>> image = np.array([[[[1, 2, 3]]]])
        >>> HorizontalFlip(probability=1.0)({"inputs": image}, np.random.default_rng(0))["inputs"].tolist()
        [[[[3, 2, 1]]]]
    """

    random = True

    def __init__(self, section: str = "inputs", probability: float = 0.5):
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be within [0, 1], got {probability}")
        self.section, self.probability = section, float(probability)

    def apply(self, sections, random):
        x = _section(sections, self.section, "HorizontalFlip")
        if x.ndim < 3:
            raise DataFormatError(f"HorizontalFlip: section {self.section!r} of shape {x.shape} is not a batch of "
                                  f"images")
        flip = random.random(len(x)) < self.probability
        out = x.copy()
        out[flip] = x[flip][..., ::-1]
        sections[self.section] = out
        return sections
