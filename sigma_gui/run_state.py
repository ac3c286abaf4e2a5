"""What the GUI knows about one run, built from its records alone (no Qt, no trainer).

Every connection, whether it tails a run directory's event log or drains a
queue fed from a training thread in this process, delivers the same kind
of records (``{"kind", "time", "epoch", "iteration", ...}``, see
:mod:`sigma.io.run_directory`); :meth:`RunState.apply` folds them into
metric series, the run's status and position, its hyperparameters, the
network description, log lines, checkpoints, histograms and sample
predictions. The panels read a ``RunState`` and never the trainer.

Example:
    >>> from sigma_gui.run_state import RunState
    >>> state = RunState("demo")
    >>> state.apply([{"kind": "description", "batches_per_epoch": 10, "status": "running",
    ...               "optimiser": {"type": "SGD", "param_groups": [{"lr": 0.1}]}},
    ...              {"kind": "metrics", "time": 5.0, "epoch": 0, "iteration": 5, "values": {"train/loss": 0.7}},
    ...              {"kind": "command", "time": 6.0, "epoch": 0, "iteration": 5, "name": "set_lr",
    ...               "arguments": {"value": 0.01}}])
    3
    >>> state.series["train/loss"].epochs.tolist(), state.hyperparameters[0]["lr"], state.iteration
    ([0.5], 0.01, 5)
"""
from __future__ import annotations

import math
import time as clock
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional

from sigma_gui.series import MetricSeries

# Status words: what run.json says, or what the latest records imply.
LIVE_STATUSES = ("running", "paused")


@dataclass
class LogLine:
    """One line of the log panel."""

    time: float
    level: str
    text: str


@dataclass
class CheckpointEntry:
    """A checkpoint the run wrote (or that its folder holds)."""

    path: str
    iteration: Optional[int] = None
    epoch: Optional[int] = None
    time: Optional[float] = None
    metrics: Dict[str, float] = field(default_factory=dict)


