"""Random search: the smallest real forward-only optimiser.

Each step draws ``population`` Gaussian perturbations of every parameter
(standard deviation ``lr``, per group), evaluates them on the current batch
through the loss handle together with the unperturbed parameters, and keeps
the best. The loss on the step's batch therefore never goes up. The noise of
step ``t`` comes from ``numpy.random.SeedSequence([seed, t, group])``, so a
run is reproducible from its seed and resumes exactly from a ``state_dict``.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from sigma.optim.forward import ForwardOptimiser, LossHandle
from sigma.optim.optimiser import check_non_negative
from sigma.optim.registry import register

__all__ = ["RandomSearch"]


@register("random-search")
class RandomSearch(ForwardOptimiser):
    """Keep the best of ``population`` random perturbations (or the current values if none is better).

    Example:
        >>> import sigma
        >>> w = sigma.tensor([3.0])
        >>> optimiser = sigma.optim.RandomSearch([w], lr=0.5, population=16)
        >>> before = (w * w).item()
        >>> after = optimiser.step(lambda: (w * w).sum())
        >>> after < before and after == (w * w).item()
        True
    """

    defaults = {"lr": 0.01, "population": 8, "seed": 0}

    def check_hyperparameters(self, group: Dict[str, Any]) -> None:
        check_non_negative(self, group, "lr")
        population = group["population"]
        if isinstance(population, bool) or not isinstance(population, (int, np.integer)) or population < 1:
            raise ValueError(f"RandomSearch: population must be an integer >= 1, got {population!r}")
        if population != self.defaults["population"]:
            raise ValueError(f"RandomSearch: every group must use the same population (a candidate perturbs all "
                             f"parameters), got {population} and {self.defaults['population']}")
        if isinstance(group["seed"], bool) or not isinstance(group["seed"], (int, np.integer)) or group["seed"] < 0:
            raise ValueError(f"RandomSearch: seed must be an integer >= 0, got {group['seed']!r}")

    def search(self, handle: LossHandle) -> float:
        params = list(self.parameters())
        step = max((self.state.get(p, {}).get("step", 0) for p in params), default=0) + 1
        population = self.defaults["population"]
        deltas = []
        for group_index, group in enumerate(self.param_groups):
            generator = np.random.default_rng(np.random.SeedSequence([int(group["seed"]), step, group_index]))
            for param in group["params"]:
                # Row 0 is the unperturbed parameter, so the current loss is
                # measured in the same evaluation as the candidates.
                noise = np.zeros((population + 1,) + param.shape, dtype=param.dtype)
                noise[1:] = generator.standard_normal((population,) + param.shape) * group["lr"]
                deltas.append(param.backend.asarray(noise))
        losses = handle.evaluate(deltas)
        # NaN losses never win; among equal losses the first (current values) does.
        best = int(np.argmin(np.where(np.isnan(losses), np.inf, losses)))
        if best > 0:
            for param, delta in zip(params, deltas):
                param.data[...] = param.data + delta[best]
        for param in params:
            self.state[param] = {"step": step}
        return float(losses[best])
