"""The `sigma` command: demo, train, resume, inspect, runs."""
import io
import json
import pathlib
import socket
import subprocess
import sys
import textwrap

import pytest

import sigma.data
import sigma.io
from sigma import cli
from sigma.data import search_path
from sigma.training import demo

HERE = pathlib.Path(__file__).resolve().parent

SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {here!r})
    from training_helpers import make_trainer as build

    RUN = {{"epochs": 2}}

    def make_trainer():
        return build()
""")


def sigma_command(*arguments):
    out = io.StringIO()
    status = cli.main([str(a) for a in arguments], out=out)
    return status, out.getvalue()


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "blobs_script.py"
    path.write_text(SCRIPT.format(here=str(HERE)))
    return path


def test_train_runs_a_script_into_a_run_directory_and_resume_continues_it(tmp_path, script):
    status, output = sigma_command("train", script, "--root", tmp_path / "runs")
    assert status == 0, output
    assert "reached 2 epochs (epoch 2, iteration 14)" in output and "validation/accuracy:" in output
    run = sigma.io.RunDirectory.open(tmp_path / "runs" / "blobs_script")
    description = run.read_description()
    assert description["status"] == "finished" and description["iteration"] == 14
    assert description["recipe"] == {"kind": "script", "path": str(script.resolve()), "run": {}}
    assert sigma.io.checkpoint_summary(run.checkpoints / "last.h5")["position"]["iteration"] == 14

    status, output = sigma_command("resume", run.path, "--epochs", 3)
    assert status == 0, output
    assert f"resuming blobs_script from {run.checkpoints / 'last.h5'} (epoch 2, iteration 14)" in output
    assert "reached 3 epochs (epoch 3, iteration 21)" in output
    assert sigma.io.checkpoint_summary(run.checkpoints / "last.h5")["position"]["iteration"] == 21
    kinds = [r["kind"] for r in run.read_events()[0]]
    assert kinds.count("start") == 2 and kinds.count("restored") == 1


def test_command_line_lengths_override_the_script_and_are_remembered(tmp_path, script):
    status, output = sigma_command("train", script, "--iterations", 5, "--root", tmp_path, "--name", "short")
    assert status == 0 and "reached 5 iterations" in output
    run = sigma.io.RunDirectory.open(tmp_path / "short")
    assert run.read_description()["recipe"]["run"] == {"iterations": 5}
    status, output = sigma_command("resume", run.path)  # nothing left to do: the run had reached 5
    assert status == 0 and "reached 5 iterations (epoch 0, iteration 5)" in output


def test_bad_scripts_and_runs_give_clear_errors(tmp_path, capsys):
    broken = tmp_path / "broken.py"
    broken.write_text("x = 1\n")
    assert sigma_command("train", broken, "--root", tmp_path)[0] == 1
    assert "must define make_trainer()" in capsys.readouterr().err
    assert sigma_command("train", tmp_path / "absent.py")[0] == 1
    assert "absent.py does not exist" in capsys.readouterr().err
    endless = tmp_path / "endless.py"
    endless.write_text(SCRIPT.format(here=str(HERE)).replace('RUN = {"epochs": 2}', "RUN = {}"))
    assert sigma_command("train", endless, "--root", tmp_path)[0] == 1
    assert "say how long to train" in capsys.readouterr().err
    assert sigma_command("resume", tmp_path / "nowhere")[0] == 1
    assert "not a folder" in capsys.readouterr().err
    bare = sigma.io.RunDirectory.create("bare", root=tmp_path)
    assert sigma_command("resume", bare.path)[0] == 1
    assert "has no recipe" in capsys.readouterr().err
    bare.update_description(recipe={"kind": "script", "path": str(endless)})
    assert sigma_command("resume", bare.path)[0] == 1
    assert "has no checkpoint to resume from" in capsys.readouterr().err


def test_inspect_shows_what_a_checkpoint_holds(tmp_path, script, capsys):
    sigma_command("train", script, "--iterations", 3, "--root", tmp_path, "--name", "r")
    status, output = sigma_command("inspect", tmp_path / "r" / "checkpoints" / "last.h5")
    assert status == 0
    assert "Sigma checkpoint, format 1, written by Sigma" in output
    assert "position: epoch 0, iteration 3 (3 of 7 batches into the epoch)" in output
    assert "0.weight: (16, 6) float32" in output and "total: 163 values" in output
    assert "optimiser: Adam" in output and "lr=0.01" in output
    assert "1: ReLU -> [1, 16], 0 parameters" in output
    assert "train/loss:" in output
    status, output = sigma_command("inspect", "--json", tmp_path / "r" / "checkpoints" / "last.h5")
    assert json.loads(output)["position"]["iteration"] == 3
    (tmp_path / "junk.h5").write_text("not a checkpoint")
    assert sigma_command("inspect", tmp_path / "junk.h5")[0] == 1
    assert "not an HDF5 file" in capsys.readouterr().err


def test_runs_lists_status_progress_and_a_metric(tmp_path, script):
    assert sigma_command("runs", "--root", tmp_path)[1] == f"no runs under {tmp_path}\n"
    sigma_command("train", script, "--iterations", 7, "--root", tmp_path, "--name", "first")
    sigma.io.RunDirectory.create("second", root=tmp_path)
    status, output = sigma_command("runs", "--root", tmp_path)
    lines = output.splitlines()
    assert status == 0 and lines[0].split() == ["name", "status", "epoch", "iteration", "metric", "updated",
                                                 "checkpoints"]
    first = lines[1].split()
    assert first[:4] == ["first", "finished", "1", "7"] and first[4] == "validation/accuracy"
    assert lines[2].split()[:2] == ["second", "created"]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    sigma.io.RunDirectory.open(tmp_path / "second").update_description(
        status="running", pid=int(dead.stdout), host=socket.gethostname())
    assert "ended unexpectedly" in sigma_command("runs", "--root", tmp_path)[1].splitlines()[2]


def test_demo_says_when_it_falls_back_to_the_bundled_sample(monkeypatch):
    def unavailable(name, split=None, **options):
        raise sigma.data.DatasetNotFoundError(f"{name} is not on the data search path")

    monkeypatch.setattr(sigma.data, "load", unavailable)
    train, test, source = demo.load_mnist()
    assert (len(train), len(test)) == (1600, 400)
    assert source.startswith("the MNIST sample bundled with Sigma") and "mnist is not on the data search path" in source
    assert train.batch(slice(0, 2))["inputs"].shape == (2, 28, 28)


def _skip_without_mnist():
    if search_path.find_any(["mnist/train-images-idx3-ubyte.gz", "mnist/train-images-idx3-ubyte"]) is None:
        pytest.skip("MNIST is not on the data search path (set SIGMA_DATA to a folder holding mnist/)")


def test_the_example_script_trains_on_mnist(tmp_path):
    _skip_without_mnist()
    example = HERE.parents[1] / "examples" / "train_mnist_mlp.py"
    status, output = sigma_command("train", example, "--iterations", 60, "--root", tmp_path)
    assert status == 0, output
    accuracy = float(output.split("test accuracy: ")[1].split("%")[0])
    assert accuracy > 85.0
    run = tmp_path / "train_mnist_mlp"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "events.jsonl", "metrics.csv", "run.json"]
    assert sigma.io.checkpoint_summary(run / "checkpoints" / "last.h5")["position"]["iteration"] == 60


def test_demo_on_the_real_mnist(tmp_path):
    _skip_without_mnist()
    status, output = sigma_command("demo", "--iterations", 150, "--root", tmp_path)
    assert status == 0, output
    assert "data: MNIST: 60,000 training and 10,000 test images" in output
    accuracy = float(output.split("test accuracy: ")[1].split("%")[0])
    assert accuracy > 90.0
    checkpoints = sorted(p.name for p in (tmp_path / "demo-mlp" / "checkpoints").iterdir())
    assert checkpoints == ["last.h5"]  # no epoch ended, so no best-of checkpoints yet
