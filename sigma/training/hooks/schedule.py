"""Learning rates: report the current one, step a schedule.

Example:
    >>> import sigma, sigma.optim
    >>> from sigma.training.hooks import LRSchedule
    >>> w = sigma.zeros(2, requires_grad=True)
    >>> optimiser = sigma.optim.SGD([w], lr=1.0)
    >>> LRSchedule(sigma.optim.StepLR(optimiser, step_size=1, gamma=0.5)).trigger
    every(1, 'epoch')
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from sigma.training.condition import Condition
from sigma.training.hooks.base import PRIORITY_EDITOR, PRIORITY_WRITER, Hook
from sigma.training.timesteps import every


class LearningRate(Hook):
    """Writes ``lr`` (the first parameter group's learning rate; ``lr/group1``, ... for the others)."""

    priority = PRIORITY_WRITER

    def __call__(self, trainer) -> None:
        groups = trainer.optimiser.param_groups
        if "lr" not in groups[0]:
            return
        trainer.observation["lr"] = groups[0]["lr"]
        for index in range(1, len(groups)):
            trainer.observation[f"lr/group{index}"] = groups[index]["lr"]


class LRSchedule(Hook):
    """Steps a learning-rate schedule; by default at the end of every epoch.

    With ``monitor`` (for schedules such as ``ReduceLROnPlateau``), the
    schedule's ``step`` receives that key's value from the observation.
    The schedule's state is saved in checkpoints with the hook's.
    """

    priority = PRIORITY_EDITOR

    def __init__(self, schedule: Any, trigger: Optional[Condition] = None, monitor: Optional[str] = None,
                 name: Optional[str] = None):
        if not hasattr(schedule, "step"):
            raise TypeError(f"LRSchedule: expected a schedule with step(), got {type(schedule).__name__}")
        super().__init__(trigger, name=name)
        self.schedule = schedule
        self.monitor = monitor

    def default_trigger(self) -> Condition:
        return every(1, "epoch")

    def __call__(self, trainer) -> None:
        if self.monitor is None:
            self.schedule.step()
            return
        if self.monitor not in trainer.observation:
            raise KeyError(f"LRSchedule monitors {self.monitor!r}, which is not in the observation at "
                           f"{trainer.moment}; it holds {sorted(trainer.observation)}. Give the schedule a trigger "
                           "at which the value exists (the evaluator's, usually every(1, 'epoch')).")
        self.schedule.step(trainer.observation[self.monitor])

    def state_dict(self) -> Dict[str, Any]:
        return self.schedule.state_dict() if hasattr(self.schedule, "state_dict") else {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if state and hasattr(self.schedule, "load_state_dict"):
            self.schedule.load_state_dict(state)
