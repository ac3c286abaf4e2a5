"""Optimisers, gradient clipping and learning-rate schedules.

Every optimiser builds on one plug-in API:

* :class:`Optimiser`: parameter groups, per-parameter ``state``,
  ``zero_grad()``, ``state_dict()`` / ``load_state_dict()``;
* :class:`GradientOptimiser`: write an elementwise update ``rule`` and name
  its state; the base applies it as one fused pass per parameter (numba on
  the CPU, a cupy kernel on CUDA). SGD, Adagrad, Adadelta, RMSProp, Adam and
  AdamW are written this way;
* :class:`ForwardOptimiser`: optimisers that only evaluate the loss, many
  candidates at once, through a :class:`LossHandle` (``RandomSearch``).

Optimisers are found by name (``sigma.optim.get("adam")``), including
third-party ones declared in the ``sigma.optimisers`` entry point group.
See ``docs/optimisers.md`` for writing your own.

Example:
    >>> import sigma
    >>> w = sigma.tensor([2.0], requires_grad=True)
    >>> optimiser = sigma.optim.get("sgd")([w], lr=0.25)
    >>> for _ in range(3):
    ...     optimiser.zero_grad()
    ...     (w * w).sum().backward()
    ...     optimiser.step()
    >>> w.item()  # each step halves w
    0.25
"""
from sigma.optim.optimiser import Optimiser
from sigma.optim.gradient import GradientOptimiser
from sigma.optim.forward import BatchedLossHandle, ForwardOptimiser, LossHandle
from sigma.optim.registry import ENTRY_POINT_GROUP, available, get, register
from sigma.optim.sgd import SGD
from sigma.optim.adaptive import Adadelta, Adagrad, RMSProp
from sigma.optim.adam import Adam, AdamW
from sigma.optim.random_search import RandomSearch
from sigma.optim.clipping import clip_grad_norm, clip_grad_value, grad_norm
from sigma.optim.schedules import (CosineAnnealingLR, ExponentialLR, LinearWarmup, ReduceLROnPlateau, Schedule,
                                   SequentialSchedule, StepLR)
from sigma.optim import elementwise

__all__ = [
    "Optimiser", "GradientOptimiser", "ForwardOptimiser", "LossHandle", "BatchedLossHandle",
    "register", "get", "available", "ENTRY_POINT_GROUP",
    "SGD", "Adagrad", "Adadelta", "RMSProp", "Adam", "AdamW", "RandomSearch",
    "clip_grad_norm", "clip_grad_value", "grad_norm",
    "Schedule", "StepLR", "ExponentialLR", "CosineAnnealingLR", "LinearWarmup", "SequentialSchedule",
    "ReduceLROnPlateau", "elementwise",
]
