"""HDF5 checkpoints (state mapping, atomic writes, bad files), run directories and the event log."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

import sigma
import sigma.io
from sigma.io import CheckpointError, RunDirectory, RunDirectoryError, checkpoint
from sigma.io.event_log import EventLog, read_events
from sigma.training import at, hooks
from sigma.training.hooks import Lambda

from training_helpers import make_trainer

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def subprocess_environment():
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), environment.get("PYTHONPATH", "")])
    return environment


def _same(a, b):
    if isinstance(a, np.ndarray) or isinstance(a, np.generic):
        return type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape and \
            np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, float) and np.isnan(a):
        return isinstance(b, float) and np.isnan(b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_state_round_trips_exactly_through_a_checkpoint(tmp_path):
    state = {
        "network": {"parameters": {"encoder.0.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
                                   "head/bias": np.array([1.5], dtype=np.float64)},
                    "buffers": {"count": np.array(3, dtype=np.int64)}},
        "optimiser": {"state": {0: {"step": 4, "exp_avg": np.ones(3, np.float32)}, 7: {"step": np.int64(2)}},
                      "param_groups": [{"lr": np.float32(0.125), "betas": (0.9, 0.999), "params": [0, 7]}]},
        "random": {"cpu": {"bit_generator": "PCG64", "state": {"state": 2 ** 127 + 5, "inc": 3}}},
        "mixed": {"a": 1, "b": np.zeros(2, np.uint8), "c": None, "@odd": "value", "": "empty key", ".dot": True},
        "list of arrays": [np.ones(1, np.int32), "text", (np.float16(2.5), 1)],
        "nan": float("nan"), "empty": {}, "nested": {"deeper": {"x": [1, [2, 3]], 4: "int key"}},
    }
    path = checkpoint.save(tmp_path / "state.h5", state)
    back = checkpoint.load(path)
    assert _same(state, back)
    assert type(back["optimiser"]["param_groups"][0]["lr"]) is np.float32
    assert back["optimiser"]["param_groups"][0]["betas"] == (0.9, 0.999)
    header = checkpoint.header(path)
    assert header["format"] == "sigma-checkpoint" and header["format_version"] == sigma.io.FORMAT_VERSION
    assert header["sigma_version"] == sigma.__version__ and abs(header["created"] - time.time()) < 60


def test_values_that_cannot_be_stored_are_named(tmp_path):
    with pytest.raises(TypeError, match="/hooks/bad.*set"):
        checkpoint.save(tmp_path / "a.h5", {"hooks": {"bad": {1, 2}}})
    with pytest.raises(TypeError, match="/names.*<U"):
        checkpoint.save(tmp_path / "b.h5", {"names": np.array(["x", "y"])})
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path):
    path = checkpoint.save(tmp_path / "last.h5", {"counter": 1})
    with pytest.raises(TypeError):
        checkpoint.save(path, {"counter": 2, "broken": object()})
    assert checkpoint.load(path) == {"counter": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.h5"]


WRITER = """
import sys
import numpy as np
import sigma.io
weights = np.random.default_rng(0).normal(size=4_000_000).astype(np.float32)
counter = 0
while True:
    counter += 1
    weights[0] = counter
    sigma.io.save_checkpoint(sys.argv[1], {"network": {"parameters": {"w": weights}}, "counter": counter})
    print(counter, flush=True)
