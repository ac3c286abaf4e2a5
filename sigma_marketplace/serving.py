"""Continual learning in ``sigma.training``: a trainer step is one served request and its feedback.

:class:`ContinualServing` is a trainer operator around a
:class:`~sigma_marketplace.ContinualLearner`. Each batch the trainer draws
from its data is a request: the learner serves it (every sample through
its own random path), the batch's targets come back as the feedback
labels, and the learner updates whenever enough answers are in. So a
continual-learning session is an ordinary run: evaluation hooks measure
the unperturbed model, checkpoints save the learner, a run directory
records everything, and ``python -m sigma_gui RUN_DIR`` shows it live.

The step's report holds the served predictions' ``train/loss`` and
``train/accuracy`` (as the stream saw them, perturbed paths included;
accuracies only for classification) and,
when the batch has a ``"group"`` section (an integer per sample naming one
of ``groups``), ``served_<group>/loss`` and ``served_<group>/accuracy``
for every group in the request.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

from sigma.autograd import no_grad
from sigma.tensor import Tensor
from sigma.training.metrics import class_labels
from sigma.training.operators import Inline, Worker, split_batch

from sigma_marketplace.continual import ContinualLearner

__all__ = ["ContinualServing", "ServingWorker"]


class ServingWorker(Worker):
    """Serves each batch through a :class:`ContinualLearner` and feeds its targets back."""

    def __init__(self, learner: ContinualLearner, network, loss: Callable, groups: Sequence[str] = (),
                 backend=None):
        super().__init__(network, loss, learner.optimiser, backend, None)
        self.learner = learner
        self.groups = tuple(groups)
        self.last_request: Optional[Dict[str, np.ndarray]] = None   # inputs, targets, predictions, groups

    def train_step(self, batch: Any) -> Dict[str, Any]:
        group = batch.get("group") if isinstance(batch, dict) else None
        inputs, targets = split_batch(batch)
        inputs = inputs if isinstance(inputs, Tensor) else Tensor(inputs, device=self.backend)
        targets = targets if isinstance(targets, Tensor) else Tensor(targets, device=self.backend)
        if group is not None:   # checked before serving, so a bad request changes nothing
            group = np.asarray(group.numpy() if isinstance(group, Tensor) else group).astype(np.int64)
            if group.shape != (len(inputs),) or group.min() < 0 or group.max() >= len(self.groups):
                raise ValueError(f"ContinualServing: a batch's 'group' must give each of its {len(inputs)} samples "
                                 f"an index into groups {self.groups}; got shape {group.shape}, values "
                                 f"{sorted(set(group.reshape(-1).tolist()))[:8]}")
        outputs = self.learner.serve(inputs)
        with no_grad():
            losses = self.learner.per_sample_loss(outputs, targets)
        losses = np.asarray(losses.numpy(), dtype=np.float64).reshape(len(inputs), -1).mean(axis=1)
        predictions = correct = None
        if class_labels(outputs, targets) is not None:          # classification: integer or one-hot targets
            answers = targets.numpy()
            predictions = outputs.numpy().argmax(axis=1)
            correct = predictions == (answers if answers.ndim == 1 else answers.argmax(axis=1))
        self.learner.feedback(targets)
        report: Dict[str, Any] = {"train/loss": float(losses.mean()), "batch_size": len(inputs)}
        if correct is not None:
            report["train/accuracy"] = float(correct.mean())
        if group is not None:
            for index, name in enumerate(self.groups):
                chosen = group == index
                if chosen.any():
                    report[f"served_{name}/loss"] = float(losses[chosen].mean())
                    if correct is not None:
                        report[f"served_{name}/accuracy"] = float(correct[chosen].mean())
        self.last_request = {"inputs": inputs.numpy(), "targets": targets.numpy(), "predictions": predictions,
                             "group": group}
        return report


class ContinualServing(Inline):
    """A trainer operator: each training batch is a request the learner serves and then learns from.

    The trainer's optimiser must be the learner's own (``learner.optimiser``),
    so that checkpoints, live learning-rate edits and the run description
    are about the optimiser that learns.

    Example:
        >>> import numpy as np, sigma
        >>> from sigma import nn
        >>> from sigma.training import Trainer
        >>> from sigma_marketplace import ContinualLearner, ContinualServing, Stages
        >>> network = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> learner = ContinualLearner(Stages.split(network, [2]), nn.CrossEntropyLoss(), batch=16)
        >>> requests = [{"inputs": np.random.randn(8, 4).astype(np.float32), "targets": np.arange(8) % 3,
        ...              "group": (np.arange(8) > 5).astype(int)} for _ in range(4)]
        >>> trainer = Trainer(network, nn.CrossEntropyLoss(), learner.optimiser, requests,
        ...                   operator=ContinualServing(learner, groups=("old", "new")))
        >>> result = trainer.run(iterations=4)
        >>> learner.updates, sorted(k for k in result.metrics if k.startswith("served_"))
        (2, ['served_new/accuracy', 'served_new/loss', 'served_old/accuracy', 'served_old/loss'])
    """

    def __init__(self, learner: ContinualLearner, groups: Sequence[str] = ()):
        if not isinstance(learner, ContinualLearner):
            raise TypeError(f"ContinualServing: expected a ContinualLearner, got {type(learner).__name__}")
        groups = tuple(groups)
        if not all(isinstance(name, str) and name and "/" not in name for name in groups):
            raise ValueError(f"ContinualServing: groups must be names without '/', got {groups!r}")
        self.learner = learner
        self.groups = groups

    def setup(self, network, loss: Callable, optimiser, backend=None, gradient_clip: Optional[float] = None) -> None:
        if gradient_clip is not None:
            raise ValueError("gradient_clip has no meaning for a forward-only optimiser: there are no gradients")
        if optimiser is not self.learner.optimiser:
            raise ValueError(f"ContinualServing: the trainer's optimiser must be the learner's own "
                             f"(learner.optimiser), got a separate {type(optimiser).__name__}")
        self.workers = [ServingWorker(self.learner, network, loss, self.groups, backend)]

    @property
    def last_request(self) -> Optional[Dict[str, np.ndarray]]:
        """The last request served: ``inputs``, ``targets``, ``predictions`` and ``group`` (or ``None``)."""
        return self.workers[0].last_request

    def state_dict(self) -> Dict[str, Any]:
        state = self.learner.state_dict()
        return {"served": state["served"], "stale": state["stale"]}   # the trainer saves the optimiser itself

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if state:
            self.learner.restore_position(state["served"], state.get("stale", 0))

    def describe(self) -> str:
        return f"ContinualServing({self.learner.optimiser.param_groups[0]['vendors']} vendors, " \
               f"update every {self.learner.batch} answers)"
