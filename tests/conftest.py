"""Shared test setup: the data search path, seeds, and backend parametrisation."""
import os
import pathlib

import numpy as np
import pytest

import backends
import sigma

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"

# Under pytest-xdist every worker would start a full set of BLAS and numba
# threads; on a 2-core machine 2 workers x 2 threads of spinning OpenBLAS
# made matrix products 10x slower. One thread per worker keeps the cores busy
# without oversubscribing them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)
    import numba
    numba.set_num_threads(1)
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        pass

# Tests find MNIST through the data search path; in this repository's CI the
# files sit in ../shared/datasets beside the clone.
if "SIGMA_DATA" not in os.environ and SHARED_DATASETS.is_dir():
    os.environ["SIGMA_DATA"] = str(SHARED_DATASETS)


def _gpu_reason():
    try:
        backends.get("cuda:0")
        return None
    except Exception as error:  # no cupy, no driver, no device
        return f"no usable GPU here ({error})"


GPU_SKIP_REASON = _gpu_reason()
DEVICES = [
    "cpu",
    pytest.param("cuda:0", marks=[pytest.mark.cuda,
                                  pytest.mark.skipif(GPU_SKIP_REASON is not None, reason=str(GPU_SKIP_REASON))]),
]


@pytest.fixture(params=DEVICES)
def device(request):
    """Run a test once per backend; the CUDA run skips with a reason where there is no GPU."""
    return request.param


@pytest.fixture(autouse=True)
def _seeded():
    sigma.manual_seed(0)
    sigma.use("cpu")
    sigma.set_default_dtype("float32")
    yield
