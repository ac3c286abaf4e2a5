"""Learning-rate schedules: step decay, exponential, cosine annealing, linear warm-up, chains, plateaus.

A schedule changes ``group["lr"]`` of every parameter group of an
optimiser. Call ``schedule.step()`` once per optimiser step (or per epoch),
after ``optimiser.step()``, as in PyTorch; the values equal
``torch.optim.lr_scheduler``'s (the tests check them).

The step-count schedules are written in closed form, ``lr_at(step,
base_lr)``, so their whole state is the step count: they resume exactly from
a ``state_dict`` and chain without surprises (:class:`SequentialSchedule`
runs a warm-up and then another schedule). Each group's starting rate is
kept in ``group["initial_lr"]`` (PyTorch's key), so schedules created one
after another agree on it.
"""
from __future__ import annotations

import bisect
import math
from typing import Any, Dict, List, Mapping, Sequence, Union

from sigma.optim.optimiser import Optimiser

__all__ = ["Schedule", "StepLR", "ExponentialLR", "CosineAnnealingLR", "LinearWarmup", "SequentialSchedule",
           "ReduceLROnPlateau"]


def _check_optimiser(schedule: object, optimiser: Any) -> None:
    if not isinstance(optimiser, Optimiser):
        raise TypeError(f"{type(schedule).__name__} schedules a sigma.optim optimiser, "
                        f"got {type(optimiser).__name__}")


