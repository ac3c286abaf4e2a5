"""Convolution layers: ``Conv1d`` and ``Conv2d``."""
from __future__ import annotations

from typing import Any, Sequence, Tuple, Union

from sigma.nn.layers._parameters import check_positive_int, fill_like_torch, new_parameter
from sigma.nn.module import Module
from sigma.ops import conv1d, conv2d, pad
from sigma.tensor import Tensor

Size = Union[int, Sequence[int]]


def _tuple(layer: str, name: str, value: Size, dims: int, minimum: int) -> Tuple[int, ...]:
    values = (value,) * dims if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if len(values) != dims or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in values):
        raise ValueError(f"{layer}: {name} must be an int >= {minimum} or {dims} of them, got {value!r}")
    return values


class _ConvNd(Module):
    dims = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Size, stride: Size = 1,
                 padding: Union[Size, str] = 0, dilation: Size = 1, groups: int = 1, bias: bool = True,
                 device: Any = None, dtype: Any = None):
        super().__init__()
        layer = type(self).__name__
        self.in_channels = check_positive_int(layer, "in_channels", in_channels)
        self.out_channels = check_positive_int(layer, "out_channels", out_channels)
        self.groups = check_positive_int(layer, "groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{layer}: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        self.kernel_size = _tuple(layer, "kernel_size", kernel_size, self.dims, 1)
        self.stride = _tuple(layer, "stride", stride, self.dims, 1)
        self.dilation = _tuple(layer, "dilation", dilation, self.dims, 1)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"{layer}: padding must be a size, 'valid' or 'same', got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{layer}: padding='same' needs stride 1, got stride {self.stride}")
        else:
            padding = _tuple(layer, "padding", padding, self.dims, 0)
        self.padding = padding
        self._before, self._after = self._padding_amounts()
        self.weight = new_parameter((out_channels, in_channels // groups) + self.kernel_size, dtype, device)
        self.bias = new_parameter((out_channels,), dtype, device) if bias else None
        self.reset_parameters()

    def _padding_amounts(self):
        if self.padding == "valid":
            zero = (0,) * self.dims
            return zero, zero
        if self.padding == "same":
            totals = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
            before = tuple(t // 2 for t in totals)
            return before, tuple(t - b for t, b in zip(totals, before))
        return self.padding, self.padding

    def reset_parameters(self) -> None:
        fill_like_torch(self.weight, self.bias)

    def _prepare(self, x: Tensor) -> Tuple[Tensor, Tuple[int, ...]]:
        """The input, padded by hand where 'same' needs more on one side than the other."""
        if x.ndim != self.dims + 2:
            raise ValueError(f"{type(self).__name__}: input must have {self.dims + 2} axes (N, C, ...), "
                             f"got shape {x.shape}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}: expected {self.in_channels} input channels, "
                             f"got input of shape {x.shape}")
        if self._before == self._after:
            return x, self._before
        widths = [(0, 0), (0, 0)] + list(zip(self._before, self._after))
        return pad(x, widths), (0,) * self.dims

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self.dims:
            text += f", padding={self.padding!r}" if isinstance(self.padding, str) else f", padding={self.padding}"
        if self.dilation != (1,) * self.dims:
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


class Conv2d(_ConvNd):
    """2-d convolution over (N, C, H, W) with a weight (out, in/groups, kh, kw).

    ``padding`` is a size, a pair, ``"valid"`` (none) or ``"same"`` (output as
    large as the input; stride 1; odd totals put the extra row/column after,
    as PyTorch). Initialised like PyTorch: U(+-1/sqrt(fan_in)).

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> conv = nn.Conv2d(3, 8, 3, padding="same")
        >>> conv(sigma.zeros(2, 3, 10, 10)).shape, conv.weight.shape
        ((2, 8, 10, 10), (8, 3, 3, 3))
    """

    dims = 2

    def forward(self, x: Tensor) -> Tensor:
        x, padding = self._prepare(x)
        return conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


class Conv1d(_ConvNd):
    """1-d convolution over (N, C, L) with a weight (out, in/groups, k).

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> nn.Conv1d(4, 6, 3, stride=2)(sigma.zeros(1, 4, 9)).shape
        (1, 6, 4)
    """

    dims = 1

    def forward(self, x: Tensor) -> Tensor:
        x, padding = self._prepare(x)
        return conv1d(x, self.weight, self.bias, self.stride[0], padding[0], self.dilation[0], self.groups)
