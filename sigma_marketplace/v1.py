"""MarketplaceV1: keep the best path.

Every step each stage offers ``vendors`` versions of its parameters: the
leader (vendor 0, the parameters as they are) and ``vendors - 1`` others,
the leader plus uniform noise in ``±lr`` regenerated from seeds. All paths
are scored on the batch; each stage's parameters become the vendor the
lowest-loss path went through, exactly (the same float32 sum the wide pass
evaluated), so the loss on the batch never rises. Then ``lr`` decays by
``1 - decay``.
"""
from __future__ import annotations

import numpy as np

from sigma.optim import LossHandle

from sigma_marketplace.deltas import SeedDeltas
from sigma_marketplace.market import Marketplace, StepRecord, finite_or_worst

__all__ = ["MarketplaceV1"]


class MarketplaceV1(Marketplace):
    """Forward-only training that keeps the best vendor combination each step.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> from sigma_marketplace import MarketplaceV1, Stages
        >>> sigma.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> optimiser = MarketplaceV1(Stages.split(net, [1]), lr=0.1, vendors=4)
        >>> x, y = sigma.randn(32, 2), sigma.randint(0, 2, (32,))
        >>> handle = optimiser.make_handle(net, nn.CrossEntropyLoss(), x, y)
        >>> before = handle.loss()
        >>> after = optimiser.step(handle)
        >>> after <= before, len(optimiser.last_step.losses)
        (True, 16)
    """

    defaults = {**Marketplace.defaults, "lr": 0.01}

    def search(self, handle: LossHandle) -> float:
        self.check_market()
        step = self.step_count + 1
        lrs = [float(group["lr"]) for group in self.param_groups]
        seeds = self.seeds_for(step)
        stage_params = self.stage_parameters()
        deltas = SeedDeltas(stage_params, seeds, lrs, cache=self.cache_deltas)
        paths, losses = self.evaluate_paths(handle, self.plan_for(step), deltas)
        scores = finite_or_worst(losses, type(self).__name__)
        best = int(np.argmin(scores))          # ties go to the earliest path; path 0 is the leader
        for stage, params in enumerate(stage_params):
            vendor = int(paths[best, stage])
            if vendor == 0:
                continue
            for index, param in enumerate(params):
                param.data[...] = param.data + deltas.delta(stage, vendor, index)
        self.finish_step(step, seeds, self.lr_scales())
        self.last_step = StepRecord(step, paths, losses, float(losses[0]), float(losses[best]), lrs)
        return float(losses[best])
