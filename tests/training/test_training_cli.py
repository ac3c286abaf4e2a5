"""The `sigma` command: demo, train, resume, inspect, runs."""
import io
import json
import pathlib
import socket
import stat
import subprocess
import sys
import textwrap
import time

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


def test_gui_options_without_pyqt6_give_a_clear_message(tmp_path, script, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "PyQt6", None)  # what `import PyQt6` meets where it is not installed
    assert sigma_command("gui", tmp_path)[0] == 1
    error = capsys.readouterr().err
    assert error.startswith("sigma gui: the Sigma GUI needs PyQt6 and pyqtgraph; cannot import PyQt6")
    assert "pip install -e '.[gui]'" in error and "'sigma[gui]'" in error and "Traceback" not in error
    assert sigma_command("train", script, "--gui", "--iterations", 3, "--root", tmp_path / "runs")[0] == 1
    assert "sigma train: --gui: the Sigma GUI needs PyQt6" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # refused before anything was trained
    trainer = cli.build_from_recipe({"kind": "script", "path": str(script)})[0]
    with pytest.raises(ImportError, match=r"cannot import PyQt6.*pip install 'sigma\[gui\]'"):
        trainer.run(iterations=3, gui=True)
    assert trainer.position.iteration == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="only Linux needs DISPLAY or WAYLAND_DISPLAY")
def test_gui_options_without_a_display_give_a_clear_message(tmp_path, monkeypatch, capsys):
    pytest.importorskip("PyQt6", reason="without PyQt6 the missing package is reported first")
    pytest.importorskip("pyqtgraph", reason="without pyqtgraph the missing package is reported first")
    for variable in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(variable, raising=False)
    assert sigma_command("gui")[0] == 1
    assert "no display to open a window on" in capsys.readouterr().err
    assert sigma_command("demo", "--sample", "--gui", "--root", tmp_path / "runs")[0] == 1
    assert "sigma demo: --gui: no display to open a window on" in capsys.readouterr().err
    assert sigma_command("demo", "--sample", "--gui-close-when-done", "--root", tmp_path / "runs")[0] == 1
    assert "--gui-close-when-done needs --gui" in capsys.readouterr().err


LONG_SCRIPT = SCRIPT.replace('RUN = {{"epochs": 2}}', 'RUN = {{"iterations": 10 ** 7}}')


def test_a_sigma_train_process_is_paused_resumed_and_stopped_through_its_control_channel(tmp_path):
    """`sigma gui runs/<name>` beside a running `sigma train`: the run publishes its channel; drive it."""
    from sigma_gui import ControlError, open_run
    script = tmp_path / "long_script.py"
    script.write_text(LONG_SCRIPT.format(here=str(HERE)))
    run_path = tmp_path / "runs" / "live"
    process = subprocess.Popen([sys.executable, "-m", "sigma.cli", "train", str(script), "--root",
                                str(tmp_path / "runs"), "--name", "live"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (run_path / "control.json").is_file():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the run never published control.json"
            time.sleep(0.05)
        assert stat.S_IMODE((run_path / "control.json").stat().st_mode) == 0o600
        connection = open_run(run_path)
        assert connection.can_control
        connection.send("pause")
        while not connection.send("status")["paused"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        held = connection.send("status")["iteration"]
        time.sleep(0.5)
        assert connection.send("status")["iteration"] == held  # not one step while paused
        connection.send("set_lr", value=0.005)
        connection.send("resume")
        while connection.send("status")["iteration"] < held + 20:
            assert time.monotonic() < deadline, "the run did not go on after resume"
            time.sleep(0.02)
        with pytest.raises(ControlError, match="the run refused jump: unknown trainer command 'jump'"):
            connection.send("jump")
        connection.send("stop")
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "stopped by request (epoch" in stdout
    assert not (run_path / "control.json").exists()
    records = sigma.io.RunDirectory.open(run_path).read_events()[0]
    commands = [(r["kind"], r.get("name"), r["iteration"]) for r in records if r["kind"] in ("pause", "resume",
                                                                                           "command")]
    assert ("pause", None, held) in commands and ("resume", None, held) in commands
    assert ("command", "set_lr", held) in commands
    assert sigma.io.checkpoint_summary(run_path / "checkpoints" / "last.h5")["optimiser"]["param_groups"][0]["lr"] \
        == 0.005
