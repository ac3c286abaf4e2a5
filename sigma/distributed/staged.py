"""A communicator for buffers on several devices of one process: each collective goes through host memory.

Members of a :class:`~sigma.distributed.LocalGroup` add up each other's
buffers directly, which needs every buffer in the same memory. Workers on
different GPUs (or a GPU and the CPU) wrap their member in
:class:`HostStaged`: the buffer is copied to a host array, the collective
runs there, and the result is copied back onto the buffer's device. It is
what :class:`~sigma.training.multigpu.MultiGPU` uses where NCCL is not
available; NCCL moves the data GPU to GPU instead.

Example:
    >>> import threading, numpy as np
    >>> from sigma.distributed import HostStaged, LocalGroup
    >>> members = [HostStaged(c) for c in LocalGroup(2).communicators]
    >>> buffers = [np.array([1.0, 2.0]), np.array([3.0, 6.0])]
    >>> threads = [threading.Thread(target=m.all_reduce, args=(b, "mean")) for m, b in zip(members, buffers)]
    >>> for t in threads: t.start()
    >>> for t in threads: t.join()
    >>> buffers[0], members[1]
    (array([2., 4.]), HostStaged(LocalCommunicator(rank=1, size=2)))
"""
from __future__ import annotations

from typing import Any, List, Optional

import numpy as np

from sigma.distributed.communicator import Communicator, check_buffer, check_reduction


def _to_host(buffer: Any) -> np.ndarray:
    import backends
    if isinstance(buffer, np.ndarray):
        return buffer
    return np.ascontiguousarray(backends.for_array(buffer).to_host(buffer))


def _copy_back(buffer: Any, host: np.ndarray) -> None:
    if host is not buffer:
        import backends
        buffer[...] = backends.for_array(buffer).asarray(host)


class HostStaged(Communicator):
    """``inner`` (a communicator over host arrays), for buffers that may live on any device."""

    def __init__(self, inner: Communicator):
        self.inner = inner
        self.rank, self.size = inner.rank, inner.size

    def all_reduce(self, buffer: Any, op: str = "sum") -> Any:
        check_reduction(op)
        check_buffer(buffer)
        host = _to_host(buffer)
        self.inner.all_reduce(host, op)
        _copy_back(buffer, host)
        return buffer

    def broadcast(self, buffer: Any, root: int = 0) -> Any:
        self.check_root(root)
        check_buffer(buffer, "broadcast")
        host = _to_host(buffer)
        self.inner.broadcast(host, root)
        _copy_back(buffer, host)
        return buffer

    def gather(self, value: Any, root: int = 0) -> Optional[List[Any]]:
        return self.inner.gather(value, root)

    def all_gather(self, value: Any) -> List[Any]:
        return self.inner.all_gather(value)

    def barrier(self) -> None:
        self.inner.barrier()

    def abort(self, reason: str = "") -> None:
        self.inner.abort(reason)

    def __repr__(self) -> str:
        return f"HostStaged({self.inner!r})"
