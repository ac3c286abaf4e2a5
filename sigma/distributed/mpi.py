"""MPI communicator (mpi4py): one rank per process, on one machine or many.

Start a job with ``mpirun -n 4 python train.py`` (or ``srun``); every rank
runs the same script. Install with ``pip install 'sigma[mpi]'`` on top of
an MPI library (``apt-get install openmpi-bin libopenmpi-dev``).

Example (creating an ``MPICommunicator`` starts MPI, so the example only asks):
    >>> from sigma.distributed import mpi_available, launched_by_mpi
    >>> isinstance(mpi_available(), bool), launched_by_mpi()
    (True, False)
"""
from __future__ import annotations

import os
import sys
import traceback
from typing import Any, List, Optional

import numpy as np

from sigma.distributed.communicator import CommunicationError, Communicator, check_buffer, check_reduction


def mpi_available() -> bool:
    """True when mpi4py is installed. (Importing ``mpi4py.MPI`` would start MPI, so this only looks.)"""
    import importlib.util
    return importlib.util.find_spec("mpi4py") is not None


def launched_by_mpi() -> bool:
    """True in a process started by ``mpirun``/``mpiexec``/``srun`` as part of a job of several ranks."""
    for variable in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "SLURM_STEP_NUM_TASKS"):
        value = os.environ.get(variable)
        if value is not None and value.isdigit() and int(value) > 1:
            return True
    return False


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError("MPI training needs mpi4py and an MPI library: apt-get install openmpi-bin "
                          f"libopenmpi-dev && pip install mpi4py ({error})") from error
    return MPI


class MPICommunicator(Communicator):
    """A communicator over an mpi4py communicator (``MPI.COMM_WORLD`` by default).

    Buffers of GPU arrays are staged through host memory, which works with
    any MPI build; for GPUs use :class:`NCCLCommunicator`.
    """

    def __init__(self, comm: Any = None):
        self._MPI = _import_mpi()
        self.comm = comm if comm is not None else self._MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()

    def all_reduce(self, buffer: Any, op: str = "sum") -> Any:
        check_reduction(op)
        check_buffer(buffer)
        host = buffer if isinstance(buffer, np.ndarray) else _to_host(buffer)
        if self.size > 1:
            self.comm.Allreduce(self._MPI.IN_PLACE, host, op=self._MPI.SUM)
        if op == "mean":
            host /= self.size
        if host is not buffer:
            buffer[...] = _like(buffer, host)
        return buffer

    def broadcast(self, buffer: Any, root: int = 0) -> Any:
        self.check_root(root)
        check_buffer(buffer, "broadcast")
        host = buffer if isinstance(buffer, np.ndarray) else _to_host(buffer)
        if self.size > 1:
            self.comm.Bcast(host, root=root)
        if host is not buffer:
            buffer[...] = _like(buffer, host)
        return buffer

    def gather(self, value: Any, root: int = 0) -> Optional[List[Any]]:
        self.check_root(root)
        return self.comm.gather(value, root=root)

    def all_gather(self, value: Any) -> List[Any]:
        return self.comm.allgather(value)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, reason: str = "", code: int = 1) -> None:
        """Kill every rank of the job (``MPI_Abort``) after printing ``reason``."""
        if reason:
            print(f"[rank {self.rank}/{self.size}] aborting the MPI job: {reason}", file=sys.stderr, flush=True)
        self.comm.Abort(code)


def abort_on_uncaught_exception(communicator: Communicator) -> None:
    """Make an exception that nobody catches on this rank abort the whole job.

    Without this, the failed rank exits while the others wait for it in
    their next all-reduce for ever. The traceback is printed first, with the
    rank. Installing it twice is harmless.
    """
    previous = sys.excepthook
    if getattr(previous, "sigma_aborts", False):
        return

    def abort_job(kind, error, trace):
        message = "".join(traceback.format_exception(kind, error, trace))
        print(f"[rank {communicator.rank}/{communicator.size}] uncaught {kind.__name__}; aborting the job:\n"
              f"{message}", file=sys.stderr, flush=True)
        if communicator.size > 1 and not issubclass(kind, KeyboardInterrupt):
            communicator.abort()
        previous(kind, error, trace)

    abort_job.sigma_aborts = True
    sys.excepthook = abort_job


def _to_host(buffer: Any) -> np.ndarray:
    import backends
    return np.ascontiguousarray(backends.for_array(buffer).to_host(buffer))


def _like(buffer: Any, host: np.ndarray) -> Any:
    import backends
    return backends.for_array(buffer).asarray(host)


__all__ = ["MPICommunicator", "mpi_available", "launched_by_mpi", "abort_on_uncaught_exception", "CommunicationError"]
