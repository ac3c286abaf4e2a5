"""Layers run for all vendors of a stage at once.

Inside a stage the activations of V vendors live side by side on the
channel axis (axis 1): ``(N, V*C, ...)``, vendor-major, where ``N`` counts
(upstream product, sample) pairs. Before the stage's first layer with
parameters every vendor sees the same input, which is kept once
("shared"). In this layout

* a convolution is one grouped convolution: groups ``V * groups`` over the
  stacked channels, or, on a shared input, one ordinary convolution whose
  output channels are the V vendors' filters side by side (no copy of the
  input);
* a linear layer is one batched matrix product over a vendor axis (or one
  plain product with the vendors' weights side by side on a shared input);
* per-channel layers (activations, pooling, instance norm) work unchanged,
  and flattening from axis 1 keeps each vendor's features together.

Each wide layer is a function ``(context, layer, x, shared) -> (x, shared)``
on raw arrays of the parameters' backend. :func:`register_wide_layer` adds
more.
"""
from __future__ import annotations

from typing import Callable, Dict, Tuple

from sigma import nn
from sigma.tensor import Tensor

__all__ = ["WideContext", "register_wide_layer", "wide_layer_for", "PER_CHANNEL_LAYERS", "MIXING_LAYERS"]

# Target size of one chunk's patch matrix in a convolution: the product is
# done chunk by chunk over the samples so the patches stay in cache.
PATCH_CHUNK_BYTES = 16 * 1024 * 1024

WideLayer = Callable[["WideContext", nn.Module, object, bool], Tuple[object, bool]]
_WIDE_LAYERS: Dict[type, WideLayer] = {}

# Layers that act on each channel (or element) of each sample on its own.
PER_CHANNEL_LAYERS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.MaxPool2d,
                      nn.AvgPool2d, nn.GlobalAvgPool2d, nn.Identity)

# Layers whose output for one sample depends on the other samples of the batch.
MIXING_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d)


class WideContext:
    """What a wide layer needs: the backend, the vendor count and each parameter's per-vendor values.

    ``values(param)`` returns the array ``(vendors, *param.shape)`` of the
    values the vendors use for ``param``.
    """

    __slots__ = ("backend", "xp", "vendors", "values")

    def __init__(self, backend, vendors: int, values: Callable[[Tensor], object]):
        self.backend, self.xp, self.vendors, self.values = backend, backend.xp, vendors, values

    def tensor(self, array) -> Tensor:
        return Tensor._make(array, self.backend, False, None)


def register_wide_layer(layer_type: type) -> Callable[[WideLayer], WideLayer]:
    """Teach the wide pass a layer type: decorate ``function(context, layer, x, shared) -> (x, shared)``.

    Example:
        >>> from sigma import nn
        >>> class Double(nn.Module):
        ...     def forward(self, x):
        ...         return x * 2
        >>> @register_wide_layer(Double)
        ... def wide_double(context, layer, x, shared):
        ...     return x * 2, shared
        >>> wide_layer_for(Double()) is wide_double
        True
    """
    def add(function: WideLayer) -> WideLayer:
        _WIDE_LAYERS[layer_type] = function
        return function
    return add


def wide_layer_for(layer: nn.Module):
    """The wide implementation of ``layer``'s type, or ``None`` if there is none."""
    for cls in type(layer).__mro__:
        if cls in _WIDE_LAYERS:
            return _WIDE_LAYERS[cls]
    return None


def _per_channel(context: WideContext, layer: nn.Module, x, shared: bool):
    return layer(context.tensor(x)).data, shared


for _layer_type in PER_CHANNEL_LAYERS:
    register_wide_layer(_layer_type)(_per_channel)


@register_wide_layer(nn.Flatten)
def _flatten(context: WideContext, layer: nn.Flatten, x, shared: bool):
    start = layer.start_axis % x.ndim
    end = layer.end_axis % x.ndim
    if start != 1 or end != x.ndim - 1:
        raise ValueError(f"Flatten(start_axis={layer.start_axis}, end_axis={layer.end_axis}) inside a stage: "
                         "the vendors share axis 1, so only Flatten(1, -1) keeps them apart")
    return x.reshape(x.shape[0], -1), shared


def _along_last_axis(context: WideContext, layer: nn.Module, x, shared: bool):
    if layer.axis not in (-1, x.ndim - 1) or x.ndim != 2:
        raise ValueError(f"{type(layer).__name__}(axis={layer.axis}) inside a stage needs (N, features) input and "
                         f"axis -1, got input of {x.ndim} axes")
    if shared:
        return layer(context.tensor(x)).data, shared
    n = x.shape[0]
    per_vendor = x.reshape(n, context.vendors, -1)
    return layer.__class__(axis=-1)(context.tensor(per_vendor)).data.reshape(n, -1), shared


register_wide_layer(nn.Softmax)(_along_last_axis)
register_wide_layer(nn.LogSoftmax)(_along_last_axis)


