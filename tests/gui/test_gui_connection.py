"""The connection layer without Qt: run-directory tailing, bad folders, the control channel, the queue feed,
the run state, smoothing and the drawing pipeline."""
import json
import os
import socket
import stat

import numpy as np
import pytest

from gui_helpers import blobs_trainer, metric_values, start, wait_for
from sigma.io import RunDirectory
from sigma_gui import ControlError, RunSourceError, attach_remote, connect_trainer, open_run
from sigma_gui.control import CONTROL_FILE, RemoteControl
from sigma_gui.drawing import to_digit_image
from sigma_gui.run_state import RunState
from sigma_gui.series import MetricSeries, Smoother, clipped_range, smooth
from sigma_gui.sources import RunDirectorySource


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    trainer = blobs_trainer(run_directory=tmp_path_factory.mktemp("runs") / "blobs")
    trainer.run(epochs=3)
    return trainer.run_directory.path


def test_run_directory_source_reads_every_logged_value(finished_run):
    connection = open_run(finished_run)
    while connection.poll():
        pass
    state = connection.state
    iterations, values = metric_values(finished_run, "train/loss")
    series = state.series["train/loss"]
    assert len(iterations) == 18
    np.testing.assert_array_equal(series.iterations, iterations)
    np.testing.assert_array_equal(series.values, values)
    np.testing.assert_allclose(series.epochs, iterations / 6)  # 6 batches per epoch
    assert state.status == "finished" and state.iteration == 18 and state.epoch == 3
    assert state.hyperparameters[0]["lr"] == 0.01 and state.optimiser == "SGD"
    assert not connection.can_control
    assert state.network is None  # the plain event log does not describe the network


def test_network_description_is_read_from_a_checkpoint(tmp_path):
    trainer = blobs_trainer(run_directory=tmp_path / "with-checkpoint")
    trainer.run(iterations=2)
    trainer.save_checkpoint(trainer.run_directory.checkpoints / "last.h5")
    connection = open_run(trainer.run_directory.path)
    connection.poll()
    layers = [layer["type"] for layer in connection.state.network["layers"]]
    assert layers == ["Sequential", "Linear", "ReLU", "Linear"]
    assert [c.path for c in connection.state.checkpoints] == [str(trainer.run_directory.checkpoints / "last.h5")]


def test_source_reads_in_chunks_and_only_whole_lines(tmp_path):
    run = RunDirectory.create("tail", root=tmp_path)
    source = RunDirectorySource(run.path, chunk_bytes=300)
    for i in range(20):
        run.events.append({"kind": "metrics", "time": float(i), "epoch": 0, "iteration": i + 1,
                           "values": {"loss": 1.0 / (i + 1)}})
    state = RunState("tail")
    polls = 0
    while True:
        records = source.poll()
        if not records:
            break
        state.apply(records)
        polls += 1
    assert polls > 3  # 300 bytes hold only a few records
    assert state.series["loss"].values.tolist() == [1.0 / (i + 1) for i in range(20)]
    with open(run.events_path, "ab") as handle:  # a writer caught mid-line
        handle.write(b'{"kind": "metrics", "iteration": 21, "values": {"lo')
    assert source.poll() == []
    with open(run.events_path, "ab") as handle:
        handle.write(b'ss": 0.01}}\n')
    assert [r["values"]["loss"] for r in source.poll()] == [0.01]


def test_foreign_and_broken_folders_raise_clear_errors(tmp_path):
    with pytest.raises(RunSourceError, match="does not exist"):
        open_run(tmp_path / "nowhere")
    (tmp_path / "photos").mkdir()
    with pytest.raises(RunSourceError, match="no run.json"):
        open_run(tmp_path / "photos")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("{not json")
    with pytest.raises(RunSourceError, match="not valid JSON"):
        open_run(broken)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "run.json").write_text(json.dumps({"experiment": "x"}))
    with pytest.raises(RunSourceError, match="not a Sigma run description"):
        open_run(foreign)
    log = RunDirectory.create("foreign-log", root=tmp_path)
    log.events_path.write_text("timestamp,loss\n1,2\n")
    with pytest.raises(RunSourceError, match="not a Sigma event log"):
        open_run(log.path)


