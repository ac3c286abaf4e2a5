"""The window under pytest-qt (offscreen): real runs, plotted data, commands, drawing, bad folders, load."""
import time

import numpy as np
import pytest

pytest.importorskip("PyQt6", reason="the GUI tests need PyQt6: pip install 'pyqt6<6.12'")
pytest.importorskip("pyqtgraph", reason="the GUI tests need pyqtgraph: pip install pyqtgraph")
pytest.importorskip("pytestqt", reason="the GUI tests need pytest-qt: pip install pytest-qt")

from PyQt6 import QtCore, QtWidgets  # noqa: E402

import sigma  # noqa: E402
from gui_helpers import blobs_trainer, metric_values, start, wait_for  # noqa: E402
from sigma import nn  # noqa: E402
from sigma.io import RunDirectory, read_events  # noqa: E402
from sigma_gui import attach_remote, connect_trainer  # noqa: E402
from sigma_gui.connection import RunConnection  # noqa: E402
from sigma_gui.series import MetricSeries  # noqa: E402
from sigma_gui.window import MainWindow  # noqa: E402


@pytest.fixture
def settings(tmp_path):
    return QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, settings):
    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    window.show()
    yield window
    window.timer.stop()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    trainer = blobs_trainer(run_directory=tmp_path_factory.mktemp("runs") / "blobs")
    trainer.run(epochs=3)
    return trainer.run_directory.path


def _settle(window, qtbot, rounds=3):
    for _ in range(rounds):
        window.refresh()
        qtbot.wait(10)


def test_window_shows_the_logged_curves_of_a_finished_run(window, qtbot, finished_run):
    connection = window.open_run_directory(finished_run)
    _settle(window, qtbot)
    assert connection is not None and window.current is connection
    iterations, values = metric_values(finished_run, "train/loss")
    chart = window.charts.charts["train/loss"]
    line = chart.lines[("blobs", "train/loss")]
    np.testing.assert_array_equal(line.raw.xData, iterations)
    np.testing.assert_array_equal(line.raw.yData, values)
    window.charts.bar.smoothing.setValue(90)  # the slider moves the smoothed line, not the raw one
    _settle(window, qtbot, 1)
    expected, average = [], 0.0
    for count, value in enumerate(values, start=1):
        average = 0.9 * average + 0.1 * value
        expected.append(average / (1 - 0.9 ** count))
    np.testing.assert_allclose(line.smoothed.yData, expected, rtol=1e-9)
    window.charts.bar.x_axis.setCurrentText("epoch")
    _settle(window, qtbot, 1)
    np.testing.assert_allclose(line.raw.xData, iterations / 6)
    validation_x, validation = metric_values(finished_run, "validation/accuracy")
    accuracy_line = window.accuracy.lines[("blobs", "validation/accuracy")]
    np.testing.assert_array_equal(accuracy_line.raw.yData, validation)
    assert window.control.fields["status"].text() == "finished"
    assert window.control.fields["iteration"].text() == "18"
    assert not window.control.buttons["pause"].isEnabled()  # a finished run is read-only
    assert chart.readout_at(0.0).startswith(f"train/loss @ {1 / 6:g}: {values[0]:.4g} (smoothed")
    chart.plot.vb.setRange(xRange=(1.0, 2.0), yRange=(0.0, 0.5), padding=0)  # the user zooms in
    chart.plot.vb.sigRangeChangedManually.emit([True, True])
    window.charts.bar.smoothing.setValue(50)  # a redraw keeps the user's view
    _settle(window, qtbot, 1)
    np.testing.assert_allclose(chart.plot.vb.viewRange(), [[1.0, 2.0], [0.0, 0.5]])
    chart.plot.vb.enableAutoRange()  # pyqtgraph's "A" button: the chart fits itself again
    chart._settings_changed()
    assert chart.plot.vb.viewRange()[0][1] > 2.5 and not chart.user_view


