"""Communication between workers that train one model: in-process threads, MPI ranks, NCCL GPUs.

Operators (``sigma.training.operators``) use a :class:`Communicator` for
the few collective operations data-parallel training needs: all-reduce of
one flat buffer (sum or mean), broadcast, barrier and gather of small
Python values.

Example:
    >>> from sigma.distributed import LocalGroup, SingleProcess
    >>> [c.rank for c in LocalGroup(3).communicators], SingleProcess().size
    ([0, 1, 2], 1)
"""
from sigma.distributed.communicator import CommunicationError, Communicator, SingleProcess
from sigma.distributed.local import LocalCommunicator, LocalGroup
from sigma.distributed.mpi import MPICommunicator, abort_on_uncaught_exception, launched_by_mpi, mpi_available
from sigma.distributed.nccl import NCCLCommunicator, nccl_available
from sigma.distributed.staged import HostStaged

__all__ = ["Communicator", "CommunicationError", "SingleProcess", "LocalGroup", "LocalCommunicator",
           "MPICommunicator", "NCCLCommunicator", "HostStaged", "abort_on_uncaught_exception", "launched_by_mpi",
           "mpi_available", "nccl_available"]