def _positive_int(schedule: object, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{type(schedule).__name__}: {name} must be an integer >= 1, got {value!r}")
    return value


class Schedule:
    """Base of closed-form schedules: subclasses define :meth:`lr_at` and list their ``settings``.

    Creating a schedule sets the rates for step 0; each :meth:`step` moves
    one step on.
    """

    settings: tuple = ()  # constructor arguments saved in state_dict

    def __init__(self, optimiser: Optimiser):
        _check_optimiser(self, optimiser)
        self.optimiser = optimiser
        for group in optimiser.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs: List[float] = [group["initial_lr"] for group in optimiser.param_groups]
        self.last_step = 0
        self._apply()

    def lr_at(self, step: int, base_lr: float) -> float:
        """The learning rate at ``step`` (0 before the first ``step()``) for a group starting at ``base_lr``."""
        raise NotImplementedError

    def step(self) -> None:
        """Move to the next step and set every group's ``lr``."""
        self.last_step += 1
        self._apply()

    def _apply(self) -> None:
        groups = self.optimiser.param_groups
        if len(groups) != len(self.base_lrs):
            raise RuntimeError(f"{type(self).__name__}: the optimiser has {len(groups)} parameter group(s) but the "
                               f"schedule was made for {len(self.base_lrs)}; make the schedule after adding groups")
        for group, base_lr in zip(groups, self.base_lrs):
            group["lr"] = self.lr_at(self.last_step, base_lr)

    def get_last_lr(self) -> List[float]:
        """The learning rate of each group, as last set."""
        return [group["lr"] for group in self.optimiser.param_groups]

    def state_dict(self) -> Dict[str, Any]:
        """Plain data: the schedule's kind, step count, base rates and settings."""
        state = {"schedule": type(self).__name__, "last_step": self.last_step, "base_lrs": list(self.base_lrs)}
        state.update({name: getattr(self, name) for name in self.settings})
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` and set the rates it implies."""
        name = type(self).__name__
        expected = {"schedule", "last_step", "base_lrs", *self.settings}
        missing = sorted(expected - set(state_dict))
        if missing:
            raise ValueError(f"{name}.load_state_dict: missing {missing}")
        if state_dict["schedule"] != name:
            raise ValueError(f"{name}.load_state_dict: the state is of a {state_dict['schedule']}")
        if len(state_dict["base_lrs"]) != len(self.optimiser.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state has {len(state_dict['base_lrs'])} base rate(s), "
                             f"the optimiser {len(self.optimiser.param_groups)} group(s)")
        for setting in self.settings:
            setattr(self, setting, state_dict[setting])
        self.last_step = int(state_dict["last_step"])
        self.base_lrs = [float(lr) for lr in state_dict["base_lrs"]]
        self._apply()


class StepLR(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` steps.

    Example:
        >>> import sigma
        >>> optimiser = sigma.optim.SGD([sigma.zeros(1, requires_grad=True)], lr=1.0)
        >>> schedule = sigma.optim.StepLR(optimiser, step_size=2, gamma=0.5)
        >>> rates = []
        >>> for _ in range(5):
        ...     rates.append(optimiser.param_groups[0]["lr"]); schedule.step()
        >>> rates
        [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    settings = ("step_size", "gamma")

    def __init__(self, optimiser: Optimiser, step_size: int, gamma: float = 0.1):
        self.step_size = _positive_int(self, "step_size", step_size)
        self.gamma = gamma
        super().__init__(optimiser)

    def lr_at(self, step: int, base_lr: float) -> float:
        return base_lr * self.gamma ** (step // self.step_size)


class ExponentialLR(Schedule):
    """Multiply the rate by ``gamma`` every step.

    Example:
        >>> import sigma
        >>> optimiser = sigma.optim.SGD([sigma.zeros(1, requires_grad=True)], lr=1.0)
        >>> schedule = sigma.optim.ExponentialLR(optimiser, gamma=0.5)
        >>> schedule.step(); schedule.step(); schedule.get_last_lr()
        [0.25]
    """

    settings = ("gamma",)

    def __init__(self, optimiser: Optimiser, gamma: float):
        self.gamma = gamma
        super().__init__(optimiser)

    def lr_at(self, step: int, base_lr: float) -> float:
        return base_lr * self.gamma ** step


class CosineAnnealingLR(Schedule):
    """Half a cosine from the base rate down to ``eta_min`` over ``T_max`` steps (Loshchilov & Hutter, 2017).

    ``eta_min + (base_lr - eta_min) * (1 + cos(pi * step / T_max)) / 2``;
    past ``T_max`` the cosine continues (rising again), as in PyTorch.

    Example:
        >>> import sigma
        >>> optimiser = sigma.optim.SGD([sigma.zeros(1, requires_grad=True)], lr=1.0)
        >>> schedule = sigma.optim.CosineAnnealingLR(optimiser, T_max=2)
        >>> schedule.step(); schedule.get_last_lr()
        [0.5]
    """

    settings = ("T_max", "eta_min")

    def __init__(self, optimiser: Optimiser, T_max: int, eta_min: float = 0.0):  # noqa: N803 - PyTorch's name
        self.T_max = _positive_int(self, "T_max", T_max)
        self.eta_min = eta_min
        super().__init__(optimiser)

    def lr_at(self, step: int, base_lr: float) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * step / self.T_max)) / 2


class LinearWarmup(Schedule):
    """Rise linearly from ``start_factor * lr`` to ``end_factor * lr`` over ``warmup_steps``, then stay.

    PyTorch's ``LinearLR``. Follow it with another schedule through
    :class:`SequentialSchedule`.

    Example:
        >>> import sigma
        >>> optimiser = sigma.optim.SGD([sigma.zeros(1, requires_grad=True)], lr=1.0)
        >>> schedule = sigma.optim.LinearWarmup(optimiser, warmup_steps=4)
        >>> rates = []
        >>> for _ in range(6):
        ...     rates.append(optimiser.param_groups[0]["lr"]); schedule.step()
        >>> rates
        [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    """

    settings = ("warmup_steps", "start_factor", "end_factor")

    def __init__(self, optimiser: Optimiser, warmup_steps: int, start_factor: float = 0.0,
                 end_factor: float = 1.0):
        self.warmup_steps = _positive_int(self, "warmup_steps", warmup_steps)
        for name, value in (("start_factor", start_factor), ("end_factor", end_factor)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"LinearWarmup: {name} must be in [0, 1], got {value!r}")
        self.start_factor = start_factor
        self.end_factor = end_factor
        super().__init__(optimiser)

    def lr_at(self, step: int, base_lr: float) -> float:
        progress = min(step, self.warmup_steps) / self.warmup_steps
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * progress)