"""


def test_a_writer_killed_mid_write_leaves_the_previous_file_readable(tmp_path):
    target = tmp_path / "last.h5"
    killed_mid_write = 0
    for attempt in range(12):  # about two kills in three land mid-write; stop after two have
        if killed_mid_write >= 2:
            break
        delay = (0.0, 0.013, 0.029, 0.047)[attempt % 4]
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True,
                                  env=subprocess_environment())
        try:
            assert writer.stdout.readline().strip() == "1"  # one complete checkpoint exists
            time.sleep(delay)
            writer.send_signal(signal.SIGKILL)
        finally:
            writer.wait(timeout=30)
        assert writer.returncode == -signal.SIGKILL
        leftovers = list(tmp_path.glob(".last.h5.*.partial"))
        killed_mid_write += bool(leftovers)
        for leftover in leftovers:
            leftover.unlink()
        state = checkpoint.load(target)  # never a damaged file
        assert state["counter"] >= 1
        assert state["network"]["parameters"]["w"][0] == state["counter"]
    assert killed_mid_write >= 2, "kills did not land during writes, so the test proved nothing"


def test_bad_files_give_clear_errors(tmp_path):
    good = checkpoint.save(tmp_path / "good.h5", {"network": {"parameters": {"w": np.zeros(100_000, np.float32)}}})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.h5")
    (tmp_path / "empty.h5").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        checkpoint.load(tmp_path / "empty.h5")
    (tmp_path / "notes.h5").write_text("epoch,loss\n1,0.5\n")
    with pytest.raises(CheckpointError, match=r"not an HDF5 file \(it starts with b'epoch,lo'\)"):
        checkpoint.load(tmp_path / "notes.h5")
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        checkpoint.load(truncated)
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        sigma.io.load_weights(truncated)
    with h5py.File(tmp_path / "foreign.h5", "w") as handle:
        handle["images"] = np.zeros(3)
    with pytest.raises(CheckpointError, match=r"not a Sigma checkpoint.*\['images'\]"):
        checkpoint.load(tmp_path / "foreign.h5")
    newer = tmp_path / "newer.h5"
    newer.write_bytes(good.read_bytes())
    with h5py.File(newer, "r+") as handle:
        handle.attrs["@format_version"] = sigma.io.FORMAT_VERSION + 1
        handle.attrs["@sigma_version"] = "9.0"
    with pytest.raises(CheckpointError, match=r"written by Sigma 9.0 in checkpoint format 2.*Upgrade Sigma"):
        checkpoint.load(newer)
    with pytest.raises(CheckpointError, match="is a folder"):
        checkpoint.load(tmp_path)


def test_load_weights_reads_only_the_network(tmp_path):
    path = checkpoint.save(tmp_path / "c.h5", {"network": {"parameters": {"w": np.ones(2, np.float32)},
                                                            "buffers": {"mean": np.zeros(2, np.float32)}},
                                               "optimiser": {"state": {0: {"m": np.ones(2)}}}})
    weights = sigma.io.load_weights(path)
    assert list(weights) == ["w", "mean"] and weights["w"].dtype == np.float32
    no_network = checkpoint.save(tmp_path / "d.h5", {"optimiser": {}})
    with pytest.raises(CheckpointError, match="holds no network weights"):
        sigma.io.load_weights(no_network)


def test_trainer_checkpoints_hold_the_whole_training_state(tmp_path):
    trainer = make_trainer(hooks=[hooks.EarlyStopping("validation/loss")])
    trainer.run(iterations=10)
    path = trainer.save_checkpoint(tmp_path / "c.h5")
    state = checkpoint.load(path)
    assert set(state) == {"network", "optimiser", "trainer", "data", "hooks", "operator", "random", "metrics"}
    assert list(state["network"]["parameters"]) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    assert state["network"]["description"]["total_parameters"] == 6 * 16 + 16 + 16 * 3 + 3
    assert state["optimiser"]["type"] == "Adam" and state["optimiser"]["state"][0]["step"] == 10
    assert state["trainer"]["position"] == {"epoch": 1, "iteration": 10, "iteration_in_epoch": 3,
                                            "batches_per_epoch": 7}
    assert state["data"]["train"]["position"] == 3 and state["data"]["train"]["epoch"] == 1
    assert state["hooks"]["early_stopping"]["state"]["criterion"]["best"] == state["metrics"]["validation/loss"]
    assert state["random"]["cpu"] == sigma.default_backend().random.get_state()
    with h5py.File(path, "r") as handle:  # random-stream states are JSON in an attribute, as documented
        assert json.loads(handle.attrs["random"])["@dict"]["cpu"]["@dict"]["bit_generator"] == "PCG64"
    summary = sigma.io.checkpoint_summary(path)
    assert summary["parameters"]["0.weight"] == {"shape": [16, 6], "dtype": "float32"}
    assert summary["optimiser"]["type"] == "Adam" and summary["optimiser"]["param_groups"][0]["lr"] == 0.01
    assert summary["position"]["iteration"] == 10 and "early_stopping" in summary["hooks"]
    assert summary["data"] == ["train"]


def test_restore_rejects_a_checkpoint_of_another_setup(tmp_path):
    trainer = make_trainer()
    trainer.run(iterations=2)
    path = trainer.save_checkpoint(tmp_path / "c.h5")
    with pytest.raises(ValueError, match="7 batches per epoch, the training data now has 4"):
        make_trainer(batch_size=30).restore(path)
    import sigma.optim
    other = make_trainer()
    other.optimiser = sigma.optim.SGD(other.network.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="optimiser is Adam, this trainer's is SGD"):
        other.restore(path)


# -- run directories and the event log ----------------------------------------------------------------------------
def test_run_directories_get_unique_names_and_open_with_clear_errors(tmp_path):
    first = RunDirectory.create("mnist", root=tmp_path)
    second = RunDirectory.create("mnist", root=tmp_path)
    assert (first.name, second.name) == ("mnist", "mnist-2")
    assert first.read_description()["status"] == "created" and first.checkpoints.is_dir()
    assert [run.name for run in sigma.io.list_runs(tmp_path)] == ["mnist", "mnist-2"]
    with pytest.raises(ValueError, match="run name 'a/b'"):
        RunDirectory.create("a/b", root=tmp_path)
    with pytest.raises(RunDirectoryError, match="not a folder"):
        RunDirectory.open(tmp_path / "nothing")
    (tmp_path / "stray").mkdir()
    with pytest.raises(RunDirectoryError, match="no run.json"):
        RunDirectory.open(tmp_path / "stray")
    (second.description_path).write_text("{broken")
    with pytest.raises(RunDirectoryError, match="not valid JSON"):
        RunDirectory.open(second.path)


def test_last_checkpoint_prefers_last_h5(tmp_path):
    run = RunDirectory.create("r", root=tmp_path)
    assert run.last_checkpoint() is None
    checkpoint.save(run.checkpoints / "001.h5", {})
    time.sleep(0.01)
    checkpoint.save(run.checkpoints / "002.h5", {})
    assert run.last_checkpoint().name == "002.h5"
    checkpoint.save(run.checkpoints / "last.h5", {})
    assert run.last_checkpoint().name == "last.h5"


def test_event_log_reads_incrementally_and_survives_a_torn_line(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    log.append({"kind": "start"})
    records, offset = read_events(path)
    assert records == [{"kind": "start"}]
    with open(path, "ab") as handle:  # a writer that died mid-line
        handle.write(b'{"kind": "metr')
    assert read_events(path, offset) == ([], offset)  # incomplete lines are not returned
    log.close()
    again = EventLog(path)
    again.append({"kind": "restored", "loss": float("nan")})
    again.close()
    records, end = read_events(path, offset)
    assert records[0]["kind"] == "unreadable" and records[0]["offset"] == offset
    assert records[1]["kind"] == "restored" and np.isnan(records[1]["loss"])
    assert end == path.stat().st_size
    assert read_events(tmp_path / "none.jsonl") == ([], 0)


READER = """
import sys
from sigma.io import RunDirectory
records, _ = RunDirectory.open(sys.argv[1]).read_events()
print(sum(r["kind"] == "metrics" for r in records), max(r["iteration"] for r in records))
"""


def test_another_process_reads_the_event_log_while_the_run_goes_on(tmp_path):
    seen = []

    def read_from_another_process(trainer):
        output = subprocess.run([sys.executable, "-c", READER, str(trainer.run_directory.path)], check=True,
                                capture_output=True, text=True, env=subprocess_environment(), timeout=60).stdout
        seen.append(tuple(int(n) for n in output.split()))

    trainer = make_trainer(run_directory=tmp_path / "live", hooks=[
        Lambda(read_from_another_process, at(5), priority=0, name="reader")])
    trainer.run(iterations=8)
    assert seen == [(5, 5)]  # five metric records, the newest for iteration 5, while training was at step 5
    records, _ = trainer.run_directory.read_events()
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "start" and kinds[-1] == "stop" and kinds.count("metrics") == 8
    description = trainer.run_directory.read_description()
    assert description["status"] == "finished" and description["iteration"] == 8
    assert description["optimiser"]["type"] == "Adam" and description["batches_per_epoch"] == 7
