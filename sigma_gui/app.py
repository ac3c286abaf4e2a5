"""Starting the GUI: ``python -m sigma_gui RUN_DIR ...`` and ``run_with_gui(trainer, epochs=...)``.

``run_with_gui`` trains on a worker thread while the window runs on the
main thread (Qt requires its widgets there), and returns the trainer's
``RunResult`` once the window is closed. Closing the window while the run
trains stops the run after its current step.

Example (a script)::

    from sigma.training import demo
    from sigma_gui.app import run_with_gui
    trainer = demo.make_trainer("mlp", sample=True)
    trainer.attach_run_directory("runs/demo-gui")
    result = run_with_gui(trainer, epochs=3)
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import Any, Dict, Optional, Sequence

from sigma_gui.connection import connect_trainer


def application():
    """The running QApplication, made if there is none yet."""
    from PyQt6 import QtWidgets
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(sys.argv[:1])
        app.setApplicationName("Sigma")
    return app


class TrainingThread(threading.Thread):
    """``trainer.run(**arguments)`` on a thread; keeps the result or the error for the GUI thread."""

    def __init__(self, trainer, arguments: Dict[str, Any]):
        super().__init__(name="sigma-training", daemon=True)
        self.trainer, self.arguments = trainer, arguments
        self.result = None
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            self.result = self.trainer.run(**self.arguments)
        except BaseException as error:  # handed to the caller on the main thread
            self.error = error


def start_in_process(trainer, window=None, **run_arguments: Any):
    """Open (or reuse) a window on ``trainer`` and start training on a thread; returns (window, thread).

    The caller runs the Qt event loop (``application().exec()``) or, in tests, lets qtbot do it.
    """
    from sigma_gui.window import MainWindow
    application()
    window = window or MainWindow()
    window.add_connection(connect_trainer(trainer))
    thread = TrainingThread(trainer, run_arguments)
    thread.start()
    return window, thread


def run_with_gui(trainer, close_when_done: bool = False, window=None, **run_arguments: Any):
    """Train with the window open; returns the ``RunResult`` after the window is closed (see module docs).

    ``close_when_done`` closes the window when training ends; ``window`` is a MainWindow to use (a new one
    by default).
    """
    app = application()
    window, thread = start_in_process(trainer, window, **run_arguments)
    if close_when_done:
        from PyQt6 import QtCore
        watcher = QtCore.QTimer(window)
        watcher.timeout.connect(lambda: None if thread.is_alive() else window.close())
        watcher.start(200)
    window.show()
    app.exec()
    if thread.is_alive():
        trainer.stop("the GUI window was closed")
        thread.join()
    if thread.error is not None:
        raise thread.error
    return thread.result


def display_problem(environment=None, platform: str = sys.platform) -> str:
    """Why no window can open here ('' if one can): Qt aborts the process instead of raising, so ask first.

    Example:
        >>> from sigma_gui.app import display_problem
        >>> display_problem({"DISPLAY": ":0"}, "linux"), "xvfb-run" in display_problem({}, "linux")
        ('', True)
    """
    environment = os.environ if environment is None else environment
    if environment.get("QT_QPA_PLATFORM") or not platform.startswith("linux"):
        return ""
    if environment.get("DISPLAY") or environment.get("WAYLAND_DISPLAY"):
        return ""
    return ("no display to open a window on (neither DISPLAY nor WAYLAND_DISPLAY is set): run it in a desktop "
            "session, under xvfb-run, or with QT_QPA_PLATFORM=offscreen")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sigma gui", description="Watch and drive Sigma training runs.")
    parser.add_argument("runs", nargs="*", help="run directories to open (live or finished), e.g. runs/demo-mlp")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``sigma gui [RUN_DIR ...]``: open the runs side by side; returns the exit status."""
    args = build_parser().parse_args(argv)
    problem = display_problem()
    if problem:
        print(f"sigma gui: {problem}", file=sys.stderr)
        return 1
    app = application()
    from sigma_gui.window import MainWindow
    window = MainWindow()
    for path in args.runs:
        window.open_run_directory(path)
    window.show()
    return app.exec()
