"""Marketplace in ``sigma.training``: an operator whose worker hands the optimiser the whole batch.

The trainer's worker gives forward-only optimisers a plain function that
returns the loss with the parameters as they are, which Marketplace can
only use path by path. :class:`MarketplaceInline` runs the same step
through the optimiser's :meth:`~sigma_marketplace.Marketplace.make_handle`
instead, so the wide pass runs; everything else (hooks, checkpoints,
evaluation, the GUI's monitors) is the trainer's own.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from sigma.training.metrics import class_labels, count_correct
from sigma.tensor import Tensor
from sigma.training.operators import Inline, Worker, split_batch

__all__ = ["MarketplaceWorker", "MarketplaceInline"]


class MarketplaceWorker(Worker):
    """A worker that steps optimisers with ``make_handle`` through their handle; others as usual."""

    def train_step(self, batch: Any) -> Dict[str, Any]:
        make_handle = getattr(self.optimiser, "make_handle", None)
        if make_handle is None:
            return super().train_step(batch)
        inputs, targets = split_batch(batch)
        inputs, targets = _on_backend(inputs, self.backend), _on_backend(targets, self.backend)
        handle = make_handle(self.network, self.loss, inputs, targets)
        loss = self.optimiser.step(handle)
        report: Dict[str, Any] = {"train/loss": loss, "batch_size": len(inputs)}
        outputs = getattr(handle, "leader_outputs", None)     # the model before the step, as with backprop
        if outputs is not None:
            labels = class_labels(outputs, targets)
            if labels is not None:
                report["train/accuracy"] = count_correct(outputs.data, labels, 1) / len(labels)
        return report


class MarketplaceInline(Inline):
    """:class:`sigma.training.operators.Inline` with a :class:`MarketplaceWorker`.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> from sigma_marketplace import MarketplaceV2, Stages
        >>> network = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> operator = MarketplaceInline()
        >>> operator.setup(network, nn.CrossEntropyLoss(), MarketplaceV2(Stages.split(network, [2]), vendors=4))
        >>> report = operator.train_step({"inputs": sigma.randn(8, 3), "targets": sigma.randint(0, 2, (8,))})
        >>> sorted(report)
        ['batch_size', 'train/accuracy', 'train/loss']
    """

    def setup(self, network, loss: Callable, optimiser, backend=None, gradient_clip: Optional[float] = None) -> None:
        if gradient_clip is not None:
            raise ValueError("gradient_clip has no meaning for a forward-only optimiser: there are no gradients")
        self.workers = [MarketplaceWorker(network, loss, optimiser, backend, gradient_clip)]


def _on_backend(value: Any, backend) -> Any:
    if isinstance(value, Tensor):
        return value if value.backend is backend else value.to(backend)
    return Tensor(value, device=backend)