def test_chart_exports_png_and_csv(window, qtbot, finished_run, tmp_path):
    window.open_run_directory(finished_run)
    _settle(window, qtbot)
    chart = window.charts.charts["train/loss"]
    png = chart.export_png(tmp_path / "loss.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = chart.export_csv(tmp_path / "loss.csv").read_text().splitlines()
    iterations, values = metric_values(finished_run, "train/loss")
    assert rows[0] == "run,key,iteration,epoch,time,value" and len(rows) == 1 + len(values)
    assert float(rows[-1].split(",")[-1]) == values[-1]


def test_broken_or_foreign_folders_show_an_error_dialog(window, qtbot, tmp_path):
    (tmp_path / "holiday-photos").mkdir()
    assert window.open_run_directory(tmp_path / "holiday-photos") is None
    broken = RunDirectory.create("broken", root=tmp_path)
    broken.description_path.write_text("{\"status\": ")
    assert window.open_run_directory(broken.path) is None
    assert len(window.error_dialogs) == 2
    assert "no run.json" in window.error_dialogs[0].text()
    assert "not valid JSON" in window.error_dialogs[1].text()
    assert window.error_dialogs[1].isVisible() and window.connections == []
    window.refresh()  # the window goes on working
    assert "not valid JSON" in window.log.toPlainText()


def test_a_run_whose_files_vanish_is_reported_once(window, qtbot, tmp_path):
    class Vanishing:
        name = "vanishing"

        def poll(self, limit=None):
            raise OSError("events.jsonl: No such file or directory")

    window.add_connection(RunConnection(Vanishing()))
    _settle(window, qtbot)
    assert len(window.error_dialogs) == 1 and "No such file" in window.error_dialogs[0].text()


def test_pause_resume_stop_buttons_reach_a_trainer_on_a_thread(window, qtbot):
    trainer = blobs_trainer()
    window.add_connection(connect_trainer(trainer))
    thread = start(trainer, epochs=100_000)
    try:
        wait_for(lambda: window.control.buttons["pause"].isEnabled(), poll=lambda: _settle(window, qtbot, 1))
        qtbot.mouseClick(window.control.buttons["pause"], QtCore.Qt.MouseButton.LeftButton)
        wait_for(lambda: trainer.paused)
        wait_for(lambda: window.current.state.status == "paused", poll=lambda: _settle(window, qtbot, 1))
        paused_at = trainer.position.iteration
        assert window.control.buttons["resume"].isEnabled() and window.control.buttons["step"].isEnabled()
        qtbot.mouseClick(window.control.buttons["step"], QtCore.Qt.MouseButton.LeftButton)
        wait_for(lambda: trainer.position.iteration == paused_at + 1)
        qtbot.mouseClick(window.control.buttons["resume"], QtCore.Qt.MouseButton.LeftButton)
        wait_for(lambda: not trainer.paused and trainer.position.iteration > paused_at + 3)
        qtbot.mouseClick(window.control.buttons["stop"], QtCore.Qt.MouseButton.LeftButton)
        thread.join(20)
    finally:
        trainer.stop()
        thread.join(20)
    assert not thread.is_alive() and trainer.stop_requested == "stopped by request"
    _settle(window, qtbot)
    assert window.current.state.status == "stopped"
    assert not window.control.buttons["stop"].isEnabled()


def test_learning_rate_edit_is_applied_at_the_next_step(window, qtbot, tmp_path):
    trainer = blobs_trainer(lr=0.01, run_directory=tmp_path / "lr-edit")
    window.add_connection(connect_trainer(trainer))
    thread = start(trainer, epochs=100_000)
    try:
        wait_for(lambda: trainer.position.iteration > 2)
        window.control.send("pause")
        wait_for(lambda: window.current.state.status == "paused", poll=lambda: _settle(window, qtbot, 1))
        paused_at = trainer.position.iteration
        table = window.hyperparameters.table
        row = [table.item(r, 1).text() for r in range(table.rowCount())].index("lr")
        table.item(row, 2).setText("0.125")  # what typing into the cell does
        assert "pending" in table.item(row, 2).text()
        # The paused loop applies it between steps: before the next step, with no step made.
        wait_for(lambda: trainer.optimiser.param_groups[0]["lr"] == 0.125)
        assert trainer.position.iteration == paused_at
        window.control.send("step", count=1)
        wait_for(lambda: trainer.position.iteration == paused_at + 1)
        wait_for(lambda: "pending" not in table.item(row, 2).text(), poll=lambda: _settle(window, qtbot, 1))
        assert table.item(row, 2).text() == "0.125"
        table.item(row, 2).setText("fast")  # refused with a message, nothing sent
        assert "not a number" in window.statusBar().currentMessage()
        window.control.send("stop")
        thread.join(20)
    finally:
        trainer.stop()
        thread.join(20)
    _settle(window, qtbot)
    lr = window.current.state.series["lr"]
    by_iteration = dict(zip(lr.iterations.astype(int).tolist(), lr.values.tolist()))
    assert by_iteration[paused_at] == 0.01 and by_iteration[paused_at + 1] == 0.125
    metrics_x, logged = metric_values(trainer.run_directory.path, "lr")  # and the event log recorded it
    assert logged[list(metrics_x).index(paused_at + 1)] == 0.125
    records, _ = read_events(trainer.run_directory.events_path)
    commands = [r for r in records if r["kind"] == "command" and r["name"] == "set_lr"]
    assert commands == [{**commands[0], "iteration": paused_at, "arguments": {"value": 0.125, "group": 0}}]


def test_remote_run_is_driven_through_its_control_channel(window, qtbot, tmp_path):
    trainer = blobs_trainer(run_directory=tmp_path / "other-process")
    attach_remote(trainer)
    thread = start(trainer, epochs=100_000)
    try:
        wait_for(lambda: (tmp_path / "other-process" / "control.json").exists())
        connection = window.open_run_directory(tmp_path / "other-process")
        wait_for(lambda: window.control.buttons["pause"].isEnabled(), poll=lambda: _settle(window, qtbot, 1))
        assert window.control.fields["connection"].text() == "control channel"
        qtbot.mouseClick(window.control.buttons["pause"], QtCore.Qt.MouseButton.LeftButton)
        wait_for(lambda: trainer.paused)
        wait_for(lambda: connection.state.status == "paused", poll=lambda: _settle(window, qtbot, 1))
        assert window.hyperparameters.set_value(0, "lr", "0.05")
        window.control.send("resume")
        wait_for(lambda: trainer.optimiser.param_groups[0]["lr"] == 0.05)
        wait_for(lambda: connection.state.hyperparameters[0]["lr"] == 0.05, poll=lambda: _settle(window, qtbot, 1))
        window.control.send("stop")
        thread.join(20)
    finally:
        trainer.stop()
        thread.join(20)
    _settle(window, qtbot)
    assert any("command set_lr" in line.text for line in connection.state.log)
    assert window.structure.topLevelItemCount() >= 2  # the network description came through the event log


class Stripes(nn.Module):
    """Class 0 for horizontal strokes, class 1 for vertical ones: a fixed template-matching model."""

    def __init__(self):
        super().__init__()
        templates = np.zeros((2, 28, 28), np.float32)
        templates[0, 12:16, 4:24] = 1.0
        templates[1, 4:24, 12:16] = 1.0
        self.linear = nn.Linear(784, 2)
        self.linear.weight.data[...] = templates.reshape(2, 784)
        self.linear.bias.data[...] = 0.0

    def forward(self, x):
        return self.linear(x.reshape(x.shape[0], 784))


def _image_trainer(**options):
    images = np.zeros((8, 28, 28), np.uint8)
    images[:4, 12:16, 4:24] = 255
    images[4:, 4:24, 12:16] = 255
    data = sigma.data.InMemoryDataset(inputs=images, targets=np.repeat([0, 1], 4).astype(np.int64))
    network = Stripes()
    return sigma.training.Trainer(
        network, nn.CrossEntropyLoss(), sigma.optim.SGD(network.parameters(), lr=0.0),
        sigma.data.MinibatchIterator(data, batch_size=4, seed=0,
                                     transform=sigma.data.Normalise(mean=0.0, std=255.0)), **options)


def _draw_with_mouse(qtbot, canvas, points):
    qtbot.mousePress(canvas, QtCore.Qt.MouseButton.LeftButton, pos=QtCore.QPoint(*points[0]))
    for point in points[1:]:
        qtbot.mouseMove(canvas, QtCore.QPoint(*point))
    qtbot.mouseRelease(canvas, QtCore.Qt.MouseButton.LeftButton, pos=QtCore.QPoint(*points[-1]))


def test_draw_panel_classifies_mouse_strokes_with_a_fixed_model(window, qtbot):
    trainer = _image_trainer()
    window.add_connection(connect_trainer(trainer))
    _settle(window, qtbot)
    draw = window.draw
    _draw_with_mouse(qtbot, draw.canvas, [(140, 30 + 20 * i) for i in range(12)])
    assert draw.predicted == 1 and draw.answer.text() == "1"
    draw.clear()
    assert draw.predicted is None and draw.canvas.array().max() == 0
    _draw_with_mouse(qtbot, draw.canvas, [(30 + 20 * i, 100) for i in range(12)])
    assert draw.predicted == 0


def test_draw_panel_asks_a_running_trainer_between_steps(window, qtbot):
    trainer = _image_trainer()
    window.add_connection(connect_trainer(trainer))
    thread = start(trainer, epochs=100_000)
    try:
        wait_for(lambda: trainer.position.iteration > 2)
        window.draw.canvas.draw_stroke([(140, 30), (140, 250)])
        assert window.draw.predicted is None  # asked as a command; the answer comes with the next records
        wait_for(lambda: window.draw.predicted is not None, poll=lambda: _settle(window, qtbot, 1))
        assert window.draw.predicted == 1
    finally:
        trainer.stop()
        thread.join(20)


def test_drawing_while_a_run_with_a_run_directory_trains_does_not_stop_it(window, qtbot, tmp_path):
    trainer = _image_trainer(run_directory=tmp_path / "drawn-on")
    window.add_connection(connect_trainer(trainer))
    thread = start(trainer, epochs=100_000)
    try:
        wait_for(lambda: trainer.position.iteration > 2)
        window.draw.canvas.draw_stroke([(140, 30), (140, 250)])
        wait_for(lambda: window.draw.predicted is not None, poll=lambda: _settle(window, qtbot, 1))
        assert window.draw.predicted == 1
        asked_at = trainer.position.iteration
        wait_for(lambda: trainer.position.iteration > asked_at + 5)  # the logged command did not end the run
        assert thread.is_alive()
    finally:
        trainer.stop()
        thread.join(20)
    commands = [r for r in read_events(tmp_path / "drawn-on" / "events.jsonl")[0] if r.get("name") == "classify"]
    assert len(commands) == 1 and np.asarray(commands[0]["arguments"]["image"]).shape == (28, 28)


def test_draw_panel_asks_a_run_in_another_process_through_its_control_channel(window, qtbot, tmp_path):
    trainer = _image_trainer(run_directory=tmp_path / "remote-drawing")
    attach_remote(trainer)
    thread = start(trainer, epochs=100_000)
    try:
        wait_for(lambda: (tmp_path / "remote-drawing" / "control.json").exists())
        connection = window.open_run_directory(tmp_path / "remote-drawing")
        wait_for(lambda: window.draw.isEnabled(), poll=lambda: _settle(window, qtbot, 1))
        assert not connection.in_process and connection.can_classify
        _draw_with_mouse(qtbot, window.draw.canvas, [(140, 30 + 20 * i) for i in range(12)])
        assert window.draw.predicted is None  # asked through the channel; answered in the event log
        wait_for(lambda: window.draw.predicted is not None, poll=lambda: _settle(window, qtbot, 1))
        assert window.draw.predicted == 1
        window.draw.clear()
        _draw_with_mouse(qtbot, window.draw.canvas, [(30 + 20 * i, 100) for i in range(12)])
        wait_for(lambda: window.draw.predicted is not None, poll=lambda: _settle(window, qtbot, 1))
        assert window.draw.predicted == 0
    finally:
        trainer.stop()
        thread.join(20)
    records = read_events(tmp_path / "remote-drawing" / "events.jsonl")[0]
    assert [r["name"] for r in records if r.get("name") == "classify"] == ["classify"] * 2  # once per stroke
    _settle(window, qtbot)
    assert not window.draw.isEnabled()  # the run ended: nothing can classify a drawing now
    lines = [line.text for line in connection.state.log if "command classify" in line.text]
    assert len(lines) == 2 and "image=<28x28 values>" in lines[0] and len(lines[0]) < 200


def test_draw_panel_classifies_a_digit_with_a_briefly_trained_mnist_model(window, qtbot, tmp_path):
    from sigma.training import demo
    trainer = demo.make_trainer("mlp", sample=True, announce=lambda text: None)
    trainer.hooks = [h for h in trainer.hooks if type(h).__name__ not in ("ProgressBar", "Checkpoint")]
    trainer.run(epochs=2)
    window.add_connection(connect_trainer(trainer))
    _settle(window, qtbot)
    _draw_with_mouse(qtbot, window.draw.canvas, [(140, 40 + 20 * i) for i in range(11)])
    assert window.draw.predicted == 1 and window.draw.probabilities[1] > 0.5


def test_predictions_histograms_structure_and_checkpoints_of_an_image_run(window, qtbot, tmp_path):
    from sigma.training import demo
    trainer = demo.make_trainer("mlp", sample=True, checkpoint_every=5, announce=lambda text: None)
    trainer.hooks = [h for h in trainer.hooks if type(h).__name__ != "ProgressBar"]
    trainer.attach_run_directory(tmp_path / "mnist")
    window.add_connection(connect_trainer(trainer))
    trainer.run(iterations=12)
    _settle(window, qtbot)
    assert window.predictions.cells == []  # behind the draw panel's tab: not built until shown
    window.docks["Predictions"].raise_()
    qtbot.wait(20)
    predictions = window.current.state.predictions
    assert len(predictions["images"]) == 16 and np.array(predictions["images"]).shape == (16, 28, 28)
    boxes = window.predictions.cells
    wrong = [p != t for p, t in zip(predictions["predicted"], predictions["targets"])]
    assert len(boxes) == 16 and [box.property("mistaken") for box in boxes] == wrong
    layers = [window.structure.topLevelItem(0).child(i).text(1) for i in range(5)]
    assert layers == ["Flatten", "Linear", "ReLU", "Dropout", "Linear"]
    window.structure.layer_selected.emit("1")  # raises the histograms' tab, which then catches up
    qtbot.wait(20)
    assert window.histograms.parameter.currentText() == "1.weight"
    bars = window.histograms.bars.opts
    weights = trainer.network.state_dict()["1.weight"].numpy()
    assert int(np.sum(bars["height"])) == weights.size
    names = [window.checkpoints.table.item(r, 0).text() for r in range(window.checkpoints.table.rowCount())]
    assert "last.h5" in names
    window.checkpoints.table.selectRow(names.index("last.h5"))
    dialog = window.checkpoints.open_selected()
    assert '"iteration": 12' in dialog.findChild(QtWidgets.QPlainTextEdit).toPlainText()


def test_layout_is_remembered_between_launches(qtbot, settings):
    first = MainWindow(settings=settings)
    qtbot.addWidget(first)
    first.show()
    first.docks["Log"].hide()
    first.close()
    second = MainWindow(settings=settings)
    qtbot.addWidget(second)
    second.show()
    qtbot.wait(10)
    assert not second.docks["Log"].isVisible() and second.docks["Control"].isVisible()
    tab_bars = [bar for bar in second.findChildren(QtWidgets.QTabBar) if bar.isVisible()]
    assert len(tab_bars) == len({tuple(bar.tabText(i) for i in range(bar.count())) for bar in tab_bars})
    second.reset_layout()
    qtbot.wait(10)
    assert second.docks["Log"].isVisible() and second.tabifiedDockWidgets(second.docks["Log"]) == \
        [second.docks["Checkpoints"]]
    second.timer.stop()


class StaticSource:
    """A run source with nothing new to read: the tests fill its state's series themselves."""

    def __init__(self, name: str):
        self.name = name

    def poll(self, limit=None):
        return []


def test_a_million_points_per_series_stay_responsive(window, qtbot):
    connection = RunConnection(StaticSource("big"))
    state = connection.state
    count = 1_000_000
    iterations = np.arange(1, count + 1, dtype=np.float64)
    loss = 2.0 * np.exp(-iterations / 2e5) + 0.05 * np.random.default_rng(0).normal(size=count)
    state.series["train/loss"] = series = MetricSeries("train/loss")
    series.extend(iterations, iterations / 1000, iterations * 0.01, loss)
    state.revision += 1
    window.add_connection(connection)
    chart = window.charts.charts["train/loss"]
    started = time.perf_counter()
    window.refresh()
    chart.plot_widget.grab()
    first_frame = time.perf_counter() - started
    series.append(count + 1, count / 1000, count * 0.01, 0.1)  # one more point: only the tail is smoothed
    started = time.perf_counter()
    window.refresh()
    chart.plot_widget.grab()
    next_frame = time.perf_counter() - started
    raw = chart.lines[("big", "train/loss")].raw
    assert len(raw.xData) == count + 1  # every point is kept...
    drawn_x, _ = raw.getData()
    # ...but what is drawn is reduced to about the view's pixel width (peak downsampling, clipped to the view),
    # which is what keeps a frame cheap; the frame times themselves are measured in benchmarks/gui_overhead.py.
    assert 0 < len(drawn_x) < 20_000, len(drawn_x)
    print(f"1,000,001 points, {len(drawn_x)} drawn: first frame {first_frame:.3f} s, next frame {next_frame:.3f} s")


def test_several_runs_side_by_side_in_their_own_colours(window, qtbot, finished_run, tmp_path):
    other = blobs_trainer(lr=0.05, run_directory=tmp_path / "faster")
    other.run(epochs=2)
    window.open_run_directory(finished_run)
    window.open_run_directory(other.run_directory.path)
    window.open_run_directory(finished_run)  # the same folder twice gets a distinct name
    _settle(window, qtbot)
    assert [c.name for c in window.connections] == ["blobs", "faster", "blobs (2)"]
    lines = window.charts.charts["train/loss"].lines
    assert set(lines) == {("blobs", "train/loss"), ("faster", "train/loss"), ("blobs (2)", "train/loss")}
    colours = {line.smoothed.opts["pen"].color().name() for line in lines.values()}
    assert len(colours) == 3
    assert len(lines[("faster", "train/loss")].raw.xData) == 12
    window.run_selector.setCurrentIndex(1)
    window.refresh()
    assert window.control.fields["run"].text() == "faster"
    assert window.hyperparameters.table.item(0, 2).text() == "0.05"
    window.close_run(window.connections[0])
    window.refresh()
    assert ("blobs", "train/loss") not in window.charts.charts["train/loss"].lines


def test_run_with_gui_trains_on_a_thread_and_returns_the_result(qtbot, settings, tmp_path):
    from sigma_gui.app import run_with_gui
    trainer = blobs_trainer(run_directory=tmp_path / "with-gui")
    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    result = run_with_gui(trainer, close_when_done=True, window=window, iterations=9)
    assert result.iteration == 9 and result.reason == "reached 9 iterations"
    state = window.current.state
    assert len(state.series["train/loss"]) == 9 and state.status == "finished"
    assert not window.isVisible()


def test_chart_interval_settles_where_redraws_cost_the_target_share(window):
    """The governor, fed the CPU time of simulated redraw cycles: each redraw costs ``cost`` seconds and the rest
    of the GUI a share ``baseline``; the interval must settle at cost / (target - baseline) within a few cycles."""
    from sigma_gui import window as window_module
    target, cost, baseline = window_module.GUI_CPU_TARGET, 0.1, 0.01
    now, cpu = 100.0, 50.0
    window.govern(True, now, cpu)   # the first cycle starts here
    intervals = []
    for _ in range(8):
        interval = window.chart_interval
        now, cpu = now + interval, cpu + cost + baseline * interval
        window.govern(True, now, cpu)
        intervals.append(window.chart_interval)
    settled = cost / (target - baseline)
    assert intervals[0] == pytest.approx(3.0 * window.minimum_chart_interval)  # at most x3 per cycle
    assert intervals[-1] == pytest.approx(settled, rel=0.02)
    assert window.gui_cpu_share == pytest.approx(target, rel=0.02)
    # Redraws far too costly for the target: the interval stops at its maximum.
    for _ in range(10):
        now, cpu = now + window.chart_interval, cpu + 5.0
        window.govern(True, now, cpu)
    assert window.chart_interval == window_module.MAX_CHART_INTERVAL
    # Training over: back to the shortest interval at once.
    window.govern(False, now + 1.0, cpu + 0.5)
    assert window.chart_interval == window.minimum_chart_interval


def test_a_redraw_with_new_points_paints_each_chart_once(window, qtbot, monkeypatch):
    # Painting is most of a redraw's cost; pyqtgraph settling a view's range inside its own paint used to
    # dirty the view again, so that Qt painted every chart twice.
    import pyqtgraph as pg

    connection = RunConnection(StaticSource("steps"))
    state = connection.state
    state.series["train/loss"] = series = MetricSeries("train/loss")
    for step in range(1, 2001):
        series.append(step, step / 100, step * 0.01, 1.0 / step)
    state.revision += 1
    window.add_connection(connection)
    _settle(window, qtbot)
    chart = window.charts.charts["train/loss"]
    paints = []
    original = pg.GraphicsView.paintEvent

    def counted(view, event):
        if view is chart.plot_widget:
            paints.append(1)
        return original(view, event)

    monkeypatch.setattr(pg.GraphicsView, "paintEvent", counted)
    for step in range(2001, 2101):
        series.append(step, step / 100, step * 0.01, 1.0 / step)
    state.revision += 1
    window.refresh()
    for _ in range(5):
        QtWidgets.QApplication.processEvents()
        qtbot.wait(5)
    assert chart.lines[("steps", "train/loss")].drawn[0] == 2100  # the new points were handed to the chart
    assert len(paints) == 1


def test_a_live_run_takes_its_charts_from_the_ones_built_ahead(window, qtbot):
    # Built with the window, before the run trains: building them when the first metrics arrive held the
    # training thread up (pyqtgraph, about 25 ms a chart, holding the interpreter lock).
    spares = list(window.charts.spares)
    assert len(spares) == 6 and not any(chart.isVisible() for chart in spares)
    trainer = blobs_trainer()
    window.add_connection(connect_trainer(trainer))
    trainer.run(iterations=7)
    _settle(window, qtbot)
    keys = sorted(window.charts.charts)
    assert {"train/loss", "train/accuracy", "lr"} <= set(keys)
    for key in keys[:6]:
        chart = window.charts.charts[key]
        assert chart in spares and chart.title == key and key in chart.title_label.text() and chart.isVisible()
        assert chart.matches(key) and len(chart.lines[("this process", key)].raw.xData) >= 1
    assert window.charts.spares == spares[len(keys):]
    line = window.charts.charts["train/loss"].lines[("this process", "train/loss")]
    assert line.raw.xData.tolist() == list(range(1, 8))


def test_time_the_gui_was_stopped_is_skipped_by_its_redraw_clocks(window, monkeypatch):
    # Stopped (Ctrl-Z, SIGSTOP, a laptop's sleep), the window used no CPU for that time: counted, the governor
    # would take it for cheap drawing and shorten the chart interval.
    from sigma_gui import window as window_module
    refreshes = []
    monkeypatch.setattr(window, "refresh", lambda force_charts=True: refreshes.append(force_charts))
    window._last_tick, window._cycle_started = 100.0, (95.0, 7.0)
    window._charts_drawn_at, window._readouts_drawn_at = 96.0, 99.5
    window.tick(now=100.1)  # on time: nothing skipped
    assert window._cycle_started == (95.0, 7.0) and window._charts_drawn_at == 96.0
    window.tick(now=130.1)  # 30 s late
    skipped = 30.0 - window.timer.interval() / 1000
    assert window._cycle_started == (pytest.approx(95.0 + skipped), 7.0)
    assert window._charts_drawn_at == pytest.approx(96.0 + skipped)
    assert window._readouts_drawn_at == pytest.approx(99.5 + skipped)
    assert refreshes == [False, False]
    # The governor then sees the cycle as it was while running: 0.3 s of CPU over 5.2 s of it.
    window.govern(True, 130.2, 7.3)
    assert window.gui_cpu_share == pytest.approx(0.3 / (130.2 - 95.0 - skipped))
    assert window_module.STOPPED_GAP < 30.0
