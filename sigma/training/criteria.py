"""Criteria: conditions on the values in this step's observation.

Each criterion reads one key of the observation (``"validation/accuracy"``,
``"train/loss"``, ...). A criterion asked about a moment whose observation
lacks its key answers false and remembers nothing, so
``best("validation/accuracy")`` only counts the moments when the evaluator
ran.

Example:
    >>> from sigma.training import best, patience
    >>> from sigma.training.position import Moment, Position
    >>> improved, stalled = best("validation/loss", "min"), patience(2, "validation/loss", "min")
    >>> losses = [0.9, 0.7, 0.8, 0.75, 0.6]
    >>> [improved(Moment("iteration", Position(), observation={"validation/loss": v})) for v in losses]
    [True, True, False, False, True]
    >>> [stalled(Moment("iteration", Position(), observation={"validation/loss": v})) for v in losses]
    [False, False, False, True, False]
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional

from sigma.training.condition import Condition
from sigma.training.position import Moment

_MODES = ("min", "max")


def _mode(mode: str, caller: str) -> str:
    if mode not in _MODES:
        raise ValueError(f"{caller}: mode must be 'min' or 'max', got {mode!r}")
    return mode


def _key(key: Any, caller: str) -> str:
    if not isinstance(key, str) or not key:
        raise TypeError(f"{caller}: key must be an observation name such as 'validation/accuracy', got {key!r}")
    return key


class threshold(Condition):
    """True while the value of ``key`` is above ``above`` or below ``below`` (give exactly one).

    Example:
        >>> from sigma.training import threshold
        >>> from sigma.training.position import Moment, Position
        >>> threshold("validation/accuracy", above=0.97)(
        ...     Moment("iteration", Position(), observation={"validation/accuracy": 0.98}))
        True
    """

    def __init__(self, key: str, above: Optional[float] = None, below: Optional[float] = None):
        self.key = _key(key, "threshold")
        if (above is None) == (below is None):
            raise ValueError(f"threshold({key!r}): give exactly one of above= or below=, "
                             f"got above={above!r}, below={below!r}")
        self.above, self.below = above, below

    def __call__(self, moment: Moment) -> bool:
        value = moment.observation.get(self.key)
        if value is None:
            return False
        return value > self.above if self.above is not None else value < self.below

    def __repr__(self) -> str:
        side = f"above={self.above!r}" if self.above is not None else f"below={self.below!r}"
        return f"threshold({self.key!r}, {side})"


class best(Condition):
    """True when ``key`` is better than every earlier value by more than ``min_delta``.

    ``mode="min"`` means lower is better (losses), ``"max"`` higher (accuracy).
    The first value seen is the best so far.
    """

    def __init__(self, key: str, mode: str = "min", min_delta: float = 0.0):
        self.key = _key(key, "best")
        self.mode = _mode(mode, "best")
        if min_delta < 0:
            raise ValueError(f"best({key!r}): min_delta must be >= 0, got {min_delta!r}")
        self.min_delta = float(min_delta)
        self.best: Optional[float] = None

    def improves(self, value: float) -> bool:
        """Whether ``value`` beats the best so far (without remembering it)."""
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def __call__(self, moment: Moment) -> bool:
        value = moment.observation.get(self.key)
        if value is None:
            return False
        if self.improves(value):
            self.best = float(value)
            return True
        return False

    def state_dict(self) -> Dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.best = state.get("best")

    def __repr__(self) -> str:
        delta = f", min_delta={self.min_delta!r}" if self.min_delta else ""
        return f"best({self.key!r}, {self.mode!r}{delta})"


class patience(Condition):
    """True once ``key`` has not improved (see :class:`best`) for ``n`` evaluations in a row.

    Stays true for every further evaluation without improvement; an
    improvement starts the count again.
    """

    def __init__(self, n: int, key: str, mode: str = "min", min_delta: float = 0.0):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"patience: n must be a whole number >= 1, got {n!r}")
        self.n = n
        self.tracker = best(key, mode, min_delta)
        self.waited = 0

    @property
    def key(self) -> str:
        return self.tracker.key

    def __call__(self, moment: Moment) -> bool:
        if self.tracker.key not in moment.observation:
            return False
        if self.tracker(moment):
            self.waited = 0
            return False
        self.waited += 1
        return self.waited >= self.n

    def state_dict(self) -> Dict[str, Any]:
        return {"waited": self.waited, "best": self.tracker.best}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.waited = int(state.get("waited", 0))
        self.tracker.best = state.get("best")

    def __repr__(self) -> str:
        delta = f", min_delta={self.tracker.min_delta!r}" if self.tracker.min_delta else ""
        return f"patience({self.n}, {self.tracker.key!r}, {self.tracker.mode!r}{delta})"


class nonfinite(Condition):
    """True when ``key`` (or, with no key, any value in the observation) is NaN or infinite.

    Example:
        >>> from sigma.training import nonfinite
        >>> from sigma.training.position import Moment, Position
        >>> nonfinite()(Moment("iteration", Position(), observation={"train/loss": float("nan")}))
        True
    """

    def __init__(self, key: Optional[str] = None):
        self.key = None if key is None else _key(key, "nonfinite")

    def first_nonfinite_key(self, observation) -> Optional[str]:
        """The first watched key whose value is NaN or infinite, or ``None``."""
        if self.key is not None:
            value = observation.get(self.key)
            return self.key if value is not None and not math.isfinite(value) else None
        for key, value in observation.items():
            if not math.isfinite(value):
                return key
        return None

    def __call__(self, moment: Moment) -> bool:
        return self.first_nonfinite_key(moment.observation) is not None

    def __repr__(self) -> str:
        return "nonfinite()" if self.key is None else f"nonfinite({self.key!r})"
