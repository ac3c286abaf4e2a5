"""Reductions: sum and max are primitives; mean, min, var and friends are built on them."""
from __future__ import annotations

import builtins
from typing import Optional, Sequence, Union

from sigma.autograd.function import UnaryFunction
from sigma.autograd.grad_mode import grad_mode
from sigma.ops.elementwise import _constant_like, _xp
from sigma.tensor import Tensor

Axis = Optional[Union[int, Sequence[int]]]


def normalise_axis(op: str, axis: Axis, ndim: int) -> Optional[tuple]:
    """Axes as a sorted tuple of non-negative ints (``None`` stays ``None``)."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -builtins.max(ndim, 1) <= a < builtins.max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis}")
    # A 0-d tensor has no axes to reduce; axis 0 or -1 means "all of it", as in PyTorch.
    return tuple(sorted(out)) if ndim else ()


def _kept_shape(shape: tuple, axes: Optional[tuple]) -> tuple:
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


class Sum(UnaryFunction):
    __slots__ = ("axes", "keepdims")

    def forward(self, x, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims
        return x.sum(axis=axes, keepdims=keepdims)

    def backward(self, grad):
        x, = self.inputs
        kept = _kept_shape(x.data.shape, self.axes)
        if not grad_mode.enabled:
            # Plain backward: filling a new array is several times cheaper
            # than numpy's Python-level broadcast_to on small tensors.
            out = x.backend.xp.empty(x.data.shape, dtype=grad.data.dtype)
            out[...] = grad.data.reshape(kept)
            return Tensor._make(out, x.backend, False, None)
        if not self.keepdims:
            grad = grad.reshape(kept)
        return grad.expand(x.data.shape)


class Max(UnaryFunction):
    """Maximum over axes; ties share the gradient evenly (as ``torch.amax``)."""
    __slots__ = ("axes", "keepdims", "out")

    def forward(self, x, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims
        if x.size == 0:
            raise ValueError("max: the tensor is empty")
        self.out = x.max(axis=axes, keepdims=True)
        return self.out if keepdims else self.out.reshape(_reduced_shape(x.shape, axes))

    def backward(self, grad):
        x, = self.inputs
        mask = x.data == self.out
        mask = _constant_like(x, mask)
        count = mask.data.sum(axis=self.axes, keepdims=True)
        share = _constant_like(x, mask.data / count)
        if not self.keepdims:
            grad = grad.reshape(_kept_shape(x.data.shape, self.axes))
        return grad * share


def _reduced_shape(shape: tuple, axes: Optional[tuple]) -> tuple:
    if axes is None:
        return ()
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def sum(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Sum over ``axis`` (all axes by default).

    Example:
        >>> import sigma
        >>> sigma.tensor([[1.0, 2.0], [3.0, 4.0]]).sum(axis=-1).tolist()
        [3.0, 7.0]
    """
    return Sum.apply(x, normalise_axis("sum", axis, x.ndim), keepdims)


def max(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Largest value over ``axis``."""
    return Max.apply(x, normalise_axis("max", axis, x.ndim), keepdims)


def min(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Smallest value over ``axis``."""
    return -max(-x, axis, keepdims)


def _count(x: Tensor, axes: Optional[tuple]) -> int:
    if axes is None:
        return x.data.size
    n = 1
    for a in axes:
        n *= x.data.shape[a]
    return n


def mean(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Arithmetic mean over ``axis``."""
    axes = normalise_axis("mean", axis, x.ndim)
    n = _count(x, axes)
    if n == 0:
        raise ValueError("mean: no elements to average")
    return Sum.apply(x, axes, keepdims) * (1.0 / n)


def var(x: Tensor, axis: Axis = None, keepdims: bool = False, correction: int = 0) -> Tensor:
    """Variance over ``axis``; ``correction=1`` gives the unbiased estimate.

    (numpy's default, ``correction=0``; PyTorch's ``var`` defaults to 1.)
    """
    axes = normalise_axis("var", axis, x.ndim)
    n = _count(x, axes)
    if n - correction <= 0:
        raise ValueError(f"var: {n} elements with correction {correction} leaves no degrees of freedom")
    centred = x - mean(x, axes, keepdims=True)
    return Sum.apply(centred * centred, axes, keepdims) * (1.0 / (n - correction))


def std(x: Tensor, axis: Axis = None, keepdims: bool = False, correction: int = 0) -> Tensor:
    """Standard deviation over ``axis``.

    Where the variance is 0 the gradient is 0, as in PyTorch (the plain
    ``var(x).sqrt()`` would give 0 * inf = nan there).

    Example:
        >>> import sigma
        >>> sigma.tensor([1.0, 3.0]).std().item()
        1.0
    """
    from sigma.ops.elementwise import where
    variance = var(x, axis, keepdims, correction)
    spread = variance.data > 0
    return where(spread, where(spread, variance, 1.0).sqrt(), 0.0)


def logsumexp(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """``log(sum(exp(x)))`` computed without overflow."""
    axes = normalise_axis("logsumexp", axis, x.ndim)
    shift = Tensor._make(x.data.max(axis=axes, keepdims=True), x.backend, False, None)
    out = (x - shift).exp().sum(axis=axes, keepdims=True).log() + shift
    return out if keepdims else out.reshape(_reduced_shape(x.shape, axes))


def argmax(x: Tensor, axis: Optional[int] = None, keepdims: bool = False) -> Tensor:
    """Index of the largest value (flat index when ``axis`` is None); no gradient."""
    if axis is not None:
        normalise_axis("argmax", axis, x.ndim)
    return Tensor._make(_xp(x.data).argmax(x.data, axis=axis, keepdims=keepdims), x.backend, False, None)


def argmin(x: Tensor, axis: Optional[int] = None, keepdims: bool = False) -> Tensor:
    """Index of the smallest value; no gradient."""
    if axis is not None:
        normalise_axis("argmin", axis, x.ndim)
    return Tensor._make(_xp(x.data).argmin(x.data, axis=axis, keepdims=keepdims), x.backend, False, None)


def any(x: Tensor, axis: Axis = None) -> Tensor:
    return Tensor._make(x.data.any(axis=axis), x.backend, False, None)


def all(x: Tensor, axis: Axis = None) -> Tensor:
    return Tensor._make(x.data.all(axis=axis), x.backend, False, None)