def test_a_damaged_line_is_reported_and_reading_goes_on(tmp_path):
    run = RunDirectory.create("damaged", root=tmp_path)
    run.events.append({"kind": "start", "time": 1.0, "epoch": 0, "iteration": 0})
    with open(run.events_path, "ab") as handle:
        handle.write(b"\x00\x00garbage\n")
    run.events.append({"kind": "metrics", "time": 2.0, "epoch": 0, "iteration": 1, "values": {"loss": 3.0}})
    connection = open_run(run.path)
    connection.poll()
    assert connection.state.unreadable == 1 and connection.state.series["loss"].values.tolist() == [3.0]
    assert any("unreadable" in line.text for line in connection.state.log)


def test_control_channel_drives_a_run_and_refuses_wrong_tokens(tmp_path):
    trainer = blobs_trainer(run_directory=tmp_path / "remote")
    attach_remote(trainer)
    thread = start(trainer, epochs=100_000)
    control = RemoteControl(trainer.run_directory.path)
    try:
        wait_for(lambda: control.available and trainer.position.iteration > 3)
        path = trainer.run_directory.path / CONTROL_FILE
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        details = json.loads(path.read_text())
        with socket.create_connection(("127.0.0.1", details["port"]), timeout=5) as connection:
            connection.sendall(json.dumps({"token": "0" * 64, "command": "stop"}).encode() + b"\n")
            reply = json.loads(connection.makefile("rb").readline())
        assert reply == {"ok": False, "error": "wrong token: read it from the run directory's control.json"}
        with pytest.raises(ControlError, match="unknown trainer command 'jump'"):
            control.send("jump")
        assert trainer.running and not trainer.paused
        control.send("pause")
        wait_for(lambda: trainer.paused)
        paused_at = trainer.position.iteration
        assert control.send("status")["paused"] is True
        control.send("step", count=2)
        wait_for(lambda: trainer.position.iteration == paused_at + 2)
        control.send("resume")
        wait_for(lambda: trainer.position.iteration > paused_at + 4)
        control.send("stop")
        thread.join(20)
    finally:
        trainer.stop()
        thread.join(20)
    assert not thread.is_alive() and trainer.stop_requested == "stopped by request"
    assert not path.exists()  # the channel closes with the run
    with pytest.raises(ControlError, match="not training now"):
        control.send("pause")
    connection = open_run(trainer.run_directory.path)
    while connection.poll():
        pass
    texts = [line.text for line in connection.state.log]
    assert f"paused at iteration {paused_at}" in texts and f"resumed at iteration {paused_at + 2}" in texts
    assert connection.state.network["total_parameters"] == 6 * 16 + 16 + 16 * 3 + 3  # from the event-log feed
    assert "0.weight" in connection.state.histograms


def test_queue_feed_lr_edit_is_applied_at_the_next_step(tmp_path):
    trainer = blobs_trainer(lr=0.01)
    connection = connect_trainer(trainer)
    thread = start(trainer, epochs=100_000)
    try:
        wait_for(lambda: trainer.position.iteration > 2)
        connection.send("pause")
        wait_for(lambda: trainer.paused)
        paused_at = trainer.position.iteration
        connection.send("set_lr", value=0.25)
        connection.send("step", count=1)
        wait_for(lambda: trainer.position.iteration == paused_at + 1)
        connection.send("stop")
        thread.join(20)
    finally:
        trainer.stop()
        thread.join(20)
    connection.poll()
    lr = connection.state.series["lr"]
    by_iteration = dict(zip(lr.iterations.astype(int).tolist(), lr.values.tolist()))
    assert by_iteration[paused_at] == 0.01 and by_iteration[paused_at + 1] == 0.25
    assert connection.state.hyperparameters[0]["lr"] == 0.25
    assert trainer.optimiser.param_groups[0]["lr"] == 0.25
    assert any("lr 0.01 -> 0.25" in line.text for line in connection.state.log)
    assert connection.state.status == "stopped" and connection.state.reason == "stopped by request"


