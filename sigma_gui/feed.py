"""Trainer hooks that feed the GUI from the training thread, between steps.

:class:`QueueFeed` is the in-process connection: every step it notes the
step's metrics as a point, and puts the points on a queue together at most
every 50 ms (no Qt, no waiting), together with the moments (start, pause,
resume, stop, error), hyperparameter changes, checkpoints, the network's
description, log messages, and, at most once a ``histogram_interval``,
weight and gradient histograms, and at each epoch's end the predictions on
a few fixed samples. The GUI thread drains the queue with a timer
(:class:`sigma_gui.sources.QueueSource`).

:class:`EventLogFeed` writes the extras that the trainer does not log
itself (network description, histograms, predictions, log messages) into
the run directory's event log, so that a GUI in another process sees them.

Both register two trainer commands: ``restore_checkpoint`` (``path``: load
a checkpoint into the running trainer between steps) and ``classify``
(``image``: a 2-d array in [0, 1] as nested lists, so that the command can
be logged and sent over the control channel; ``request``: an id the answer
carries). The answer, a ``classification`` record, goes out through every
feed the trainer has: to a window in this process and, through the event
log, to windows in others.

Example:
    >>> import queue
    >>> from sigma_gui.feed import QueueFeed
    >>> feed = QueueFeed(queue.SimpleQueue())
    >>> feed.name, feed.histogram_interval
    ('gui_feed', 1.0)
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Dict, List, Optional

import numpy as np

from sigma.training.condition import Always
from sigma.training.hooks.base import PRIORITY_READER, Hook
from sigma.training.observation import Averager
from sigma_gui import model_access

HISTOGRAM_BINS = 30


def hyperparameters(optimiser) -> List[Dict[str, Any]]:
    """The optimiser's settings per parameter group (numbers, strings and flags only)."""
    return [{k: v for k, v in group.items() if k != "params" and isinstance(v, (int, float, str, bool))}
            for group in optimiser.param_groups]


def histogram(values: np.ndarray, bins: int = HISTOGRAM_BINS) -> Dict[str, Any]:
    """``{"edges", "counts"}`` of the finite values in ``bins`` equal bins from their minimum to their maximum
    (the last bin includes the maximum; JSON-ready lists).

    Example:
        >>> from sigma_gui.feed import histogram
        >>> import numpy as np
        >>> histogram(np.array([0.0, 0.0, 1.0]), bins=2)["counts"]
        [2, 1]
    """
    values = np.asarray(values).ravel()
    if values.size and not np.issubdtype(values.dtype, np.floating):
        values = values.astype(np.float64)
    if values.size and not (np.isfinite(values.min()) and np.isfinite(values.max())):
        values = values[np.isfinite(values)]
    if values.size == 0:
        return {"edges": [0.0, 1.0], "counts": [0]}
    low, high = float(values.min()), float(values.max())
    if high <= low:
        low, high = low - 0.5, high + 0.5
    # One pass of arithmetic and a bincount in the values' own precision: np.histogram converts to float64 and
    # searches the edges, 4x slower (20 ms a second in the training thread for the demo MLP's histograms).
    # The bin of a value within a rounding error of an edge may differ from np.histogram's.
    index = ((values - values.dtype.type(low)) * values.dtype.type(bins / (high - low))).astype(np.intp)
    np.clip(index, 0, bins - 1, out=index)
    counts = np.bincount(index, minlength=bins)
    edges = np.linspace(low, high, bins + 1)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


class _LogForwarder(logging.Handler):
    """Sends log records of the ``sigma`` loggers to a feed (from whatever thread logs)."""

    def __init__(self, feed: "Feed", trainer):
        super().__init__(logging.INFO)
        self.feed, self.trainer = feed, trainer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.feed.emit(self.trainer, {"kind": "message", "level": record.levelname.lower(),
                                          "text": f"{record.name}: {record.getMessage()}"})
        except Exception:  # a log line must never break training
            self.handleError(record)


