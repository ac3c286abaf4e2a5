"""Sigma's desktop monitor: watch and drive training runs (PyQt6 + pyqtgraph).

The connection layer (this package's top level) needs no Qt: it reads runs
and sends commands. The window lives in :mod:`sigma_gui.window` and needs
``pip install 'sigma[gui]'``.

* ``sigma_gui.connect_trainer(trainer)`` — a trainer in this process (training on a worker thread).
* ``sigma_gui.open_run("runs/demo-mlp")`` — a run directory, live or finished.
* ``sigma_gui.attach_remote(trainer)`` — let a GUI in another process drive this run.
* ``trainer.run(epochs=3, gui=True)`` or ``sigma demo --gui`` — train on a thread with the window open
  (``sigma_gui.app.run_with_gui``).
* ``sigma gui runs/a runs/b`` (or ``python -m sigma_gui``) — open runs side by side, live or finished.

Example:
    >>> import sigma_gui
    >>> sorted(name for name in sigma_gui.__all__ if name.islower())
    ['attach_remote', 'connect_trainer', 'open_run']
"""
from sigma_gui.connection import RunConnection, attach_remote, connect_trainer, open_run
from sigma_gui.control import ControlChannel, ControlError, InProcessControl, RemoteControl
from sigma_gui.feed import EventLogFeed, QueueFeed
from sigma_gui.run_state import RunState
from sigma_gui.sources import QueueSource, RunDirectorySource, RunSourceError

__all__ = ["RunConnection", "connect_trainer", "open_run", "attach_remote", "ControlChannel", "ControlError",
           "InProcessControl", "RemoteControl", "EventLogFeed", "QueueFeed", "RunState", "QueueSource",
           "RunDirectorySource", "RunSourceError"]
