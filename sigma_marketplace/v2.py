"""MarketplaceV2: a descent direction composed from every path's loss.

Each step, vendor ``v`` of stage ``s`` probes ``W_s + delta_{s,v}`` with
``delta`` uniform in ``±lr * probe_scale``, regenerated from the vendor's
seed (vendor 0: seed 0, no perturbation). Every path ``p`` gets a loss on
the batch; the z-scores ``z_p = -(loss_p - mean) / std`` weight the probes:

    c_{s,v} = sum of z_p over the paths through vendor v of stage s   (a bincount)
    g_s     = sum_v c_{s,v} * delta_{s,v}

which equals ``sum_p z_p * delta_{s, path(p, s)}`` without touching a path.
``g`` is scaled to unit length per stage (``normalise="per_spec"``) or
over all stages together (``"whole"``), and ``W_s += lr_s * g_s``. Then
``lr`` decays by ``1 - decay``.

Meta-learning-rate mode (``meta_lr=r``): a second wide pass on the same
batch lets every stage choose how far to go. Its vendors step along the
normalised direction by ``lr_s * scale_s * (1 + r)^k`` for
``k = 0, 1, -1, 2, -2, ...``; the best path fixes each stage's factor, the
parameters become exactly that path's, and ``scale_s`` keeps the factor for
later steps (it is part of the optimiser state). The second pass doubles
the cost of a step.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from sigma.optim import LossHandle

from sigma_marketplace.deltas import DirectionDeltas, SeedDeltas
from sigma_marketplace.market import Marketplace, StepRecord, finite_or_worst, _is_real

__all__ = ["MarketplaceV2", "z_scores", "meta_factors"]

NORMALISE_MODES = ("whole", "per_spec")


def z_scores(losses: np.ndarray) -> np.ndarray:
    """``-(loss - mean) / std`` (population std); all zeros when every loss is the same.

    Example:
        >>> z_scores(np.array([1.0, 3.0])).tolist(), z_scores(np.array([2.0, 2.0])).tolist()
        ([1.0, -1.0], [0.0, 0.0])
    """
    losses = np.asarray(losses, dtype=np.float64)
    spread = losses.std()
    if spread == 0:
        return np.zeros_like(losses)
    return -(losses - losses.mean()) / spread


def meta_factors(vendors: int, meta_lr: float) -> np.ndarray:
    """The step-size factors the meta pass offers: ``(1 + meta_lr)^k`` for ``k = 0, 1, -1, 2, -2, ...``.

    Example:
        >>> meta_factors(4, 1.0).tolist()
        [1.0, 2.0, 0.5, 4.0]
    """
    powers = [0] + [sign * k for k in range(1, vendors) for sign in (1, -1)]
    return (1.0 + meta_lr) ** np.array(powers[:vendors], dtype=np.float64)


class MarketplaceV2(Marketplace):
    """Forward-only training along a direction composed from all probes' losses.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> from sigma_marketplace import MarketplaceV2, Stages
        >>> sigma.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> optimiser = MarketplaceV2(Stages.split(net, [1]), lr=0.05, vendors=4, probe_scale=0.1)
        >>> x, y = sigma.randn(64, 2), sigma.randint(0, 2, (64,))
        >>> handle = optimiser.make_handle(net, nn.CrossEntropyLoss(), x, y)
        >>> first = handle.loss()
        >>> for _ in range(20):
        ...     _ = optimiser.step(handle)
        >>> handle.loss() < first
        True
    """

    defaults = {**Marketplace.defaults, "lr": 0.3, "probe_scale": 0.01, "normalise": "whole", "meta_lr": None}
    market_hyperparameters = ("decay", "seed", "probe_scale", "normalise", "meta_lr")

    def check_hyperparameters(self, group: Dict[str, Any]) -> None:
        super().check_hyperparameters(group)
        name = type(self).__name__
        if not _is_real(group["probe_scale"]) or group["probe_scale"] <= 0:
            raise ValueError(f"{name}: probe_scale must be a positive number (probes are uniform in "
                             f"±lr*probe_scale), got {group['probe_scale']!r}")
        if group["normalise"] not in NORMALISE_MODES:
            raise ValueError(f"{name}: normalise must be 'whole' (one unit direction over all stages) or "
                             f"'per_spec' (a unit direction per stage), got {group['normalise']!r}")
        meta_lr = group["meta_lr"]
        if meta_lr is not None and (not _is_real(meta_lr) or meta_lr <= 0):
            raise ValueError(f"{name}: meta_lr must be None (off) or a positive number (the step-size factors "
                             f"offered are (1 + meta_lr)^k), got {meta_lr!r}")

    def search(self, handle: LossHandle) -> float:
        self.check_market()
        step = self.step_count + 1
        probes = self.probes(step)
        paths, losses = self.evaluate_paths(handle, self.plan_for(step), probes)
        return self.learn(paths, losses, probes, handle)

    def probes(self, step: int) -> SeedDeltas:
        """The vendors' probes of ``step``: uniform in ``±lr * probe_scale`` from the step's seeds."""
        scale = self.param_groups[0]["probe_scale"]
        return SeedDeltas(self.stage_parameters(), self.seeds_for(step),
                          [float(group["lr"]) * scale for group in self.param_groups], cache=self.cache_deltas)

    def learn(self, paths: np.ndarray, losses: np.ndarray, probes: SeedDeltas,
              handle: Optional[LossHandle] = None) -> float:
        """Update the parameters from scored paths of the current step and finish the step.

        ``paths`` (int ``(P, stages)``) and ``losses`` (``(P,)``) may come
        from a wide pass or from anywhere else, e.g. one path per served
        sample in continual learning; paths may repeat. Meta-learning-rate
        mode needs ``handle`` for its second pass. Returns the loss of path
        0 (the meta pass's best loss in meta mode).
        """
        market = self.param_groups[0]
        paths = np.asarray(paths, dtype=np.int64)
        losses = np.asarray(losses, dtype=np.float64)
        if paths.ndim != 2 or paths.shape != (len(losses), len(self.param_groups)):
            raise ValueError(f"{type(self).__name__}.learn: paths of shape {paths.shape} for {len(losses)} losses "
                             f"and {len(self.param_groups)} stage(s); need (losses, stages)")
        step = self.step_count + 1
        lrs = [float(group["lr"]) for group in self.param_groups]
        scales = self.lr_scales()
        stage_params = self.stage_parameters()
        direction = self.direction(probes, paths, losses)
        if market["meta_lr"] is None:
            for stage, params in enumerate(stage_params):
                step_size = lrs[stage] * scales[stage]
                for param, g in zip(params, direction[stage]):
                    param.data[...] = param.data + param.dtype.type(step_size) * g
            returned = float(losses[0])
        else:
            if handle is None:
                raise ValueError(f"{type(self).__name__}: meta-learning-rate mode needs the loss handle for its "
                                 "second pass")
            factors = [meta_factors(group["vendors"], market["meta_lr"]) for group in self.param_groups]
            steps = DirectionDeltas(stage_params, direction,
                                    [lr * scale * f for lr, scale, f in zip(lrs, scales, factors)])
            meta_paths, meta_losses = self.evaluate_paths(handle, self.plan_for(step), steps)
            best = int(np.argmin(finite_or_worst(meta_losses, type(self).__name__)))
            for stage, params in enumerate(stage_params):
                vendor = int(meta_paths[best, stage])
                for index, param in enumerate(params):
                    param.data[...] = param.data + steps.delta(stage, vendor, index)
                scales[stage] *= float(factors[stage][vendor])
            returned = float(meta_losses[best])
        self.finish_step(step, probes.seeds, scales)
        self.last_step = StepRecord(step, paths, losses, float(losses[0]), returned, lrs)
        return returned

    def direction(self, probes: SeedDeltas, paths: np.ndarray, losses: np.ndarray) -> List[List[Any]]:
        """The unit-length direction per stage (``per_spec``) or overall (``whole``), as backend arrays."""
        z = z_scores(finite_or_worst(losses, type(self).__name__))
        direction: List[List[Any]] = []
        squared_norms: List[float] = []
        for stage, group in enumerate(self.param_groups):
            weights = np.bincount(paths[:, stage], weights=z, minlength=group["vendors"])
            stage_direction = [probes.combine(stage, index, weights) for index in range(len(group["params"]))]
            direction.append(stage_direction)
            squared_norms.append(sum(float((g.astype("float64") ** 2).sum()) for g in stage_direction))
        if self.param_groups[0]["normalise"] == "whole":
            norms = [float(np.sqrt(sum(squared_norms)))] * len(direction)
        else:
            norms = [float(np.sqrt(s)) for s in squared_norms]
        for stage_direction, norm in zip(direction, norms):
            for index, g in enumerate(stage_direction):
                # No spread in the losses (or only the leader probed): no direction, no move.
                stage_direction[index] = g * g.dtype.type(1.0 / norm) if norm > 0 else g * 0
        return direction
