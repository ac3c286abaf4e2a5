"""Layers that only change shape: ``Flatten`` and ``Identity``."""
from __future__ import annotations

from sigma.nn.module import Module
from sigma.tensor import Tensor


class Flatten(Module):
    """Merge axes ``start_axis..end_axis`` (by default all but the batch axis).

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> nn.Flatten()(sigma.zeros(2, 3, 4, 5)).shape
        (2, 60)
    """

    def __init__(self, start_axis: int = 1, end_axis: int = -1):
        super().__init__()
        self.start_axis, self.end_axis = start_axis, end_axis

    def forward(self, x: Tensor) -> Tensor:
        if not (-x.ndim <= self.start_axis < x.ndim and -x.ndim <= self.end_axis < x.ndim):
            raise ValueError(f"Flatten: axes {self.start_axis}..{self.end_axis} out of range for input {x.shape}")
        return x.flatten(self.start_axis, self.end_axis)

    def extra_repr(self) -> str:
        return f"start_axis={self.start_axis}, end_axis={self.end_axis}"


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. for an optional projection).

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> nn.Identity()(sigma.tensor([1.0])).tolist()
        [1.0]
    """

    def forward(self, x):
        return x
