"""MPI: real jobs under ``mpirun`` (2 ranks == 1 rank == inline on the same global batch), checkpoints that
move between a 2-rank job and a single worker, and failures that end the job instead of hanging it."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="MPI tests need mpi4py (pip install mpi4py) and an MPI library")
if shutil.which("mpirun") is None:
    pytest.skip("MPI tests need mpirun (apt-get install openmpi-bin libopenmpi-dev)", allow_module_level=True)

JOB = pathlib.Path(__file__).with_name("distributed_mpi_job.py")
ROOT = JOB.parents[2]


def launch(out, *arguments, ranks=None):
    """Start the job script: under ``mpirun -n ranks``, or as a plain process when ``ranks`` is None."""
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(JOB), str(out), *map(str, arguments)]
    if ranks is not None:
        command = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-n", str(ranks), *command]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
                   "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def finish(process, timeout=120):
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"the job hung for {timeout} s:\n{output[-3000:]}")
    return process.returncode, output.replace("\r", "\n")


def load(path):
    with np.load(path) as arrays:
        return dict(arrays)


def assert_close(first, second, tolerance=1e-6):
    assert first.keys() == second.keys() and first
    for name in first:
        np.testing.assert_allclose(first[name], second[name], rtol=tolerance, atol=tolerance, err_msg=name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Twelve steps of the same job: 2 ranks, 1 rank, inline; each checkpoints at step 6."""
    root = tmp_path_factory.mktemp("mpi")
    started = {"two": launch(root / "two", "--checkpoint-at", 6, ranks=2),
               "one": launch(root / "one", ranks=1),
               "inline": launch(root / "inline", "--inline", "--checkpoint-at", 6),
               "average": launch(root / "average", "--average", 4, "--iterations", 24, ranks=2)}
    for name, process in started.items():
        code, output = finish(process)
        assert code == 0, f"{name} failed:\n{output[-3000:]}"
    return root


def test_two_ranks_equal_one_rank_and_inline_on_the_same_global_batch(runs):
    two, one, inline = (load(runs / name / "rank0.npz") for name in ("two", "one", "inline"))
    np.testing.assert_equal(load(runs / "two" / "rank1.npz"), two)  # the ranks hold identical parameters
    assert_close(two, one)
    assert_close(two, inline)
    # the ranks seeded differently; the broadcast at setup made them start equal, and training moved them
    assert not np.allclose(two["0.weight"], load(runs / "average" / "rank0.npz")["0.weight"])


def test_only_rank_0_writes_files(runs):
    # one run directory (a second rank would have made "run_2"), one set of checkpoints
    assert sorted(p.name for p in (runs / "two").iterdir()) == ["final.h5", "last.h5", "rank0.npz", "rank1.npz",
                                                                "run", "step-12.h5", "step-6.h5"]
    lines = (runs / "two" / "run" / "events.jsonl").read_text().splitlines()
    assert sum(json.loads(line)["kind"] == "start" for line in lines) == 1


def test_model_averaging_keeps_ranks_together_and_learns(runs):
    first, second = load(runs / "average" / "rank0.npz"), load(runs / "average" / "rank1.npz")
    assert_close(first, second, tolerance=1e-7)  # averaged at the end of the run
    import sigma.io
    metrics = sigma.io.checkpoint_summary(runs / "average" / "final.h5")["metrics"]
    assert metrics["train/loss"] < 0.6, metrics


def test_checkpoints_move_between_two_ranks_and_a_single_worker(runs, tmp_path):
    from_ranks = launch(tmp_path / "from_ranks", "--inline", "--restore", runs / "two" / "step-6.h5")
    from_inline = launch(tmp_path / "from_inline", "--restore", runs / "inline" / "step-6.h5", ranks=2)
    for process in (from_ranks, from_inline):
        code, output = finish(process)
        assert code == 0, output[-3000:]
    assert_close(load(tmp_path / "from_ranks" / "rank0.npz"), load(runs / "two" / "rank0.npz"))
    assert_close(load(tmp_path / "from_inline" / "rank1.npz"), load(runs / "inline" / "rank0.npz"))


def test_an_exception_on_one_rank_aborts_the_job(tmp_path):
    started = time.monotonic()
    code, output = finish(launch(tmp_path, "--fail-on-rank", 1, "--iterations", 1000, ranks=2), timeout=60)
    assert code != 0
    assert time.monotonic() - started < 45
    assert "RuntimeError: rank 1 failed on purpose" in output
    assert "[rank 1/2] uncaught RuntimeError; aborting the job" in output
    assert not (tmp_path / "rank0.npz").exists()


def test_commands_that_reach_rank_0_alone_are_applied_by_every_rank(tmp_path):
    """A GUI drives rank 0 only: its pause, learning-rate edit and stop must reach rank 1 at the same step, or
    rank 1 would wait for ever in the next all-reduce."""
    started = time.monotonic()
    code, output = finish(launch(tmp_path, "--commands-on-rank-0", "--iterations", 1000, ranks=2), timeout=90)
    assert code == 0, output[-3000:]
    ends = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert ends[0] == ends[1] == {"reason": "stopped on rank 0", "iteration": 7, "lr": 0.001}
    np.testing.assert_equal(load(tmp_path / "rank0.npz"), load(tmp_path / "rank1.npz"))
    assert time.monotonic() - started > 0.5  # rank 1 waited out rank 0's pause
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert [e["name"] for e in events if e["kind"] == "command"] == ["pause", "resume", "set_lr"]


def test_killing_one_rank_ends_the_job_within_seconds(tmp_path):
    process = launch(tmp_path, "--slow", "--iterations", 1000, ranks=2)
    deadline = time.monotonic() + 60
    while not (tmp_path / "pid1").exists():
        assert time.monotonic() < deadline and process.poll() is None, "the job did not start"
        time.sleep(0.1)
    os.kill(int((tmp_path / "pid1").read_text()), signal.SIGKILL)
    killed = time.monotonic()
    code, output = finish(process, timeout=30)
    assert time.monotonic() - killed < 10
    assert code != 0
    assert "exited on signal 9" in output
