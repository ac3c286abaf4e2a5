"""examples/mpi_training.py under ``mpirun -n 2``: it learns, rank 0 alone writes the checkpoint, and the
two ranks end with identical parameters (the checkpoint holds them too)."""
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys

import pytest

import sigma.io
from example_scripts import EXAMPLES, load_example

pytest.importorskip("mpi4py", reason="the MPI example needs mpi4py (pip install mpi4py) and an MPI library")
if shutil.which("mpirun") is None:
    pytest.skip("the MPI example needs mpirun (apt-get install openmpi-bin libopenmpi-dev)", allow_module_level=True)

ROOT = EXAMPLES.parent
TIME_LIMIT_SECONDS = 120


def run_under_mpirun(out: pathlib.Path, *arguments: str, ranks: int = 2):
    """``mpirun -n ranks python examples/mpi_training.py --out OUT ...``: (exit status, output)."""
    command = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-n", str(ranks), sys.executable,
               str(EXAMPLES / "mpi_training.py"), "--out", str(out), *arguments]
    # one BLAS and numba thread per rank: two ranks on two cores
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
                   "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen(command, cwd=out, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=TIME_LIMIT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"the MPI example ran longer than {TIME_LIMIT_SECONDS} s:\n{output[-3000:]}")
    return process.returncode, output


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mpi_example")
    code, output = run_under_mpirun(out, "--quick")
    return out, code, output


def test_two_ranks_reach_the_floor(quick_run):
    out, code, output = quick_run
    assert code == 0, f"the quick run failed or missed its floor:\n{output[-3000:]}"
    accuracy = float(re.search(r"on 2 rank\(s\): test accuracy (\d\.\d+)", output).group(1))
    floor = load_example("mpi_training").QUICK_FLOOR
    assert accuracy >= floor > 0.5, output[-3000:]
    assert "MPI(ranks=2, merge=GradientAllReduce())" in output


def test_both_ranks_end_with_identical_parameters_and_rank_0_checkpoints_them(quick_run):
    out, code, output = quick_run
    assert code == 0, output[-3000:]
    checksums = [(out / f"parameters-rank{rank}.sha256").read_text().strip() for rank in (0, 1)]
    assert re.fullmatch(r"[0-9a-f]{64}", checksums[0])
    assert checksums[0] == checksums[1]
    # only rank 0 wrote files besides its checksum, and its checkpoint holds the parameters both ranks ended with
    assert sorted(path.name for path in out.iterdir()) == ["mnist-mlp.h5", "parameters-rank0.sha256",
                                                           "parameters-rank1.sha256"]
    example = load_example("mpi_training")
    assert example.parameter_checksum(sigma.io.load_weights(out / "mnist-mlp.h5")) == checksums[0]
    # rank 0 alone prints: one progress line per 20 of the 120 steps, one summary
    assert len(re.findall(r"^step +\d+ ", output, re.M)) == 6
    assert output.count("test accuracy") == 1
