"""Reporters of gradient norms and weight statistics, for spotting exploding or dead layers.

Example:
    >>> from sigma.training.hooks import GradientNorm, WeightStatistics
    >>> GradientNorm().trigger, WeightStatistics().statistics
    (every(1, 'iteration'), ('mean', 'std', 'norm'))
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

from sigma.training.condition import Condition
from sigma.training.hooks.base import PRIORITY_WRITER, Hook
from sigma.training.timesteps import every

_STATISTICS = ("mean", "std", "norm", "min", "max")


class GradientNorm(Hook):
    """Writes ``train/gradient_norm``, the L2 norm of all gradients together (after clipping, if any),
    and with ``per_parameter`` also ``gradient_norm/<parameter name>``."""

    priority = PRIORITY_WRITER

    def __init__(self, per_parameter: bool = False, trigger: Optional[Condition] = None, name: Optional[str] = None):
        super().__init__(trigger, name=name)
        self.per_parameter = per_parameter

    def __call__(self, trainer) -> None:
        total = 0.0
        for name, parameter in trainer.network.named_parameters():
            if parameter.grad is None:
                continue
            grad = parameter.grad.data
            squared = float((grad.astype("float64") ** 2).sum())
            total += squared
            if self.per_parameter:
                trainer.observation[f"gradient_norm/{name}"] = math.sqrt(squared)
        trainer.observation["train/gradient_norm"] = math.sqrt(total)


class WeightStatistics(Hook):
    """Writes ``weights/<parameter name>/<statistic>`` for each parameter (by default every epoch).

    Statistics: any of ``mean``, ``std``, ``norm`` (L2), ``min``, ``max``.
    """

    priority = PRIORITY_WRITER

    def __init__(self, statistics: Sequence[str] = ("mean", "std", "norm"), trigger: Optional[Condition] = None,
                 name: Optional[str] = None):
        unknown = sorted(set(statistics) - set(_STATISTICS))
        if unknown or not statistics:
            raise ValueError(f"WeightStatistics: unknown statistics {unknown or list(statistics)}; "
                             f"choose from {_STATISTICS}")
        super().__init__(trigger, name=name)
        self.statistics = tuple(statistics)

    def default_trigger(self) -> Condition:
        return every(1, "epoch")

    def __call__(self, trainer) -> None:
        for name, parameter in trainer.network.named_parameters():
            values = parameter.data.astype("float64")
            xp = parameter.backend.xp
            for statistic in self.statistics:
                if statistic == "norm":
                    value = xp.sqrt((values ** 2).sum())
                else:
                    value = getattr(values, statistic)()
                trainer.observation[f"weights/{name}/{statistic}"] = float(value)
