"""``Hook``: code the trainer runs at moments chosen by a condition, in priority order.

A hook has a ``trigger`` (a :class:`~sigma.training.condition.Condition`,
usually a time step such as ``every(1, "epoch")``) and a ``priority``.
When a moment comes (a step finished, the run started, ...), the trainer
goes through its hooks from the highest priority to the lowest, asks each
hook's trigger, and calls the hook if it is true. Writers (metrics) have
the highest priority so that editors (early stopping, guards) and readers
(loggers, progress bar, checkpoints, the GUI feed) see their values in the
same step. A trigger is asked only when its hook's turn comes, so a
criterion on ``validation/accuracy`` sees the value the evaluator just wrote.

Example:
    >>> from sigma.training import every
    >>> from sigma.training.hooks import Hook, PRIORITY_READER
    >>> class PrintLoss(Hook):
    ...     priority = PRIORITY_READER
    ...     def default_trigger(self):
    ...         return every(100, "iterations")
    ...     def __call__(self, trainer):
    ...         print(trainer.observation["train/loss"])
    >>> PrintLoss().trigger
    every(100, 'iteration')
"""
from __future__ import annotations

import re
from typing import Any, Dict, Optional

from sigma.training.condition import Condition
from sigma.training.timesteps import every

PRIORITY_WRITER = 300  # puts values into the observation: evaluators, timers, statistics
PRIORITY_EDITOR = 200  # reads values and changes training: guards, early stopping, schedules
PRIORITY_READER = 100  # reads values only: loggers, progress bar, checkpoints, the GUI feed


def _snake_case(name: str) -> str:
    """``CSVLogger`` -> ``csv_logger``, ``NonFiniteGuard`` -> ``non_finite_guard``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


class Hook:
    """Base class of trainer hooks.

    Subclasses implement ``__call__(trainer)`` and may override
    ``default_trigger``, ``setup``/``teardown`` (called at the start and
    end of every ``trainer.run``) and ``state_dict``/``load_state_dict``
    (saved in checkpoints under the hook's ``name``, which must be unique
    within a trainer). ``writes_files`` hooks are skipped in
    ``fast_dev_run`` mode.
    """

    priority: int = PRIORITY_READER
    writes_files: bool = False

    def __init__(self, trigger: Optional[Condition] = None, priority: Optional[int] = None,
                 name: Optional[str] = None):
        if trigger is not None and not isinstance(trigger, Condition):
            raise TypeError(f"{type(self).__name__}: trigger must be a condition such as every(1, 'epoch'), "
                            f"got {type(trigger).__name__}")
        self.trigger: Condition = trigger if trigger is not None else self.default_trigger()
        if priority is not None:
            self.priority = int(priority)
        self.name: str = name or _snake_case(type(self).__name__)

    def default_trigger(self) -> Condition:
        return every(1, "iteration")

    def setup(self, trainer) -> None:
        """Called when ``trainer.run`` starts, before the ``start`` moment."""

    def __call__(self, trainer) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define __call__(trainer)")

    def teardown(self, trainer) -> None:
        """Called when ``trainer.run`` ends, also after an error."""

    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, trigger={self.trigger!r}, priority={self.priority})"
