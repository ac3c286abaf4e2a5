"""What MarketplaceV1 and MarketplaceV2 share: stages as parameter groups, seeds, path evaluation, state.

Each parameter group is one stage. Per stage (group) hyperparameters:
``lr``, ``vendors`` and ``upstream`` (``None`` for full upstream, or ``k``:
each vendor reads ``k`` random upstream products). ``decay`` and ``seed``
(and V2's ``probe_scale``, ``normalise``, ``meta_lr``) are the market's and
must be the same in every group. The constructor accepts a list for
``lr``, ``vendors`` and ``upstream`` to set them stage by stage.

Everything random in step ``t`` is a pure function of ``(seed, t)``: the
vendors' seeds (:func:`sigma_marketplace.deltas.draw_seeds`) and the
upstream samples. The state (``step``, the last step's ``seeds`` and V2's
per-stage ``lr_scale``, kept per parameter so the base ``state_dict``
serialises it) plus the groups' current ``lr`` is therefore all a restored
optimiser needs to continue bit for bit.
"""
from __future__ import annotations

import numbers
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from sigma import nn
from sigma.optim import ForwardOptimiser, LossHandle
from sigma.tensor import Tensor

from sigma_marketplace.deltas import draw_seeds
from sigma_marketplace.handle import StagedLossHandle
from sigma_marketplace.paths import PathPlan
from sigma_marketplace.stages import Stages

__all__ = ["Marketplace", "StepRecord"]

PER_STAGE = ("lr", "vendors", "upstream")


class StepRecord(NamedTuple):
    """What one step saw: every evaluated path and its loss, for logs, plots and tests."""
    step: int
    paths: np.ndarray           # (P, stages) vendor indices
    losses: np.ndarray          # (P,) mean loss of each path on the batch
    leader_loss: float          # the loss of the parameters before the step (path 0)
    loss: float                 # the value step() returned
    lrs: List[float]            # each stage's lr used in this step


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)