class RunState:
    """The GUI's picture of one run; see the module docs. ``revision`` grows with every change."""

    def __init__(self, name: str):
        self.name = name
        self.description: Dict[str, Any] = {}
        self.series: Dict[str, MetricSeries] = {}
        self.status = "unknown"
        self.reason: Optional[str] = None  # why the run ended (None while it runs, or when unknown)
        self.epoch = 0
        self.iteration = 0
        self.epoch_detail = 0.0
        self.latest: Dict[str, float] = {}
        self.hyperparameters: List[Dict[str, Any]] = []
        self.network: Optional[Dict[str, Any]] = None
        self.log: List[LogLine] = []
        self.checkpoints: List[CheckpointEntry] = []
        self.histograms: Dict[str, List[Dict[str, Any]]] = {}
        self.predictions: Optional[Dict[str, Any]] = None
        self.classification: Optional[Dict[str, Any]] = None
        self.revision = 0
        self.started_at: Optional[float] = None  # wall time the current stretch of training started
        self.elapsed_before = 0.0  # seconds trained in earlier stretches (runs before a restore, ...)
        self.last_time: Optional[float] = None
        self.recorded_elapsed = 0.0
        self.unreadable = 0

    # -- derived values -------------------------------------------------------------------
    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def batches_per_epoch(self) -> Optional[int]:
        value = self.description.get("batches_per_epoch")
        return int(value) if isinstance(value, (int, float)) and value > 0 else None

    def elapsed(self, now: Optional[float] = None) -> float:
        """Wall seconds of training so far (pauses included; time between runs not)."""
        if self.started_at is None:
            # A run whose start records were not seen (or a restored one) has its total in run.json.
            return max(self.elapsed_before, self.recorded_elapsed)
        end = (now if now is not None else clock.time()) if self.live else (self.last_time or self.started_at)
        return self.elapsed_before + max(0.0, end - self.started_at)

    @property
    def optimiser(self) -> str:
        optimiser = self.description.get("optimiser") or {}
        return str(optimiser.get("type", "?")) if isinstance(optimiser, dict) else str(optimiser)

    @property
    def operator(self) -> str:
        return str(self.description.get("operator", "?"))

    def metric_keys(self) -> List[str]:
        return sorted(self.series)

    # -- folding records in --------------------------------------------------------------------
    def apply(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Fold ``records`` in, in order; returns how many were applied."""
        count = 0
        points: List[tuple] = []  # consecutive metrics records, folded in together: one array extend per key
        for record in records:
            kind = record.get("kind", "unknown")
            self._position(record)
            count += 1
            if kind == "metrics":
                points.append((float(record.get("iteration", 0)), self.epoch_detail,
                               float(record.get("time", self.last_time or 0.0)), record.get("values") or {}))
                continue
            if points:
                self._add_points(points)
                points = []
            handler = getattr(self, "_on_" + str(kind), None)
            if handler is not None:
                handler(record)
            else:
                self._message(record.get("time"), "info", f"{record.get('kind')}: "
                              + ", ".join(f"{k}={v}" for k, v in record.items() if k not in ("kind", "time")))
        if points:
            self._add_points(points)
        if count:
            self.revision += 1
        return count

    def _position(self, record: Mapping[str, Any]) -> None:
        time = record.get("time")
        if isinstance(time, (int, float)):
            self.last_time = float(time)
        if isinstance(record.get("iteration"), int):
            self.iteration = record["iteration"]
        if isinstance(record.get("epoch"), int):
            self.epoch = record["epoch"]
        self.epoch_detail = self._epoch_detail(record.get("iteration"), self.epoch, record.get("epoch_detail"))

    def _epoch_detail(self, iteration: Any, epoch: int, detail: Any) -> float:
        """A point's fractional epoch: as recorded, else from the iteration and the epoch's length, else ``epoch``."""
        if isinstance(detail, (int, float)):
            return float(detail)
        if self.batches_per_epoch and isinstance(iteration, int):
            return iteration / self.batches_per_epoch
        return float(epoch)

    def _message(self, time: Any, level: str, text: str) -> None:
        self.log.append(LogLine(float(time) if isinstance(time, (int, float)) else clock.time(), level, text))

    def _on_description(self, record: Mapping[str, Any]) -> None:
        self.description.update({k: v for k, v in record.items() if k not in ("kind",)})
        status = record.get("status")
        if isinstance(status, str):
            self.status = status
        if isinstance(record.get("reason"), str) and not self.live:  # a running run's run.json keeps an old one
            self.reason = record["reason"]
        optimiser = record.get("optimiser")
        if isinstance(optimiser, dict) and isinstance(optimiser.get("param_groups"), list):
            self.hyperparameters = [dict(group) for group in optimiser["param_groups"]]
        if isinstance(record.get("network"), dict):
            self.network = record["network"]
        if isinstance(record.get("elapsed_before_run"), (int, float)):  # in process: earlier runs' time
            self.elapsed_before = float(record["elapsed_before_run"])
        if isinstance(record.get("elapsed"), (int, float)):  # run.json of an ended run: its total
            self.recorded_elapsed = float(record["elapsed"])

    def _on_network(self, record: Mapping[str, Any]) -> None:
        if isinstance(record.get("description"), dict):
            self.network = record["description"]

    def _on_metric_points(self, record: Mapping[str, Any]) -> None:
        """Many steps' metrics in one record (the in-process feed's): ``points`` of (iteration, epoch,
        epoch_detail, time, values), folded in as that many ``metrics`` records would be."""
        self._add_points([(iteration, self._epoch_detail(iteration, epoch, detail), time, values)
                          for iteration, epoch, detail, time, values in record.get("points") or ()])

    def _add_points(self, points: List[tuple]) -> None:
        """Points of (iteration, epoch_detail, time, values) onto the series, one array extend per key."""
        columns: Dict[str, tuple] = {}
        for iteration, epoch_detail, time, values in points:
            for key, value in values.items():
                if not isinstance(value, (int, float)):
                    continue
                column = columns.get(key)
                if column is None:
                    column = columns[key] = ([], [], [], [])
                column[0].append(iteration)
                column[1].append(epoch_detail)
                column[2].append(time)
                column[3].append(value)
        for key, (iterations, epochs, times, values) in columns.items():
            series = self.series.get(key)
            if series is None:
                series = self.series[key] = MetricSeries(key)
            series.extend(iterations, epochs, times, values)
            self.latest[key] = float(values[-1])
        lr = columns.get("lr")
        if lr is not None and self.hyperparameters and "lr" in self.hyperparameters[0]:
            self.hyperparameters[0]["lr"] = float(lr[3][-1])  # schedules change it without a command

    def _on_start(self, record: Mapping[str, Any]) -> None:
        self.status = "running"
        if self.started_at is not None and self.last_time is not None:
            self.elapsed_before += max(0.0, self.last_time - self.started_at)
        self.started_at = float(record.get("time", clock.time()))
        self.reason = None
        self._message(record.get("time"), "info", f"run started at epoch {self.epoch}, iteration {self.iteration}")

    def _end_stretch(self, record: Mapping[str, Any], status: str) -> None:
        if self.started_at is not None:
            self.elapsed_before += max(0.0, float(record.get("time", self.started_at)) - self.started_at)
            self.started_at = None
        self.status = status

    def _on_stop(self, record: Mapping[str, Any]) -> None:
        reason = record.get("reason") or "finished"
        requested = record.get("requested")
        if requested is None:  # event logs written before the field existed
            requested = "request" in str(reason)
        self._end_stretch(record, "stopped" if requested else "finished")
        if record.get("reason"):
            self.reason = str(record["reason"])
        self._message(record.get("time"), "info", f"run ended: {reason}")

    def _on_error(self, record: Mapping[str, Any]) -> None:
        self._end_stretch(record, "failed")
        self.reason = str(record.get("error", "failed"))
        self._message(record.get("time"), "error", f"run failed: {record.get('error', '?')}")

    def _on_pause(self, record: Mapping[str, Any]) -> None:
        self.status = "paused"
        self._message(record.get("time"), "info", f"paused at iteration {self.iteration}")

    def _on_resume(self, record: Mapping[str, Any]) -> None:
        self.status = "running"
        self._message(record.get("time"), "info", f"resumed at iteration {self.iteration}")

    def _on_command(self, record: Mapping[str, Any]) -> None:
        name, arguments = record.get("name"), dict(record.get("arguments") or {})
        if name in ("set_lr", "set_hyperparameter"):
            hyperparameter = "lr" if name == "set_lr" else arguments.get("name")
            group = arguments.get("group")
            for index, settings in enumerate(self.hyperparameters):
                if group is None or index == group:
                    settings[hyperparameter] = arguments.get("value")
        text = ", ".join(f"{k}={_short(v)}" for k, v in arguments.items())
        self._message(record.get("time"), "info", f"command {name}({text}) applied at iteration {self.iteration}")

    def _on_command_failed(self, record: Mapping[str, Any]) -> None:
        self._message(record.get("time"), "warning", f"command {record.get('name')} failed: {record.get('error')}")

    def _on_checkpoint(self, record: Mapping[str, Any]) -> None:
        path = str(record.get("path"))
        entry = CheckpointEntry(path, self.iteration, self.epoch, record.get("time"),
                                dict(record.get("metrics") or {}))
        self.checkpoints = [c for c in self.checkpoints if c.path != path] + [entry]
        self._message(record.get("time"), "info", f"checkpoint written: {path}")

    def _on_checkpoint_found(self, record: Mapping[str, Any]) -> None:
        # A file in the checkpoints folder that no record announced (an older run, a copied file).
        path = str(record.get("path"))
        if all(c.path != path for c in self.checkpoints):
            self.checkpoints.append(CheckpointEntry(path, record.get("iteration"), record.get("epoch"),
                                                    record.get("time"), dict(record.get("metrics") or {})))

    def _on_restored(self, record: Mapping[str, Any]) -> None:
        # Records after this iteration from before the restore belong to an abandoned timeline.
        iteration = record.get("iteration", 0)
        for series in self.series.values():
            series.truncate_after(iteration)
        self._message(record.get("time"), "info", f"restored {record.get('path')} (iteration {iteration})")

    def _on_message(self, record: Mapping[str, Any]) -> None:
        self._message(record.get("time"), str(record.get("level", "info")), str(record.get("text", "")))

    def _on_histograms(self, record: Mapping[str, Any]) -> None:
        for name, entry in (record.get("parameters") or {}).items():
            history = self.histograms.setdefault(name, [])
            history.append({"iteration": record.get("iteration"), **entry})
            if len(history) > 500:  # enough for the over-time view; keeps memory flat in long runs
                del history[: len(history) - 500]

    def _on_predictions(self, record: Mapping[str, Any]) -> None:
        self.predictions = dict(record)

    def _on_classification(self, record: Mapping[str, Any]) -> None:
        self.classification = dict(record)

    def _on_unreadable(self, record: Mapping[str, Any]) -> None:
        self.unreadable += 1
        self._message(record.get("time"), "warning", f"unreadable event log line at byte {record.get('offset')}: "
                      f"{record.get('error')}")

    def _on_unknown(self, record: Mapping[str, Any]) -> None:
        self._message(record.get("time"), "warning", f"record without a kind: {dict(record)}")


def _short(value: Any) -> str:
    """A command argument for a log line: a drawing's pixels as its shape, not 784 numbers."""
    if isinstance(value, list) and value and isinstance(value[0], list):
        return f"<{len(value)}x{len(value[0])} values>"
    return str(value)


def finite_or_none(value: Any) -> Optional[float]:
    """``value`` as a float when it is a finite number, else ``None`` (for read-outs)."""
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None
