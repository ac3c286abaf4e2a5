"""Take the screenshots in ``docs/gui.md`` from a real, short MNIST run.

What a new user does, step by step, in the window: train the demo MLP in
this process and watch it, pause it, change the learning rate in the
hyperparameter table, resume, let it finish, draw a digit and let the model
classify it, then open the finished run afterwards, read-only. Each step
is done through the widgets (button clicks, a table edit, mouse strokes on
the canvas) and captured as a PNG.

    xvfb-run -a python -m sigma_gui.screenshots [--out docs/images] [--epochs 2] [--sample]

It uses the full MNIST when the data search path has it (``SIGMA_DATA``),
else the sample bundled with Sigma, and says which.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time
from typing import Callable, List

from PyQt6 import QtCore, QtWidgets

from sigma_gui.app import TrainingThread, application
from sigma_gui.connection import connect_trainer
from sigma_gui.window import MainWindow

DEFAULT_OUT = pathlib.Path(__file__).resolve().parents[1] / "docs" / "images"
# Strokes of a "7" on the 280x280 canvas: the bar, then the slanted stem.
SEVEN = [[(70, 60), (130, 58), (210, 60)], [(210, 60), (180, 120), (150, 180), (125, 240)]]


def wait_until(app, condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"screenshots: gave up waiting for {what} after {timeout:.0f} s")
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.01)


def settle(app, seconds: float = 0.3) -> None:
    """Let Qt finish layouts and paints (docks restored from settings move after the first frames)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)


def save(widget: QtWidgets.QWidget, path: pathlib.Path, saved: List[pathlib.Path]) -> None:
    # Quality 0 is PNG's strongest compression: smaller files, the same pixels.
    if not widget.grab().save(str(path), "PNG", 0):
        raise OSError(f"could not write {path}")
    saved.append(path)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")


def take(out: pathlib.Path, epochs: float, sample: bool, root: pathlib.Path) -> List[pathlib.Path]:
    from sigma.training import demo
    app = application()
    out.mkdir(parents=True, exist_ok=True)
    saved: List[pathlib.Path] = []
    trainer = demo.make_trainer("mlp", sample=sample, announce=lambda text: print(text))
    trainer.hooks = [h for h in trainer.hooks if type(h).__name__ != "ProgressBar"]
    trainer.attach_run_directory(root / "demo-mlp")
    settings = QtCore.QSettings(str(root / "gui.ini"), QtCore.QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    window.resize(1400, 900)
    window.add_connection(connect_trainer(trainer))
    window.show()
    window.charts.bar.filter.setText("*/*")  # the train/validation/test curves; lr and throughput have panels
    thread = TrainingThread(trainer, {"epochs": epochs})
    thread.start()
    state = window.current.state
    batches = trainer.position.batches_per_epoch or 100

    # Live: the first epoch's curves, then pause from the control panel.
    wait_until(app, lambda: state.iteration >= int(0.6 * batches) or not thread.is_alive(), 600, "training")
    window.control.buttons["pause"].click()
    wait_until(app, lambda: state.status == "paused", 60, "the pause")
    window.refresh()
    settle(app)
    save(window, out / "live-paused.png", saved)
    save(window.docks["Control"], out / "control-paused.png", saved)

    # Change the learning rate while paused: the loop applies it before the next step.
    table = window.hyperparameters.table
    row = [table.item(r, 1).text() for r in range(table.rowCount())].index("lr")
    table.item(row, 2).setText("0.0003")
    window.refresh()
    save(window.docks["Hyperparameters"], out / "learning-rate-edit.png", saved)
    window.control.buttons["resume"].click()

    wait_until(app, lambda: not thread.is_alive(), 1200, "the end of training")
    for _ in range(5):
        window.refresh()
        app.processEvents()
    if thread.error is not None:
        raise thread.error
    print(f"training: {thread.result.reason}; test accuracy {thread.result.metrics.get('test/accuracy', float('nan')):.4f}")

    # Draw a digit and let the trained model classify it.
    window.docks["Draw a digit"].raise_()
    canvas = window.draw.canvas
    for stroke in SEVEN:
        canvas.draw_stroke(stroke)
    window.refresh()
    settle(app)
    save(window, out / "finished-with-drawing.png", saved)
    save(window.docks["Draw a digit"], out / "draw-a-digit.png", saved)
    window.docks["Predictions"].raise_()
    settle(app)
    save(window.docks["Predictions"], out / "predictions.png", saved)
    window.structure.layer_selected.emit("1")
    settle(app)
    save(window.docks["Histograms"], out / "histograms.png", saved)
    window.close()

    # Afterwards: open the finished run from its folder, read-only.
    old = MainWindow(settings=settings)
    old.resize(1400, 900)
    old.show()
    connection = old.open_run_directory(root / "demo-mlp")
    wait_until(app, lambda: connection.poll() == 0 and connection.state.series, 60, "reading the run")
    old.charts.bar.filter.setText("*/*")
    old.docks["Checkpoints"].raise_()
    old.docks["Network"].raise_()  # read from the run's checkpoints
    old.refresh()
    settle(app)
    save(old, out / "finished-run-opened.png", saved)
    old.close()
    return saved


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Take the GUI guide's screenshots from a real MNIST run.")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--sample", action="store_true", help="train on the bundled MNIST sample")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        take(args.out, args.epochs, args.sample, pathlib.Path(root))
    return 0


if __name__ == "__main__":
    if "QT_QPA_PLATFORM" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # no X server: render off screen, same pixels
    sys.exit(main())