class SequentialSchedule(Schedule):
    """Run ``schedules`` one after another, switching at the ``milestones`` (PyTorch's ``SequentialLR``).

    Each schedule starts counting from 0 at its milestone, from the groups'
    initial rates.

    Example (warm up for 2 steps, then decay by half each step):
        >>> import sigma
        >>> optimiser = sigma.optim.SGD([sigma.zeros(1, requires_grad=True)], lr=1.0)
        >>> warmup = sigma.optim.LinearWarmup(optimiser, warmup_steps=2)
        >>> decay = sigma.optim.ExponentialLR(optimiser, gamma=0.5)
        >>> schedule = sigma.optim.SequentialSchedule(optimiser, [warmup, decay], milestones=[2])
        >>> rates = []
        >>> for _ in range(5):
        ...     rates.append(optimiser.param_groups[0]["lr"]); schedule.step()
        >>> rates
        [0.0, 0.5, 1.0, 0.5, 0.25]
    """

    settings = ("milestones",)

    def __init__(self, optimiser: Optimiser, schedules: Sequence[Schedule], milestones: Sequence[int]):
        _check_optimiser(self, optimiser)
        schedules = list(schedules)
        milestones = [int(m) for m in milestones]
        if not schedules:
            raise ValueError("SequentialSchedule needs at least one schedule")
        for i, schedule in enumerate(schedules):
            if not isinstance(schedule, Schedule):
                raise TypeError(f"SequentialSchedule: schedule {i} is a {type(schedule).__name__}; only "
                                "step-count schedules chain (ReduceLROnPlateau follows a metric)")
            if schedule.optimiser is not optimiser:
                raise ValueError(f"SequentialSchedule: schedule {i} belongs to another optimiser")
        if len(milestones) != len(schedules) - 1:
            raise ValueError(f"SequentialSchedule: {len(schedules)} schedules need {len(schedules) - 1} "
                             f"milestone(s), got {len(milestones)}")
        if any(m < 1 for m in milestones) or milestones != sorted(set(milestones)):
            raise ValueError(f"SequentialSchedule: milestones must be increasing steps >= 1, got {milestones}")
        self.schedules = schedules
        self.milestones = milestones
        super().__init__(optimiser)

    def lr_at(self, step: int, base_lr: float) -> float:
        index = bisect.bisect_right(self.milestones, step)
        start = self.milestones[index - 1] if index > 0 else 0
        return self.schedules[index].lr_at(step - start, base_lr)

    def state_dict(self) -> Dict[str, Any]:
        state = super().state_dict()
        state["schedules"] = [schedule.state_dict() for schedule in self.schedules]
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        saved = list(state_dict.get("schedules", []))
        if len(saved) != len(self.schedules):
            raise ValueError(f"SequentialSchedule.load_state_dict: the state holds {len(saved)} schedule(s), "
                             f"this chain {len(self.schedules)}")
        for schedule, state in zip(self.schedules, saved):
            schedule.load_state_dict(state)
        super().load_state_dict(state_dict)


