"""The lambda hook: any function of the trainer, on any trigger.

Example:
    >>> from sigma.training import every
    >>> from sigma.training.hooks import Lambda
    >>> seen = []
    >>> hook = Lambda(lambda trainer: seen.append(trainer.position.iteration), every(2, "iterations"))
    >>> hook.name, hook.trigger
    ('lambda', every(2, 'iteration'))
"""
from __future__ import annotations

from typing import Callable, Optional

from sigma.training.condition import Condition
from sigma.training.hooks.base import PRIORITY_READER, Hook


class Lambda(Hook):
    """Calls ``function(trainer)`` whenever ``trigger`` is true (every step by default).

    Give a ``priority`` of ``PRIORITY_WRITER`` if the function writes into
    ``trainer.observation`` so loggers see its values in the same step.
    """

    def __init__(self, function: Callable, trigger: Optional[Condition] = None, priority: int = PRIORITY_READER,
                 name: Optional[str] = None):
        if not callable(function):
            raise TypeError(f"Lambda: expected a function of the trainer, got {type(function).__name__}")
        super().__init__(trigger, priority, name or "lambda")
        self.function = function

    def __call__(self, trainer) -> None:
        self.function(trainer)
