"""Time steps: conditions on where training stands (``every``, ``at``, ``on``).

Units are ``"iteration"`` (a training step) and ``"epoch"`` (one pass over
the training data); plurals are accepted. Epoch counts may be fractional
(``every(0.25, "epoch")``) when the training data has a length.

Example:
    >>> from sigma.training import every, at, on
    >>> from sigma.training.position import Moment, Position
    >>> step = lambda i: Moment("iteration", Position(epoch=i // 4, iteration=i, iteration_in_epoch=i % 4,
    ...                                                batches_per_epoch=4), epoch_ended=(i % 4 == 0))
    >>> [i for i in range(1, 13) if every(0.5, "epoch")(step(i))]
    [2, 4, 6, 8, 10, 12]
    >>> [i for i in range(1, 13) if at(2, "epochs")(step(i))]
    [8]
    >>> on("start")(Moment("start", Position()))
    True
"""
from __future__ import annotations

import math
from fractions import Fraction

from sigma.training.condition import Condition
from sigma.training.position import EVENTS, Moment

_UNITS = {"iteration": "iteration", "iterations": "iteration", "epoch": "epoch", "epochs": "epoch"}


def _unit(unit: str, caller: str) -> str:
    if unit not in _UNITS:
        raise ValueError(f"{caller}: unit must be 'iteration' or 'epoch' (or their plurals), got {unit!r}")
    return _UNITS[unit]


def _count(n, unit: str, caller: str) -> Fraction:
    if isinstance(n, bool) or not isinstance(n, (int, float, Fraction)) or not math.isfinite(n) or n <= 0:
        raise ValueError(f"{caller}: n must be a positive number, got {n!r}")
    if unit == "iteration" and n != int(n):
        raise ValueError(f"{caller}: iterations are whole steps, got {n!r}")
    # Fraction(str(0.1)) is exactly 1/10, so every(0.1, "epoch") fires after 10 equal slices.
    return Fraction(str(n)) if isinstance(n, float) else Fraction(n)


def _needs_length(moment: Moment, caller: str) -> None:
    if not moment.position.batches_per_epoch:
        raise ValueError(f"{caller}: fractional epochs need the number of batches per epoch, "
                         "but the training data has no len()")


class every(Condition):
    """True each time ``n`` more iterations or epochs have passed.

    Example:
        >>> from sigma.training import every
        >>> every(100, "iterations")
        every(100, 'iteration')
    """

    def __init__(self, n: "int | float", unit: str = "iteration"):
        self.unit = _unit(unit, "every")
        self.n = _count(n, self.unit, "every")
        self._whole = int(self.n) if self.n.denominator == 1 else None  # plain ints on the per-step path

    def __call__(self, moment: Moment) -> bool:
        if self.unit == "iteration":
            return moment.event == "iteration" and moment.iteration % self._whole == 0
        if self._whole is not None:
            return moment.epoch_ended and moment.epoch % self._whole == 0
        if moment.event not in ("iteration", "epoch"):
            return False
        _needs_length(moment, "every")
        before = moment.previous_epoch_detail()
        now = moment.position.exact_epoch_detail()
        return math.floor(now / self.n) > math.floor(before / self.n)

    def __repr__(self) -> str:
        return f"every({_number(self.n)}, {self.unit!r})"


class at(Condition):
    """True once, when exactly ``n`` iterations or epochs (counted from the run's start) have passed.

    Example:
        >>> from sigma.training import at
        >>> at(1.5, "epoch")
        at(1.5, 'epoch')
    """

    def __init__(self, n: "int | float", unit: str = "iteration"):
        self.unit = _unit(unit, "at")
        self.n = _count(n, self.unit, "at")
        self._whole = int(self.n) if self.n.denominator == 1 else None

    def __call__(self, moment: Moment) -> bool:
        if self.unit == "iteration":
            return moment.event == "iteration" and moment.iteration == self._whole
        if self._whole is not None:
            return moment.epoch_ended and moment.epoch == self._whole
        if moment.event not in ("iteration", "epoch"):
            return False
        _needs_length(moment, "at")
        return moment.previous_epoch_detail() < self.n <= moment.position.exact_epoch_detail()

    def __repr__(self) -> str:
        return f"at({_number(self.n)}, {self.unit!r})"


class on(Condition):
    """True at a named event: ``"start"``, ``"stop"``, ``"pause"``, ``"resume"``, ``"error"``,
    ``"iteration"`` (every step) or ``"epoch"`` (every epoch end).

    Example:
        >>> from sigma.training import on
        >>> on("stop") | on("error")
        (on('stop') | on('error'))
    """

    def __init__(self, event: str):
        if event not in EVENTS:
            raise ValueError(f"on: unknown event {event!r}; events are {', '.join(EVENTS)}")
        self.event = event

    def __call__(self, moment: Moment) -> bool:
        if self.event == "epoch":
            return moment.epoch_ended
        return moment.event == self.event

    def __repr__(self) -> str:
        return f"on({self.event!r})"


def _number(n: Fraction) -> str:
    return str(n.numerator) if n.denominator == 1 else repr(float(n))