@pytest.mark.parametrize("stop_early", [False, True])
def test_the_in_process_state_knows_why_and_how_a_run_ended(tmp_path, stop_early):
    from sigma.training import at
    from sigma.training.hooks import Lambda
    hooks = [Lambda(lambda t: t.stop("enough for today"), at(4))] if stop_early else []
    trainer = blobs_trainer(hooks=hooks, run_directory=tmp_path / "run")
    connection = connect_trainer(trainer)
    trainer.run(iterations=9)
    connection.poll()
    expected = ("stopped", "enough for today") if stop_early else ("finished", "reached 9 iterations")
    assert (connection.state.status, connection.state.reason) == expected
    from_log = open_run(tmp_path / "run")  # the event log tells the same
    from_log.poll()
    assert (from_log.state.status, from_log.state.reason) == expected


def test_restored_record_drops_the_abandoned_timeline():
    state = RunState("r")
    state.apply({"kind": "metrics", "time": float(i), "epoch": 0, "iteration": i, "values": {"loss": float(i)}}
                for i in range(1, 11))
    state.apply([{"kind": "restored", "time": 11.0, "epoch": 0, "iteration": 4, "path": "last.h5"}])
    state.apply([{"kind": "metrics", "time": 12.0, "epoch": 0, "iteration": 5, "values": {"loss": -5.0}}])
    assert state.series["loss"].iterations.tolist() == [1, 2, 3, 4, 5]
    assert state.series["loss"].values.tolist() == [1, 2, 3, 4, -5.0]


def test_smoothing_matches_the_textbook_recurrence_and_extends_incrementally():
    values = np.random.default_rng(0).normal(size=5000)
    values[100] = np.nan
    for weight in (0.0, 0.3, 0.9, 0.999):
        expected, average, count = [], 0.0, 0
        for value in values:
            if np.isfinite(value):
                average, count = weight * average + (1 - weight) * value, count + 1
            expected.append(average / (1 - weight ** count) if weight else value)
        if weight == 0.0:
            np.testing.assert_array_equal(smooth(values, weight), values)
            continue
        np.testing.assert_allclose(smooth(values, weight), expected, rtol=1e-9, atol=1e-12)
        smoother = Smoother(weight)
        for end in (1, 17, 2000, 5000):
            result = smoother.update(values[:end])
        np.testing.assert_allclose(result, expected, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match=r"smoothing weight must be in \[0, 1\), got 1.0"):
        smooth(values, 1.0)


def test_series_grows_and_exports_csv():
    series = MetricSeries("train/loss", capacity=2)
    series.extend(np.arange(1, 6), np.arange(1, 6) / 5, np.arange(5) + 100.0, [5.0, 4, 3, 2, 1])
    series.append(6, 1.2, 105.0, 0.5)
    assert len(series) == 6 and series.x("time").tolist() == [0, 1, 2, 3, 4, 5]
    rows = series.to_csv().splitlines()
    assert rows[0] == "iteration,epoch,time,train/loss" and rows[-1] == "6,1.2,105.0,0.5"
    low, high = clipped_range(np.r_[np.ones(200), 1e6])
    assert high < 2


def test_drawing_becomes_a_centred_mnist_style_digit():
    canvas = np.zeros((280, 280))
    canvas[20:80, 20:200] = 1.0  # a wide bar in the top-left corner
    digit = to_digit_image(canvas)
    rows, columns = np.nonzero(digit > 0.5)
    assert digit.shape == (28, 28)
    assert columns.max() - columns.min() + 1 == 20  # the long side fills the 20-pixel box
    centre = (digit * np.indices(digit.shape)).sum(axis=(1, 2)) / digit.sum()
    np.testing.assert_allclose(centre, [13.5, 13.5], atol=0.75)
    assert to_digit_image(np.zeros((50, 50))).sum() == 0
    with pytest.raises(ValueError, match="2-d array"):
        to_digit_image(np.zeros(5))