def _conv_padding(layer: nn.Conv2d):
    """(before, after) padding per spatial axis, as the layer pads."""
    if layer.padding == "valid":
        return (0, 0), (0, 0)
    if layer.padding == "same":
        totals = [d * (k - 1) for d, k in zip(layer.dilation, layer.kernel_size)]
        before = tuple(t // 2 for t in totals)
        return before, tuple(t - b for t, b in zip(totals, before))
    return tuple(layer.padding), tuple(layer.padding)


def grouped_conv2d(backend, x, weight, groups: int, stride, padding, dilation):
    """Convolution of (N, C, H, W) with (OC, C/groups, kh, kw): one batched product over the groups per chunk."""
    xp = backend.xp
    n, channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    oh = (height + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (width + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if oh <= 0 or ow <= 0:
        raise ValueError(f"Conv2d inside a stage: kernel {(kh, kw)} does not fit input {tuple(x.shape)} "
                         f"with padding {padding} and dilation {dilation}")
    pixels = oh * ow
    per_group = out_channels // groups
    kernel_size = weight.shape[1] * kh * kw
    grouped_weight = weight.reshape(groups, per_group, kernel_size)
    out = xp.empty((n, out_channels, pixels), dtype=x.dtype)
    per_sample = channels * kh * kw * pixels * x.dtype.itemsize
    step = n if backend.kind != "cpu" else max(1, PATCH_CHUNK_BYTES // max(per_sample, 1))
    for start in range(0, n, step):
        stop = min(start + step, n)
        count = stop - start
        patches = backend.im2col(x[start:stop], (kh, kw), tuple(stride), tuple(padding), tuple(dilation))
        product = xp.matmul(grouped_weight, patches.reshape(groups, kernel_size, count * pixels))
        out[start:stop] = product.reshape(out_channels, count, pixels).transpose(1, 0, 2)
    return out.reshape(n, out_channels, oh, ow)


@register_wide_layer(nn.Conv2d)
def _conv2d(context: WideContext, layer: nn.Conv2d, x, shared: bool):
    xp, vendors = context.xp, context.vendors
    if x.ndim != 4:
        raise ValueError(f"Conv2d inside a stage needs (N, C, H, W) input, got shape {tuple(x.shape)}")
    before, after = _conv_padding(layer)
    if before != after:
        x = xp.pad(x, [(0, 0), (0, 0), (before[0], after[0]), (before[1], after[1])])
        before = (0, 0)
    weight = context.values(layer.weight)                 # (V, OC, C/g, kh, kw)
    out_channels = layer.out_channels
    if shared and layer.groups > 1:
        x = xp.concatenate([x] * vendors, axis=1)
        shared = False
    if shared:
        groups = 1
    else:
        groups = vendors * layer.groups
        if x.shape[1] != vendors * layer.in_channels:
            raise ValueError(f"Conv2d inside a stage: expected {vendors} vendors x {layer.in_channels} channels, "
                             f"got input of shape {tuple(x.shape)}")
    stacked = weight.reshape((vendors * out_channels,) + weight.shape[2:])
    out = grouped_conv2d(context.backend, x, stacked, groups, layer.stride, before, layer.dilation)
    if layer.bias is not None:
        out += context.values(layer.bias).reshape(1, vendors * out_channels, 1, 1)
    return out, False


@register_wide_layer(nn.Linear)
def _linear(context: WideContext, layer: nn.Linear, x, shared: bool):
    xp, vendors = context.xp, context.vendors
    if x.ndim != 2:
        raise ValueError(f"Linear inside a stage needs (N, features) input, got shape {tuple(x.shape)}; "
                         "flatten first")
    weight = context.values(layer.weight)                 # (V, out, in)
    n = x.shape[0]
    out_features = layer.out_features
    if shared:
        out = x @ weight.reshape(vendors * out_features, -1).T
    else:
        if x.shape[1] != vendors * layer.in_features:
            raise ValueError(f"Linear inside a stage: expected {vendors} vendors x {layer.in_features} features, "
                             f"got input of shape {tuple(x.shape)}")
        per_vendor = xp.ascontiguousarray(x.reshape(n, vendors, -1).transpose(1, 0, 2))   # (V, N, in)
        out = xp.matmul(per_vendor, weight.transpose(0, 2, 1))                           # (V, N, out)
        out = out.transpose(1, 0, 2).reshape(n, vendors * out_features)
    if layer.bias is not None:
        out += context.values(layer.bias).reshape(1, vendors * out_features)
    return out, False


@register_wide_layer(nn.InstanceNorm2d)
def _instance_norm(context: WideContext, layer: nn.InstanceNorm2d, x, shared: bool):
    xp, vendors = context.xp, context.vendors
    if x.ndim != 4:
        raise ValueError(f"InstanceNorm2d inside a stage needs (N, C, H, W) input, got shape {tuple(x.shape)}")
    mean = x.mean(axis=(2, 3), keepdims=True)
    out = x - mean
    variance = (out * out).mean(axis=(2, 3), keepdims=True)
    out *= 1.0 / xp.sqrt(variance + x.dtype.type(layer.eps))
    if layer.weight is not None:
        if shared:
            out = xp.concatenate([out] * vendors, axis=1)
            shared = False
        channels = out.shape[1]
        out *= context.values(layer.weight).reshape(1, channels, 1, 1)
        out += context.values(layer.bias).reshape(1, channels, 1, 1)
    return out, shared
