"""Pooling layers."""
from __future__ import annotations

from typing import Optional, Sequence, Union

from sigma.nn.module import Module
from sigma.ops import avg_pool2d, global_avg_pool2d, max_pool2d
from sigma.tensor import Tensor

Size = Union[int, Sequence[int]]


class _Pool2d(Module):
    def __init__(self, kernel_size: Size, stride: Optional[Size] = None, padding: Size = 0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Maximum over each window of (N, C, H, W); ``stride`` defaults to the kernel size.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> nn.MaxPool2d(2)(sigma.arange(16.0).reshape(1, 1, 4, 4)).tolist()
        [[[[5.0, 7.0], [13.0, 15.0]]]]
    """

    def forward(self, x: Tensor) -> Tensor:
        return max_pool2d(x, self.kernel_size, self.stride, self.padding)


class AvgPool2d(_Pool2d):
    """Mean over each window of (N, C, H, W); zero padding counts toward the mean (PyTorch's default).

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> nn.AvgPool2d(2)(sigma.arange(16.0).reshape(1, 1, 4, 4)).tolist()
        [[[[2.5, 4.5], [10.5, 12.5]]]]
    """

    def forward(self, x: Tensor) -> Tensor:
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class GlobalAvgPool2d(Module):
    """Mean over H and W: (N, C, H, W) -> (N, C).

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> nn.GlobalAvgPool2d()(sigma.ones(2, 3, 4, 4)).shape
        (2, 3)
    """

    def forward(self, x: Tensor) -> Tensor:
        return global_avg_pool2d(x)
