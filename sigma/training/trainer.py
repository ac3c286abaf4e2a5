"""``Trainer``: the loop that trains a network, fires hooks, takes commands and checkpoints exactly.

Each step: the next batch of the training data goes to the operator (which
runs forward, loss, backward and the optimiser on its workers); the report
becomes this step's observation; hooks whose trigger is true run, from
the highest priority to the lowest; commands sent from other threads (the
GUI: pause, set the learning rate, checkpoint now) are applied between
steps.

Example:
    >>> import numpy as np, sigma, sigma.optim
    >>> from sigma import nn
    >>> from sigma.data import InMemoryDataset, MinibatchIterator
    >>> from sigma.training import Trainer, threshold
    >>> sigma.manual_seed(0)
    >>> inputs = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    >>> data = InMemoryDataset(inputs=inputs, targets=(inputs[:, 0] > 0).astype(np.int64))
    >>> network = nn.Linear(2, 2)
    >>> trainer = Trainer(network, nn.CrossEntropyLoss(), sigma.optim.SGD(network.parameters(), lr=0.5),
    ...                   MinibatchIterator(data, batch_size=16, seed=0),
    ...                   evaluation={"validation": MinibatchIterator(data, batch_size=64, shuffle=False)})
    >>> result = trainer.run(epochs=20, until=threshold("validation/accuracy", above=0.95))
    >>> result.metrics["validation/accuracy"] > 0.95, result.epoch <= 20
    (True, True)
"""
from __future__ import annotations

import logging
import math
import os
import pathlib
import queue
import socket
import time
import traceback
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import backends
import sigma
from sigma.io import checkpoint as checkpoint_file
from sigma.io.run_directory import RunDirectory
from sigma.training.condition import Condition
from sigma.training.hooks.base import Hook
from sigma.training.observation import Averager, Observation
from sigma.training.operators import Inline, Operator, split_batch
from sigma.training.position import Moment, Position

logger = logging.getLogger("sigma.training")


@dataclass
class Command:
    """A request to the training loop, applied between steps: ``Command("set_lr", {"value": 0.01})``."""

    name: str
    arguments: Dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    """How a ``trainer.run`` ended: why, where, and the last value of every observed key."""

    reason: str
    epoch: int
    iteration: int
    metrics: Dict[str, float]


def _length(data: Any) -> Optional[int]:
    try:
        length = len(data)
    except TypeError:
        return None
    return int(length) if length > 0 else None


def _as_run_directory(run: Any) -> Optional[RunDirectory]:
    if run is None or isinstance(run, RunDirectory):
        return run
    path = pathlib.Path(run)
    if (path / "run.json").is_file():
        return RunDirectory.open(path)
    return RunDirectory.create(path.name, root=path.parent)


