"""In-process communicators: one per thread, for several workers in one process.

Example:
    >>> import threading, numpy as np
    >>> from sigma.distributed import LocalGroup
    >>> group = LocalGroup(2)
    >>> buffers = [np.array([1.0, 2.0]), np.array([3.0, 4.0])]
    >>> threads = [threading.Thread(target=c.all_reduce, args=(b, "mean"))
    ...            for c, b in zip(group.communicators, buffers)]
    >>> for t in threads: t.start()
    >>> for t in threads: t.join()
    >>> buffers[1]
    array([2., 3.])
"""
from __future__ import annotations

import threading
from typing import Any, List, Optional

from sigma.distributed.communicator import CommunicationError, Communicator, check_buffer, check_reduction


def reduce_slice(buffers: List[Any], rank: int, op: str) -> None:
    """Member ``rank``'s share of an all-reduce of equal flat ``buffers`` (one per member): slice ``rank`` of
    every buffer becomes their sum (or mean). Summed in member order, so every run gives the same bits;
    only this member touches slice ``rank`` meanwhile."""
    size, count = len(buffers), buffers[0].size
    start, stop = count * rank // size, count * (rank + 1) // size
    if stop > start and size > 1:
        total = buffers[0][start:stop]
        for other in buffers[1:]:
            total += other[start:stop]
        if op == "mean":
            total /= size
        for other in buffers[1:]:
            other[start:stop] = total


class LocalGroup:
    """``size`` communicators that meet at a shared barrier; hand one to each thread.

    The reduction is split: each member adds up its own slice of every
    member's buffer (in rank order, so every run gives the same bits) and
    writes the result into all of them, so the work is spread over the
    threads and nothing is copied twice. ``timeout`` (seconds) bounds how
    long a member waits for the others before the group fails.
    """

    def __init__(self, size: int, timeout: Optional[float] = None):
        if not (isinstance(size, int) and size >= 1):
            raise ValueError(f"LocalGroup: size must be a whole number of members >= 1, got {size!r}")
        self.size = size
        self.timeout = timeout
        self._barrier = threading.Barrier(size, timeout=timeout)
        self._slots: List[Any] = [None] * size
        self.failure: Optional[str] = None
        self.communicators = [LocalCommunicator(self, rank) for rank in range(size)]

    def abort(self, reason: str = "") -> None:
        """Wake every waiting member with :class:`CommunicationError` (a member failed)."""
        self.failure = reason or "a member of the group failed"
        self._barrier.abort()

    def reset(self) -> None:
        """Make an aborted group usable again (no member may be waiting)."""
        self.failure = None
        self._barrier.reset()
        self._slots = [None] * self.size

    def _wait(self, rank: int) -> None:
        try:
            self._barrier.wait()
        except threading.BrokenBarrierError:
            why = self.failure or (f"timed out after {self.timeout} s" if self.timeout else "the barrier broke")
            raise CommunicationError(f"worker {rank} of {self.size}: the group stopped ({why})") from None


class LocalCommunicator(Communicator):
    """Member ``rank`` of a :class:`LocalGroup`; use it from one thread only."""

    def __init__(self, group: LocalGroup, rank: int):
        self.group = group
        self.rank = rank
        self.size = group.size

    def _exchange(self, value: Any) -> List[Any]:
        group = self.group
        group._slots[self.rank] = value
        group._wait(self.rank)
        return list(group._slots)

    def all_reduce(self, buffer: Any, op: str = "sum") -> Any:
        check_reduction(op)
        check_buffer(buffer)
        buffers = self._exchange(buffer)
        for rank, other in enumerate(buffers):
            if other.shape != buffer.shape or other.dtype != buffer.dtype:
                raise CommunicationError(
                    f"all_reduce: worker {rank} gave a buffer of shape {other.shape} and dtype {other.dtype}, "
                    f"worker {self.rank} one of shape {buffer.shape} and dtype {buffer.dtype}")
        reduce_slice(buffers, self.rank, op)
        self.group._wait(self.rank)
        return buffer

    def broadcast(self, buffer: Any, root: int = 0) -> Any:
        self.check_root(root)
        check_buffer(buffer, "broadcast")
        source = self._exchange(buffer)[root]
        if self.rank != root:
            if source.shape != buffer.shape:
                raise CommunicationError(f"broadcast: root {root} sent shape {source.shape}, worker {self.rank} "
                                         f"expected {buffer.shape}")
            buffer[...] = source
        self.group._wait(self.rank)
        return buffer

    def all_gather(self, value: Any) -> List[Any]:
        values = self._exchange(value)
        self.group._wait(self.rank)
        return values

    def gather(self, value: Any, root: int = 0) -> Optional[List[Any]]:
        self.check_root(root)
        values = self.all_gather(value)
        return values if self.rank == root else None

    def barrier(self) -> None:
        self.group._wait(self.rank)

    def abort(self, reason: str = "") -> None:
        self.group.abort(reason or f"worker {self.rank} aborted")
