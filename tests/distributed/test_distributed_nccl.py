"""NCCL through cupy: runs only where a GPU and cupy with NCCL exist; elsewhere its absence is reported clearly."""
import numpy as np
import pytest

from sigma.distributed import SingleProcess, launched_by_mpi, nccl_available
from sigma.distributed.nccl import NCCLCommunicator


@pytest.mark.skipif(not nccl_available(), reason="NCCL needs cupy built with NCCL and a GPU; none here")
def test_nccl_group_of_one_reduces_and_broadcasts_on_the_gpu():
    import cupy
    communicator = NCCLCommunicator("cuda:0", bootstrap=SingleProcess())
    buffer = cupy.arange(6, dtype=cupy.float32)
    communicator.all_reduce(buffer, "mean")
    communicator.broadcast(buffer, root=0)
    communicator.barrier()
    assert cupy.asnumpy(buffer).tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    with pytest.raises(Exception, match="not a cupy array on that device"):
        communicator.all_reduce(np.zeros(3, dtype=np.float32))


@pytest.mark.skipif(nccl_available(), reason="checks the message where cupy/NCCL are missing")
def test_without_cupy_the_error_says_what_is_missing():
    with pytest.raises((ImportError, RuntimeError, ValueError), match="cupy|NCCL|cuda"):
        NCCLCommunicator("cuda:0", bootstrap=SingleProcess())


def test_launched_by_mpi_reads_the_launchers_environment(monkeypatch):
    for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "SLURM_STEP_NUM_TASKS"):
        monkeypatch.delenv(name, raising=False)
    assert launched_by_mpi() is False
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "1")
    assert launched_by_mpi() is False
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "4")
    assert launched_by_mpi() is True