class Trainer:
    """Trains ``network`` on ``train_data`` with ``loss`` and ``optimiser``; see the module docs.

    Args:
        network: a ``sigma.nn.Module``.
        loss: ``loss(outputs, targets) -> scalar Tensor`` (mean over the batch), e.g. ``nn.CrossEntropyLoss()``.
        optimiser: a ``sigma.optim`` optimiser over the network's parameters.
        train_data: batches of ``{"inputs", "targets"}`` (or pairs), one epoch per ``iter()``, e.g. a
            ``sigma.data.MinibatchIterator``. Its ``state_dict()`` is saved in checkpoints.
        evaluation: named data to evaluate every epoch: ``{"validation": iterator}`` gives
            ``validation/loss`` and ``validation/accuracy``. Add ``hooks.Evaluator`` for other times or top-k.
        hooks: more hooks (checkpoints, early stopping, loggers, ...).
        schedule: a learning-rate schedule stepped at the end of every epoch (``hooks.LRSchedule`` for
            other time steps or a monitored metric).
        operator: how the work is spread over workers; ``operators.Inline()`` (one worker) by default.
        device: move the network there first (``"cpu"``, ``"cuda:0"``); batches follow the network.
        seed: seeds every backend's random stream (dropout, ...) when the first run starts; a restored
            run keeps the restored streams instead.
        gradient_clip: clip the gradients' global norm to this before each update.
        progress_bar: show a tqdm progress bar (epoch, iteration, loss, accuracy, samples/s, ETA).
        run_directory: a ``sigma.io.RunDirectory`` or a path (``"runs/mnist"``): the event log,
            the run description and the default place for checkpoints.
        fast_dev_run: a smoke test: ``run()`` makes this many steps (``True``: 1) as one short epoch,
            evaluates that many batches, runs every hook that does not write files, and ignores
            ``epochs``/``iterations``/``until``.
    """

    def __init__(self, network, loss: Callable, optimiser, train_data: Iterable, *,
                 evaluation: Optional[Mapping[str, Iterable]] = None, hooks: Sequence[Hook] = (),
                 schedule: Any = None, operator: Optional[Operator] = None, device: Any = None,
                 seed: Optional[int] = None, gradient_clip: Optional[float] = None, progress_bar: bool = False,
                 run_directory: Any = None, fast_dev_run: "bool | int" = False):
        from sigma.training import hooks as builtin
        from sigma.monitors import ProgressBar
        if device is not None:
            network.to(device)
        if not callable(loss):
            raise TypeError(f"Trainer: loss must be callable as loss(outputs, targets), got {type(loss).__name__}")
        if gradient_clip is not None and not gradient_clip > 0:
            raise ValueError(f"Trainer: gradient_clip must be a positive norm, got {gradient_clip!r}")
        if isinstance(fast_dev_run, bool):
            fast_dev_run = 1 if fast_dev_run else 0
        if not isinstance(fast_dev_run, int) or fast_dev_run < 0:
            raise ValueError(f"Trainer: fast_dev_run must be True, False or a number of steps, got {fast_dev_run!r}")
        self.network = network
        self.loss = loss
        self.optimiser = optimiser
        self.train_data = train_data
        self.evaluation: Dict[str, Iterable] = dict(evaluation or {})
        self.operator: Operator = operator if operator is not None else Inline()
        self.operator.setup(network, loss, optimiser, device, gradient_clip)
        self.seed = seed
        self.fast_dev_run = fast_dev_run
        self.position = Position(batches_per_epoch=_length(train_data))
        self.observation: Observation = Observation()
        self.moment: Optional[Moment] = None
        self.latest: Dict[str, float] = {}
        self.samples_seen = 0
        self.last_batch_size = 0
        self.step_seconds = 0.0  # the last step: fetching the batch and the operator's work
        self.last_checkpoint: Optional[pathlib.Path] = None
        self.elapsed = 0.0  # seconds spent in run(), over all runs and restores
        self.target_iterations: Optional[int] = None
        self.recipe: Optional[Dict[str, Any]] = None  # how to rebuild this trainer (set by the `sigma` command)
        self.restored_from: Optional[pathlib.Path] = None
        self.run_directory: Optional[RunDirectory] = None
        self.running = False
        self.paused = False
        self.hooks: List[Hook] = []
        self._averagers: List[Averager] = []
        self._commands: "queue.Queue[Command]" = queue.Queue()
        self._handlers: Dict[str, Callable[..., None]] = {
            "pause": self._command_pause, "resume": self._command_resume, "stop": self._command_stop,
            "step": self._command_step, "set_lr": self._command_set_lr,
            "set_hyperparameter": self._command_set_hyperparameter, "checkpoint": self._command_checkpoint,
        }
        self._stop_reason: Optional[str] = None
        self.end_reason: Optional[str] = None  # why the last run ended: set before its "stop" hooks fire
        self._steps_allowed = 0
        self._epoch_iterator = None
        self._seeded = False
        self._input_shape: Optional[tuple] = None
        self._description: Optional[Dict[str, Any]] = None
        self._evaluation_limit: Optional[int] = None

        self.add_hook(builtin.Timer())
        self.add_hook(builtin.LearningRate())
        self.add_hook(builtin.NonFiniteGuard("train/loss"))
        for name, data in self.evaluation.items():
            self.add_hook(builtin.Evaluator(name, data))
        if schedule is not None:
            self.add_hook(builtin.LRSchedule(schedule))
        if progress_bar:
            self.add_hook(ProgressBar())
        for hook in hooks:
            self.add_hook(hook)
        if run_directory is not None:
            self.attach_run_directory(run_directory)

    # -- hooks ------------------------------------------------------------------------
    def add_hook(self, hook: Hook) -> Hook:
        """Add a hook; a name already taken gets a ``_2``, ``_3`` suffix. Returns the hook."""
        if not isinstance(hook, Hook):
            raise TypeError(f"add_hook: expected a sigma.training.hooks.Hook, got {type(hook).__name__}; wrap a "
                            "function with hooks.Lambda(function, trigger)")
        if self.running:
            raise RuntimeError("add_hook: hooks cannot be added while the trainer is running")
        taken = {h.name for h in self.hooks}
        base, number = hook.name, 1
        while hook.name in taken:
            number += 1
            hook.name = f"{base}_{number}"
        self.hooks.append(hook)
        # Stable sort: equal priorities keep the order they were added in.
        self.hooks.sort(key=lambda h: -h.priority)
        return hook

    def hook(self, name: str) -> Hook:
        """The hook called ``name``."""
        for hook in self.hooks:
            if hook.name == name:
                return hook
        raise KeyError(f"no hook named {name!r}; this trainer has {[h.name for h in self.hooks]}")

    def attach_averager(self, averager: Averager) -> Averager:
        """Feed every value written to observations from now on into ``averager`` (for readers)."""
        if averager not in self._averagers:
            self._averagers.append(averager)
        return averager

    def attach_run_directory(self, run: Any) -> Optional[RunDirectory]:
        """Write the event log and run description into ``run`` (a RunDirectory or a path).

        Does nothing (returns ``None``) in a process whose operator does not write output (MPI ranks but 0).
        """
        from sigma.monitors import RunLog
        if not self.operator.writes_output:  # only one rank of a distributed run owns the run directory
            return None
        self.run_directory = _as_run_directory(run)
        if not any(isinstance(h, RunLog) for h in self.hooks):
            self.add_hook(RunLog())
        return self.run_directory

    def _active_hooks(self) -> List[Hook]:
        if not self.operator.writes_output:  # an MPI rank other than 0: no files, no progress bar
            from sigma.monitors import ProgressBar
            return [h for h in self.hooks if not h.writes_files and not isinstance(h, ProgressBar)]
        if self.fast_dev_run:
            return [h for h in self.hooks if not h.writes_files]
        return self.hooks

    # -- commands (thread-safe) -------------------------------------------------------------
    def send(self, command: str, /, **arguments: Any) -> None:
        """Queue a command for the loop to apply between steps; safe from any thread.

        Built in: ``pause``, ``resume``, ``stop`` (``reason``), ``step`` (``count``: steps to make while
        paused), ``set_lr`` (``value``, optional ``group``), ``set_hyperparameter`` (``name``, ``value``,
        optional ``group``), ``checkpoint`` (optional ``path``). Add more with :meth:`register_command`.
        """
        if command not in self._handlers:
            raise KeyError(f"unknown trainer command {command!r}; known commands: {sorted(self._handlers)}")
        self._commands.put(Command(command, dict(arguments)))

    def register_command(self, name: str, handler: Callable[..., None]) -> None:
        """Make ``send(name, **arguments)`` call ``handler(trainer, **arguments)`` in the training loop."""
        if not callable(handler):
            raise TypeError(f"register_command: the handler for {name!r} must be callable")
        self._handlers[name] = lambda **arguments: handler(self, **arguments)

    def pause(self) -> None:
        """Pause between steps (from any thread); commands are still applied while paused."""
        self.send("pause")

    def resume(self) -> None:
        """Continue after :meth:`pause` (from any thread)."""
        self.send("resume")

    def stop(self, reason: str = "stopped by request") -> None:
        """End the run after the current step and its hooks (from any thread, or from a hook)."""
        self._stop_reason = str(reason)
        self._commands.put(Command("stop", {"reason": str(reason)}))

    @property
    def stop_requested(self) -> Optional[str]:
        """The reason given to :meth:`stop` during this run, or ``None``."""
        return self._stop_reason

    def _handle_commands(self) -> Optional[str]:
        """Apply the queued commands, waiting while paused; returns the reason to stop, or ``None``.

        Each round the operator shares the round's commands and stop reason of the process that writes
        output (MPI rank 0, where a GUI's commands arrive) with every process of the run, so that all of
        them pause, change hyperparameters and stop at the same step; with one process this is a no-op.
        """
        while True:
            waiting = self.paused and self._steps_allowed == 0 and self._stop_reason is None
            stop_reason, commands = self.operator.share_commands((self._stop_reason, self._take_commands(waiting)))
            for command in commands:
                self._apply(command)
                if command.name == "stop" and stop_reason is None:
                    stop_reason = command.arguments.get("reason", "stopped by request")
            if stop_reason is not None:
                self._stop_reason = stop_reason
                return stop_reason
            if not commands and not waiting:
                if self.paused:
                    self._steps_allowed -= 1
                return None

    def _take_commands(self, wait: bool) -> List[Command]:
        """Every queued command; when ``wait`` is true, first wait up to a quarter second for one."""
        commands = []
        if wait:
            try:
                commands.append(self._commands.get(timeout=0.25))
            except queue.Empty:
                return commands
        while True:
            try:
                commands.append(self._commands.get_nowait())
            except queue.Empty:
                return commands

    def _apply(self, command: Command) -> None:
        if command.name not in ("stop",):
            self.record("command", name=command.name, arguments=command.arguments)
        try:
            self._handlers[command.name](**command.arguments)
        except Exception as error:  # a bad GUI edit must not end the run
            logger.warning("command %s %s failed: %s", command.name, command.arguments, error)
            self.record("command_failed", name=command.name, arguments=command.arguments, error=str(error))

    def _command_pause(self) -> None:
        if not self.paused:
            self.paused = True
            self._steps_allowed = 0
            self._fire_event("pause")

    def _command_resume(self) -> None:
        if self.paused:
            self.paused = False
            self._fire_event("resume")

    def _command_stop(self, reason: str = "stopped by request") -> None:
        if self._stop_reason is None:
            self._stop_reason = reason

    def _command_step(self, count: int = 1) -> None:
        if int(count) < 1:
            raise ValueError(f"step: count must be at least 1, got {count!r}")
        if self.paused:
            self._steps_allowed += int(count)

    def _groups(self, group: Optional[int]) -> List[Dict[str, Any]]:
        groups = self.optimiser.param_groups
        if group is None:
            return groups
        if not 0 <= int(group) < len(groups):
            raise IndexError(f"the optimiser has {len(groups)} parameter group(s), there is no group {group}")
        return [groups[int(group)]]

    def _command_set_lr(self, value: float, group: Optional[int] = None) -> None:
        self._command_set_hyperparameter("lr", value, group)

    def _command_set_hyperparameter(self, name: str, value: Any, group: Optional[int] = None) -> None:
        groups = self._groups(group)
        if name not in groups[0] or name == "params":
            raise KeyError(f"{type(self.optimiser).__name__} has no hyperparameter {name!r}; it has "
                           f"{sorted(k for k in groups[0] if k != 'params')}")
        old = groups[0][name]
        if isinstance(old, (int, float)) and not isinstance(old, bool):
            value = type(old)(value) if isinstance(old, float) else value
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        candidates = [{**g, name: value} for g in groups]
        for candidate in candidates:
            self.optimiser.check_hyperparameters(candidate)
        for g in groups:
            g[name] = value

    def _command_checkpoint(self, path: Optional[str] = None) -> None:
        if path is None:
            if self.run_directory is None:
                raise ValueError("checkpoint: give a path, or attach a run directory to the trainer")
            path = self.run_directory.checkpoints / f"manual-{self.position.iteration:08d}.h5"
        self.save_checkpoint(path)

    # -- the loop -----------------------------------------------------------------------------
    def run(self, epochs: Optional[float] = None, iterations: Optional[int] = None,
            until: Optional[Condition] = None, gui: bool = False) -> RunResult:
        """Train until ``epochs`` epochs or ``iterations`` steps have been done in all (counting from
        the start of training, restored runs included), or ``until`` becomes true after a step, or
        :meth:`stop` is called: whichever comes first.

        ``gui=True`` trains with Sigma's window open (``sigma_gui.app.run_with_gui``: training on a
        worker thread, the window on this one) and returns once the window is closed; closing it while
        the run trains stops the run after its current step. It needs the ``gui`` extra
        (``pip install 'sigma[gui]'``) and a display.
        """
        if gui:
            try:
                from sigma_gui.app import run_with_gui
            except ImportError as error:
                raise ImportError(f"run(gui=True) needs the sigma_gui package, which cannot be imported ({error}); "
                                  "install Sigma with its gui extra: pip install 'sigma[gui]'") from error
            return run_with_gui(self, epochs=epochs, iterations=iterations, until=until)
        if self.running:
            raise RuntimeError("run: this trainer is already running")
        if self.fast_dev_run:
            epochs, until = None, None
            iterations = self.position.iteration + self.fast_dev_run
            self.position.batches_per_epoch = self.fast_dev_run
            self._drop_epoch_iterator()
            self.position.iteration_in_epoch = 0
            self._evaluation_limit = self.fast_dev_run
        elif epochs is None and iterations is None and until is None:
            raise ValueError("run: say how long to train with epochs=, iterations= or until=")
        if epochs is not None and not (isinstance(epochs, (int, float)) and epochs > 0):
            raise ValueError(f"run: epochs must be a positive number, got {epochs!r}")
        if iterations is not None and not (isinstance(iterations, int) and iterations > 0):
            raise ValueError(f"run: iterations must be a positive whole number, got {iterations!r}")
        if until is not None and not isinstance(until, Condition):
            raise TypeError(f"run: until must be a condition such as threshold('validation/accuracy', above=0.9), "
                            f"got {type(until).__name__}")
        epoch_target = None if epochs is None else Fraction(str(epochs))
        self.target_iterations = self._target_iterations(epoch_target, iterations)
        self._stop_reason = None
        self.running = True
        started = time.perf_counter()
        reason = None
        try:
            self._begin(epochs, iterations, until)
            self._fire_event("start")
            while True:
                reason = self._handle_commands() or self._target_reached(epoch_target, iterations)
                if reason:
                    break
                moment = self._step()
                self._fire(moment)
                if until is not None and until(moment):
                    reason = f"until {until!r} became true"
                    break
            self.end_reason = reason
            self._fire_event("stop", reason=reason, requested=self._stop_reason is not None)
        except BaseException as error:
            self.elapsed += time.perf_counter() - started
            self._fail(error)
            raise
        else:
            self.elapsed += time.perf_counter() - started
            self._end(reason, stopped=self._stop_reason is not None)
            return RunResult(reason, self.position.epoch, self.position.iteration, dict(self.latest))
        finally:
            self._teardown()

    def _target_iterations(self, epoch_target: Optional[Fraction], iterations: Optional[int]) -> Optional[int]:
        targets = []
        if iterations is not None:
            targets.append(iterations)
        if epoch_target is not None and self.position.batches_per_epoch:
            targets.append(math.ceil(epoch_target * self.position.batches_per_epoch))
        return min(targets) if targets else None

    def _target_reached(self, epoch_target: Optional[Fraction], iterations: Optional[int]) -> Optional[str]:
        if iterations is not None and self.position.iteration >= iterations:
            if self.fast_dev_run:
                return f"fast_dev_run: {self.fast_dev_run} step(s) done"
            return f"reached {iterations} iterations"
        if epoch_target is not None and self.position.exact_epoch_detail() >= epoch_target:
            return f"reached {float(epoch_target):g} epochs"
        return None

    def _begin(self, epochs, iterations, until) -> None:
        if self.seed is not None and not self._seeded and self.restored_from is None:
            sigma.manual_seed(self.seed)
        self._seeded = True
        self.network.train()
        for hook in self._active_hooks():
            hook.setup(self)
        if self.run_directory is not None and not self.fast_dev_run:
            self.run_directory.update_description(
                status="running", pid=os.getpid(), host=socket.gethostname(), recipe=self.recipe,
                stop={"epochs": epochs, "iterations": iterations, "until": None if until is None else repr(until)},
                optimiser={"type": type(self.optimiser).__name__,
                           "param_groups": _hyperparameters(self.optimiser)},
                operator=self.operator.describe(), batches_per_epoch=self.position.batches_per_epoch,
                hooks=[{"name": h.name, "type": type(h).__name__, "trigger": repr(h.trigger)} for h in self.hooks])

    def _next_batch(self) -> Any:
        for _ in range(2):
            if self._epoch_iterator is None:
                self._epoch_iterator = iter(self.train_data)
            try:
                return next(self._epoch_iterator)
            except StopIteration:
                self._epoch_iterator = None
                if self.position.iteration_in_epoch > 0:
                    return None  # the epoch ended (the data's length was unknown or wrong)
                # A fresh iterator with nothing left: a restored one standing at its epoch's end. Once more.
        raise ValueError("the training data yielded no batches")

    def _step(self) -> Moment:
        position = self.position
        started = time.perf_counter()
        batch = self._next_batch()
        if batch is None:
            position.epoch += 1
            position.iteration_in_epoch = 0
            self.operator.end_epoch()
            self.observation = Observation(self._averagers)
            return Moment("epoch", position, True, self.observation)
        if self._input_shape is None:
            self._input_shape = (1,) + tuple(split_batch(batch)[0].shape[1:])
        report = self.operator.train_step(batch)
        self.step_seconds = time.perf_counter() - started
        self.last_batch_size = int(report.pop("batch_size", 0))
        self.samples_seen += self.last_batch_size
        observation = self.observation = Observation(self._averagers)
        for key, value in report.items():
            observation[key] = value
        position.iteration += 1
        position.iteration_in_epoch += 1
        epoch_ended = position.iteration_in_epoch == position.batches_per_epoch
        if epoch_ended:
            position.epoch += 1
            position.iteration_in_epoch = 0
            self._drop_epoch_iterator()
            self.operator.end_epoch()
        return Moment("iteration", position, epoch_ended, observation)

    def _drop_epoch_iterator(self) -> None:
        # Closing stops a prefetching iterator's background thread now rather than at garbage collection.
        close = getattr(self._epoch_iterator, "close", None)
        self._epoch_iterator = None
        if close is not None:
            close()

    def _fire(self, moment: Moment) -> None:
        self.moment = moment
        for hook in self._active_hooks():
            if hook.trigger(moment):
                hook(self)
        self.latest.update(moment.observation)

    def _fire_event(self, event: str, **fields: Any) -> None:
        self.observation = Observation(self._averagers)
        if event != "error":
            self.record(event, **fields)
        self._fire(Moment(event, self.position, False, self.observation))

    def _end(self, reason: str, stopped: bool) -> None:
        logger.info("training ended: %s (epoch %d, iteration %d)", reason, self.position.epoch,
                    self.position.iteration)
        if self.run_directory is not None and not self.fast_dev_run:
            self.run_directory.update_description(status="stopped" if stopped else "finished", reason=reason,
                                                  epoch=self.position.epoch, iteration=self.position.iteration,
                                                  metrics=dict(self.latest), elapsed=self.elapsed)

    def _fail(self, error: BaseException) -> None:
        interrupted = isinstance(error, KeyboardInterrupt)
        description = "interrupted" if interrupted else f"{type(error).__name__}: {error}"
        self.record("error", error=description, traceback=traceback.format_exc(limit=8)[-4000:])
        try:
            self._fire_event("error")
        except Exception as hook_error:  # the original error is the one to report
            logger.error("a hook failed while handling an error: %s", hook_error)
        if self.run_directory is not None and not self.fast_dev_run:
            self.run_directory.update_description(status="interrupted" if interrupted else "failed",
                                                  reason=description, epoch=self.position.epoch,
                                                  iteration=self.position.iteration, metrics=dict(self.latest))

    def _teardown(self) -> None:
        self.running = False
        self.paused = False
        self._evaluation_limit = None
        errors = []
        for hook in self._active_hooks():
            try:
                hook.teardown(self)
            except Exception as error:
                errors.append(error)
        self.operator.teardown()
        if self.run_directory is not None:
            self.run_directory.close()
        if errors:
            raise errors[0]

    # -- events ------------------------------------------------------------------------
    def record(self, kind: str, **fields: Any) -> None:
        """Append a record to the run directory's event log (nothing without a run directory)."""
        if self.run_directory is None or self.fast_dev_run:
            return
        self.run_directory.events.append({"kind": kind, "time": time.time(), "epoch": self.position.epoch,
                                          "iteration": self.position.iteration, **fields})

    # -- evaluation ----------------------------------------------------------------------
    def evaluate(self, data: "str | Iterable", top_k: Sequence[int] = (1,),
                 limit: Optional[int] = None) -> Dict[str, float]:
        """Mean loss and top-k accuracy of the network on ``data`` (a name from ``evaluation``, or batches).

        Keys are ``loss``, ``accuracy`` and ``top{k}_accuracy`` for k > 1.
        """
        if isinstance(data, str):
            if data not in self.evaluation:
                raise KeyError(f"no evaluation data named {data!r}; the trainer has {sorted(self.evaluation)}")
            data = self.evaluation[data]
        if limit is None:
            limit = self._evaluation_limit
        return self.operator.evaluate(data, top_k, limit)

    # -- checkpoints -------------------------------------------------------------------------
    def describe_network(self) -> Optional[Dict[str, Any]]:
        """The network's ``describe()`` data for the input shape seen in training (``None`` before a step)."""
        if self._description is None and self._input_shape is not None and hasattr(self.network, "describe"):
            try:
                self._description = self.network.describe(self._input_shape).to_dict()
            except Exception as error:  # a description is for people; never fail a checkpoint over it
                self._description = {"error": f"describe() failed: {error}"}
        return self._description

    def state_dict(self) -> Dict[str, Any]:
        """Everything a checkpoint holds, as nested dicts of arrays and plain values."""
        parameter_names = {name for name, _ in self.network.named_parameters(remove_duplicate=False)}
        parameters, buffers = {}, {}
        for name, tensor in self.network.state_dict().items():
            (parameters if name in parameter_names else buffers)[name] = tensor.backend.to_host(tensor.data)
        network: Dict[str, Any] = {"parameters": parameters, "buffers": buffers}
        description = self.describe_network()
        if description is not None:
            network["description"] = description
        data = {"train": self.train_data.state_dict()} if hasattr(self.train_data, "state_dict") else {}
        return {
            "network": network,
            "optimiser": {"type": type(self.optimiser).__name__, **self.optimiser.state_dict()},
            "trainer": {"position": self.position.state_dict(), "samples_seen": self.samples_seen,
                        "elapsed": self.elapsed, "seed": self.seed, "seeded": self._seeded,
                        "input_shape": None if self._input_shape is None else list(self._input_shape)},
            "data": data,
            "hooks": {hook.name: {"trigger": hook.trigger.state_dict(), "state": hook.state_dict()}
                      for hook in self.hooks},
            "operator": self.operator.state_dict(),
            "random": {name: backend.random.get_state() for name, backend in _live_backends().items()},
            "metrics": {**self.latest, **self.observation},
        }

    def save_checkpoint(self, path: "str | os.PathLike") -> pathlib.Path:
        """Write a checkpoint of the whole training state to ``path`` (atomically)."""
        path = checkpoint_file.save(path, self.state_dict())
        self.last_checkpoint = path
        self.record("checkpoint", path=str(path))
        return path

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (see :meth:`restore` for files)."""
        network = state.get("network", {})
        self.network.load_state_dict({**network.get("parameters", {}), **network.get("buffers", {})})
        self._description = network.get("description")
        optimiser = {k: v for k, v in state["optimiser"].items() if k != "type"}
        saved_type = state["optimiser"].get("type")
        if saved_type not in (None, type(self.optimiser).__name__):
            raise ValueError(f"the checkpoint's optimiser is {saved_type}, this trainer's is "
                             f"{type(self.optimiser).__name__}")
        self.optimiser.load_state_dict(optimiser)
        trainer = state["trainer"]
        length = self.position.batches_per_epoch
        self.position.load_state_dict(trainer["position"])
        if length is not None and self.position.batches_per_epoch not in (None, length):
            raise ValueError(f"the checkpoint was written with {self.position.batches_per_epoch} batches per "
                             f"epoch, the training data now has {length}: resume with the same data and batch size")
        self.samples_seen = int(trainer.get("samples_seen", 0))
        self.elapsed = float(trainer.get("elapsed", 0.0))
        self._seeded = bool(trainer.get("seeded", True))
        shape = trainer.get("input_shape")
        self._input_shape = None if shape is None else tuple(shape)
        self._drop_epoch_iterator()
        saved_data = state.get("data", {}).get("train")
        if saved_data is not None and hasattr(self.train_data, "load_state_dict"):
            self.train_data.load_state_dict(saved_data)
        saved_hooks = state.get("hooks", {})
        for hook in self.hooks:
            if hook.name in saved_hooks:
                hook.trigger.load_state_dict(saved_hooks[hook.name].get("trigger", {}))
                hook.load_state_dict(saved_hooks[hook.name].get("state", {}))
        # Only hooks that kept state of their own are worth a warning: a monitor or GUI feed that the saving
        # run had and this one has not (only its trigger's schedule was saved) loses nothing.
        unknown = sorted(name for name in set(saved_hooks) - {h.name for h in self.hooks}
                         if saved_hooks[name].get("state"))
        if unknown:
            logger.warning("the checkpoint holds state for hooks this trainer does not have: %s", unknown)
        self.operator.load_state_dict(state.get("operator", {}))
        for name, random_state in state.get("random", {}).items():
            try:
                backend = backends.get(name)
            except (ValueError, RuntimeError) as error:
                logger.warning("random state for %s not restored: %s", name, error)
                continue
            backend.random.set_state(random_state)
        self.latest = dict(state.get("metrics", {}))

    def restore(self, path: "str | os.PathLike") -> "Trainer":
        """Continue from a checkpoint file: weights, optimiser, position, data, hooks, random streams.

        Training on from here gives bit-identical parameters to a run that
        never stopped (on the CPU backend). Returns the trainer.
        """
        if self.running:
            raise RuntimeError("restore: stop the trainer first")
        self.load_state_dict(checkpoint_file.load(path))
        self.restored_from = pathlib.Path(path)
        self.record("restored", path=str(path))
        return self

    @classmethod
    def from_checkpoint(cls, path: "str | os.PathLike", *args: Any, **kwargs: Any) -> "Trainer":
        """``Trainer(*args, **kwargs).restore(path)``: build the trainer as before, then continue it."""
        return cls(*args, **kwargs).restore(path)


def _hyperparameters(optimiser) -> List[Dict[str, Any]]:
    return [{k: v for k, v in group.items() if k != "params" and isinstance(v, (int, float, str, bool, tuple))}
            for group in optimiser.param_groups]


def _live_backends() -> Dict[str, Any]:
    # Only backends that exist in this process can have moved their random streams.
    return {backend.name: backend for backend in backends.instances()}
