"""The ways a user opens the window: `sigma gui RUN_DIR`, `sigma demo --gui`, `trainer.run(gui=True)`.

Each test runs the command's real Qt event loop (offscreen); a timer inside that loop looks at the window the
command opened, and closes it when the test has seen what it waits for (or after a deadline, which fails the
test rather than hanging it).
"""
import io
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("PyQt6", reason="the GUI tests need PyQt6: pip install 'pyqt6<6.12'")
pytest.importorskip("pyqtgraph", reason="the GUI tests need pyqtgraph: pip install pyqtgraph")
pytest.importorskip("pytestqt", reason="the GUI tests need pytest-qt: pip install pytest-qt")

from PyQt6 import QtCore, QtWidgets  # noqa: E402

import sigma.io  # noqa: E402
from gui_helpers import blobs_trainer, metric_values  # noqa: E402
from sigma import cli  # noqa: E402
from sigma_gui.window import MainWindow  # noqa: E402


@pytest.fixture(autouse=True)
def private_settings(tmp_path_factory):
    """Windows the commands make use the default QSettings: point them at a temporary folder, not ~/.config."""
    folder = tmp_path_factory.mktemp("qsettings")
    QtCore.QSettings.setPath(QtCore.QSettings.Format.NativeFormat, QtCore.QSettings.Scope.UserScope, str(folder))
    QtCore.QSettings.setPath(QtCore.QSettings.Format.IniFormat, QtCore.QSettings.Scope.UserScope, str(folder))


class WindowWatcher:
    """From a timer in the command's event loop: finds the MainWindow it opened and calls ``look(window)``
    every ``interval`` ms; closes the window when ``look`` returns True, and quits the loop at the deadline."""

    def __init__(self, look, timeout: float = 60.0, interval: int = 50):
        self.look = look
        self.window = None
        self.timed_out = False
        self.deadline = time.monotonic() + timeout
        self.timer = QtCore.QTimer()
        self.timer.timeout.connect(self._tick)
        self.timer.start(interval)

    def _tick(self) -> None:
        if self.window is None:
            shown = [w for w in QtWidgets.QApplication.topLevelWidgets() if isinstance(w, MainWindow) and
                     w.isVisible()]
            if not shown:
                return
            self.window = shown[0]
        if self.look(self.window):
            self.window.close()
        elif time.monotonic() > self.deadline:
            self.timed_out = True
            self.window.close()
            QtWidgets.QApplication.instance().quit()

    def stop(self) -> None:
        """Stop looking; the watcher then holds the window only by its own reference, freed on this thread."""
        self.timer.stop()
        self.timer.timeout.disconnect()  # the slot is a bound method: a reference cycle through Qt otherwise


def _plotted(window, run: str, key: str):
    line = window.charts.charts[key].lines[(run, key)]
    return np.asarray(line.raw.xData), np.asarray(line.raw.yData)


@pytest.fixture
def finished_run(tmp_path):
    trainer = blobs_trainer(run_directory=tmp_path / "blobs")
    trainer.run(epochs=2)
    return trainer.run_directory.path


@pytest.fixture
def priority_lowered(monkeypatch):
    """Record ``sigma gui``'s call to lower its priority instead of lowering this test process's."""
    from sigma_gui import app
    calls = []
    monkeypatch.setattr(app, "yield_to_training", lambda niceness=app.GUI_NICENESS: calls.append(niceness))
    return calls


