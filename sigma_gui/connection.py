"""One run as the GUI sees it: where its records come from, how to send it commands, and its state.

* :func:`connect_trainer` — a trainer in this process: adds a
  :class:`~sigma_gui.feed.QueueFeed`; commands go to ``trainer.send``;
  the model is at hand for drawing and sample predictions.
* :func:`open_run` — a run directory, live (another process is training
  it; commands go through its control channel when it has one) or
  finished (read-only).
* :func:`attach_remote` — what a training process adds so that a GUI in
  another process can drive it and see its extras.

Example:
    >>> import tempfile
    >>> from sigma.io import RunDirectory
    >>> from sigma_gui.connection import open_run
    >>> run = RunDirectory.create("finished", root=tempfile.mkdtemp())
    >>> _ = run.update_description(status="finished")
    >>> connection = open_run(run.path)
    >>> connection.poll(), connection.state.status, connection.can_control
    (1, 'finished', False)
"""
from __future__ import annotations

import os
import queue
from typing import Any, Dict, Optional

import numpy as np

from sigma_gui import model_access
from sigma_gui.control import ControlChannel, ControlError, InProcessControl, RemoteControl
from sigma_gui.feed import EventLogFeed, QueueFeed
from sigma_gui.run_state import RunState
from sigma_gui.sources import QueueSource, RunDirectorySource

# Records folded in per poll and run: a poll stays a few milliseconds, so the window keeps its frame rate.
RECORDS_PER_POLL = 20000


class RunConnection:
    """A run's record source, its command channel (or none: read-only) and its :class:`RunState`."""

    def __init__(self, source, control=None, trainer=None, name: Optional[str] = None):
        self.source = source
        self.control = control
        self.trainer = trainer
        self.state = RunState(name or source.name)

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def in_process(self) -> bool:
        return self.trainer is not None

    @property
    def can_control(self) -> bool:
        """Whether commands can be sent now (in process; or the run publishes a control channel)."""
        if self.control is None:
            return False
        return getattr(self.control, "available", True)

    def poll(self, limit: int = RECORDS_PER_POLL) -> int:
        """Fold the records that arrived since the last poll into ``state``; returns how many."""
        return self.state.apply(self.source.poll(limit))

    def send(self, command: str, /, **arguments: Any) -> Dict[str, Any]:
        """Send a command to the run's trainer; a :class:`ControlError` if the run cannot take commands."""
        if self.control is None:
            raise ControlError(f"{self.name} is opened read-only: it is not training, or it is another process's "
                               "run without a control channel")
        return self.control.send(command, **arguments)

    @property
    def can_classify(self) -> bool:
        """Whether a drawing can be classified: the model is in this process, or a live run takes commands."""
        return self.in_process or (self.can_control and self.state.live)

    def classify(self, drawing: np.ndarray, request: Any = None) -> Optional[list]:
        """Classify a drawing with the current model.

        While the trainer runs (in this process, or in another through its control channel), the request
        becomes a ``classify`` command and the answer arrives as a ``classification`` record carrying
        ``request`` (returns ``None``); a trainer in this process that is not running answers at once.
        """
        if self.trainer is None:
            if not self.can_classify:
                raise ControlError(f"{self.name}: its model is in another process, and the run is not training "
                                   "with a control channel, so nothing can classify the drawing")
            self.control.send("classify", image=drawing_as_lists(drawing), request=request)
            return None
        if self.trainer.running:
            self.trainer.send("classify", image=drawing_as_lists(drawing), request=request)
            return None
        probabilities = model_access.classify(self.trainer, drawing)
        self.state.apply([{"kind": "classification", "request": request, "probabilities": probabilities,
                           "predicted": int(np.argmax(probabilities))}])
        return probabilities

    def close(self) -> None:
        """Detach from the run (the trainer keeps its feed, which then only fills an unread queue)."""
        if isinstance(self.source, QueueSource) and self.trainer is not None:
            for hook in list(self.trainer.hooks):
                if isinstance(hook, QueueFeed) and hook.queue is self.source.queue:
                    hook.queue = _Discard()


class _Discard:
    """A queue that forgets: what a feed writes to after its window closed."""

    def put(self, item: Any) -> None:
        pass


def drawing_as_lists(drawing: np.ndarray) -> list:
    """A drawing as nested lists of values rounded to 3 decimals: what a command carries (it is logged as JSON,
    and may travel over the control channel), about 3 KB for 28x28.

    Example:
        >>> import numpy as np
        >>> from sigma_gui.connection import drawing_as_lists
        >>> drawing_as_lists(np.array([[0.0, 0.12345], [1.0, 0.5]]))
        [[0.0, 0.123], [1.0, 0.5]]
    """
    return np.round(np.asarray(drawing, dtype=np.float64), 3).tolist()


def connect_trainer(trainer, name: Optional[str] = None, **feed_options: Any) -> RunConnection:
    """Connect to a trainer in this process (before ``trainer.run``): adds a QueueFeed hook."""
    if trainer.running:
        raise RuntimeError("connect_trainer: connect before trainer.run() starts (hooks cannot be added while it "
                           "runs)")
    records: "queue.SimpleQueue" = queue.SimpleQueue()
    trainer.add_hook(QueueFeed(records, **feed_options))
    if name is None:
        name = trainer.run_directory.name if trainer.run_directory is not None else "this process"
    return RunConnection(QueueSource(records, name), InProcessControl(trainer), trainer, name)


def open_run(path: "str | os.PathLike") -> RunConnection:
    """Open a run directory (a :class:`~sigma_gui.sources.RunSourceError` if it is not one)."""
    source = RunDirectorySource(path)
    return RunConnection(source, RemoteControl(source.path))


def attach_remote(trainer) -> None:
    """Let a GUI in another process drive this trainer and see its extras: adds a ControlChannel (commands on
    127.0.0.1 with a per-run token) and an EventLogFeed (histograms, predictions, messages in the event log).
    The trainer needs a run directory."""
    if trainer.run_directory is None:
        raise ValueError("attach_remote: give the trainer a run directory first (Trainer(run_directory=...) or "
                         "trainer.attach_run_directory(path))")
    if not any(isinstance(hook, ControlChannel) for hook in trainer.hooks):
        trainer.add_hook(ControlChannel())
    if not any(isinstance(hook, EventLogFeed) for hook in trainer.hooks):
        trainer.add_hook(EventLogFeed(name="gui_event_log_feed"))
