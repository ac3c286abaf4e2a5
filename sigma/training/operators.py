"""Operators own the workers that do the arithmetic of training, and merge what they report.

The trainer never runs a forward pass itself: each step it hands the batch
to its operator, which hands it to one or more :class:`Worker`\\ s and
returns one merged report (``{"train/loss": ..., "train/accuracy": ...}``).
Evaluation goes through the operator too. :class:`Inline` is the default:
one worker, in the trainer's thread, on the network's own device.
Operators that spread a step over several CPU workers, GPUs or MPI ranks
implement the same :class:`Operator` interface (their merge is gradient
all-reduce or model averaging); the trainer, hooks and checkpoints do not
change for them: :class:`MultiWorker` (threads or processes on one device) and
:class:`MPI` (one rank per process, on one machine or many).

Example:
    >>> import sigma, sigma.optim
    >>> from sigma import nn
    >>> from sigma.training.operators import Inline
    >>> network = nn.Linear(3, 2)
    >>> operator = Inline()
    >>> operator.setup(network, nn.CrossEntropyLoss(), sigma.optim.SGD(network.parameters(), lr=0.1))
    >>> report = operator.train_step({"inputs": sigma.randn(4, 3), "targets": sigma.tensor([0, 1, 1, 0])})
    >>> sorted(report)
    ['batch_size', 'train/accuracy', 'train/loss']
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from sigma import device as _device
from sigma.autograd import no_grad
from sigma.tensor import Tensor
from sigma.training.metrics import class_labels, count_correct


def split_batch(batch: Any) -> Tuple[Any, Any]:
    """``(inputs, targets)`` from a ``{"inputs", "targets"}`` dict or an ``(inputs, targets)`` pair."""
    if isinstance(batch, dict):
        try:
            return batch["inputs"], batch["targets"]
        except KeyError:
            raise KeyError(f"a training batch needs the sections 'inputs' and 'targets'; this one has "
                           f"{sorted(batch)}") from None
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise TypeError(f"a training batch is a dict with 'inputs' and 'targets' or an (inputs, targets) pair, got "
                    f"{type(batch).__name__}{' of length ' + str(len(batch)) if hasattr(batch, '__len__') else ''}")


def _on(value: Any, backend) -> Any:
    if isinstance(value, Tensor):
        return value if value.backend is backend else value.to(backend)
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # a raw array
        return Tensor(value, device=backend)
    return value


class Worker:
    """One replica of the model: network, loss and optimiser on one backend.

    ``train_step`` runs forward, loss, backward (for gradient optimisers)
    and the optimiser's update on one batch; forward-only optimisers get a
    function that evaluates the loss on the batch instead. Gradients are
    cleared before each step, not after, so hooks can read them after it.
    """

    def __init__(self, network, loss: Callable, optimiser, backend=None,
                 gradient_clip: Optional[float] = None):
        from sigma.optim import ForwardOptimiser
        self.network = network
        self.loss = loss
        self.optimiser = optimiser
        self.backend = _device.resolve(backend) if backend is not None else _network_backend(network)
        self.gradient_clip = gradient_clip
        self.forward_only = isinstance(optimiser, ForwardOptimiser)

    def train_step(self, batch: Any) -> Dict[str, Any]:
        inputs, targets = split_batch(batch)
        inputs, targets = _on(inputs, self.backend), _on(targets, self.backend)
        if self.forward_only:
            outputs_seen: List[Any] = []

            def current_loss():
                outputs = self.network(inputs)
                outputs_seen.append(outputs)
                return self.loss(outputs, targets)

            loss = self.optimiser.step(current_loss)
            outputs = outputs_seen[0] if outputs_seen else None
        else:
            self.optimiser.zero_grad()
            outputs = self.network(inputs)
            loss = self.loss(outputs, targets)
            loss.backward()
            if self.gradient_clip is not None:
                from sigma.optim import clip_grad_norm
                clip_grad_norm(self.optimiser.parameters(), self.gradient_clip)
            self.optimiser.step()
        report: Dict[str, Any] = {"train/loss": loss, "batch_size": len(inputs)}
        if outputs is not None:
            labels = class_labels(outputs, targets)
            if labels is not None:
                report["train/accuracy"] = count_correct(outputs.data, labels, 1) / len(labels)
        return report

    def evaluate(self, batches: Iterable[Any], top_k: Sequence[int] = (1,),
                 limit: Optional[int] = None) -> Dict[str, float]:
        """Mean loss and top-k accuracies over ``batches`` (at most ``limit`` of them), in eval mode.

        The loss is taken to be a mean over its batch, so the result is the
        mean over all samples whatever the batch sizes.
        """
        was_training = self.network.training
        self.network.eval()
        samples, loss_sum = 0, 0.0
        correct = {k: 0 for k in top_k}
        classification = True
        # A limited pass must not leave a resumable iterator mid-epoch, or the
        # next full evaluation would see only the batches after this one.
        position = batches.state_dict() if limit is not None and hasattr(batches, "state_dict") else None
        try:
            with no_grad():
                for batch in itertools.islice(batches, limit):
                    inputs, targets = split_batch(batch)
                    inputs, targets = _on(inputs, self.backend), _on(targets, self.backend)
                    outputs = self.network(inputs)
                    count = len(inputs)
                    loss_sum += float(self.loss(outputs, targets).item()) * count
                    samples += count
                    labels = class_labels(outputs, targets) if classification else None
                    if labels is None:
                        classification = False
                        continue
                    for k in top_k:
                        correct[k] += count_correct(outputs.data, labels, k)
        finally:
            self.network.train(was_training)
            if position is not None:
                batches.load_state_dict(position)
        if samples == 0:
            raise ValueError("evaluation data yielded no batches")
        result = {"loss": loss_sum / samples}
        if classification:
            for k in top_k:
                result["accuracy" if k == 1 else f"top{k}_accuracy"] = correct[k] / samples
        return result


def _network_backend(network):
    for parameter in network.parameters():
        return parameter.backend
    return _device.default_backend()


class Operator:
    """Base class: owns workers, runs training steps and evaluations on them.

    ``setup`` is called once by the trainer with its network, loss and
    optimiser; ``train_step(batch)`` returns one report for the step (the
    trainer puts every entry but ``batch_size`` into the observation);
    ``evaluate`` returns the mean loss and accuracies over some data.
    ``primary`` is the worker whose network the trainer checkpoints.
    """

    workers: List[Worker]

    def setup(self, network, loss: Callable, optimiser, backend=None,
              gradient_clip: Optional[float] = None) -> None:
        raise NotImplementedError

    @property
    def primary(self) -> Worker:
        return self.workers[0]

    def train_step(self, batch: Any) -> Dict[str, Any]:
        raise NotImplementedError

    def evaluate(self, batches: Iterable[Any], top_k: Sequence[int] = (1,),
                 limit: Optional[int] = None) -> Dict[str, float]:
        return self.primary.evaluate(batches, top_k, limit)

    def teardown(self) -> None:
        """Release workers' resources at the end of a run (threads, processes)."""

    def end_epoch(self) -> None:
        """Called by the trainer when an epoch ends, before the hooks run (model averaging syncs here)."""

    @property
    def writes_output(self) -> bool:
        """Whether this process shows progress and writes files (false on MPI ranks other than 0)."""
        return True

    def share_commands(self, command_round: Tuple[Optional[str], List[Any]]) -> Tuple[Optional[str], List[Any]]:
        """The trainer's command round ``(stop_reason, commands)`` every process applies: the writing
        process's. Operators whose workers live in one process return it unchanged."""
        return command_round

    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        pass

    def describe(self) -> str:
        return type(self).__name__


class Inline(Operator):
    """One worker in the trainer's own thread: plain single-device training."""

    def __init__(self):
        self.workers = []

    def setup(self, network, loss: Callable, optimiser, backend=None,
              gradient_clip: Optional[float] = None) -> None:
        self.workers = [Worker(network, loss, optimiser, backend, gradient_clip)]

    def train_step(self, batch: Any) -> Dict[str, Any]:
        return self.workers[0].train_step(batch)


# Defined in their own modules, which build on the classes above.
from sigma.training.data_parallel import GradientAllReduce, ModelAveraging  # noqa: E402
from sigma.training.multiworker import MultiWorker  # noqa: E402
from sigma.training.multigpu import MultiGPU  # noqa: E402
from sigma.training.mpi_operator import MPI  # noqa: E402
