"""Marketplace: forward-only training for Sigma, as a plug-in optimiser package.

Marketplace (Fang-Pen Lin, 2025) trains without backpropagation. The model
is cut into stages; every stage offers several **vendors** (versions of its
parameters: the leader and perturbations regenerated from seeds); every
combination of vendors (a **path**) is scored on the batch by forward
passes only, and the scores decide the update:

* :class:`MarketplaceV1` keeps the best path's vendors;
* :class:`MarketplaceV2` composes a descent direction from all paths'
  z-scored losses;
* :class:`ContinualLearner` serves predictions from random paths and
  learns from the feedback labels (:class:`ContinualServing` makes that a
  trainer run).

Both are ordinary ``sigma.optim`` forward optimisers, registered through
the ``sigma.optimisers`` entry point as ``marketplace-v1`` and
``marketplace-v2``. Their speed comes from :class:`StagedLossHandle`, whose
wide pass runs each stage once per chunk for all vendors (grouped
convolutions, batched matrix products) and scores all paths in one
reduction.

Example:
    >>> import sigma
    >>> from sigma import nn
    >>> import sigma_marketplace as market
    >>> net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    >>> optimiser = market.MarketplaceV2(market.Stages.split(net, [2]), lr=0.1, vendors=4)
    >>> x, y = sigma.randn(16, 4), sigma.randint(0, 3, (16,))
    >>> loss = optimiser.step(optimiser.make_handle(net, nn.CrossEntropyLoss(), x, y))
    >>> optimiser.last_step.paths.shape      # 4 vendors x 4 vendors
    (16, 2)
"""
from sigma_marketplace.continual import ContinualLearner
from sigma_marketplace.deltas import DirectionDeltas, SeedDeltas, draw_seeds, uniform_delta
from sigma_marketplace.handle import StagedLossHandle, per_sample
from sigma_marketplace.layers import register_wide_layer
from sigma_marketplace.market import Marketplace, StepRecord
from sigma_marketplace.paths import PathPlan
from sigma_marketplace.serving import ContinualServing
from sigma_marketplace.stages import Stage, Stages
from sigma_marketplace.training import MarketplaceInline
from sigma_marketplace.v1 import MarketplaceV1
from sigma_marketplace.v2 import MarketplaceV2
from sigma_marketplace.wide import path_losses

__all__ = ["MarketplaceV1", "MarketplaceV2", "Marketplace", "StepRecord", "Stages", "Stage", "StagedLossHandle",
           "PathPlan", "SeedDeltas", "DirectionDeltas", "draw_seeds", "uniform_delta", "path_losses", "per_sample",
           "register_wide_layer", "ContinualLearner", "ContinualServing", "MarketplaceInline"]