class Feed(Hook):
    """What both feeds share: extras computed in the training thread, sent by :meth:`emit`."""

    priority = PRIORITY_READER - 60  # after the loggers and checkpoints of the same step
    logger_name = "sigma"

    def __init__(self, histogram_interval: Optional[float] = 1.0, prediction_samples: int = 16,
                 name: Optional[str] = None):
        super().__init__(Always(), name=name or "gui_feed")
        self.histogram_interval = histogram_interval
        self.prediction_samples = int(prediction_samples)
        self._last_histograms = -float("inf")
        self._network_sent = False
        self._log_forwarder: Optional[_LogForwarder] = None

    def emit(self, trainer, record: Dict[str, Any]) -> None:
        raise NotImplementedError

    def _stamp(self, trainer, kind: str, **fields: Any) -> Dict[str, Any]:
        position = trainer.position
        return {"kind": kind, "time": time.time(), "epoch": position.epoch, "iteration": position.iteration,
                "epoch_detail": position.epoch_detail, **fields}

    def setup(self, trainer) -> None:
        self._network_sent = False
        trainer.register_command("restore_checkpoint", self.restore_checkpoint)
        trainer.register_command("classify", classify_command)
        self._log_forwarder = _LogForwarder(self, trainer)
        logging.getLogger(self.logger_name).addHandler(self._log_forwarder)

    def restore_checkpoint(self, trainer, path: str) -> None:
        """The ``restore_checkpoint`` command: load ``path`` into the running trainer (between steps)."""
        model_access.restore_checkpoint(trainer, path)

    def teardown(self, trainer) -> None:
        if self._log_forwarder is not None:
            logging.getLogger(self.logger_name).removeHandler(self._log_forwarder)
            self._log_forwarder = None

    def __call__(self, trainer) -> None:
        moment = trainer.moment
        if moment.event == "iteration":
            self._after_step(trainer, moment)
        else:
            self._on_event(trainer, moment.event)

    def _after_step(self, trainer, moment) -> None:
        if not self._network_sent:
            self._send_network(trainer)
        interval = self.histogram_interval
        if interval is not None and time.perf_counter() - self._last_histograms >= interval:
            self.send_histograms(trainer)
        if moment.epoch_ended:
            self.send_predictions(trainer)

    def _on_event(self, trainer, event: str) -> None:
        if event in ("start", "stop"):
            self.send_predictions(trainer)
            if self.histogram_interval is not None:
                self.send_histograms(trainer)

    def _send_network(self, trainer) -> None:
        description = trainer.describe_network()
        if description is not None:
            self._network_sent = True
            self.emit(trainer, self._stamp(trainer, "network", description=description))

    def send_histograms(self, trainer) -> None:
        """Histograms of every parameter's values and gradients, as a ``histograms`` record."""
        self._last_histograms = time.perf_counter()
        parameters = {}
        for name, parameter in trainer.network.named_parameters():
            entry = {"weights": histogram(parameter.backend.to_host(parameter.data))}
            if parameter.grad is not None:
                entry["gradients"] = histogram(parameter.grad.backend.to_host(parameter.grad.data))
            parameters[name] = entry
        self.emit(trainer, self._stamp(trainer, "histograms", parameters=parameters))

    def send_predictions(self, trainer) -> None:
        """The network's predictions on a few fixed samples, as a ``predictions`` record."""
        try:
            predictions = model_access.sample_predictions(trainer, self.prediction_samples)
        except model_access.NotImages as reason:
            predictions = None
            self.prediction_samples = 0  # say it once, then stop trying
            self.emit(trainer, self._stamp(trainer, "message", level="info",
                                           text=f"sample predictions are off: {reason}"))
        if predictions is not None:
            self.emit(trainer, self._stamp(trainer, "predictions", **predictions))


