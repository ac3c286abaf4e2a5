"""``Communicator``: how workers that train one model exchange numbers, whatever carries them.

Operators talk only to this interface, so the same operator code runs over
threads in one process (:class:`sigma.distributed.LocalGroup`), MPI ranks
(:class:`sigma.distributed.MPICommunicator`) or GPUs through NCCL
(:class:`sigma.distributed.NCCLCommunicator`).

Every member of a group must make the same calls in the same order (the
collective operations below); a member that stops calling leaves the
others waiting, which is why failures abort the whole group.

Example:
    >>> import numpy as np
    >>> from sigma.distributed import SingleProcess
    >>> communicator = SingleProcess()
    >>> communicator.all_reduce(np.array([1.0, 2.0], dtype=np.float32), "mean")
    array([1., 2.], dtype=float32)
    >>> communicator.rank, communicator.size, communicator.gather({"loss": 0.5})
    (0, 1, [{'loss': 0.5}])
"""
from __future__ import annotations

from typing import Any, List, Optional

REDUCTIONS = ("sum", "mean")


class CommunicationError(RuntimeError):
    """A collective operation failed: a member of the group died, timed out or gave a mismatched buffer."""


def check_reduction(op: str) -> str:
    if op not in REDUCTIONS:
        raise ValueError(f"all_reduce: op must be one of {list(REDUCTIONS)}, got {op!r}")
    return op


def check_buffer(buffer: Any, name: str = "all_reduce") -> None:
    if getattr(buffer, "ndim", None) != 1:
        raise ValueError(f"{name}: the buffer must be one flat (1-D) array, got "
                         f"{type(buffer).__name__} of shape {getattr(buffer, 'shape', None)}")
    flags = getattr(buffer, "flags", None)
    if flags is not None and not flags["C_CONTIGUOUS"]:
        raise ValueError(f"{name}: the buffer must be contiguous (it is changed in place)")


class Communicator:
    """One member (``rank``) of a group of ``size`` workers.

    * ``all_reduce(buffer, op="sum" | "mean")``: every member's flat array
      ends up holding the element-wise sum (or mean) over the group, in place;
      returns ``buffer``.
    * ``broadcast(buffer, root=0)``: every member's array takes ``root``'s values, in place.
    * ``gather(value, root=0)``: a list of every member's (small, picklable)
      Python value on ``root``, ``None`` elsewhere; ``all_gather(value)``: the list everywhere.
    * ``barrier()``: returns when every member has called it.
    * ``abort(reason)``: end the whole group now (the other members get
      :class:`CommunicationError` or, under MPI, are killed).
    """

    rank: int = 0
    size: int = 1

    def all_reduce(self, buffer: Any, op: str = "sum") -> Any:
        raise NotImplementedError

    def broadcast(self, buffer: Any, root: int = 0) -> Any:
        raise NotImplementedError

    def gather(self, value: Any, root: int = 0) -> Optional[List[Any]]:
        raise NotImplementedError

    def all_gather(self, value: Any) -> List[Any]:
        raise NotImplementedError

    def barrier(self) -> None:
        raise NotImplementedError

    def abort(self, reason: str = "") -> None:
        raise NotImplementedError

    def check_root(self, root: int) -> int:
        if not (isinstance(root, int) and 0 <= root < self.size):
            raise ValueError(f"root must be a rank from 0 to {self.size - 1}, got {root!r}")
        return root

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


class SingleProcess(Communicator):
    """A group of one: every collective is the identity. What a run without MPI uses."""

    def all_reduce(self, buffer: Any, op: str = "sum") -> Any:
        check_reduction(op)
        check_buffer(buffer)
        return buffer

    def broadcast(self, buffer: Any, root: int = 0) -> Any:
        self.check_root(root)
        return buffer

    def gather(self, value: Any, root: int = 0) -> Optional[List[Any]]:
        self.check_root(root)
        return [value]

    def all_gather(self, value: Any) -> List[Any]:
        return [value]

    def barrier(self) -> None:
        pass

    def abort(self, reason: str = "") -> None:
        raise CommunicationError(f"aborted: {reason}" if reason else "aborted")
