"""Shared-memory communicators: members of a group in separate processes of one machine.

Every member has a slot in one block of shared memory. A collective
operation has two phases separated by messages through the leader
(member 0): every member puts its numbers in its slot and says it is
ready; once all are, each member reduces its own part of every slot (in
member order, so the bits are the same as :class:`LocalGroup`'s) and
writes the result into all of them; the leader then says it is done. Two
round trips of small messages per collective, and the numbers themselves
are never copied through a pipe.

The block is anonymous memory (``memfd_create`` on Linux) whose file
descriptor is passed over a Unix socket, so nothing is left behind in
``/dev/shm`` however a process ends.

Example:
    >>> import numpy as np
    >>> from sigma.distributed.shared_memory import SharedMemoryGroup
    >>> group = SharedMemoryGroup(1, capacity=4, dtype=np.float32)
    >>> buffer = group.communicators[0].allocate(2, np.float32)
    >>> buffer[:] = [1.0, 2.0]
    >>> group.communicators[0].all_reduce(buffer, "mean")
    array([1., 2.], dtype=float32)
    >>> group.close()
"""
from __future__ import annotations

import mmap
import multiprocessing
import os
import tempfile
from multiprocessing import connection as _connection
from multiprocessing import reduction
from typing import Any, List, Optional, Sequence

import numpy as np

from sigma.distributed.communicator import CommunicationError, Communicator, check_buffer, check_reduction
from sigma.distributed.local import reduce_slice