def test_yield_to_training_lowers_the_process_priority():
    code = ("import os; from sigma_gui.app import yield_to_training; before = os.getpriority(os.PRIO_PROCESS, 0); "
            "yield_to_training(5); print(os.getpriority(os.PRIO_PROCESS, 0) - before)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "5", out.stdout + out.stderr


def test_sigma_gui_opens_a_finished_run_with_its_curves(qtbot, finished_run, capsys, priority_lowered):
    def loaded(window):
        window.refresh()
        return "train/loss" in window.charts.charts and window.current.source.at_end

    watcher = WindowWatcher(loaded)
    try:
        status = cli.main(["gui", str(finished_run)])
    finally:
        watcher.stop()
    assert status == 0 and not watcher.timed_out, capsys.readouterr().err
    assert priority_lowered == [10]
    window = watcher.window
    assert [c.name for c in window.connections] == ["blobs"] and not window.error_dialogs
    iterations, values = metric_values(finished_run, "train/loss")
    plotted_x, plotted_y = _plotted(window, "blobs", "train/loss")
    np.testing.assert_array_equal(plotted_x, iterations)
    np.testing.assert_array_equal(plotted_y, values)
    assert len(values) == 12
    assert window.control.fields["status"].text() == "finished"
    assert window.control.fields["ended because"].text() == "reached 2 epochs"
    assert window.control.fields["connection"].text() == "read-only"


def test_sigma_gui_shows_an_error_dialog_for_a_folder_that_is_not_a_run(qtbot, tmp_path, priority_lowered):
    (tmp_path / "holiday-photos").mkdir()
    watcher = WindowWatcher(lambda window: bool(window.error_dialogs))
    try:
        status = cli.main(["gui", str(tmp_path / "holiday-photos")])
    finally:
        watcher.stop()
    assert status == 0 and not watcher.timed_out
    assert "holiday-photos cannot be opened as a Sigma run" in watcher.window.error_dialogs[0].text()
    assert watcher.window.connections == []


def test_demo_with_gui_is_paused_from_the_window_and_shows_the_live_curve(qtbot, tmp_path):
    """What a new user does: `sigma demo --gui`, watch the loss, pause, look, resume, let it finish."""
    seen = {"clicked": set(), "paused at": [], "points while paused": []}

    def click(window, command):
        if command not in seen["clicked"] and window.control.buttons[command].isEnabled():
            seen["clicked"].add(command)
            window.control.buttons[command].click()

    def watch(window):
        window.refresh()  # the window's timer redraws charts only once a second while training
        connection = window.current
        if connection is None:
            return False
        state = connection.state
        if state.status == "running":
            click(window, "pause")
        elif state.status == "paused" and len(seen["paused at"]) < 5:
            if "train/loss" not in window.charts.charts:
                click(window, "step")  # paused before its first step: one step, to have a point to show
                return False
            seen["paused at"].append(state.iteration)
            seen["points while paused"].append(len(_plotted(window, "gui-demo", "train/loss")[1]))
            if len(seen["paused at"]) == 5:
                click(window, "resume")
        return False  # --gui-close-when-done closes it

    watcher = WindowWatcher(watch)
    out = io.StringIO()
    try:
        status = cli.main(["demo", "--gui", "--gui-close-when-done", "--sample", "--batch-size", "32",
                           "--iterations", "40", "--root", str(tmp_path), "--name", "gui-demo"], out=out)
    finally:
        watcher.stop()
    output = out.getvalue()
    assert status == 0 and not watcher.timed_out, output
    assert "reached 40 iterations (epoch 0, iteration 40)" in output and "test accuracy:" in output
    window = watcher.window
    assert not window.isVisible()  # closed by --gui-close-when-done, which ended the command
    paused_at, points = seen["paused at"], seen["points while paused"]
    assert len(set(paused_at)) == 1 and 0 < paused_at[0] < 40, paused_at  # no step while paused
    assert points[-1] == paused_at[0]  # the chart showed every step made before the pause
    run = tmp_path / "gui-demo"
    iterations, values = metric_values(run, "train/loss")
    assert len(values) == 40
    plotted_x, plotted_y = _plotted(window, "gui-demo", "train/loss")
    assert 0 < len(plotted_y) <= 40
    np.testing.assert_array_equal(plotted_x, iterations[:len(plotted_x)])
    np.testing.assert_allclose(plotted_y, values[:len(plotted_y)], rtol=1e-6)
    window.poll()  # the records that arrived after the window's last tick (it closes as soon as training ends)
    state = window.current.state
    np.testing.assert_allclose(state.series["train/loss"].values, values, rtol=1e-6)
    assert state.status == "finished" and state.reason == "reached 40 iterations"
    kinds = [record["kind"] for record in sigma.io.RunDirectory.open(run).read_events()[0]]
    assert kinds.count("pause") == 1 and kinds.count("resume") == 1
    assert (run / "checkpoints" / "last.h5").is_file() and not (run / "control.json").exists()


def test_trainer_run_with_gui_returns_the_run_result(qtbot, tmp_path):
    def ended(window):
        window.refresh()
        return window.current is not None and window.current.state.reason is not None

    trainer = blobs_trainer(run_directory=tmp_path / "with-gui")
    watcher = WindowWatcher(ended)
    try:
        result = trainer.run(iterations=9, gui=True)
    finally:
        watcher.stop()
    assert not watcher.timed_out
    assert result.iteration == 9 and result.reason == "reached 9 iterations"
    state = watcher.window.current.state
    assert len(state.series["train/loss"]) == 9 and state.status == "finished"
    assert watcher.window.control.fields["ended because"].text() == "reached 9 iterations"


def test_closing_the_window_stops_the_run_after_its_step_and_writes_the_last_checkpoint(qtbot, tmp_path):
    from sigma.io import checkpoint_summary
    from sigma.training import every, hooks, on
    trainer = blobs_trainer(run_directory=tmp_path / "closed")
    trainer.add_hook(hooks.Checkpoint(every(1, "epoch") | on("stop"), save_top_k=0, save_last=True))
    watcher = WindowWatcher(lambda window: window.current is not None and window.current.state.iteration >= 20)
    try:
        result = trainer.run(iterations=10 ** 6, gui=True)
    finally:
        watcher.stop()
    assert not watcher.timed_out
    assert result.reason == "the GUI window was closed" and 20 <= result.iteration < 10 ** 6
    last = checkpoint_summary(tmp_path / "closed" / "checkpoints" / "last.h5")
    assert last["position"]["iteration"] == result.iteration
    assert trainer.run_directory.read_description()["status"] == "stopped"


def test_sigma_gui_niceness_flag_sets_how_far_the_window_yields(qtbot, finished_run, priority_lowered):
    from sigma_gui.app import build_parser
    assert build_parser().parse_args([]).niceness == 10
    watcher = WindowWatcher(lambda window: bool(window.connections))
    try:
        status = cli.main(["gui", "--niceness", "19", str(finished_run)])
    finally:
        watcher.stop()
    assert status == 0 and not watcher.timed_out
    assert priority_lowered == [19]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--niceness", "high"])
