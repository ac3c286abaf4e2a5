"""Functions neural networks are made of: softmax, losses' kernels, dropout,
embedding lookup, gather."""
from __future__ import annotations

from typing import Optional

from sigma.autograd.function import UnaryFunction
from sigma.autograd.grad_mode import grad_mode
from sigma.ops.elementwise import _constant_like, _xp
from sigma.ops.reduction import logsumexp, normalise_axis
from sigma.tensor import Tensor


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``axis``, shifted for stability.

    Example:
        >>> import sigma
        >>> sigma.softmax(sigma.tensor([0.0, 0.0])).tolist()
        [0.5, 0.5]
    """
    normalise_axis("softmax", axis, x.ndim)
    shift = Tensor._make(x.data.max(axis=axis, keepdims=True), x.backend, False, None)
    e = (x - shift).exp()
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """``x - logsumexp(x)`` along ``axis``."""
    normalise_axis("log_softmax", axis, x.ndim)
    return x - logsumexp(x, axis=axis, keepdims=True)


class SoftmaxCrossEntropy(UnaryFunction):
    """Per-sample ``-log softmax(logits)[label]`` in one fused kernel."""
    __slots__ = ("labels", "probs")

    def forward(self, logits, labels):
        self.labels = labels
        loss, self.probs = self.backend.softmax_cross_entropy(logits, labels)
        return loss

    def backward(self, grad):
        logits, = self.inputs
        xp = logits.backend.xp
        n = logits.data.shape[0]
        onehot = xp.zeros(logits.data.shape, dtype=logits.data.dtype)
        onehot[xp.arange(n), self.labels] = 1
        if grad_mode.enabled:
            probs = softmax(logits, axis=1)  # differentiable, for create_graph
        else:
            probs = Tensor._make(self.probs, logits.backend, False, None)
        return grad.reshape(n, 1) * (probs - _constant_like(logits, onehot))


def softmax_cross_entropy(logits: Tensor, labels, reduction: str = "mean") -> Tensor:
    """Cross-entropy of integer ``labels`` given (N, K) ``logits``.

    Example:
        >>> import sigma
        >>> loss = sigma.softmax_cross_entropy(sigma.zeros(2, 4), sigma.tensor([0, 3]))
        >>> round(loss.item(), 4)  # log(4)
        1.3863
    """
    if logits.ndim != 2:
        raise ValueError(f"softmax_cross_entropy: logits must be (N, classes), got shape {logits.shape}")
    labels_data = labels.data if isinstance(labels, Tensor) else logits.backend.asarray(labels)
    if labels_data.shape != (logits.shape[0],):
        raise ValueError(f"softmax_cross_entropy: {logits.shape[0]} logits rows but labels of shape "
                         f"{tuple(labels_data.shape)}")
    if labels_data.dtype.kind not in "iu":
        raise TypeError(f"softmax_cross_entropy: labels must be integers, got {labels_data.dtype}")
    classes = logits.shape[1]
    if labels_data.size and (int(labels_data.min()) < 0 or int(labels_data.max()) >= classes):
        raise ValueError(f"softmax_cross_entropy: labels must lie in [0, {classes}), "
                         f"got values from {int(labels_data.min())} to {int(labels_data.max())}")
    losses = SoftmaxCrossEntropy.apply(logits, labels_data)
    return reduce_loss(losses, reduction, "softmax_cross_entropy")


def reduce_loss(losses: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each value with probability ``p`` and scale the rest by 1/(1-p).

    The mask comes from the backend's random stream, so ``sigma.manual_seed``
    makes it repeatable.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = x.backend.random.uniform(x.shape, dtype=x.dtype) >= p
    scale = keep.astype(x.dtype) * (1.0 / (1.0 - p))
    return x * Tensor._make(scale, x.backend, False, None)


def embedding(indices, weight: Tensor) -> Tensor:
    """Rows of ``weight`` (vocabulary, dim) picked by integer ``indices`` of any shape."""
    data = indices.data if isinstance(indices, Tensor) else weight.backend.asarray(indices)
    if data.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got {data.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be (vocabulary, dim), got {weight.shape}")
    if data.size and (int(data.min()) < 0 or int(data.max()) >= weight.shape[0]):
        raise IndexError(f"embedding: indices must lie in [0, {weight.shape[0]}), "
                         f"got values from {int(data.min())} to {int(data.max())}")
    return weight[data]


class Gather(UnaryFunction):
    """``take_along_axis``: out[..., i, ...] = x[..., index[..., i, ...], ...]."""
    __slots__ = ("index", "axis")

    def forward(self, x, index, axis):
        self.index, self.axis = index, axis
        return _xp(x).take_along_axis(x, index, axis=axis)

    def backward(self, grad):
        return ScatterAdd.apply(grad, self.index, self.axis, self.inputs[0].data.shape)


class ScatterAdd(UnaryFunction):
    """Adjoint of :class:`Gather`: add values into zeros at ``index`` along ``axis``."""
    __slots__ = ("index", "axis")

    def forward(self, values, index, axis, shape):
        self.index, self.axis = index, axis
        xp = _xp(values)
        out = xp.zeros(shape, dtype=values.dtype)
        full_index = list(xp.indices(index.shape, sparse=True))
        full_index[axis] = index
        xp.add.at(out, tuple(full_index), values)
        return out

    def backward(self, grad):
        return Gather.apply(grad, self.index, self.axis)


def gather(x: Tensor, index, axis: int) -> Tensor:
    """Pick values along ``axis`` at integer ``index`` (numpy's ``take_along_axis``).

    Example:
        >>> import sigma
        >>> x = sigma.tensor([[1.0, 2.0], [3.0, 4.0]])
        >>> sigma.gather(x, sigma.tensor([[1], [0]]), axis=1).tolist()
        [[2.0], [3.0]]
    """
    data = index.data if isinstance(index, Tensor) else x.backend.asarray(index)
    if data.dtype.kind not in "iu":
        raise TypeError(f"gather: index must be integers, got {data.dtype}")
    if data.ndim != x.ndim:
        raise ValueError(f"gather: index has {data.ndim} dimensions, the tensor {x.ndim}")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"gather: axis {axis} out of range for {x.ndim} dimensions")
    if data.size and (int(data.min()) < -x.shape[axis] or int(data.max()) >= x.shape[axis]):
        raise IndexError(f"gather: index out of range for axis {axis} of size {x.shape[axis]}")
    return Gather.apply(x, data, axis % x.ndim)
