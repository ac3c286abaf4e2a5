"""Convolution as unfold (im2col) + one matrix product.

``Unfold`` and ``Fold`` are each other's adjoints, so each is the other's
backward, and convolution is differentiable to any order without a
hand-written convolution backward.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

from sigma.autograd.function import UnaryFunction
from sigma.tensor import Tensor

IntPair = Union[int, Sequence[int]]


def pair(op: str, name: str, value: IntPair, minimum: int) -> Tuple[int, int]:
    values = (value, value) if isinstance(value, int) else tuple(value)
    if len(values) != 2 or any(not isinstance(v, int) or v < minimum for v in values):
        raise ValueError(f"{op}: {name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return values


class Unfold(UnaryFunction):
    """(N, C, H, W) -> (N*OH*OW, C*kh*kw): one row per output position."""
    __slots__ = ("geometry",)

    def forward(self, x, kernel, stride, padding, dilation):
        self.geometry = (kernel, stride, padding, dilation)
        return _backend(x).im2col(x, kernel, stride, padding, dilation)

    def backward(self, grad):
        return Fold.apply(grad, self.inputs[0].data.shape, *self.geometry)


class Fold(UnaryFunction):
    """Adjoint of :class:`Unfold`: add every patch back into its image."""
    __slots__ = ("geometry",)

    def forward(self, cols, input_shape, kernel, stride, padding, dilation):
        self.geometry = (kernel, stride, padding, dilation)
        return _backend(cols).col2im(cols, input_shape, kernel, stride, padding, dilation)

    def backward(self, grad):
        return Unfold.apply(grad, *self.geometry)


def _backend(array):
    import backends
    return backends.for_array(array)


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv2d(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntPair = 1,
           padding: IntPair = 0, dilation: IntPair = 1, groups: int = 1) -> Tensor:
    """2-d convolution (cross-correlation, as in every framework).

    ``x`` is (N, C, H, W), ``weight`` (OC, C/groups, kh, kw), ``bias`` (OC,).

    Example:
        >>> import sigma
        >>> x = sigma.ones(1, 1, 4, 4)
        >>> sigma.conv2d(x, sigma.ones(1, 1, 3, 3)).shape
        (1, 1, 2, 2)
    """
    stride = pair("conv2d", "stride", stride, 1)
    padding = pair("conv2d", "padding", padding, 0)
    dilation = pair("conv2d", "dilation", dilation, 1)
    if x.ndim != 4:
        raise ValueError(f"conv2d: input must be (N, C, H, W), got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d: weight must be (out_channels, in_channels/groups, kh, kw), got {weight.shape}")
    n, c, h, w = x.shape
    out_channels, group_channels, kh, kw = weight.shape
    if groups < 1 or c % groups or out_channels % groups:
        raise ValueError(f"conv2d: groups={groups} must divide input channels {c} and output channels {out_channels}")
    if group_channels * groups != c:
        raise ValueError(f"conv2d: input {x.shape} has {c} channels but weight {weight.shape} expects "
                         f"{group_channels * groups} ({group_channels} per group x {groups} groups)")
    if x.dtype != weight.dtype:
        raise TypeError(f"conv2d: input dtype {x.dtype} and weight dtype {weight.dtype} differ")
    oh = output_size(h, kh, stride[0], padding[0], dilation[0])
    ow = output_size(w, kw, stride[1], padding[1], dilation[1])
    if oh <= 0 or ow <= 0:
        raise ValueError(f"conv2d: input {x.shape} is smaller than the dilated kernel {(kh, kw)} "
                         f"with padding {padding}")
    geometry = ((kh, kw), stride, padding, dilation)
    if groups == 1:
        cols = Unfold.apply(x, *geometry)
        out = cols @ weight.reshape(out_channels, -1).transpose()
    else:
        per_out = out_channels // groups
        pieces = []
        for g in range(groups):
            cols = Unfold.apply(x[:, g * group_channels:(g + 1) * group_channels], *geometry)
            w_g = weight[g * per_out:(g + 1) * per_out].reshape(per_out, -1)
            pieces.append(cols @ w_g.transpose())
        out = pieces[0].concat(pieces[1:], axis=1) if len(pieces) > 1 else pieces[0]
    if bias is not None:
        if bias.shape != (out_channels,):
            raise ValueError(f"conv2d: bias must have shape ({out_channels},), got {bias.shape}")
        out = out + bias
    return out.reshape(n, oh, ow, out_channels).permute(0, 3, 1, 2)


def conv1d(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: int = 1,
           padding: int = 0, dilation: int = 1, groups: int = 1) -> Tensor:
    """1-d convolution: ``x`` (N, C, L), ``weight`` (OC, C/groups, k)."""
    if x.ndim != 3:
        raise ValueError(f"conv1d: input must be (N, C, L), got shape {x.shape}")
    if weight.ndim != 3:
        raise ValueError(f"conv1d: weight must be (out_channels, in_channels/groups, k), got {weight.shape}")
    for name, value in (("stride", stride), ("padding", padding), ("dilation", dilation)):
        if not isinstance(value, int):
            raise ValueError(f"conv1d: {name} must be an int, got {value!r}")
    out = conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, stride=(1, stride), padding=(0, padding),
                 dilation=(1, dilation), groups=groups)
    return out.squeeze(2)
