"""Evaluators: loss and top-k accuracy of the network on named data, written to the observation.

Example:
    >>> from sigma.training.hooks import Evaluator
    >>> Evaluator("test", data=[], top_k=(1, 3)).keys
    ['test/loss', 'test/accuracy', 'test/top3_accuracy']
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Optional, Sequence

from sigma.training.condition import Condition
from sigma.training.hooks.base import PRIORITY_WRITER, Hook
from sigma.training.timesteps import every


class Evaluator(Hook):
    """Evaluates on ``data`` (by default at the end of every epoch) and writes ``<name>/loss``,
    ``<name>/accuracy`` and ``<name>/top{k}_accuracy``.

    Accuracies are written only for classification (outputs of shape
    (N, C) with integer or one-hot targets). The network is put in
    evaluation mode (no dropout) and back.
    """

    priority = PRIORITY_WRITER

    def __init__(self, name: str, data: Iterable, trigger: Optional[Condition] = None,
                 top_k: Sequence[int] = (1,), hook_name: Optional[str] = None):
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"Evaluator: name must be a word such as 'validation' (no '/'), got {name!r}")
        top_k = tuple(int(k) for k in top_k)
        if not top_k or min(top_k) < 1:
            raise ValueError(f"Evaluator: top_k must list whole numbers >= 1, got {top_k!r}")
        super().__init__(trigger, name=hook_name or f"evaluate_{name}")
        self.data_name = name
        self.data = data
        self.top_k = top_k

    @property
    def keys(self):
        """The observation keys this evaluator writes (accuracies only for classification)."""
        return [f"{self.data_name}/loss"] + [
            f"{self.data_name}/accuracy" if k == 1 else f"{self.data_name}/top{k}_accuracy" for k in self.top_k]

    def default_trigger(self) -> Condition:
        return every(1, "epoch")

    def __call__(self, trainer) -> None:
        for key, value in trainer.evaluate(self.data, self.top_k).items():
            trainer.observation[f"{self.data_name}/{key}"] = value

    def state_dict(self) -> Dict[str, Any]:
        return {"data": self.data.state_dict()} if hasattr(self.data, "state_dict") else {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if "data" in state and hasattr(self.data, "load_state_dict"):
            self.data.load_state_dict(state["data"])
