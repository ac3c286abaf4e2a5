"""``Condition``: something true or false at a moment of training, composable with ``&``, ``|``, ``~``.

Time steps (:mod:`sigma.training.timesteps`) and criteria
(:mod:`sigma.training.criteria`) are both conditions, so they mix freely:
``every(1, "epoch") & best("validation/accuracy", "max")`` is true at the end
of each epoch whose validation accuracy is the best so far.

``a & b`` asks ``b`` only when ``a`` is true, and ``a | b`` asks ``b`` only
when ``a`` is false. This matters for conditions that keep state (``best``,
``patience``): they count only the moments they are asked about, so
``every(1, "epoch") & patience(3, "validation/loss")`` counts epochs.

Example:
    >>> from sigma.training import every, threshold
    >>> from sigma.training.position import Moment, Position
    >>> condition = every(10, "iterations") & ~threshold("train/loss", below=0.1)
    >>> condition(Moment("iteration", Position(iteration=10), observation={"train/loss": 0.5}))
    True
    >>> condition(Moment("iteration", Position(iteration=10), observation={"train/loss": 0.05}))
    False
"""
from __future__ import annotations

from typing import Any, Dict

from sigma.training.position import Moment


class Condition:
    """Base class: subclasses implement ``__call__(moment) -> bool``.

    Conditions that remember something (the best value so far) override
    ``state_dict``/``load_state_dict`` so checkpoints restore them.
    """

    def __call__(self, moment: Moment) -> bool:
        raise NotImplementedError(f"{type(self).__name__} does not define __call__(moment)")

    def __and__(self, other: "Condition") -> "Condition":
        return AllOf(self, _checked(other, "&"))

    def __or__(self, other: "Condition") -> "Condition":
        return AnyOf(self, _checked(other, "|"))

    def __invert__(self) -> "Condition":
        return Not(self)

    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        pass


def _checked(other: Any, operator: str) -> Condition:
    if not isinstance(other, Condition):
        raise TypeError(f"conditions combine with {operator} only with other conditions "
                        f"(every, at, on, threshold, best, patience, nonfinite), got {type(other).__name__}")
    return other


class _Composite(Condition):
    def __init__(self, *parts: Condition):
        self.parts = parts

    def state_dict(self) -> Dict[str, Any]:
        return {str(i): part.state_dict() for i, part in enumerate(self.parts)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        for i, part in enumerate(self.parts):
            part.load_state_dict(state.get(str(i), {}))


class AllOf(_Composite):
    """True when every part is true; stops asking at the first false one."""

    def __call__(self, moment: Moment) -> bool:
        return all(part(moment) for part in self.parts)

    def __repr__(self) -> str:
        return "(" + " & ".join(map(repr, self.parts)) + ")"


class AnyOf(_Composite):
    """True when some part is true; stops asking at the first true one."""

    def __call__(self, moment: Moment) -> bool:
        return any(part(moment) for part in self.parts)

    def __repr__(self) -> str:
        return "(" + " | ".join(map(repr, self.parts)) + ")"


class Not(_Composite):
    """True when its part is false."""

    def __init__(self, part: Condition):
        super().__init__(part)

    def __call__(self, moment: Moment) -> bool:
        return not self.parts[0](moment)

    def __repr__(self) -> str:
        return f"~{self.parts[0]!r}"


class Always(Condition):
    """True at every moment it is asked about."""

    def __call__(self, moment: Moment) -> bool:
        return True

    def __repr__(self) -> str:
        return "always()"


class Never(Condition):
    """Never true: for hooks that only run when called directly."""

    def __call__(self, moment: Moment) -> bool:
        return False

    def __repr__(self) -> str:
        return "never()"