class Marketplace(ForwardOptimiser):
    """Base of the Marketplace optimisers; subclasses implement :meth:`search`.

    ``stages`` is a :class:`~sigma_marketplace.Stages` (the fast path: the
    wide pass through a :class:`~sigma_marketplace.StagedLossHandle`), a
    list of stage modules, or plain parameters / parameter groups (each
    group a stage; losses then come one path at a time through any
    :class:`sigma.optim.LossHandle`). ``cache_deltas=False`` regenerates
    the vendors' perturbations from their seeds whenever they are needed
    instead of keeping all of them for the step; ``chunk_bytes`` bounds the
    largest activation of one chunk of the wide pass (default: 64 MiB on the
    CPU, 1 GiB on a GPU).

    With a ``communicator`` (:mod:`sigma.distributed`: MPI ranks, threads)
    the ranks share the paths: rank ``r`` evaluates the paths through the
    stage-0 vendors ``r, r + size, ...`` on the same batch, and the ranks
    add up one vector of path losses. Every rank regenerates every vendor's
    perturbation from the shared seeds and makes the same update, so only
    ``8 * paths`` bytes of losses travel per evaluation, never parameters or
    gradients (``communicated_bytes`` counts them).
    """

    defaults: Dict[str, Any] = {"lr": 0.01, "vendors": 8, "decay": 0.0, "upstream": None, "seed": 0}
    market_hyperparameters = ("decay", "seed")

    def __init__(self, stages: Any, *, cache_deltas: bool = True, chunk_bytes: Optional[int] = None,
                 communicator: Any = None, **hyperparameters: Any):
        name = type(self).__name__
        self.stages: Optional[Stages] = None
        if isinstance(stages, nn.Module):
            raise TypeError(f"{name}: cut the network into stages first, e.g. "
                            f"{name}(Stages.split(network, [6, 13]), ...) or {name}(Stages([block_a, block_b]))")
        if isinstance(stages, (list, tuple)) and stages and all(isinstance(s, nn.Module) for s in stages):
            stages = Stages(stages)
        if isinstance(stages, Stages):
            self.stages = stages
            groups: Any = stages.param_groups()
        else:
            groups = stages
        per_stage = {key: hyperparameters.pop(key) for key in PER_STAGE
                     if isinstance(hyperparameters.get(key), (list, tuple))}
        if per_stage:
            groups = self._spread(groups, per_stage)
        if not isinstance(cache_deltas, bool):
            raise TypeError(f"{name}: cache_deltas must be True or False, got {cache_deltas!r}")
        if chunk_bytes is not None and (not _is_int(chunk_bytes) or chunk_bytes < 1):
            raise ValueError(f"{name}: chunk_bytes must be a positive number of bytes, got {chunk_bytes!r}")
        self.cache_deltas = cache_deltas
        self.chunk_bytes: Optional[int] = None if chunk_bytes is None else int(chunk_bytes)
        self.last_step: Optional[StepRecord] = None
        self.communicator = communicator
        self.communicated_bytes = 0          # losses exchanged with the other ranks, in all
        super().__init__(groups, **hyperparameters)
        self.check_market()
        if communicator is not None and communicator.size > 1:
            # The ranks must start from the same parameters; afterwards they stay equal by construction.
            for param in self.parameters():
                flat = param.backend.xp.ascontiguousarray(param.data).reshape(-1)
                communicator.broadcast(flat, root=0)
                param.data[...] = flat.reshape(param.shape)

    def _spread(self, groups: Any, per_stage: Dict[str, Sequence[Any]]) -> List[Dict[str, Any]]:
        groups = list(groups)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for key, values in per_stage.items():
            if len(values) != len(groups):
                raise ValueError(f"{type(self).__name__}: {key} has {len(values)} value(s) for {len(groups)} "
                                 "stage(s); give one per stage")
        return [{**group, **{key: values[i] for key, values in per_stage.items()}} for i, group in enumerate(groups)]

    # -- hyperparameters --------------------------------------------------------------
    def check_hyperparameters(self, group: Dict[str, Any]) -> None:
        name = type(self).__name__
        lr, vendors, decay, upstream, seed = (group[k] for k in ("lr", "vendors", "decay", "upstream", "seed"))
        if not _is_real(lr) or lr <= 0:
            raise ValueError(f"{name}: lr must be a positive number, got {lr!r}")
        if not _is_int(vendors) or vendors < 2:
            raise ValueError(f"{name}: vendors must be an integer >= 2 (vendor 0 is the unperturbed leader, so "
                             f"fewer leaves nothing to compare), got {vendors!r}")
        if not _is_real(decay) or not 0 <= decay < 1:
            raise ValueError(f"{name}: decay must be a number in [0, 1) (lr is multiplied by 1 - decay each "
                             f"step), got {decay!r}")
        if upstream is not None and (not _is_int(upstream) or upstream < 1):
            raise ValueError(f"{name}: upstream must be None (every upstream product) or an integer k >= 1, "
                             f"got {upstream!r}")
        if not _is_int(seed) or not 0 <= seed < 2 ** 63:
            raise ValueError(f"{name}: seed must be an integer in [0, 2**63), got {seed!r}")

    def check_market(self) -> None:
        """Raise ``ValueError`` unless market-wide settings agree across stages and stage 0 reads the batch."""
        name = type(self).__name__
        first = self.param_groups[0]
        for key in self.market_hyperparameters:
            values = [group[key] for group in self.param_groups]
            if any(v != values[0] for v in values[1:]):
                raise ValueError(f"{name}: {key} belongs to the whole market and must be the same in every stage, "
                                 f"got {values}")
        if first["upstream"] is not None:
            raise ValueError(f"{name}: stage 0 reads the batch itself, so its upstream must be None, got "
                             f"{first['upstream']!r}")
        if self.stages is not None:
            self._check_stages(self.stages)

    def _check_stages(self, stages: Stages) -> None:
        name = type(self).__name__
        if len(stages) != len(self.param_groups) or any(
                [id(p) for p in stage.parameters] != [id(p) for p in group["params"]]
                for stage, group in zip(stages, self.param_groups)):
            raise ValueError(f"{name}: the loss handle's {len(stages)} stage(s) are not this optimiser's "
                             f"{len(self.param_groups)} parameter group(s), stage for group, in order")

    def check_state(self, index: int, param: Tensor, group: Dict[str, Any], state: Dict[str, Any]) -> None:
        super().check_state(index, param, group, state)
        name = type(self).__name__
        if "seeds" in state:
            seeds = np.asarray(param.backend.to_host(state["seeds"]) if param.backend.is_array(state["seeds"])
                               else state["seeds"])
            if seeds.ndim != 1 or seeds.dtype.kind not in "ui" or len(seeds) < 2:
                raise ValueError(f"{name}.load_state_dict: seeds of parameter {index} must be a 1-d integer array "
                                 f"of at least 2 vendors' seeds, got {seeds.dtype} of shape {seeds.shape}")
        if "lr_scale" in state and (not _is_real(state["lr_scale"]) or state["lr_scale"] <= 0):
            raise ValueError(f"{name}.load_state_dict: lr_scale of parameter {index} must be a positive number, "
                             f"got {state['lr_scale']!r}")

    # -- a step's ingredients -------------------------------------------------------------
    @property
    def step_count(self) -> int:
        """Steps taken so far."""
        first = self.param_groups[0]["params"][0]
        return int(self.state.get(first, {}).get("step", 0))

    def stage_parameters(self) -> List[List[Tensor]]:
        return [list(group["params"]) for group in self.param_groups]

    def lr_scales(self) -> List[float]:
        return [float(self.state.get(group["params"][0], {}).get("lr_scale", 1.0)) for group in self.param_groups]

    def seeds_for(self, step: int) -> List[np.ndarray]:
        """The vendors' seeds of every stage in ``step`` (vendor 0: seed 0, the leader)."""
        seed = int(self.param_groups[0]["seed"])
        return [draw_seeds(seed, step, stage, group["vendors"]) for stage, group in enumerate(self.param_groups)]

    def plan_for(self, step: int) -> PathPlan:
        """Which paths ``step`` evaluates (all, or the upstream samples)."""
        return PathPlan.sample([g["vendors"] for g in self.param_groups], [g["upstream"] for g in self.param_groups],
                               int(self.param_groups[0]["seed"]), step)

    def evaluate_paths(self, handle: LossHandle, plan: PathPlan, deltas) -> tuple:
        """``(paths, losses)``: in one wide pass through a :class:`StagedLossHandle`, else path by path."""
        if self.communicator is not None and self.communicator.size > 1:
            return self._paths_shared_by_ranks(handle, plan, deltas)
        return self._paths_here(handle, plan, deltas)

    def _paths_shared_by_ranks(self, handle: LossHandle, plan: PathPlan, deltas) -> tuple:
        communicator = self.communicator
        if any(table is not None for table in plan.tables):
            raise ValueError(f"{type(self).__name__}: ranks share the paths by stage-0 vendor, which needs full "
                             "upstream; set upstream=None for every stage")
        own = np.arange(communicator.rank, plan.vendors[0], communicator.size)
        losses = np.zeros(plan.path_count, dtype=np.float64)
        if len(own):
            local_plan = PathPlan([len(own)] + plan.vendors[1:])
            local_paths, local_losses = self._paths_here(handle, local_plan, FirstStageVendors(deltas, own))
            local_paths[:, 0] = own[local_paths[:, 0]]
            losses[np.ravel_multi_index(tuple(local_paths.T), plan.vendors)] = local_losses
        communicator.all_reduce(losses, "sum")
        self.communicated_bytes += losses.nbytes
        return plan.paths(), losses

    def _paths_here(self, handle: LossHandle, plan: PathPlan, deltas) -> tuple:
        if isinstance(handle, StagedLossHandle):
            self._check_stages(handle.stages)
            return handle.path_losses(plan, deltas, self.chunk_bytes)
        return self._paths_one_by_one(handle, plan, deltas)

    def _paths_one_by_one(self, handle: LossHandle, plan: PathPlan, deltas) -> tuple:
        paths = plan.paths()
        stage_params = self.stage_parameters()
        budget = self.chunk_bytes or 64 * 1024 * 1024
        bytes_per_path = sum(p.size * p.data.dtype.itemsize for stage in stage_params for p in stage)
        chunk = max(1, budget // max(bytes_per_path, 1))
        losses = []
        for start in range(0, len(paths), chunk):
            chosen = paths[start:start + chunk]
            candidate_deltas = []
            for stage, params in enumerate(stage_params):
                for index, param in enumerate(params):
                    vendors = param.backend.asarray(chosen[:, stage])
                    candidate_deltas.append(deltas.deltas(stage, index)[vendors])
            losses.append(handle.evaluate(candidate_deltas))
        return paths, np.concatenate(losses)

    def finish_step(self, step: int, seeds: Sequence[np.ndarray], lr_scales: Sequence[float]) -> None:
        """Record the step in the state and decay every stage's lr."""
        for group, stage_seeds, scale in zip(self.param_groups, seeds, lr_scales):
            for param in group["params"]:
                self.state[param] = {"step": step, "seeds": np.array(stage_seeds, copy=True),
                                     "lr_scale": float(scale)}
            group["lr"] = group["lr"] * (1.0 - group["decay"])

    def make_handle(self, network: nn.Module, loss: Any, inputs: Any, targets: Any) -> LossHandle:
        """The best loss handle for a batch: the wide pass when the stages are known, else a plain one.

        A training loop (or the trainer) calls ``optimiser.step(optimiser.make_handle(network, loss, x, y))``.
        """
        if self.stages is not None:
            own = {id(p) for p in network.parameters()}
            if not all(id(p) in own for p in self.stages.parameters()):
                raise ValueError(f"{type(self).__name__}.make_handle: the network does not hold this optimiser's "
                                 "stage parameters; build the Stages from the same network")
            return StagedLossHandle(self.stages, inputs, targets, loss)
        return LossHandle(lambda: loss(network(inputs), targets), list(self.parameters()))


class FirstStageVendors:
    """A view of a deltas source whose stage 0 offers only the vendors ``own`` (in that order)."""

    def __init__(self, deltas, own: np.ndarray):
        self.source, self.own = deltas, np.asarray(own)

    def vendors(self, stage: int) -> int:
        return len(self.own) if stage == 0 else self.source.vendors(stage)

    def delta(self, stage: int, vendor: int, index: int):
        return self.source.delta(stage, int(self.own[vendor]) if stage == 0 else vendor, index)

    def deltas(self, stage: int, index: int):
        stacked = self.source.deltas(stage, index)
        if stage != 0:
            return stacked
        backend = self.source.parameters[0][index].backend
        return stacked[backend.asarray(self.own)]


def finite_or_worst(losses: np.ndarray, name: str) -> np.ndarray:
    """The losses with NaN and infinities replaced by the worst finite loss (they never win)."""
    finite = np.isfinite(losses)
    if not finite.any():
        raise FloatingPointError(f"{name}: every path's loss is NaN or infinite ({len(losses)} paths); lower lr "
                                 "or check the data")
    return np.where(finite, losses, losses[finite].max()) if not finite.all() else losses
