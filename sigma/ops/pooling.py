"""Pooling: max pooling is a primitive (a gather at the argmax); average pooling
is unfold + mean."""
from __future__ import annotations

from typing import Optional

from sigma.autograd.function import UnaryFunction
from sigma.ops.convolution import IntPair, Unfold, output_size, pair
from sigma.tensor import Tensor


class MaxPool2d(UnaryFunction):
    __slots__ = ("argmax",)
    reads_input_values = False  # backward is a scatter at the argmax: only the input's shape is read

    def forward(self, x, kernel, stride, padding):
        out, self.argmax = self.backend.max_pool2d(x, kernel, stride, padding)
        return out

    def backward(self, grad):
        return PoolScatter.apply(grad, self.argmax, self.inputs[0].data.shape)


class PoolScatter(UnaryFunction):
    """Send each pooled gradient back to the input position it came from."""
    __slots__ = ("argmax",)

    def forward(self, grad, argmax, input_shape):
        self.argmax = argmax
        return self.backend.pool_scatter(grad, argmax, input_shape)

    def backward(self, grad):
        return PoolGather.apply(grad, self.argmax, self.inputs[0].data.shape)


class PoolGather(UnaryFunction):
    """Adjoint of :class:`PoolScatter`."""
    __slots__ = ("argmax",)

    def forward(self, x, argmax, input_shape):
        self.argmax = argmax
        return self.backend.pool_gather(x, argmax)

    def backward(self, grad):
        return PoolScatter.apply(grad, self.argmax, self.inputs[0].data.shape)


def _pool_geometry(op: str, x: Tensor, kernel_size, stride, padding):
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be (N, C, H, W), got shape {x.shape}")
    kernel = pair(op, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None else pair(op, "stride", stride, 1)
    padding = pair(op, "padding", padding, 0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel {kernel}")
    oh = output_size(x.shape[2], kernel[0], stride[0], padding[0], 1)
    ow = output_size(x.shape[3], kernel[1], stride[1], padding[1], 1)
    if oh <= 0 or ow <= 0:
        raise ValueError(f"{op}: input {x.shape} is smaller than the kernel {kernel}")
    return kernel, stride, padding, oh, ow


def max_pool2d(x: Tensor, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0) -> Tensor:
    """Maximum over each window; ``stride`` defaults to the kernel size.

    Example:
        >>> import sigma
        >>> sigma.max_pool2d(sigma.arange(16.0).reshape(1, 1, 4, 4), 2).tolist()
        [[[[5.0, 7.0], [13.0, 15.0]]]]
    """
    kernel, stride, padding, _, _ = _pool_geometry("max_pool2d", x, kernel_size, stride, padding)
    return MaxPool2d.apply(x, kernel, stride, padding)


def avg_pool2d(x: Tensor, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0) -> Tensor:
    """Mean over each window (zero padding counts, as PyTorch's default)."""
    kernel, stride, padding, oh, ow = _pool_geometry("avg_pool2d", x, kernel_size, stride, padding)
    n, c, h, w = x.shape
    cols = Unfold.apply(x.reshape(n * c, 1, h, w), kernel, stride, padding, (1, 1))
    return cols.mean(axis=0).reshape(n, c, oh, ow)  # cols: (kh*kw, N*C, OH*OW)


def global_avg_pool2d(x: Tensor) -> Tensor:
    """Mean over H and W: (N, C, H, W) -> (N, C)."""
    if x.ndim != 4:
        raise ValueError(f"global_avg_pool2d: input must be (N, C, H, W), got shape {x.shape}")
    return x.mean(axis=(2, 3))
