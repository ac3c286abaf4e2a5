"""How much the GUI slows training: samples/s of the MNIST demo with and without a window attached.

Three ways to train the same run (the demo's network, Adam, batch 128, a
run directory with its event log, as ``sigma demo`` trains), always on a
worker thread with the main thread free:

  none         no GUI: the main thread only waits
  in-process   the window on the main thread, fed by the QueueFeed hook (charts, histograms, predictions)
  remote       the hooks a run adds for a GUI in another process (control channel, event-log extras), and a
               window on the main thread tailing the run directory, as ``sigma gui runs/<name>`` would

Rounds alternate the modes so that machine noise hits all alike; the table
gives the median samples/s, the slowdown against ``none``, and the CPU time
the GUI thread itself used per second of training (on a shared, busy machine
the wall-clock slowdown is noisy; the CPU share is what the GUI costs). The window is
drawn by Qt's offscreen platform unless a display is set.

    python benchmarks/gui_overhead.py [--model mlp|cnn] [--iterations 600] [--rounds 3] [--sample]

It trains on the full MNIST when the data search path has it (``SIGMA_DATA``), else on the bundled sample,
whose 11-batch epochs make the per-epoch work (evaluation, sample predictions) unusually frequent.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
SHARED_DATASETS = os.path.join(os.path.dirname(ROOT), "shared", "datasets")
if "SIGMA_DATA" not in os.environ and os.path.isdir(SHARED_DATASETS):
    os.environ["SIGMA_DATA"] = SHARED_DATASETS  # where this repository's CI keeps MNIST

from benchmarks.common import machine, table  # noqa: E402

MODES = ("none", "in-process", "remote")


def make_trainer(model: str, sample: bool, root: str, name: str):
    from sigma.training import demo
    trainer = demo.make_trainer(model, sample=sample, announce=lambda text: None)
    # Keep what `sigma demo` does per step (run directory, event log); leave out the progress bar (it prints)
    # and the per-epoch checkpoint files (their disk time would blur the comparison).
    # and early stopping (every mode must make the same number of steps).
    trainer.hooks = [h for h in trainer.hooks if type(h).__name__ not in ("ProgressBar", "Checkpoint",
                                                                          "EarlyStopping")]
    trainer.attach_run_directory(os.path.join(root, name))
    return trainer


def train(mode: str, model: str, sample: bool, iterations: int, root: str, app) -> float:
    """Samples per second of ``iterations`` steps in ``mode``, and the GUI thread's CPU seconds per second."""
    import sigma_gui
    from PyQt6 import QtCore
    from sigma_gui.window import MainWindow
    trainer = make_trainer(model, sample, root, f"{mode}-{time.time_ns()}")
    window = None
    settings = QtCore.QSettings(os.path.join(root, "gui.ini"), QtCore.QSettings.Format.IniFormat)
    if mode == "in-process":
        window = MainWindow(settings=settings)
        window.add_connection(sigma_gui.connect_trainer(trainer))
    elif mode == "remote":
        sigma_gui.attach_remote(trainer)
    timing = {}

    def work():
        started = time.perf_counter()
        trainer.run(iterations=iterations)
        timing["seconds"] = time.perf_counter() - started

    thread = threading.Thread(target=work)
    gui_cpu_started = time.thread_time()
    thread.start()
    if mode == "remote":
        window = MainWindow(settings=settings)
        while not os.path.exists(trainer.run_directory.events_path) and thread.is_alive():
            time.sleep(0.01)
        window.open_run_directory(trainer.run_directory.path)
    if window is not None:
        window.show()
    while thread.is_alive():
        if window is not None:
            app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.005)  # the GUI's event loop sleeps between timer ticks too
    thread.join()
    gui_cpu = time.thread_time() - gui_cpu_started  # this (the GUI's) thread's own CPU time
    if window is not None:
        window.refresh()
        if mode == "in-process":
            # The charts must have drawn the run: otherwise "no slowdown" would mean "no GUI".
            drawn = window.charts.charts["train/loss"].lines
            points = len(next(iter(drawn.values())).raw.xData) if drawn else 0
            assert points == iterations, f"the GUI drew {points} of {iterations} points: it did not keep up"
        window.timer.stop()
        window.close()
        window.deleteLater()
    return trainer.samples_seen / timing["seconds"], gui_cpu / timing["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sample", action="store_true", help="train on the bundled MNIST sample")
    args = parser.parse_args()
    from sigma_gui.app import application
    app = application()
    results = {mode: [] for mode in MODES}
    gui_share = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as root:
        train("none", args.model, args.sample, 20, root, app)  # warm-up: numba kernels, caches
        for round_number in range(args.rounds):
            order = MODES[round_number % len(MODES):] + MODES[:round_number % len(MODES)]
            for mode in order:
                speed, share = train(mode, args.model, args.sample, args.iterations, root, app)
                results[mode].append(speed)
                gui_share[mode].append(share)
    base = statistics.median(results["none"])
    rows = []
    for mode in MODES:
        median = statistics.median(results[mode])
        spread = f"{min(results[mode]):,.0f}-{max(results[mode]):,.0f}"
        rows.append([mode, f"{median:,.0f}", spread, f"{100 * (1 - median / base):+.1f}%",
                     f"{100 * statistics.median(gui_share[mode]):.1f}%"])
    print(f"GUI overhead: demo {args.model} on {'the MNIST sample' if args.sample else 'MNIST'}, batch 128, {args.iterations} steps x {args.rounds} rounds, "
          f"{machine()}, QT_QPA_PLATFORM={os.environ.get('QT_QPA_PLATFORM')}")
    print(table(["GUI", "samples/s (median)", "range", "slowdown", "GUI thread CPU / training time"], rows))
    print("slowdown: 1 - samples/s with the GUI / samples/s without. The last column is the main thread's own CPU\n"
          "time (Qt events, polling, drawing) per second of training: what the GUI takes from a core.")


if __name__ == "__main__":
    main()