def test_restore_checkpoint_command_rewinds_a_live_run(tmp_path):
    trainer = blobs_trainer(run_directory=tmp_path / "rewind")
    connection = connect_trainer(trainer)
    trainer.run(iterations=3)
    checkpoint = trainer.save_checkpoint(tmp_path / "at-3.h5")
    thread = start(trainer, epochs=100_000)
    try:
        wait_for(lambda: trainer.position.iteration > 10)
        connection.send("pause")
        wait_for(lambda: trainer.paused)
        connection.send("restore_checkpoint", path=str(checkpoint))
        wait_for(lambda: trainer.position.iteration == 3)
        connection.send("step", count=2)
        wait_for(lambda: trainer.position.iteration == 5)
    finally:
        trainer.stop()
        thread.join(20)
    while connection.poll():
        pass
    iterations = connection.state.series["train/loss"].iterations
    assert iterations[-1] == 5 and np.all(np.diff(iterations) > 0)  # the abandoned stretch is gone
    assert any("restored" in line.text and "at-3.h5" in line.text for line in connection.state.log)


def test_metrics_fold_in_the_same_one_by_one_in_one_batch_or_as_metric_points():
    records = [{"kind": "metrics", "time": 100.0 + i, "epoch": i // 4, "iteration": i,
                "values": {"loss": 10.0 - i, **({"validation/loss": float(i)} if i % 4 == 0 else {})}}
               for i in range(1, 13)]
    records[5]["values"]["note"] = "not a number"  # skipped, as the event log may hold anything
    description = {"kind": "description", "batches_per_epoch": 4}  # epochs from iterations where not recorded
    one_by_one, together = RunState("a"), RunState("b")
    one_by_one.apply([description])
    together.apply([description])
    for record in records:
        one_by_one.apply([record])
    assert together.apply(records) == 12
    points = RunState("c")
    points.apply([description, {"kind": "metric_points", "time": 112.0, "epoch": 3, "iteration": 12,
                   "points": [(r["iteration"], r["epoch"], None, r["time"], r["values"]) for r in records]}])
    for state in (together, points):
        assert sorted(state.series) == ["loss", "validation/loss"]
        for key, series in one_by_one.series.items():
            for column in ("iterations", "epochs", "times", "values"):
                np.testing.assert_array_equal(getattr(state.series[key], column), getattr(series, column))
        assert state.latest == one_by_one.latest == {"loss": -2.0, "validation/loss": 12.0}
        assert (state.iteration, state.epoch) == (12, 3)
    np.testing.assert_array_equal(together.series["loss"].epochs, np.arange(1, 13) / 4)


def test_a_restore_inside_one_batch_of_records_drops_the_points_before_it_only():
    state = RunState("r")
    state.apply([{"kind": "metrics", "time": float(i), "epoch": 0, "iteration": i, "values": {"loss": float(i)}}
                 for i in range(1, 11)]
                + [{"kind": "restored", "time": 11.0, "epoch": 0, "iteration": 4, "path": "last.h5"},
                   {"kind": "metrics", "time": 12.0, "epoch": 0, "iteration": 5, "values": {"loss": -5.0}}])
    assert state.series["loss"].iterations.tolist() == [1, 2, 3, 4, 5]
    assert state.series["loss"].values.tolist() == [1, 2, 3, 4, -5.0]


def test_queue_feed_keeps_points_and_a_log_line_from_another_thread_in_order():
    import logging
    import threading

    from sigma.training import at
    from sigma.training.hooks import Lambda

    def log_from_another_thread(trainer):
        thread = threading.Thread(target=lambda: logging.getLogger("sigma.test").warning("from a thread"))
        thread.start()
        thread.join()

    trainer = blobs_trainer(hooks=[Lambda(log_from_another_thread, at(4))])
    connection = connect_trainer(trainer)
    trainer.run(iterations=8)
    records = connection.source.poll()
    kinds = [r["kind"] for r in records]
    message = next(i for i, r in enumerate(records) if r["kind"] == "message" and "from a thread" in r["text"])
    before = [p[0] for r in records[:message] if r["kind"] == "metric_points" for p in r["points"]]
    after = [p[0] for r in records[message:] if r["kind"] == "metric_points" for p in r["points"]]
    assert before + after == list(range(1, 9)), kinds
    assert before in ([1, 2, 3], [1, 2, 3, 4])  # logged during step 4: the points pending then went first
