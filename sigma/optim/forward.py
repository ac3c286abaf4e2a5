"""Forward-only optimisers: they see the loss, never a gradient.

Such an optimiser proposes candidate parameter values and asks a
:class:`LossHandle` what the loss on the current batch would be for each.
``step(closure)`` takes either a handle or a plain function returning the
loss with the parameters as they are (which is wrapped in a
:class:`LossHandle`). Models that can evaluate many parameter sets in one
wide forward pass provide a :class:`BatchedLossHandle`, or a handle of their
own with more ways to evaluate (Marketplace's staged vendors); the optimiser
base does not change for them.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from sigma.autograd import no_grad
from sigma.optim.optimiser import Optimiser
from sigma.tensor import Tensor

__all__ = ["LossHandle", "BatchedLossHandle", "ForwardOptimiser"]


def _as_float(value: Any, where: str) -> float:
    if isinstance(value, Tensor):
        if value.size != 1:
            raise ValueError(f"{where} returned a tensor of shape {value.shape}; a loss is a single value")
        return float(value.item())
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{where} returned a {type(value).__name__}; a loss is a number or a one-value tensor") \
            from None


class LossHandle:
    """Evaluates the loss on the current batch for perturbed values of ``parameters``.

    ``loss_function()`` computes the loss with the parameters as they are
    (it closes over the batch). :meth:`evaluate` sets each candidate in
    place, calls it, and restores the parameters exactly.

    Example:
        >>> import numpy as np, sigma
        >>> w = sigma.tensor([1.0, 2.0])
        >>> handle = LossHandle(lambda: (w * w).sum(), [w])
        >>> handle.evaluate([np.array([[0.0, 0.0], [1.0, -2.0]])]).tolist()
        [5.0, 4.0]
        >>> w.tolist()
        [1.0, 2.0]
    """

    def __init__(self, loss_function: Callable[[], Any], parameters: Sequence[Tensor]):
        if not callable(loss_function):
            raise TypeError(f"LossHandle needs a function returning the loss, got {type(loss_function).__name__}")
        self.loss_function = loss_function
        self.parameters: List[Tensor] = list(parameters)
        self.evaluations = 0  # candidate losses computed so far, for budgets and logs

    def loss(self) -> float:
        """The loss with the parameters as they are."""
        with no_grad():
            value = _as_float(self.loss_function(), "the loss function")
        self.evaluations += 1
        return value

    def evaluate(self, deltas: Sequence[Optional[Any]]) -> np.ndarray:
        """Losses of K candidates, as a float64 numpy array of length K.

        ``deltas`` holds one entry per parameter (in the order of
        ``parameters``): an array of shape ``(K, *param.shape)`` whose row
        ``k`` is added to the parameter in candidate ``k``, or ``None`` to
        leave that parameter as it is.
        """
        deltas = self._check(deltas)
        count = next(d.shape[0] for d in deltas if d is not None)
        originals = [p.data.copy() if d is not None else None for p, d in zip(self.parameters, deltas)]
        losses = np.empty(count, dtype=np.float64)
        try:
            with no_grad():
                for k in range(count):
                    for param, original, delta in zip(self.parameters, originals, deltas):
                        if delta is not None:
                            param.data[...] = original + delta[k]
                    losses[k] = _as_float(self.loss_function(), "the loss function")
        finally:
            for param, original in zip(self.parameters, originals):
                if original is not None:
                    param.data[...] = original
        self.evaluations += count
        return losses

    def _check(self, deltas: Sequence[Optional[Any]]) -> List[Optional[Any]]:
        deltas = list(deltas)
        if len(deltas) != len(self.parameters):
            raise ValueError(f"evaluate: {len(deltas)} perturbation(s) for {len(self.parameters)} parameter(s); "
                             "give one per parameter (None for those left alone)")
        counts = set()
        checked: List[Optional[Any]] = []
        for i, (param, delta) in enumerate(zip(self.parameters, deltas)):
            if delta is None:
                checked.append(None)
                continue
            delta = delta.data if isinstance(delta, Tensor) else param.backend.asarray(delta, dtype=param.dtype)
            if delta.ndim != param.ndim + 1 or tuple(delta.shape[1:]) != param.shape:
                raise ValueError(f"evaluate: perturbation {i} has shape {tuple(delta.shape)}; parameter {i} has "
                                 f"shape {param.shape}, so it needs (K, {', '.join(map(str, param.shape))})")
            counts.add(delta.shape[0])
            checked.append(delta)
        if not counts:
            raise ValueError("evaluate: every perturbation is None; there is no candidate to evaluate")
        if len(counts) != 1 or 0 in counts:
            raise ValueError(f"evaluate: the perturbations hold different or zero numbers of candidates "
                             f"{sorted(counts)}; all must hold the same K >= 1")
        return checked


class BatchedLossHandle(LossHandle):
    """A :class:`LossHandle` for models that evaluate all candidates in one wide pass.

    ``batched_loss(values)`` receives one tensor per parameter, of shape
    ``(K, *param.shape)`` (candidate values, not perturbations), and returns
    the K losses as a tensor or array.

    Example:
        >>> import numpy as np, sigma
        >>> x = sigma.tensor([[1.0, 2.0]])
        >>> w = sigma.tensor([[1.0], [1.0]])
        >>> def losses(values):                  # values[0]: (K, 2, 1)
        ...     return ((x @ values[0]) ** 2).reshape(len(values[0]), -1).sum(axis=1)
        >>> handle = BatchedLossHandle(losses, [w])
        >>> handle.evaluate([np.array([[[0.0], [0.0]], [[-1.0], [0.0]]])]).tolist()
        [9.0, 4.0]
    """

    def __init__(self, batched_loss: Callable[[List[Tensor]], Any], parameters: Sequence[Tensor]):
        self.batched_loss = batched_loss

        def current_loss():
            return batched_loss([Tensor._make(p.data[None], p.backend, False, None) for p in self.parameters])[0]

        super().__init__(current_loss, parameters)

    def evaluate(self, deltas: Sequence[Optional[Any]]) -> np.ndarray:
        deltas = self._check(deltas)
        count = next(d.shape[0] for d in deltas if d is not None)
        values = []
        for param, delta in zip(self.parameters, deltas):
            data = param.data[None] + delta if delta is not None else \
                param.backend.xp.broadcast_to(param.data[None], (count,) + param.shape)
            values.append(Tensor._make(data, param.backend, False, None))
        with no_grad():
            result = self.batched_loss(values)
        losses = np.asarray(result.numpy() if isinstance(result, Tensor) else result, dtype=np.float64).reshape(-1)
        if losses.shape != (count,):
            raise ValueError(f"the batched loss returned {losses.size} value(s) for {count} candidates")
        self.evaluations += count
        return losses


class ForwardOptimiser(Optimiser):
    """Base of optimisers that use only loss evaluations; subclasses implement :meth:`search`.

    ``step(closure)`` accepts a :class:`LossHandle` (or subclass) over this
    optimiser's parameters in order, or a function returning the current
    loss, which is wrapped in a :class:`LossHandle`. It runs :meth:`search`
    without recording gradients and returns what it returns (the loss of the
    parameters it keeps).
    """

    def step(self, closure: Any = None):
        if closure is None:
            raise TypeError(f"{type(self).__name__}.step needs the loss: a function returning it for the current "
                            "batch, or a sigma.optim.LossHandle")
        parameters = list(self.parameters())
        if isinstance(closure, LossHandle):
            handle = closure
            if [id(p) for p in handle.parameters] != [id(p) for p in parameters]:
                raise ValueError(f"{type(self).__name__}.step: the loss handle covers {len(handle.parameters)} "
                                 f"parameter(s) that are not this optimiser's {len(parameters)}, in order")
        elif callable(closure):
            handle = LossHandle(closure, parameters)
        else:
            raise TypeError(f"{type(self).__name__}.step: expected a loss function or a LossHandle, "
                            f"got {type(closure).__name__}")
        with no_grad():
            return self.search(handle)

    def search(self, handle: LossHandle):
        """Propose candidates, evaluate them through ``handle``, update the parameters in place."""
        raise NotImplementedError(f"{type(self).__name__} does not define search(handle)")

    def check_state(self, index: int, param: Tensor, group: Dict[str, Any], state: Dict[str, Any]) -> None:
        if "step" not in state:
            return
        step = state["step"]
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"{type(self).__name__}.load_state_dict: step of parameter {index} must be a "
                             f"non-negative integer, got {step!r}")
