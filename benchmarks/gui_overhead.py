"""How much the GUI slows training: samples/s of the MNIST demo with and without a window attached.

Three ways to train the same run (the demo's network, Adam, batch 128, a
run directory with its event log, as ``sigma demo`` trains), always on a
worker thread with the main thread free:

  none         no GUI: the main thread only waits
  in-process   the window on the main thread (Qt's event loop), fed by the QueueFeed hook: charts,
               histograms, predictions, as ``run_with_gui`` runs it
  remote       the hooks a run adds for a GUI in another process (control channel, event-log extras), and
               ``python -m sigma_gui <run directory>`` in a second process tailing it

Rounds alternate the modes so that machine noise hits all alike; the table
gives the median samples/s, the slowdown against ``none``, and the CPU time
the GUI itself used per second of training (its thread in process, its
process when remote): on a shared, busy machine the wall-clock slowdown is
noisy, and the GUI's CPU share is what it takes from the training. The window is
drawn by Qt's offscreen platform unless a display is set.

    python benchmarks/gui_overhead.py [--model mlp|cnn] [--iterations N] [--rounds 5] [--sample]

It trains on the full MNIST when the data search path has it (``SIGMA_DATA``), else on the bundled sample,
whose 11-batch epochs make the per-epoch work (evaluation, sample predictions) unusually frequent.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
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
from sigma.training import at  # noqa: E402
from sigma.training.condition import Condition  # noqa: E402
from sigma.training.hooks import PRIORITY_READER, Hook  # noqa: E402

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


def _process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class HalfwayMark(Hook):
    """Notes the clock and the samples seen when the run is half done: the second half is the steady state,
    after the window's start-up (creating the charts, first paints) and the redraw governor's settling."""

    priority = PRIORITY_READER + 50

    def __init__(self, iterations: int):
        super().__init__(at(max(iterations // 2, 1), "iteration"), name="halfway_mark")
        self.time, self.samples = None, None

    def __call__(self, trainer) -> None:
        self.time, self.samples = time.perf_counter(), trainer.samples_seen


def open_gui(mode: str, trainer, root: str, app) -> tuple:
    """(window, GUI process) for ``mode``: the window in this process fed by a QueueFeed, or ``sigma gui`` in a
    second process tailing the run directory of a run with ``attach_remote``; (None, None) for "none"."""
    import sigma_gui
    from PyQt6 import QtCore
    from sigma_gui.window import MainWindow
    if mode == "in-process":
        settings = QtCore.QSettings(os.path.join(root, "gui.ini"), QtCore.QSettings.Format.IniFormat)
        window = MainWindow(settings=settings)
        window.add_connection(sigma_gui.connect_trainer(trainer))
        window.show()
        app.processEvents()  # the window is up before training starts, as with run_with_gui
        return window, None
    if mode == "remote":
        sigma_gui.attach_remote(trainer)
        environment = {**os.environ, "XDG_CONFIG_HOME": root}  # its own QSettings file
        gui_process = subprocess.Popen([sys.executable, "-m", "sigma_gui", str(trainer.run_directory.path)],
                                       env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(4.0)  # imports and the first frames; `sigma gui` is usually open before the run starts
        if gui_process.poll() is not None:
            raise RuntimeError(f"the GUI process ended at once (exit status {gui_process.returncode})")
        return None, gui_process
    return None, None


def exec_until_done(app, thread: threading.Thread) -> None:
    """Qt's own event loop, as run_with_gui runs it (it sleeps until a timer or an event wakes it), until
    ``thread`` ends."""
    from PyQt6 import QtCore
    watcher = QtCore.QTimer()
    watcher.timeout.connect(lambda: None if thread.is_alive() else app.quit())
    watcher.start(100)
    app.exec()
    watcher.stop()


def close_window(window) -> None:
    window.timer.stop()
    window.close()
    window.deleteLater()


def train(mode: str, model: str, sample: bool, iterations: int, root: str, app) -> tuple:
    """Samples per second of ``iterations`` steps in ``mode``, the same over the second half of the run only
    (the window settled), and the GUI's CPU seconds per second of training."""
    trainer = make_trainer(model, sample, root, f"{mode}-{time.time_ns()}")
    halfway = HalfwayMark(iterations)
    trainer.add_hook(halfway)
    timing = {}

    def work():
        started = time.perf_counter()
        trainer.run(iterations=iterations)
        timing["end"] = time.perf_counter()
        timing["seconds"] = timing["end"] - started

    thread = threading.Thread(target=work)
    window, gui_process = open_gui(mode, trainer, root, app)
    gui_cpu_started = time.thread_time() if window is not None else \
        _process_cpu_seconds(gui_process.pid) if gui_process is not None else 0.0
    thread.start()
    if window is None:
        thread.join()
    else:
        exec_until_done(app, thread)
        thread.join()
    if window is not None:
        gui_cpu = time.thread_time() - gui_cpu_started  # the GUI (main) thread's own CPU time
        window.refresh()
        # The GUI must have taken in the whole run: otherwise "no slowdown" would mean "no GUI".
        points = len(window.current.state.series["train/loss"])
        assert points == iterations, f"the GUI took in {points} of {iterations} points: it did not keep up"
        close_window(window)
    elif gui_process is not None:
        gui_cpu = _process_cpu_seconds(gui_process.pid) - gui_cpu_started
        gui_process.terminate()
        gui_process.wait(10)
    else:
        gui_cpu = 0.0
    second_half = (trainer.samples_seen - halfway.samples) / (timing["end"] - halfway.time)
    return trainer.samples_seen / timing["seconds"], second_half, gui_cpu / timing["seconds"]