class QueueFeed(Feed):
    """The in-process feed: records on ``records`` (a ``queue.SimpleQueue``) for the GUI thread to drain.

    Each step's metrics become one point; the points go on the queue
    together, as one ``metric_points`` record, at most every
    ``flush_interval`` seconds (and before any other record, so the order
    holds). The window drains the queue at 10-30 Hz anyway, so nothing shows
    later, and a fast run (hundreds of steps a second) costs the training
    thread an append per step and the GUI thread one array extend per
    metric per flush instead of a record per step. ``min_interval``
    (seconds) averages the metrics of steps closer together than that into
    one point; 0 keeps one point per step, as the event log has.
    """

    def __init__(self, records: "queue.SimpleQueue", min_interval: float = 0.0, flush_interval: float = 0.05,
                 **options: Any):
        super().__init__(**options)
        self.queue = records
        self.min_interval = float(min_interval)
        self.flush_interval = float(flush_interval)
        self.averager = Averager()
        self._last_metrics = -float("inf")
        self._last_flush = -float("inf")
        self._points: List[tuple] = []
        # Log records are emitted from whatever thread logs: the pending points and the queue stay in order.
        self._lock = threading.Lock()
        self._hyperparameters: List[Dict[str, Any]] = []
        self._last_checkpoint = None

    def emit(self, trainer, record: Dict[str, Any]) -> None:
        with self._lock:
            self._put_points(trainer)  # the points come first: they happened before whatever this record says
            self.queue.put(record)

    def setup(self, trainer) -> None:
        super().setup(trainer)
        trainer.attach_averager(self.averager)
        self._hyperparameters = hyperparameters(trainer.optimiser)
        self._last_checkpoint = trainer.last_checkpoint
        self._points = []
        self.emit(trainer, self._stamp(trainer, "description", **describe_trainer(trainer)))
        # Values observed before this run (a restored checkpoint's) fill the read-outs until the first step.
        self.averager.take()

    def teardown(self, trainer) -> None:
        self.flush(trainer)
        super().teardown(trainer)

    def __call__(self, trainer) -> None:
        moment = trainer.moment
        if moment.event in ("start", "stop", "pause", "resume", "error"):
            if moment.event == "stop":
                self._add_point(trainer)
            fields = {"reason": trainer.end_reason, "requested": trainer.stop_requested is not None} \
                if moment.event == "stop" else {}
            self.emit(trainer, self._stamp(trainer, moment.event, **fields))
        else:
            now = time.perf_counter()
            if now - self._last_metrics >= self.min_interval:
                self._add_point(trainer, now)
            if now - self._last_flush >= self.flush_interval:
                self.flush(trainer)
        if trainer.last_checkpoint != self._last_checkpoint:
            self._last_checkpoint = trainer.last_checkpoint
            self.emit(trainer, self._stamp(trainer, "checkpoint", path=str(trainer.last_checkpoint),
                                           metrics=dict(trainer.latest)))
        super().__call__(trainer)

    def restore_checkpoint(self, trainer, path: str) -> None:
        super().restore_checkpoint(trainer, path)
        self.averager.take()  # values from before the restore belong to the abandoned timeline
        self.emit(trainer, self._stamp(trainer, "restored", path=str(path)))

    def _add_point(self, trainer, now: Optional[float] = None) -> None:
        """This step's metrics (averaged since the last point) as one pending point."""
        self._last_metrics = time.perf_counter() if now is None else now
        values = self.averager.take()
        if values:
            position = trainer.position
            point = (position.iteration, position.epoch, position.epoch_detail, time.time(), values)
            with self._lock:
                self._points.append(point)

    def _put_points(self, trainer) -> None:
        if self._points:
            points, self._points = self._points, []
            self.queue.put(self._stamp(trainer, "metric_points", points=points, samples_seen=trainer.samples_seen))

    def flush(self, trainer) -> None:
        """Put the pending points on the queue, then say whether the optimiser's settings changed since."""
        self._last_flush = time.perf_counter()
        with self._lock:
            self._put_points(trainer)
        settings = hyperparameters(trainer.optimiser)
        if settings != self._hyperparameters:
            changes = [f"{key} {before.get(key)!r} -> {value!r}" + (f" (group {index})" if len(settings) > 1 else "")
                       for index, (before, after) in enumerate(zip(self._hyperparameters, settings))
                       for key, value in after.items() if before.get(key) != value]
            self._hyperparameters = settings
            self.emit(trainer, self._stamp(trainer, "message", level="info",
                                           text=f"hyperparameters changed: {', '.join(changes)}"))
            self.emit(trainer, self._stamp(trainer, "description", optimiser={
                "type": type(trainer.optimiser).__name__, "param_groups": settings}))


class EventLogFeed(Feed):
    """Writes the GUI's extras into the run directory's event log (for a GUI in another process)."""

    writes_files = True

    def emit(self, trainer, record: Dict[str, Any]) -> None:
        fields = {k: v for k, v in record.items() if k not in ("kind", "time", "epoch", "iteration")}
        trainer.record(record["kind"], **fields)


def classify_command(trainer, image, request: Any = None) -> None:
    """The ``classify`` command: the current model's class probabilities for a drawing, as a ``classification``
    record sent through every feed of the trainer (whichever window asked, in this process or another)."""
    probabilities = model_access.classify(trainer, np.asarray(image, dtype=np.float64))
    for feed in trainer.hooks:
        if isinstance(feed, Feed):
            feed.emit(trainer, feed._stamp(trainer, "classification", request=request, probabilities=probabilities,
                                           predicted=int(np.argmax(probabilities))))


def describe_trainer(trainer) -> Dict[str, Any]:
    """The run description an in-process GUI starts from (the same keys as ``run.json``)."""
    return {"name": trainer.run_directory.name if trainer.run_directory is not None else "this process",
            "status": "running", "batches_per_epoch": trainer.position.batches_per_epoch,
            "optimiser": {"type": type(trainer.optimiser).__name__, "param_groups": hyperparameters(trainer.optimiser)},
            "operator": trainer.operator.describe(), "run_directory": None if trainer.run_directory is None
            else str(trainer.run_directory.path), "elapsed_before_run": trainer.elapsed,
            "samples_seen": trainer.samples_seen, "target_iterations": trainer.target_iterations}


__all__ = ["Feed", "QueueFeed", "EventLogFeed", "histogram", "hyperparameters", "describe_trainer", "classify_command"]
