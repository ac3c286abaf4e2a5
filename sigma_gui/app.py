"""Starting the GUI: ``sigma gui RUN_DIR ...``, ``sigma demo --gui``, ``trainer.run(gui=True)``.

``run_with_gui`` (what ``--gui`` and ``trainer.run(gui=True)`` call) trains
on a worker thread while the window runs on the main thread (Qt requires
its widgets there), and returns the trainer's ``RunResult`` once the
window is closed. Closing the window while the run trains, or pressing
Ctrl-C in the terminal, stops the run after its current step (its hooks
see the ``stop`` moment, so a ``Checkpoint(on("stop"))`` writes its file).

The window needs PyQt6 and pyqtgraph (the ``gui`` extra) and a display;
:func:`check_gui_packages` and :func:`display_problem` say what is missing
before Qt is touched.

Example (a script)::

    from sigma.training import demo
    from sigma_gui.app import run_with_gui
    trainer = demo.make_trainer("mlp", sample=True)
    trainer.attach_run_directory("runs/demo-gui")
    result = run_with_gui(trainer, epochs=3)
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from typing import Any, Dict, Optional, Sequence

from sigma_gui.connection import connect_trainer

GUI_PACKAGES = (("PyQt6", "PyQt6"), ("PyQt6.QtWidgets", "PyQt6"), ("pyqtgraph", "pyqtgraph"))
INSTALL_HINT = ("install the gui extra: python -m pip install -e '.[gui]' in a Sigma checkout, or "
                "python -m pip install 'sigma[gui]'")


def check_gui_packages() -> None:
    """Raise an ImportError that names what is missing and how to install it, unless PyQt6 and pyqtgraph import.

    Example:
        >>> from sigma_gui.app import INSTALL_HINT
        >>> "'.[gui]'" in INSTALL_HINT and "sigma[gui]" in INSTALL_HINT
        True
    """
    problems = []
    for module, package in GUI_PACKAGES:
        if any(package in problem for problem in problems):
            continue
        try:
            importlib.import_module(module)
        except ImportError as error:
            problems.append(f"{package} ({error})")
    if problems:
        raise ImportError(f"the Sigma GUI needs PyQt6 and pyqtgraph; cannot import {', '.join(problems)}: "
                          f"{INSTALL_HINT}")


def application():
    """The running QApplication, made if there is none yet."""
    from PyQt6 import QtWidgets
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(sys.argv[:1])
        app.setApplicationName("Sigma")
    return app


class TrainingThread(threading.Thread):
    """``trainer.run(**arguments)`` on a thread; keeps the result or the error for the GUI thread.

    ``records``: a queue the window reads (the in-process connection's); when the run ends, the thread puts
    the run's final status and the reason it ended there, which the trainer's hooks cannot see.
    """

    def __init__(self, trainer, arguments: Dict[str, Any], records=None):
        super().__init__(name="sigma-training", daemon=True)
        self.trainer, self.arguments, self.records = trainer, arguments, records
        self.result = None
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            self.result = self.trainer.run(**self.arguments)
        except BaseException as error:  # handed to the caller on the main thread
            self.error = error
            return
        if self.records is not None:
            status = "stopped" if self.trainer.stop_requested else "finished"
            self.records.put({"kind": "description", "status": status, "reason": self.result.reason})


def start_in_process(trainer, window=None, **run_arguments: Any):
    """Open (or reuse) a window on ``trainer`` and start training on a thread; returns (window, thread).

    The caller runs the Qt event loop (``application().exec()``) or, in tests, lets qtbot do it.
    """
    from sigma_gui.window import MainWindow
    application()
    window = window or MainWindow()
    connection = window.add_connection(connect_trainer(trainer))
    thread = TrainingThread(trainer, run_arguments, records=getattr(connection.source, "queue", None))
    thread.start()
    return window, thread


def run_with_gui(trainer, close_when_done: bool = False, window=None, **run_arguments: Any):
    """Train with the window open; returns the ``RunResult`` after the window is closed (see module docs).

    ``close_when_done`` closes the window when training ends (else it stays open for a look at the
    finished run); ``window`` is a MainWindow to use (a new one by default). Raises ImportError (naming the
    ``gui`` extra) without PyQt6 or pyqtgraph, and RuntimeError where no window can open.
    """
    check_gui_packages()
    problem = display_problem()
    if problem:
        raise RuntimeError(problem)
    app = application()
    window, thread = start_in_process(trainer, window, **run_arguments)
    from PyQt6 import QtCore
    watcher = QtCore.QTimer()
    if close_when_done:
        watcher.timeout.connect(lambda: None if thread.is_alive() else window.close())
        watcher.start(200)
    window.show()
    try:
        with _CtrlCClosesWindow(window, trainer):
            app.exec()
    finally:
        # A timer left running would fire into a window that may be deleted later, on whichever thread the
        # garbage collector runs; and its slot would keep the window alive.
        watcher.stop()
        if close_when_done:
            watcher.timeout.disconnect()
    if thread.is_alive():
        if not trainer.stop_requested:
            trainer.stop("the GUI window was closed")
        thread.join()
    if thread.error is not None:
        raise thread.error
    return thread.result


class _CtrlCClosesWindow:
    """While the Qt loop runs, Ctrl-C stops the run and closes the window (Qt would otherwise swallow it until
    the next Python call, and then abort on the KeyboardInterrupt raised inside a slot)."""

    def __init__(self, window, trainer=None):
        self.window, self.trainer = window, trainer
        self.previous = None

    def _interrupted(self, _signal_number, _frame) -> None:
        if self.trainer is not None and self.trainer.running and not self.trainer.stop_requested:
            self.trainer.stop("interrupted from the terminal (Ctrl-C)")
        self.window.close()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._interrupted)
        return self

    def __exit__(self, *_exception) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


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


def launch_problem() -> str:
    """Why the window cannot open here ('' if it can): the gui extra missing, or no display."""
    try:
        check_gui_packages()
    except ImportError as error:
        return str(error)
    return display_problem()


def build_parser(prog: str = "sigma gui") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Watch and drive Sigma training runs.")
    parser.add_argument("runs", nargs="*", help="run directories to open side by side (live or finished), "
                        "e.g. runs/demo-mlp")
    parser.add_argument("--niceness", type=int, default=GUI_NICENESS, metavar="N",
                        help=f"run the window N steps of Unix niceness below the training (default "
                             f"{GUI_NICENESS}; 19 costs a run that keeps every core busy least, and makes the "
                             "window slowest to respond; 0 keeps its priority)")
    return parser


# How much lower than the training the standalone window runs (Unix niceness). A monitor should cost the run it
# watches as little as possible: where the training keeps every core busy (the 2-core test machine), a window at
# the same priority takes its CPU share from the training's threads, and a BLAS thread that is descheduled
# stalls its partner, so the run slowed by 9% at niceness 0 and 6% at 10 (benchmarks/gui_overhead.py); at 19,
# 2.7-3.7% against 4.7-5.9% at 10 (gui_overhead.py --alternate), but a window at 19 beside a run that keeps every
# core busy gets about 1% of a core, and takes seconds to redraw or answer a click. On an idle core, niceness
# changes nothing.
GUI_NICENESS = 10


def yield_to_training(niceness: int = GUI_NICENESS) -> None:
    """Lower this process's CPU priority by ``niceness`` (where the system has niceness; never fails).

    For the standalone window (``sigma gui``) only: a window in the training's own process keeps its priority,
    which on Linux would pass to every thread the process starts afterwards.
    """
    if niceness <= 0 or not hasattr(os, "nice"):
        return
    try:
        os.nice(niceness)
    except OSError:  # not allowed here: the window still works, at the same priority as the run
        pass


def main(argv: Optional[Sequence[str]] = None, prog: str = "sigma gui") -> int:
    """``sigma gui [RUN_DIR ...]``: open the runs side by side until the window is closed; the exit status.

    A run directory that cannot be opened shows an error dialog in the window; a missing PyQt6 or pyqtgraph,
    or no display, is a message on stderr and status 1.
    """
    args = build_parser(prog).parse_args(argv)
    problem = launch_problem()
    if problem:
        print(f"{prog}: {problem}", file=sys.stderr)
        return 1
    yield_to_training(args.niceness)
    app = application()
    from sigma_gui.window import MainWindow
    window = MainWindow()
    for path in args.runs:
        window.open_run_directory(path)
    window.show()
    with _CtrlCClosesWindow(window):
        return app.exec()
