"""The NaN/Inf guard: stop at the first non-finite value, before it reaches a checkpoint.

It runs after the writers and before early stopping, loggers and
checkpoints, so a step whose loss is NaN is never saved; the error names
the key, the step and the last checkpoint written before it.

Example:
    >>> from sigma.training.hooks import NonFiniteGuard
    >>> NonFiniteGuard("train/loss").watch
    nonfinite('train/loss')
"""
from __future__ import annotations

from typing import Optional

from sigma.training.condition import Condition
from sigma.training.criteria import nonfinite
from sigma.training.hooks.base import PRIORITY_EDITOR, Hook
from sigma.training.timesteps import every


class NonFiniteError(FloatingPointError):
    """Training produced NaN or infinity; the message says where."""


def check_parameters_finite(trainer) -> Optional[str]:
    """The name of the first parameter holding NaN or infinity, or ``None``."""
    for name, parameter in trainer.network.named_parameters():
        if not bool(parameter.backend.xp.isfinite(parameter.data).all()):
            return name
    return None


class NonFiniteGuard(Hook):
    """Raises :class:`NonFiniteError` when ``key`` (any key if ``None``) is NaN or infinite.

    ``check_parameters=True`` also checks every parameter (one pass over
    the weights per trigger). A default hook of every trainer, watching
    ``train/loss`` each step.
    """

    priority = PRIORITY_EDITOR + 50

    def __init__(self, key: Optional[str] = None, check_parameters: bool = False,
                 trigger: Optional[Condition] = None, name: Optional[str] = None):
        super().__init__(trigger, name=name)
        self.watch = nonfinite(key)
        self.check_parameters = check_parameters

    def default_trigger(self) -> Condition:
        return every(1, "iteration")

    def __call__(self, trainer) -> None:
        key = self.watch.first_nonfinite_key(trainer.observation)
        if key is not None:
            raise NonFiniteError(_message(trainer, f"{key} is {trainer.observation[key]}"))
        if self.check_parameters:
            name = check_parameters_finite(trainer)
            if name is not None:
                raise NonFiniteError(_message(trainer, f"parameter {name} holds NaN or infinity"))


def _message(trainer, what: str) -> str:
    position = trainer.position
    last = trainer.last_checkpoint
    kept = f"the last good checkpoint is {last}" if last is not None else "no checkpoint had been written"
    return (f"{what} at epoch {position.epoch}, iteration {position.iteration}: training stopped; {kept}. "
            "Lower the learning rate, clip gradients (Trainer(gradient_clip=...)) or check the data for NaN.")