class ReduceLROnPlateau:
    """Cut the rate by ``factor`` when a metric has not improved for more than ``patience`` steps.

    ``step(metric)`` takes the monitored value (e.g. validation loss).
    Improvement means below ``best * (1 - threshold)`` (``mode="min"``,
    ``threshold_mode="rel"``), or ``best - threshold`` (``"abs"``), and the
    mirror images for ``mode="max"``. After a cut, ``cooldown`` steps pass
    before bad steps count again; rates never go below ``min_lr``, and cuts
    smaller than ``eps`` are skipped. As PyTorch's ``ReduceLROnPlateau``.

    Example:
        >>> import sigma
        >>> optimiser = sigma.optim.SGD([sigma.zeros(1, requires_grad=True)], lr=1.0)
        >>> schedule = sigma.optim.ReduceLROnPlateau(optimiser, factor=0.5, patience=1)
        >>> for loss in [3.0, 2.0, 2.0, 2.0]:
        ...     schedule.step(loss)
        >>> schedule.get_last_lr()
        [0.5]
    """

    settings = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lrs", "eps")

    def __init__(self, optimiser: Optimiser, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: Union[float, Sequence[float]] = 0.0, eps: float = 1e-8):
        _check_optimiser(self, optimiser)
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        if not 0.0 <= factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be in [0, 1), got {factor!r}")
        groups = optimiser.param_groups
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(groups):
                raise ValueError(f"ReduceLROnPlateau: {len(min_lr)} min_lr values for {len(groups)} group(s)")
            min_lrs = [float(v) for v in min_lr]
        else:
            min_lrs = [float(min_lr)] * len(groups)
        self.optimiser = optimiser
        self.mode = mode
        self.factor = factor
        self.patience = patience
        self.threshold = threshold
        self.threshold_mode = threshold_mode
        self.cooldown = cooldown
        self.min_lrs = min_lrs
        self.eps = eps
        self.best = math.inf if mode == "min" else -math.inf
        self.bad_steps = 0
        self.cooldown_left = 0
        self.last_step = 0

    def _improves(self, value: float) -> bool:
        if self.mode == "min":
            limit = self.best * (1.0 - self.threshold) if self.threshold_mode == "rel" else self.best - self.threshold
            return value < limit
        limit = self.best * (self.threshold + 1.0) if self.threshold_mode == "rel" else self.best + self.threshold
        return value > limit

    def step(self, metric: Any) -> None:
        """Record this step's metric and cut the rates if it has stalled for too long."""
        value = float(metric.item() if hasattr(metric, "item") else metric)
        if math.isnan(value):
            raise ValueError("ReduceLROnPlateau.step: the metric is NaN; the run has diverged")
        self.last_step += 1
        if self._improves(value):
            self.best = value
            self.bad_steps = 0
        else:
            self.bad_steps += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_steps = 0
        if self.bad_steps > self.patience:
            for group, min_lr in zip(self.optimiser.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, min_lr)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_left = self.cooldown
            self.bad_steps = 0

    def get_last_lr(self) -> List[float]:
        """The learning rate of each group."""
        return [group["lr"] for group in self.optimiser.param_groups]

    def state_dict(self) -> Dict[str, Any]:
        """Plain data: settings, best value so far, counters."""
        state = {"schedule": "ReduceLROnPlateau", "best": self.best, "bad_steps": self.bad_steps,
                 "cooldown_left": self.cooldown_left, "last_step": self.last_step}
        state.update({name: getattr(self, name) for name in self.settings})
        state["min_lrs"] = list(self.min_lrs)
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`."""
        expected = {"schedule", "best", "bad_steps", "cooldown_left", "last_step", *self.settings}
        missing = sorted(expected - set(state_dict))
        if missing:
            raise ValueError(f"ReduceLROnPlateau.load_state_dict: missing {missing}")
        if state_dict["schedule"] != "ReduceLROnPlateau":
            raise ValueError(f"ReduceLROnPlateau.load_state_dict: the state is of a {state_dict['schedule']}")
        if len(state_dict["min_lrs"]) != len(self.optimiser.param_groups):
            raise ValueError(f"ReduceLROnPlateau.load_state_dict: {len(state_dict['min_lrs'])} min_lr values for "
                             f"{len(self.optimiser.param_groups)} group(s)")
        for name in self.settings:
            setattr(self, name, state_dict[name])
        self.min_lrs = [float(v) for v in state_dict["min_lrs"]]
        self.best = float(state_dict["best"])
        self.bad_steps = int(state_dict["bad_steps"])
        self.cooldown_left = int(state_dict["cooldown_left"])
        self.last_step = int(state_dict["last_step"])