class Phases(Condition):
    """The GUI's on and off phases of one run: true while on. As a hook trigger (``feed.trigger & phases``) it
    keeps the GUI's hooks from running while off."""

    def __init__(self):
        self.on = True

    def __call__(self, moment) -> bool:
        return self.on


class StepClock(Hook):
    """Notes, at every step, the clock and whether the GUI was on."""

    priority = PRIORITY_READER + 100

    def __init__(self, phases: Phases):
        super().__init__(name="step_clock")
        self.phases = phases
        self.steps: list = []

    def __call__(self, trainer) -> None:
        self.steps.append((time.perf_counter(), self.phases.on))


def alternate(mode: str, model: str, sample: bool, iterations: int, seconds: float, root: str, app) -> tuple:
    """One run of ``iterations`` steps with the GUI switched on and off every ``seconds``: off, its hooks do not
    run and the window's timer is stopped (in process), or the GUI process is stopped (SIGSTOP, remote). Machine
    drift then hits both phases alike. Returns the steps/s with the GUI on and with it off (the run's first
    tenth, the window's start-up, left out) and how many phases of each were compared."""
    import signal
    from PyQt6 import QtCore
    trainer = make_trainer(model, sample, root, f"alternate-{mode}-{time.time_ns()}")
    phases = Phases()
    clock = StepClock(phases)
    trainer.add_hook(clock)
    before = {id(hook) for hook in trainer.hooks}
    window, gui_process = open_gui(mode, trainer, root, app)
    for hook in trainer.hooks:
        if id(hook) not in before:  # the GUI's hooks: feed, control channel
            hook.trigger = hook.trigger & phases

    def switch() -> None:
        phases.on = not phases.on
        if window is not None:
            # The window's clocks skip the time its timer was stopped (MainWindow.tick), as they skip the time a
            # GUI process was stopped: its redraw governor would otherwise take the off phases for cheap drawing.
            window.timer.start() if phases.on else window.timer.stop()
        elif gui_process is not None and gui_process.poll() is None:
            gui_process.send_signal(signal.SIGCONT if phases.on else signal.SIGSTOP)

    thread = threading.Thread(target=trainer.run, kwargs={"iterations": iterations})
    thread.start()
    if window is not None:
        switcher = QtCore.QTimer()
        switcher.timeout.connect(switch)
        switcher.start(int(seconds * 1000))
        exec_until_done(app, thread)
        switcher.stop()
        close_window(window)
    else:
        while thread.is_alive():
            thread.join(seconds)
            if thread.is_alive():
                switch()
        if gui_process is not None and gui_process.poll() is None:
            gui_process.send_signal(signal.SIGCONT)
            gui_process.terminate()
            gui_process.wait(10)
    thread.join()
    steps = clock.steps[len(clock.steps) // 10:]
    time_in = {True: 0.0, False: 0.0}
    count_in = {True: 0, False: 0}
    phase_count = {True: 0, False: 0}
    for (previous, previous_on), (now, on) in zip(steps, steps[1:]):
        if on == previous_on:  # a step that straddles a switch belongs to neither phase
            time_in[on] += now - previous
            count_in[on] += 1
        else:
            phase_count[on] += 1
    return (count_in[True] / time_in[True], count_in[False] / time_in[False], phase_count[True],
            phase_count[False])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    # Long enough (10-40 s a run) for the window's redraw governor to settle: its first seconds, with every chart
    # being created, cost several times what a second of steady watching does.
    parser.add_argument("--iterations", type=int, default=None, help="steps per run (mlp 8000, cnn 150)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sample", action="store_true", help="train on the bundled MNIST sample")
    parser.add_argument("--alternate", type=float, default=None, metavar="SECONDS",
                        help="instead: one run per GUI mode with the GUI switched on and off every SECONDS")
    args = parser.parse_args()
    if args.iterations is None:
        args.iterations = {"mlp": 8000, "cnn": 150}[args.model]
    from sigma_gui.app import application
    app = application()
    if args.alternate is not None:
        main_alternating(args, app)
        return
    results = {mode: [] for mode in MODES}
    steady = {mode: [] for mode in MODES}  # samples/s over the second half of each run
    gui_share = {mode: [] for mode in MODES}
    slowdowns = {mode: [] for mode in MODES}  # against the "none" run of the same round
    steady_slowdowns = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as root:
        train("none", args.model, args.sample, 20, root, app)  # warm-up: numba kernels, caches
        for round_number in range(args.rounds):
            order = MODES[round_number % len(MODES):] + MODES[:round_number % len(MODES)]
            for mode in order:
                speed, second_half, share = train(mode, args.model, args.sample, args.iterations, root, app)
                results[mode].append(speed)
                steady[mode].append(second_half)
                gui_share[mode].append(share)
            for mode in MODES:
                slowdowns[mode].append(1 - results[mode][-1] / results["none"][-1])
                steady_slowdowns[mode].append(1 - steady[mode][-1] / steady["none"][-1])
    base = statistics.median(results["none"])
    rows = []
    for mode in MODES:
        median = statistics.median(results[mode])
        spread = f"{min(results[mode]):,.0f}-{max(results[mode]):,.0f}"
        rows.append([mode, f"{median:,.0f}", spread, f"{100 * (1 - median / base):+.1f}%",
                     f"{100 * statistics.median(slowdowns[mode]):+.1f}%",
                     " ".join(f"{100 * s:+.0f}" for s in slowdowns[mode]),
                     f"{100 * statistics.median(steady_slowdowns[mode]):+.1f}%",
                     " ".join(f"{100 * s:+.0f}" for s in steady_slowdowns[mode]),
                     f"{100 * statistics.median(gui_share[mode]):.1f}%"])
    print(f"GUI overhead: demo {args.model} on {'the MNIST sample' if args.sample else 'MNIST'}, batch 128, {args.iterations} steps x {args.rounds} rounds, "
          f"{machine()}, QT_QPA_PLATFORM={os.environ.get('QT_QPA_PLATFORM')}")
    print(table(["GUI", "samples/s (median)", "range", "slowdown", "paired slowdown", "per round (%)",
                 "second half, paired", "per round (%)", "GUI CPU / training time"], rows))
    print("slowdown: 1 - median samples/s with the GUI / median without. paired slowdown: the median over rounds\n"
          "of 1 - samples/s with the GUI / samples/s without in the same round (rounds are minutes apart, and this\n"
          "machine's speed drifts between them). second half: the same over the second half of each run only, once\n"
          "the window is up and its charts exist (the steady state of a long run). The last column is the GUI's own CPU time (its thread in process,\n"
          "its process when remote) per second of training: what it takes from a core.")


def main_alternating(args, app) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as root:
        train("none", args.model, args.sample, 20, root, app)  # warm-up: numba kernels, caches
        for mode in MODES:  # "none": phases switched with no GUI at all, the method's own noise
            for _ in range(args.rounds):
                on, off, phases_on, phases_off = alternate(mode, args.model, args.sample, args.iterations,
                                                           args.alternate, root, app)
                rows.append([mode, f"{on:,.1f}", f"{off:,.1f}", f"{100 * (1 - on / off):+.1f}%",
                             f"{phases_on} / {phases_off}"])
    print(f"GUI overhead, alternating: demo {args.model} on {'the MNIST sample' if args.sample else 'MNIST'}, batch "
          f"128, {args.iterations} steps a run, GUI on and off every {args.alternate:g} s, {machine()}, "
          f"QT_QPA_PLATFORM={os.environ.get('QT_QPA_PLATFORM')}")
    print(table(["GUI", "steps/s, GUI on", "steps/s, GUI off", "slowdown", "phases on / off"], rows))
    print("One run per row, its first tenth (the window's start-up) left out. none: the phases switch with no GUI at\n"
          "all, so its figure is the measurement's own noise. Off: the GUI's hooks skip their\n"
          "work and the window's timer is stopped (in process), or the GUI process is stopped with SIGSTOP (remote);\n"
          "either way the window's redraw clocks skip the stopped time. The feed's averager still sums each step's\n"
          "values. Machine drift, which moves whole runs by 10-20% here, hits both phases of a run alike.")


if __name__ == "__main__":
    main()
