"""NCCL communicator (through cupy): all-reduce between GPUs without a trip through host memory.

Each member owns one GPU. The members agree on an NCCL id through a
*bootstrap* communicator (an :class:`MPICommunicator` across processes, or
a :class:`LocalCommunicator` for one thread per GPU in one process), which
also carries ``gather``, ``all_gather`` and ``barrier``.

Example (needs GPUs, cupy and NCCL; skipped elsewhere):
    >>> from sigma.distributed import nccl_available
    >>> isinstance(nccl_available(), bool)
    True
"""
from __future__ import annotations

from typing import Any, List, Optional

from sigma.distributed.communicator import CommunicationError, Communicator, check_buffer, check_reduction


def nccl_available() -> bool:
    """True when cupy with NCCL support imports and sees a GPU."""
    try:
        import cupy
        from cupy.cuda import nccl  # noqa: F401
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no cupy, no NCCL build, no driver
        return False


class NCCLCommunicator(Communicator):
    """Member ``bootstrap.rank`` of an NCCL group, on ``device`` (a cuda backend or its name).

    Must be created by all members at the same time (the NCCL id is shared
    through ``bootstrap.all_gather``).
    """

    def __init__(self, device: Any, bootstrap: Communicator):
        try:
            import cupy
            from cupy.cuda import nccl
        except ImportError as error:
            raise ImportError(f"NCCLCommunicator needs cupy built with NCCL support ({error})") from error
        import backends
        self._cupy, self._nccl = cupy, nccl
        self.backend = backends.get(device)
        if not self.backend.name.startswith("cuda:"):
            raise ValueError(f"NCCLCommunicator: device must be a GPU such as 'cuda:0', got {self.backend.name!r}")
        self.device_id = int(self.backend.name.split(":", 1)[1])
        self.bootstrap = bootstrap
        self.rank, self.size = bootstrap.rank, bootstrap.size
        unique_id = nccl.get_unique_id() if self.rank == 0 else None
        unique_id = bootstrap.all_gather(unique_id)[0]
        with cupy.cuda.Device(self.device_id):
            self.comm = nccl.NcclCommunicator(self.size, unique_id, self.rank)
        self._types = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64, "float16": nccl.NCCL_FLOAT16,
                       "int32": nccl.NCCL_INT32, "int64": nccl.NCCL_INT64}

    def _type(self, buffer: Any) -> int:
        try:
            return self._types[str(buffer.dtype)]
        except KeyError:
            raise TypeError(f"NCCL cannot reduce {buffer.dtype} buffers; use one of {sorted(self._types)}") from None

    def _check_device(self, buffer: Any) -> None:
        if getattr(getattr(buffer, "device", None), "id", None) != self.device_id:
            raise CommunicationError(f"NCCL member {self.rank} lives on cuda:{self.device_id}; the buffer is "
                                     f"not a cupy array on that device")

    def all_reduce(self, buffer: Any, op: str = "sum") -> Any:
        check_reduction(op)
        check_buffer(buffer)
        self._check_device(buffer)
        with self._cupy.cuda.Device(self.device_id):
            stream = self._cupy.cuda.get_current_stream()
            self.comm.allReduce(buffer.data.ptr, buffer.data.ptr, buffer.size, self._type(buffer),
                                self._nccl.NCCL_SUM, stream.ptr)
            if op == "mean":
                buffer /= self.size
        return buffer

    def broadcast(self, buffer: Any, root: int = 0) -> Any:
        self.check_root(root)
        check_buffer(buffer, "broadcast")
        self._check_device(buffer)
        with self._cupy.cuda.Device(self.device_id):
            stream = self._cupy.cuda.get_current_stream()
            self.comm.bcast(buffer.data.ptr, buffer.size, self._type(buffer), root, stream.ptr)
        return buffer

    def gather(self, value: Any, root: int = 0) -> Optional[List[Any]]:
        return self.bootstrap.gather(value, root)

    def all_gather(self, value: Any) -> List[Any]:
        return self.bootstrap.all_gather(value)

    def barrier(self) -> None:
        self._cupy.cuda.Device(self.device_id).synchronize()
        self.bootstrap.barrier()

    def abort(self, reason: str = "") -> None:
        self.comm.abort()
        self.bootstrap.abort(reason)
