"""Resume is exact: N steps straight == k steps, restore in a fresh process, N - k more (bit for bit on the CPU);
also through the `sigma` command after a kill -9 mid-epoch."""
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import sigma.io
from sigma.training import at, hooks

from training_resume_job import build, final_state

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TOTAL = 20  # 7 batches per epoch: a little less than three epochs


def environment():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.parametrize("split", [10, 14], ids=["mid-epoch", "epoch-boundary"])
def test_restoring_in_a_fresh_process_continues_bit_for_bit(tmp_path, split):
    straight = build()
    straight.run(iterations=TOTAL)
    expected = final_state(straight)

    first = build(extra_hooks=[hooks.Checkpoint(at(split, "iterations"), directory=tmp_path)])
    first.run(iterations=split)
    assert sigma.io.checkpoint_summary(tmp_path / "last.h5")["position"]["iteration"] == split
    out = tmp_path / "resumed.npz"
    subprocess.run([sys.executable, str(HERE / "training_resume_job.py"), str(tmp_path / "last.h5"), str(TOTAL),
                    str(out)], check=True, env=environment(), timeout=120)
    with np.load(out) as resumed:
        assert sorted(resumed.files) == sorted(expected)
        for key, value in expected.items():
            assert resumed[key].dtype == value.dtype and np.array_equal(resumed[key], value), key
    assert expected["position"].tolist() == [2, 20, 6]
    assert len([k for k in expected if k.startswith("optimiser/")]) == 12  # Adam: step and two moments, 4 parameters


def _weights(path):
    return sigma.io.load_weights(path)


def _demo(root, name, *extra):
    return [sys.executable, "-m", "sigma.cli", "demo", "--sample", "--model", "cnn", "--iterations", "14",
            "--checkpoint-every", "3", "--root", str(root), "--name", name, *extra]


def test_sigma_resume_after_kill_9_mid_epoch_finishes_like_an_uninterrupted_run(tmp_path):
    done = subprocess.run(_demo(tmp_path, "straight"), env=environment(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "data: the MNIST sample bundled with Sigma" in done.stdout
    assert "test accuracy:" in done.stdout

    victim = subprocess.Popen(_demo(tmp_path, "killed"), env=environment(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    last = tmp_path / "killed" / "checkpoints" / "last.h5"
    try:
        deadline = time.monotonic() + 120
        while not last.exists() and victim.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        victim.send_signal(signal.SIGKILL)
    finally:
        victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL, "the demo finished before it could be killed"
    killed_at = sigma.io.checkpoint_summary(last)["position"]
    assert 0 < killed_at["iteration_in_epoch"] and killed_at["iteration"] < 11  # mid-way through the first epoch

    resumed = subprocess.run([sys.executable, "-m", "sigma.cli", "resume", str(tmp_path / "killed")],
                             env=environment(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"iteration {killed_at['iteration']})" in resumed.stdout
    straight, finished = _weights(tmp_path / "straight" / "checkpoints" / "last.h5"), _weights(last)
    assert list(straight) == list(finished)
    for name in straight:
        assert np.array_equal(straight[name], finished[name]), name
    best = sorted(p.name for p in (tmp_path / "killed" / "checkpoints").glob("0*.h5"))
    assert best == sorted(p.name for p in (tmp_path / "straight" / "checkpoints").glob("0*.h5"))
    records, _ = sigma.io.RunDirectory.open(tmp_path / "killed").read_events()
    restored = [r for r in records if r["kind"] == "restored"]
    assert len(restored) == 1 and restored[0]["iteration"] == killed_at["iteration"]
    assert sigma.io.RunDirectory.open(tmp_path / "killed").read_description()["status"] == "finished"
