"""The loss handle Marketplace uses: one batch, a staged model, and the wide pass over its paths."""
from __future__ import annotations

import copy
from typing import Any, Callable, Optional, Tuple

import numpy as np

from sigma.autograd import no_grad
from sigma.optim import LossHandle
from sigma.tensor import Tensor

from sigma_marketplace.paths import PathPlan
from sigma_marketplace.stages import Stages
from sigma_marketplace.wide import WidePass, default_chunk_bytes

__all__ = ["StagedLossHandle", "per_sample"]


def per_sample(loss: Any) -> Callable[[Tensor, Tensor], Tensor]:
    """A function giving one loss per sample from ``loss``.

    ``loss`` is a ``sigma.nn`` loss module (a copy with ``reduction="none"``
    is used) or already a function ``(outputs, targets) -> per-sample
    losses``.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> f = per_sample(nn.CrossEntropyLoss())
        >>> f(sigma.zeros(2, 4), sigma.tensor([0, 3])).shape
        (2,)
    """
    if hasattr(loss, "reduction"):
        unreduced = copy.copy(loss)
        unreduced.reduction = "none"
        return unreduced
    if not callable(loss):
        raise TypeError(f"the loss must be a sigma.nn loss module or a function (outputs, targets) -> per-sample "
                        f"losses, got {type(loss).__name__}")
    return loss


class StagedLossHandle(LossHandle):
    """The loss on one batch of a model cut into :class:`Stages`, for plain and wide evaluation.

    It is an ordinary :class:`sigma.optim.LossHandle` over the stages'
    parameters (``loss()``, ``evaluate(deltas)`` work for any forward-only
    optimiser), plus :meth:`path_losses`, which evaluates every
    vendor combination of a :class:`PathPlan` in one wide pass. After a
    wide pass ``leader_outputs`` holds the outputs of the parameters as they
    were (path 0), so a training loop can report accuracy without another
    forward pass.

    ``loss`` is a ``sigma.nn`` loss module (mean over the batch) or a
    function ``(outputs, targets) -> per-sample losses``.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> from sigma_marketplace import Stages
        >>> stages = Stages([nn.Linear(3, 4), nn.Linear(4, 2)])
        >>> handle = StagedLossHandle(stages, sigma.randn(8, 3), sigma.randint(0, 2, (8,)), nn.CrossEntropyLoss())
        >>> round(handle.loss(), 4) == round(nn.CrossEntropyLoss()(stages(handle.inputs), handle.targets).item(), 4)
        True
    """

    def __init__(self, stages: Stages, inputs: Any, targets: Any, loss: Any):
        if not isinstance(stages, Stages):
            stages = Stages(stages)
        backend = stages.backend
        self.stages = stages
        self.inputs = _on(inputs, backend, "inputs")
        self.targets = _on(targets, backend, "targets")
        if self.inputs.shape[0] != self.targets.shape[0] or self.inputs.shape[0] == 0:
            raise ValueError(f"a batch needs as many targets as inputs (at least one): got {self.inputs.shape[0]} "
                             f"inputs and {self.targets.shape[0]} targets")
        self.per_sample_loss = per_sample(loss)
        # The unperturbed model's outputs on the batch, kept by the last wide pass (for accuracy reports).
        self.leader_outputs: Optional[Tensor] = None

        def mean_loss():
            return self.per_sample_loss(self.stages(self.inputs), self.targets).mean()

        super().__init__(mean_loss, stages.parameters())

    def path_losses(self, plan: PathPlan, deltas, chunk_bytes: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """``(paths, losses)`` of every path in ``plan``; see :func:`sigma_marketplace.wide.path_losses`."""
        if len(plan.vendors) != len(self.stages):
            raise ValueError(f"the path plan has {len(plan.vendors)} stage(s), the model {len(self.stages)}")
        wide = WidePass(self.stages, self.targets, self.per_sample_loss, plan, deltas,
                        default_chunk_bytes(self.stages.backend) if chunk_bytes is None else chunk_bytes)
        with no_grad():
            paths, losses = wide.run(self.inputs.data)
        if wide.leader_outputs is not None:
            self.leader_outputs = wide.leader_outputs
        self.evaluations += len(losses)
        return paths, losses


def _on(value: Any, backend, what: str) -> Tensor:
    if isinstance(value, Tensor):
        return value if value.backend is backend else value.to(backend)
    try:
        return Tensor(value, device=backend)
    except Exception as error:
        raise TypeError(f"the batch's {what} must be a tensor or an array, got {type(value).__name__}") from error
