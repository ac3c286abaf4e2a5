"""Loss functions, and the same losses as modules (``CrossEntropyLoss()(logits, labels)``).

Every loss takes ``reduction``: ``"mean"`` (the default), ``"sum"`` or
``"none"`` (one loss per element, or per sample for the cross-entropies).
"""
from __future__ import annotations

from typing import Any, Optional

from sigma.nn.module import Module
from sigma.ops import log_softmax, logsumexp, where
from sigma.ops.neural import SoftmaxCrossEntropy, gather, reduce_loss
from sigma.tensor import Tensor

__all__ = ["cross_entropy", "nll_loss", "mse_loss", "l1_loss", "huber_loss", "binary_cross_entropy_with_logits",
           "binary_cross_entropy", "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "HuberLoss",
           "BCEWithLogitsLoss", "BCELoss"]

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(op: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _as_tensor_like(op: str, name: str, value: Any, like: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        if value.backend is not like.backend:
            raise RuntimeError(f"{op}: {name} is on {value.backend.name}, the input on {like.backend.name}")
        return value
    return Tensor(like.backend.asarray(value), device=like.backend)


def _classes_last(op: str, logits: Tensor) -> Tensor:
    """(N, C, d1, ...) -> (N*d1*..., C); (N, C) unchanged."""
    if logits.ndim < 2:
        raise ValueError(f"{op}: input must be (N, classes) or (N, classes, d1, ...), got shape {logits.shape}")
    if logits.ndim == 2:
        return logits
    axes = (0,) + tuple(range(2, logits.ndim)) + (1,)
    return logits.permute(*axes).reshape(-1, logits.shape[1])


def _integer_labels(op: str, labels: Tensor, logits: Tensor) -> Any:
    """The labels' raw array for (N, C, d...) logits, flattened like :func:`_classes_last`; range-checked."""
    data = labels.data
    expected = (logits.shape[0],) + logits.shape[2:]
    if tuple(data.shape) != expected:
        raise ValueError(f"{op}: input of shape {logits.shape} needs integer labels of shape {expected}, "
                         f"got {tuple(data.shape)}")
    classes = logits.shape[1]
    if data.size and (int(data.min()) < 0 or int(data.max()) >= classes):
        raise ValueError(f"{op}: labels must lie in [0, {classes}), got values from {int(data.min())} "
                         f"to {int(data.max())}")
    return data.reshape(-1)


def _restore_sample_shape(losses: Tensor, logits: Tensor, reduction: str) -> Tensor:
    if reduction == "none" and logits.ndim > 2:
        return losses.reshape((logits.shape[0],) + logits.shape[2:])
    return losses


def cross_entropy(input: Tensor, target: Any, reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of softmax(``input``) against ``target``, from raw logits.

    ``input`` is (N, C) or (N, C, d1, ...). ``target`` is either integer
    labels, (N,) or (N, d1, ...), or class probabilities of the input's shape
    (one-hot or soft). ``label_smoothing`` = e mixes the target with the
    uniform distribution: ``(1 - e) * target + e / C``. ``"mean"`` averages
    over samples (and positions d1, ...), as PyTorch.

    Integer labels without smoothing go through the fused
    ``sigma.softmax_cross_entropy`` kernel.

    Example:
        >>> import sigma
        >>> from sigma.nn.functional import cross_entropy
        >>> logits = sigma.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
        >>> round(cross_entropy(logits, sigma.tensor([0, 2])).item(), 4)
        0.6691
        >>> soft = sigma.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        >>> round(cross_entropy(logits, soft).item(), 4)
        0.6691
    """
    op = "cross_entropy"
    _check_reduction(op, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    target = _as_tensor_like(op, "target", target, input)
    flat = _classes_last(op, input)
    classes = input.shape[1]
    if target.data.dtype.kind in "iu":
        labels = _integer_labels(op, target, input)
        losses = SoftmaxCrossEntropy.apply(flat, labels)
        if label_smoothing > 0.0:
            # -mean_c log_softmax(x)_c = logsumexp(x) - mean_c x_c
            uniform_part = logsumexp(flat, axis=1) - flat.mean(axis=1)
            losses = losses * (1.0 - label_smoothing) + uniform_part * label_smoothing
    elif target.data.dtype.kind == "f":
        if target.shape != input.shape:
            raise ValueError(f"{op}: probability targets must have the input's shape {input.shape}, "
                             f"got {target.shape}")
        probabilities = _classes_last(op, target).astype(flat.dtype)
        if label_smoothing > 0.0:
            probabilities = probabilities * (1.0 - label_smoothing) + label_smoothing / classes
        losses = -(probabilities * log_softmax(flat, axis=1)).sum(axis=1)
    else:
        raise TypeError(f"{op}: target must be integer labels or float probabilities, got {target.data.dtype}")
    return reduce_loss(_restore_sample_shape(losses, input, reduction), reduction, op)


def nll_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood: ``-input[i, target[i]]`` for log-probabilities ``input`` (N, C, ...).

    Example:
        >>> import sigma
        >>> from sigma.nn.functional import nll_loss
        >>> log_probs = sigma.tensor([[-0.5, -1.0], [-2.0, -0.1]])
        >>> nll_loss(log_probs, sigma.tensor([1, 0]), reduction="none").tolist()
        [1.0, 2.0]
    """
    op = "nll_loss"
    _check_reduction(op, reduction)
    target = _as_tensor_like(op, "target", target, input)
    if target.data.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must be integer labels, got {target.data.dtype}")
    flat = _classes_last(op, input)
    labels = _integer_labels(op, target, input)
    losses = -gather(flat, labels.reshape(-1, 1), axis=1).reshape(-1)
    return reduce_loss(_restore_sample_shape(losses, input, reduction), reduction, op)


def _pair_check(op: str, input: Tensor, target: Any) -> Tensor:
    target = _as_tensor_like(op, "target", target, input)
    if target.shape != input.shape:
        raise ValueError(f"{op}: input of shape {input.shape} and target of shape {target.shape} differ")
    if target.data.dtype != input.data.dtype:
        target = target.astype(input.data.dtype)
    return target


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Squared error ``(input - target)^2``.

    Example:
        >>> import sigma
        >>> from sigma.nn.functional import mse_loss
        >>> mse_loss(sigma.tensor([1.0, 2.0]), sigma.tensor([0.0, 0.0])).item()
        2.5
    """
    _check_reduction("mse_loss", reduction)
    difference = input - _pair_check("mse_loss", input, target)
    return reduce_loss(difference * difference, reduction, "mse_loss")


def l1_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Absolute error ``|input - target|``.

    Example:
        >>> import sigma
        >>> from sigma.nn.functional import l1_loss
        >>> l1_loss(sigma.tensor([1.0, -2.0]), sigma.tensor([0.0, 0.0]), reduction="sum").item()
        3.0
    """
    _check_reduction("l1_loss", reduction)
    return reduce_loss((input - _pair_check("l1_loss", input, target)).abs(), reduction, "l1_loss")


def huber_loss(input: Tensor, target: Any, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """Huber loss: ``d^2 / 2`` where ``|d| < delta``, ``delta * (|d| - delta / 2)`` elsewhere (``d = input - target``).

    Example:
        >>> import sigma
        >>> from sigma.nn.functional import huber_loss
        >>> huber_loss(sigma.tensor([0.5, 3.0]), sigma.tensor([0.0, 0.0]), reduction="none").tolist()
        [0.125, 2.5]
    """
    op = "huber_loss"
    _check_reduction(op, reduction)
    if not delta > 0:
        raise ValueError(f"{op}: delta must be positive, got {delta}")
    size = (input - _pair_check(op, input, target)).abs()
    quadratic = size * size * 0.5
    linear = (size - 0.5 * delta) * delta
    return reduce_loss(where(size.data < delta, quadratic, linear), reduction, op)


def binary_cross_entropy_with_logits(input: Tensor, target: Any, reduction: str = "mean",
                                     pos_weight: Optional[Any] = None) -> Tensor:
    """Binary cross-entropy of ``sigmoid(input)`` against ``target`` in [0, 1], computed stably from logits.

    ``-(p t log s(x) + (1 - t) log(1 - s(x)))`` with ``p = pos_weight`` (1 by
    default; broadcast over the last axis, one weight per class), written as
    ``(1 - t) x + (1 + (p - 1) t) softplus(-x)`` so large logits do not overflow.

    Example:
        >>> import sigma
        >>> from sigma.nn.functional import binary_cross_entropy_with_logits
        >>> loss = binary_cross_entropy_with_logits(sigma.tensor([0.0, 100.0]), sigma.tensor([1.0, 1.0]), "none")
        >>> [round(v, 4) for v in loss.tolist()]
        [0.6931, 0.0]
    """
    op = "binary_cross_entropy_with_logits"
    _check_reduction(op, reduction)
    target = _pair_check(op, input, target)
    # softplus(-x) = log(1 + exp(-x)) = max(-x, 0) + log1p(exp(-|x|))
    softplus_negative = (-input).relu() + (-input.abs()).exp().log1p()
    if pos_weight is None:
        losses = (1.0 - target) * input + softplus_negative
    else:
        pos_weight = _as_tensor_like(op, "pos_weight", pos_weight, input)
        if pos_weight.data.dtype != input.data.dtype:
            pos_weight = pos_weight.astype(input.data.dtype)
        try:
            losses = (1.0 - target) * input + (1.0 + (pos_weight - 1.0) * target) * softplus_negative
        except ValueError:
            raise ValueError(f"{op}: pos_weight of shape {pos_weight.shape} does not broadcast against "
                             f"input of shape {input.shape}") from None
    return reduce_loss(losses, reduction, op)


def binary_cross_entropy(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of probabilities ``input`` in [0, 1]; logs are clamped at -100 (as PyTorch).

    Prefer :func:`binary_cross_entropy_with_logits` on raw scores: it is stable.

    Example:
        >>> import sigma
        >>> from sigma.nn.functional import binary_cross_entropy
        >>> round(binary_cross_entropy(sigma.tensor([0.5]), sigma.tensor([1.0])).item(), 4)
        0.6931
    """
    op = "binary_cross_entropy"
    _check_reduction(op, reduction)
    target = _pair_check(op, input, target)
    if input.data.size and (float(input.data.min()) < 0.0 or float(input.data.max()) > 1.0):
        raise ValueError(f"{op}: input must be probabilities in [0, 1], got values from {float(input.data.min())} "
                         f"to {float(input.data.max())}; for raw scores use binary_cross_entropy_with_logits")
    log_p = input.log().clip(-100.0, None)
    log_not_p = (1.0 - input).log().clip(-100.0, None)
    losses = -(target * log_p + (1.0 - target) * log_not_p)
    return reduce_loss(losses, reduction, op)


# -- modules -----------------------------------------------------------------------

class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        _check_reduction(type(self).__name__, reduction)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class CrossEntropyLoss(_Loss):
    """Module form of :func:`cross_entropy`.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> loss = nn.CrossEntropyLoss(label_smoothing=0.1)
        >>> round(loss(sigma.zeros(2, 4), sigma.tensor([1, 3])).item(), 4)  # log(4) for any target
        1.3863
    """

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return cross_entropy(input, target, self.reduction, self.label_smoothing)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, label_smoothing={self.label_smoothing}"


class NLLLoss(_Loss):
    """Module form of :func:`nll_loss` (after a ``LogSoftmax``)."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return nll_loss(input, target, self.reduction)


class MSELoss(_Loss):
    """Module form of :func:`mse_loss`."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    """Module form of :func:`l1_loss`."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return l1_loss(input, target, self.reduction)


class HuberLoss(_Loss):
    """Module form of :func:`huber_loss`."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction)
        if not delta > 0:
            raise ValueError(f"HuberLoss: delta must be positive, got {delta}")
        self.delta = delta

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return huber_loss(input, target, self.reduction, self.delta)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, delta={self.delta}"


class BCEWithLogitsLoss(_Loss):
    """Module form of :func:`binary_cross_entropy_with_logits`; ``pos_weight`` is a buffer (moves with ``.to``)."""

    def __init__(self, reduction: str = "mean", pos_weight: Optional[Tensor] = None):
        super().__init__(reduction)
        if pos_weight is not None and not isinstance(pos_weight, Tensor):
            pos_weight = Tensor(pos_weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return binary_cross_entropy_with_logits(input, target, self.reduction, self.pos_weight)


class BCELoss(_Loss):
    """Module form of :func:`binary_cross_entropy`."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return binary_cross_entropy(input, target, self.reduction)
