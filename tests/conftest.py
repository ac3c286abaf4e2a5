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


# -- crash reports -----------------------------------------------------------------------------------------
# A test process that dies (a segfault or abort in native code) is restarted by pytest-xdist, and its
# Python-level stack would be lost in the interleaved output. Each worker writes faulthandler's dump (all
# threads) to its own file; the controller prints any non-empty dump at the very end of the run, where a
# CI log's tail shows it.
CRASH_DIRECTORY_VARIABLE = "SIGMA_TEST_CRASH_DIRECTORY"


@pytest.hookimpl(trylast=True)  # after pytest's own faulthandler plugin, which points it at stderr
def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER") is None and CRASH_DIRECTORY_VARIABLE not in os.environ:
        import tempfile
        os.environ[CRASH_DIRECTORY_VARIABLE] = tempfile.mkdtemp(prefix="sigma-test-crashes-")
    directory = os.environ.get(CRASH_DIRECTORY_VARIABLE)
    if os.environ.get("PYTEST_XDIST_WORKER") and directory:
        import faulthandler
        name = f"{os.environ['PYTEST_XDIST_WORKER']}-{os.getpid()}.txt"
        config._sigma_crash_file = open(os.path.join(directory, name), "w")
        faulthandler.enable(file=config._sigma_crash_file, all_threads=True)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    _summarise_skips(terminalreporter)
    directory = os.environ.get(CRASH_DIRECTORY_VARIABLE)
    if not directory or not os.path.isdir(directory):
        return
    for path in sorted(pathlib.Path(directory).glob("*.txt")):
        dump = path.read_text(errors="replace").strip()
        if dump:
            terminalreporter.write_sep("=", f"a test process died: faulthandler's dump from {path.stem}")
            terminalreporter.write_line("\n".join(dump.splitlines()[:150]))


def _summarise_skips(terminalreporter):
    """One line per skip reason with its count (pytest's ``-rs`` prints a line per test location)."""
    reasons = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.write_sep("-", "skipped, by reason")
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
            terminalreporter.write_line(f"{count:5d}  {reason}")
