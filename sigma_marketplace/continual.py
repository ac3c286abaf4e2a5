"""Continual learning: a model that serves predictions and improves from the feedback, forward passes only.

Every served sample takes its own random path: one vendor per stage, the
vendors being this round's MarketplaceV2 probes (vendor 0 is the model as
it is). When labels come back, each answered sample has a loss for its
path; once ``batch`` of them are in, one V2 update is made from those
per-sample losses (z-scored, summed per vendor with a bincount, exactly as
a V2 step with one path per sample) and a new round of probes begins.
:meth:`ContinualLearner.predict` always uses the unperturbed weights.

The mixed-path forward groups the samples by vendor at each stage, so a
request of N samples costs one plain pass per (stage, vendor) in use, never
one per sample.

With ``baseline=True`` (Sigma's addition, not the reference's) each
served sample's loss is taken relative to the unperturbed model's loss on
the same sample, which costs one more plain forward pass per request. The
reference z-scores raw per-sample losses, so which vendor happened to
serve the hard samples (a new class, say) weighs as much as what the
vendors did to them; the difference removes that, the way a control
variate does, and leaves the per-vendor effect.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from sigma.autograd import no_grad
from sigma.tensor import Tensor

from sigma_marketplace.handle import per_sample
from sigma_marketplace.stages import Stages
from sigma_marketplace.v2 import MarketplaceV2

__all__ = ["ContinualLearner"]


class ContinualLearner:
    """Wraps a trained staged model: ``serve`` predictions, take ``feedback``, improve.

    Defaults follow the Marketplace reference's continual-learning setup
    (4 vendors, lr 1e-2, no decay, probe_scale 1.0, updates from 256
    answered samples).

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> from sigma_marketplace import ContinualLearner, Stages
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> learner = ContinualLearner(Stages.split(net, [2]), nn.CrossEntropyLoss(), batch=8)
        >>> outputs = learner.serve(sigma.randn(8, 4))          # predictions from 8 random paths
        >>> learner.feedback(sigma.randint(0, 3, (8,))) is not None   # 8 answers: one update
        True
        >>> learner.updates, learner.predict(sigma.randn(2, 4)).shape
        (1, (2, 3))
    """

    def __init__(self, stages: Any, loss: Any, *, vendors: int = 4, lr: float = 1e-2, probe_scale: float = 1.0,
                 decay: float = 0.0, normalise: str = "whole", seed: int = 0, batch: int = 256,
                 baseline: bool = False):
        self.stages = stages if isinstance(stages, Stages) else Stages(stages)
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 2:
            raise ValueError(f"ContinualLearner: batch (answered samples per update) must be an integer >= 2, "
                             f"got {batch!r}")
        if not isinstance(baseline, bool):
            raise TypeError(f"ContinualLearner: baseline must be True or False, got {baseline!r}")
        self.batch = int(batch)
        self.baseline = baseline
        self.optimiser = MarketplaceV2(self.stages, vendors=vendors, lr=lr, probe_scale=probe_scale, decay=decay,
                                       normalise=normalise, seed=seed)
        self.per_sample_loss = per_sample(loss)
        self.served = 0                       # samples served so far, all rounds
        # served, not yet answered: {"round", "paths", "outputs", "leader"} (leader: None without baseline)
        self._waiting: List[Dict[str, Any]] = []
        self._answered_paths: List[np.ndarray] = []
        self._answered_losses: List[np.ndarray] = []
        self.stale = 0                        # answers dropped because an update came in between
        self.last_update_loss: Optional[float] = None

    @property
    def updates(self) -> int:
        return self.optimiser.step_count

    @property
    def round(self) -> int:
        """The probes' round: updates made so far + 1."""
        return self.optimiser.step_count + 1

    def _probes(self):
        return self.optimiser.probes(self.round)

    def assign_paths(self, count: int) -> np.ndarray:
        """Random vendor per stage for the next ``count`` samples (a pure function of seed and position)."""
        seed = int(self.optimiser.param_groups[0]["seed"])
        generator = np.random.Generator(np.random.Philox(np.random.SeedSequence([seed, self.served, 0x73657276])))
        return np.stack([generator.integers(0, group["vendors"], count)
                         for group in self.optimiser.param_groups], axis=1)

    def mixed_forward(self, inputs: Tensor, paths: np.ndarray, probes=None) -> Tensor:
        """Outputs of sample ``i`` through the vendors ``paths[i]``, grouped by vendor at every stage."""
        probes = self._probes() if probes is None else probes
        backend = self.stages.backend
        x = inputs.data
        with no_grad():
            for stage in self.stages:
                out = None
                originals = [param.data for param in stage.parameters]
                try:
                    for vendor in np.unique(paths[:, stage.index]):
                        rows = np.flatnonzero(paths[:, stage.index] == vendor)
                        for index, (param, original) in enumerate(zip(stage.parameters, originals)):
                            param.data = original + probes.delta(stage.index, int(vendor), index)
                        chosen = backend.asarray(rows)
                        result = stage.module(Tensor._make(x[chosen], backend, False, None)).data
                        if out is None:
                            out = backend.xp.empty((len(paths),) + result.shape[1:], dtype=result.dtype)
                        out[chosen] = result
                finally:
                    for param, original in zip(stage.parameters, originals):
                        param.data = original
                x = out
        return Tensor._make(x, backend, False, None)

    def serve(self, inputs: Any) -> Tensor:
        """Predictions (model outputs) for a request; each sample goes through its own random path."""
        inputs = inputs if isinstance(inputs, Tensor) else Tensor(inputs, device=self.stages.backend)
        if inputs.ndim == 0 or inputs.shape[0] == 0:
            raise ValueError(f"serve: expected a batch of samples (N, ...), got shape {inputs.shape}")
        paths = self.assign_paths(inputs.shape[0])
        outputs = self.mixed_forward(inputs, paths)
        leader = self.predict(inputs) if self.baseline else None
        self.served += inputs.shape[0]
        self._waiting.append({"round": self.round, "paths": paths, "outputs": outputs, "leader": leader})
        return outputs

    def feedback(self, targets: Any) -> Optional[float]:
        """Answers for the oldest served samples still waiting, in serving order.

        Returns the mean loss of the answered samples used when this call
        completes an update (with ``baseline``: less the unperturbed
        model's mean loss on them), else ``None``.
        """
        targets = targets if isinstance(targets, Tensor) else Tensor(targets, device=self.stages.backend)
        count = targets.shape[0] if targets.ndim else 0
        waiting = sum(len(entry["paths"]) for entry in self._waiting)
        if count == 0 or count > waiting:
            raise ValueError(f"feedback: got {count} answer(s) but {waiting} served sample(s) are waiting for one")
        result = None
        offset = 0
        while offset < count:
            entry = self._waiting[0]
            take = min(len(entry["paths"]), count - offset)
            outputs, leader = (None if entry[key] is None else _rows(entry[key], 0, take)
                               for key in ("outputs", "leader"))
            answers = _rows(targets, offset, offset + take)
            paths = entry["paths"][:take]
            if take == len(entry["paths"]):
                self._waiting.pop(0)
            else:
                entry["paths"] = entry["paths"][take:]
                for key in ("outputs", "leader"):
                    if entry[key] is not None:
                        entry[key] = _rows(entry[key], take, len(entry[key].data))
            offset += take
            if entry["round"] != self.round:
                self.stale += take       # served with probes that no longer exist
                continue
            losses = self._losses(outputs, answers)
            if leader is not None:
                losses = losses - self._losses(leader, answers)
            self._answered_paths.append(paths)
            self._answered_losses.append(losses)
            if sum(len(l) for l in self._answered_losses) >= self.batch:
                result = self._update()
        return result

    def _losses(self, outputs: Tensor, answers: Tensor) -> np.ndarray:
        with no_grad():
            losses = self.per_sample_loss(outputs, answers)
        return np.asarray(losses.numpy(), dtype=np.float64).reshape(len(outputs.data), -1).mean(axis=1)

    def _update(self) -> float:
        paths = np.concatenate(self._answered_paths)
        losses = np.concatenate(self._answered_losses)
        self._answered_paths, self._answered_losses = [], []
        with no_grad():
            self.optimiser.learn(paths, losses, self._probes())
        self.last_update_loss = float(losses.mean())
        return self.last_update_loss

    def predict(self, inputs: Any) -> Tensor:
        """Outputs of the unperturbed model (what evaluation should use)."""
        inputs = inputs if isinstance(inputs, Tensor) else Tensor(inputs, device=self.stages.backend)
        with no_grad():
            return self.stages(inputs)

    def state_dict(self) -> Dict[str, Any]:
        """The optimiser's state and the serving position (answers still waiting are not kept)."""
        return {"optimiser": self.optimiser.state_dict(), "served": self.served, "stale": self.stale}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if not isinstance(state, dict) or not {"optimiser", "served"} <= set(state):
            raise ValueError(f"ContinualLearner.load_state_dict: expected a dict with 'optimiser' and 'served', "
                             f"got {sorted(state) if isinstance(state, dict) else type(state).__name__}")
        self.optimiser.load_state_dict(state["optimiser"])
        self.restore_position(int(state["served"]), int(state.get("stale", 0)))

    def restore_position(self, served: int, stale: int = 0) -> None:
        """Continue the stream after ``served`` samples; samples waiting for an answer are forgotten."""
        self.served, self.stale = int(served), int(stale)
        self._waiting, self._answered_paths, self._answered_losses = [], [], []


def _rows(tensor: Tensor, start: int, stop: int) -> Tensor:
    return Tensor._make(tensor.data[start:stop], tensor.backend, False, None)
