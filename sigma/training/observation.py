"""Observations: the numbers one training step produces, and their averages between reports.

Each step the trainer starts a fresh :class:`Observation`. Writers (the
worker, evaluators, timers) put numbers in under keys such as
``"train/loss"`` or ``"validation/accuracy"``; readers (progress bar,
loggers, the GUI feed) read the step's values directly or, through an
:class:`Averager`, the mean of each key over the steps since they last
reported. Every value is stored as a Python float the moment it is written.

Example:
    >>> from sigma.training.observation import Averager, Observation
    >>> averager = Averager()
    >>> for loss in (1.0, 2.0, 6.0):
    ...     step = Observation([averager])
    ...     step["train/loss"] = loss
    >>> averager.take()
    {'train/loss': 3.0}
    >>> averager.take()
    {}
"""
from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Dict, Iterable, Iterator, List, Optional


def as_number(key: str, value: Any) -> float:
    """``value`` as a float; a one-value tensor or array is read out, anything else is an error."""
    if isinstance(value, float):
        return value
    if isinstance(value, (int, bool)):
        return float(value)
    item = getattr(value, "item", None)
    size = getattr(value, "size", 1)
    if item is not None and size == 1:
        return float(item())
    if item is not None:
        raise ValueError(f"observation {key!r}: expected one number, got an array of shape "
                         f"{getattr(value, 'shape', '?')}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"observation {key!r}: expected a number, got {type(value).__name__}") from None


class Averager:
    """Averages the values written to observations it is attached to, until ``take()`` returns the means.

    Keys written at only some steps (an evaluator's) average over the steps
    that had them. Means are kept as running means, so a constant (a
    learning rate) averages to exactly itself.
    """

    __slots__ = ("means", "counts")

    def __init__(self):
        self.means: Dict[str, float] = {}
        self.counts: Dict[str, int] = {}

    def add(self, key: str, value: float, replaced: Optional[float] = None) -> None:
        if replaced is None or key not in self.counts:  # (a take() between two writes starts afresh)
            count = self.counts.get(key, 0) + 1
            self.counts[key] = count
            mean = self.means.get(key, 0.0)
            self.means[key] = mean + (value - mean) / count
        else:  # the same key written twice in one step counts once, with its last value
            self.means[key] += (value - replaced) / self.counts[key]

    def peek(self) -> Dict[str, float]:
        """The means so far, without starting a new window."""
        return dict(self.means)

    def take(self) -> Dict[str, float]:
        """The means since the last ``take()``; starts a new window."""
        means = self.means
        self.means, self.counts = {}, {}
        return means

    def state_dict(self) -> Dict[str, Any]:
        return {"means": dict(self.means), "counts": dict(self.counts)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.means = {key: float(value) for key, value in state.get("means", {}).items()}
        self.counts = {key: int(value) for key, value in state.get("counts", {}).items()}


class Observation(MutableMapping):
    """One step's values by key; each write also goes to the attached averagers."""

    __slots__ = ("_values", "_averagers")

    def __init__(self, averagers: Iterable[Averager] = ()):
        self._values: Dict[str, float] = {}
        self._averagers: List[Averager] = list(averagers)

    def __setitem__(self, key: str, value: Any) -> None:
        number = as_number(key, value)
        replaced = self._values.get(key)
        self._values[key] = number
        for averager in self._averagers:
            averager.add(key, number, replaced)

    def __getitem__(self, key: str) -> float:
        try:
            return self._values[key]
        except KeyError:
            raise KeyError(f"{key!r} is not in this step's observation; it holds {sorted(self._values)}") from None

    def __delitem__(self, key: str) -> None:
        raise TypeError("observations are append-only within a step: a value, once reported, stays reported")

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Observation({self._values!r})"
