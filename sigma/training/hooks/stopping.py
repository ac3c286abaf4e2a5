"""Early stopping: end the run when a monitored value has stopped improving.

Example:
    >>> from sigma.training.hooks import EarlyStopping
    >>> EarlyStopping("validation/accuracy", patience=3, mode="max").trigger
    every(1, 'epoch')
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from sigma.training.condition import Condition
from sigma.training.criteria import patience as patience_criterion
from sigma.training.hooks.base import PRIORITY_EDITOR, Hook
from sigma.training.timesteps import every


class EarlyStopping(Hook):
    """Stops training once ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    checks in a row (checked at ``trigger``, by default every epoch).

    ``mode="min"`` for losses, ``"max"`` for accuracies. With
    ``restore_best`` the network gets back the weights it had at the best
    check when the run stops (kept in memory and in checkpoints).
    """

    priority = PRIORITY_EDITOR

    def __init__(self, monitor: str = "validation/loss", patience: int = 3, min_delta: float = 0.0,
                 mode: str = "min", restore_best: bool = True, trigger: Optional[Condition] = None,
                 name: Optional[str] = None):
        super().__init__(trigger, name=name)
        self.criterion = patience_criterion(patience, monitor, mode, min_delta)
        self.monitor = monitor
        self.restore_best = restore_best
        self.best_weights: Optional[Dict[str, np.ndarray]] = None
        self.best_iteration: Optional[int] = None
        self.stopped_at: Optional[int] = None

    @property
    def best(self) -> Optional[float]:
        """The best value seen so far."""
        return self.criterion.tracker.best

    def default_trigger(self) -> Condition:
        return every(1, "epoch")

    def __call__(self, trainer) -> None:
        if self.monitor not in trainer.observation:
            raise KeyError(f"EarlyStopping monitors {self.monitor!r}, which is not in the observation at "
                           f"{trainer.moment}; it holds {sorted(trainer.observation)}. Evaluate at this trigger "
                           "(Trainer(evaluation={...}) evaluates every epoch) or monitor another key.")
        before = self.criterion.tracker.best
        stalled = self.criterion(trainer.moment)
        if self.criterion.tracker.best != before:
            self.best_iteration = trainer.position.iteration
            if self.restore_best:
                self.best_weights = {name: tensor.backend.to_host(tensor.data).copy()
                                     for name, tensor in trainer.network.state_dict().items()}
        if stalled:
            self.stopped_at = trainer.position.iteration
            reason = (f"early stopping: {self.monitor} has not improved on {self.best:.6g} (iteration "
                      f"{self.best_iteration}) for {self.criterion.n} checks")
            if self.restore_best and self.best_weights is not None:
                trainer.network.load_state_dict(self.best_weights)
                reason += "; restored the best weights"
            trainer.stop(reason)

    def state_dict(self) -> Dict[str, Any]:
        state: Dict[str, Any] = {"criterion": self.criterion.state_dict(), "best_iteration": self.best_iteration,
                                 "stopped_at": self.stopped_at}
        if self.best_weights is not None:
            state["best_weights"] = self.best_weights
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.criterion.load_state_dict(state.get("criterion", {}))
        self.best_iteration = state.get("best_iteration")
        self.stopped_at = state.get("stopped_at")
        self.best_weights = state.get("best_weights")
