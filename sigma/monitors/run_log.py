"""The run directory's metric feed: averaged observations into ``events.jsonl`` as ``"metrics"`` records.

The trainer adds this hook when it has a run directory; the GUI and
``sigma runs`` read the records (``{"kind": "metrics", "epoch", "iteration",
"time", "values": {...}}``) live or afterwards.

Example:
    >>> from sigma.monitors import RunLog
    >>> RunLog().trigger
    (every(1, 'iteration') | on('stop'))
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from sigma.training.condition import Condition
from sigma.training.hooks.base import PRIORITY_READER, Hook
from sigma.training.observation import Averager
from sigma.training.timesteps import every, on


class RunLog(Hook):
    """Writes ``"metrics"`` records to the trainer's run directory (every step by default)."""

    priority = PRIORITY_READER - 50  # after checkpoints, so a record never claims more than is saved
    writes_files = True

    def __init__(self, trigger: Optional[Condition] = None, name: Optional[str] = None):
        super().__init__(trigger, name=name)
        self.averager = Averager()

    def default_trigger(self) -> Condition:
        return every(1, "iteration") | on("stop")

    def setup(self, trainer) -> None:
        trainer.attach_averager(self.averager)

    def __call__(self, trainer) -> None:
        values = self.averager.take()
        if values:
            trainer.record("metrics", values=values)

    def state_dict(self) -> Dict[str, Any]:
        return {"averager": self.averager.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.averager.load_state_dict(state.get("averager", {}))
