"""Where a run stands (epoch, iteration) and the moment a hook is asked about.

``Position`` counts what is finished: ``epoch`` is the number of completed
epochs, ``iteration`` the number of completed training steps in the whole
run, ``iteration_in_epoch`` the steps done in the epoch under way. When a
step finishes an epoch, ``epoch`` goes up and ``iteration_in_epoch`` goes
back to 0 in the same moment, so ``epoch_detail`` reads 1.0 right after the
first epoch, 1.5 halfway through the second.

Example:
    >>> from sigma.training.position import Position
    >>> p = Position(epoch=1, iteration=15, iteration_in_epoch=5, batches_per_epoch=10)
    >>> p.epoch_detail
    1.5
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Mapping, Optional

EVENTS = ("iteration", "epoch", "start", "stop", "pause", "resume", "error")


@dataclass
class Position:
    """Progress of a run, in completed epochs and iterations."""

    epoch: int = 0
    iteration: int = 0
    iteration_in_epoch: int = 0
    batches_per_epoch: Optional[int] = None

    @property
    def epoch_detail(self) -> float:
        """Completed epochs as a float (fractional mid-epoch when the batches per epoch are known)."""
        if not self.batches_per_epoch:
            return float(self.epoch)
        # Python's int / int is correctly rounded: the same float as float(exact_epoch_detail()), without the
        # Fraction, which cost 5 us on every step of every hook that stamps a record.
        batches = self.batches_per_epoch
        return (self.epoch * batches + self.iteration_in_epoch) / batches

    def exact_epoch_detail(self) -> Fraction:
        if not self.batches_per_epoch:
            return Fraction(self.epoch)
        return self.epoch + Fraction(self.iteration_in_epoch, self.batches_per_epoch)

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: Mapping) -> None:
        for key in ("epoch", "iteration", "iteration_in_epoch"):
            setattr(self, key, int(state[key]))
        batches = state.get("batches_per_epoch")
        self.batches_per_epoch = None if batches is None else int(batches)


class Moment:
    """What a condition looks at: the event, the position and this step's observation.

    ``event`` is one of ``"iteration"`` (a training step just finished),
    ``"epoch"`` (an epoch ended without a step, for data of unknown length),
    ``"start"``, ``"stop"``, ``"pause"``, ``"resume"``, ``"error"``.
    ``epoch_ended`` is true in the moment that finishes an epoch.

    Example:
        >>> from sigma.training.position import Moment, Position
        >>> m = Moment("iteration", Position(epoch=2, iteration=20, batches_per_epoch=10), epoch_ended=True)
        >>> m.epoch, m.iteration, m.previous_epoch_detail()
        (2, 20, Fraction(19, 10))
    """

    __slots__ = ("event", "position", "epoch_ended", "observation")

    def __init__(self, event: str, position: Position, epoch_ended: bool = False,
                 observation: Optional[Mapping] = None):
        self.event = event
        self.position = position
        self.epoch_ended = epoch_ended
        self.observation = {} if observation is None else observation

    @property
    def epoch(self) -> int:
        return self.position.epoch

    @property
    def iteration(self) -> int:
        return self.position.iteration

    def previous_epoch_detail(self) -> Fraction:
        """The exact epoch detail before this moment's step (equal to now for non-step events)."""
        now = self.position.exact_epoch_detail()
        if self.event != "iteration" or not self.position.batches_per_epoch:
            return now
        return now - Fraction(1, self.position.batches_per_epoch)

    def __repr__(self) -> str:
        return (f"Moment({self.event!r}, epoch={self.epoch}, iteration={self.iteration}, "
                f"epoch_ended={self.epoch_ended})")