def _anonymous_file(size: int) -> int:
    """A file descriptor for ``size`` bytes of memory with no name in any folder."""
    if hasattr(os, "memfd_create"):
        descriptor = os.memfd_create("sigma-shared", getattr(os, "MFD_CLOEXEC", 0))
    else:  # not Linux: an unlinked temporary file, in memory where the system has /dev/shm
        with tempfile.TemporaryFile(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as handle:
            descriptor = os.dup(handle.fileno())
    os.ftruncate(descriptor, size)
    return descriptor


class SharedRegion:
    """``size`` bytes of memory shared between processes; :meth:`array` gives numpy views of it.

    Made by one process (``SharedRegion(size)``); :meth:`send` passes it over
    a ``multiprocessing`` connection to a process that calls
    :meth:`receive` on the other end.
    """

    def __init__(self, size: int, descriptor: Optional[int] = None):
        self.size = max(1, int(size))
        self.descriptor = _anonymous_file(self.size) if descriptor is None else descriptor
        self.map = mmap.mmap(self.descriptor, self.size)

    def array(self, dtype: Any, count: int, offset: int = 0) -> np.ndarray:
        """``count`` items of ``dtype`` starting ``offset`` bytes in."""
        dtype = np.dtype(dtype)
        if offset < 0 or offset + count * dtype.itemsize > self.size:
            raise ValueError(f"SharedRegion: {count} x {dtype} at byte {offset} does not fit in {self.size} bytes")
        return np.frombuffer(self.map, dtype=dtype, count=count, offset=offset)

    def send(self, link) -> None:
        """Pass the memory to the process at the other end of ``link`` (a duplex ``multiprocessing`` pipe)."""
        if self.descriptor is None:
            raise RuntimeError("SharedRegion.send: the region's descriptor was already closed")
        reduction.send_handle(link, self.descriptor, None)

    @classmethod
    def receive(cls, link, size: int) -> "SharedRegion":
        """The region the process at the other end of ``link`` sent with :meth:`send`."""
        region = cls(size, reduction.recv_handle(link))
        region.close_descriptor()
        return region

    def close_descriptor(self) -> None:
        """Close the file descriptor (the mapping stays; the memory goes when every mapping has gone)."""
        if self.descriptor is not None:
            os.close(self.descriptor)
            self.descriptor = None


class SharedMemoryGroup:
    """The leader's side of a group of ``size`` processes exchanging numbers through shared memory.

    Member 0 lives in this process (``communicators[0]``). For each other
    member, start a process with ``member_link(rank)`` as an argument,
    call :meth:`watch` with it (so that a dead member is noticed at once)
    and :meth:`send_region`; in that process
    :meth:`SharedMemoryCommunicator.join` returns its communicator.
    ``capacity``: the most items of ``dtype`` one collective may carry.
    """

    def __init__(self, size: int, capacity: int, dtype: Any, timeout: Optional[float] = None):
        if not (isinstance(size, int) and size >= 1):
            raise ValueError(f"SharedMemoryGroup: size must be a whole number of members >= 1, got {size!r}")
        self.size = size
        self.capacity = int(capacity)
        self.dtype = np.dtype(dtype)
        self.timeout = timeout
        self.region = SharedRegion(size * self.capacity * self.dtype.itemsize)
        pairs = [multiprocessing.Pipe(duplex=True) for _ in range(size - 1)]
        self.links: List[Any] = [None] + [leader for leader, _ in pairs]
        self._member_links: List[Any] = [None] + [member for _, member in pairs]
        self.processes: List[Any] = [None] * size
        self.communicators = [SharedMemoryCommunicator(0, size, self.region, self.capacity, self.dtype, timeout,
                                                       links=self.links, processes=self.processes)]

    def member_link(self, rank: int):
        """The end of member ``rank``'s link to pass to its process."""
        return self._member_links[rank]

    def watch(self, rank: int, process) -> None:
        """Member ``rank`` runs in ``process`` (a ``multiprocessing`` process): its death ends waits on it."""
        self.processes[rank] = process

    def send_region(self, rank: int) -> None:
        self.region.send(self.links[rank])

    def close(self) -> None:
        self.region.close_descriptor()
        for link in self.links[1:] + self._member_links[1:]:
            try:
                link.close()
            except OSError:
                pass


class SharedMemoryCommunicator(Communicator):
    """Member ``rank`` of a :class:`SharedMemoryGroup`; the leader (rank 0) talks to every member, the
    others to the leader only. Use it from one thread of its process."""

    def __init__(self, rank: int, size: int, region: SharedRegion, capacity: int, dtype: Any,
                 timeout: Optional[float], links: Sequence[Any], processes: Optional[Sequence[Any]] = None):
        self.rank, self.size = rank, size
        self.region = region
        self.capacity = capacity
        self.dtype = np.dtype(dtype)
        self.timeout = timeout
        self.links = links
        self.processes = processes or [None] * size
        self.slots = [region.array(self.dtype, capacity, offset=member * capacity * self.dtype.itemsize)
                      for member in range(size)]

    @classmethod
    def join(cls, rank: int, size: int, capacity: int, dtype: Any, timeout: Optional[float],
             link) -> "SharedMemoryCommunicator":
        """Member ``rank``'s communicator, in its own process (``link``: ``SharedMemoryGroup.member_link(rank)``)."""
        region = SharedRegion.receive(link, size * capacity * np.dtype(dtype).itemsize)
        return cls(rank, size, region, capacity, dtype, timeout, links=[link])

    @property
    def slot(self) -> np.ndarray:
        return self.slots[self.rank]

    def allocate(self, count: int, dtype: Any) -> np.ndarray:
        """The first ``count`` items of this member's slot: a buffer that collectives use without copying."""
        if np.dtype(dtype) != self.dtype or count > self.capacity:
            raise ValueError(f"allocate: the group carries at most {self.capacity} items of {self.dtype}, "
                             f"asked for {count} of {np.dtype(dtype)}")
        return self.slot[:count]

    # Messages -----------------------------------------------------------------------------------------

    def _send(self, link, message: tuple) -> None:
        try:
            link.send(message)
        except (OSError, EOFError) as error:
            raise CommunicationError(f"worker {self.rank} of {self.size}: the link is broken ({error})") from None

    def _receive(self, member: int) -> tuple:
        """The next message from ``member`` (the leader when this is not the leader)."""
        link = self.links[member if self.rank == 0 else 0]
        process = self.processes[member] if self.rank == 0 else None
        waitables = [link] if process is None else [link, process.sentinel]
        ready = _connection.wait(waitables, self.timeout)
        if not ready:
            raise CommunicationError(f"worker {self.rank} of {self.size}: no word from worker {member} in "
                                     f"{self.timeout} s")
        if link not in ready:
            process.join(1.0)
            raise CommunicationError(f"worker {member} (process {process.pid}) died with exit code "
                                     f"{process.exitcode}")
        try:
            return link.recv()
        except (EOFError, OSError):
            raise CommunicationError(f"worker {self.rank} of {self.size}: worker {member} is gone") from None

    def _expect(self, member: int, kind: str) -> tuple:
        message = self._receive(member)
        if message[0] == "abort":
            reason = message[1]
            if self.rank == 0:
                self.abort(reason)  # release the members still waiting
            raise CommunicationError(f"worker {self.rank} of {self.size}: the group stopped ({reason})")
        if message[0] != kind:
            raise CommunicationError(f"worker {self.rank} of {self.size}: expected {kind!r} from worker {member}, "
                                     f"got {message[0]!r}")
        return message

    def _two_phases(self, ready: tuple, work) -> None:
        """Everyone ready (the leader checks that they agree on ``ready``), ``work()`` everywhere, everyone done."""
        if self.rank == 0:
            for member in range(1, self.size):
                theirs = self._expect(member, "ready")
                if theirs[1:] != ready:
                    reason = f"worker {member} called {theirs[1:]}, worker 0 {ready}"
                    self.abort(reason)
                    raise CommunicationError(f"mismatched collective: {reason}")
            for member in range(1, self.size):
                self._send(self.links[member], ("go",))
            work()
            for member in range(1, self.size):
                self._expect(member, "finished")
            for member in range(1, self.size):
                self._send(self.links[member], ("done",))
        else:
            self._send(self.links[0], ("ready",) + ready)
            self._expect(0, "go")
            work()
            self._send(self.links[0], ("finished",))
            self._expect(0, "done")

    def _stage(self, buffer: Any, name: str) -> np.ndarray:
        check_buffer(buffer, name)
        if buffer.size > self.capacity:
            raise ValueError(f"{name}: {buffer.size} items do not fit the group's capacity of {self.capacity}")
        slot = self.slot[:buffer.size]
        if not np.shares_memory(slot, buffer):
            slot[...] = buffer
        return slot

    # Collectives ----------------------------------------------------------------------------------------

    def all_reduce(self, buffer: Any, op: str = "sum") -> Any:
        check_reduction(op)
        slot = self._stage(buffer, "all_reduce")
        if self.size == 1:
            return buffer
        count = slot.size
        self._two_phases(("all_reduce", count, op, str(np.dtype(buffer.dtype))),
                         lambda: reduce_slice([other[:count] for other in self.slots], self.rank, op))
        if not np.shares_memory(slot, buffer):
            buffer[...] = slot
        return buffer

    def broadcast(self, buffer: Any, root: int = 0) -> Any:
        self.check_root(root)
        slot = self._stage(buffer, "broadcast")
        if self.size == 1:
            return buffer

        def copy_root() -> None:
            if self.rank != root:
                buffer[...] = self.slots[root][:slot.size]

        self._two_phases(("broadcast", slot.size, root), copy_root)
        return buffer

    def all_gather(self, value: Any) -> List[Any]:
        if self.size == 1:
            return [value]
        if self.rank == 0:
            values = [value] + [self._expect(member, "value")[1] for member in range(1, self.size)]
            for member in range(1, self.size):
                self._send(self.links[member], ("values", values))
            return values
        self._send(self.links[0], ("value", value))
        return self._expect(0, "values")[1]

    def gather(self, value: Any, root: int = 0) -> Optional[List[Any]]:
        self.check_root(root)
        values = self.all_gather(value)
        return values if self.rank == root else None

    def barrier(self) -> None:
        self.all_gather(None)

    def abort(self, reason: str = "") -> None:
        """Tell the group to stop: members waiting on this one get :class:`CommunicationError`."""
        reason = reason or f"worker {self.rank} aborted"
        for link in (self.links[1:] if self.rank == 0 else self.links[:1]):
            try:
                link.send(("abort", reason))
            except (OSError, EOFError):
                pass

    def drain(self) -> None:
        """Drop messages left over from a failed collective (call when no member is inside one)."""
        for link in (self.links[1:] if self.rank == 0 else self.links[:1]):
            try:
                while link.poll():
                    link.recv()
            except (OSError, EOFError):
                pass
