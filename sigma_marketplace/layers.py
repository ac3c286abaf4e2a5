"""Layers run for all vendors of a stage at once.

Inside a stage the activations of the V vendors are stacked on a leading
vendor axis: ``(V, N, ...)``, where ``N`` counts (upstream product, sample)
pairs, so each vendor's activations are one contiguous block shaped like a
plain batch. Before the stage's first layer with parameters every vendor
sees the same input, which is kept once, without the vendor axis
("shared"). In this layout

* a convolution on a shared input is **one** convolution whose output
  channels are the V vendors' filters side by side (one patch matrix, one
  large matrix product), written straight into the stacked layout; on a
  stacked input it is one ordinary convolution per vendor, each on a
  contiguous batch (V calls per chunk, never one per path);
* a linear layer is one matrix product (shared input) or one batched
  matrix product over the vendor axis;
* per-channel layers (activations, pooling, instance norm) see the vendor
  axis merged into the batch axis, and flattening keeps it apart.

Each wide layer is a function ``(context, layer, x, shared) -> (x, shared)``
on raw arrays of the parameters' backend. :func:`register_wide_layer` adds
more.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

from sigma import nn
from sigma.tensor import Tensor

__all__ = ["WideContext", "register_wide_layer", "wide_layer_for", "PER_CHANNEL_LAYERS", "MIXING_LAYERS"]

# Target size of one chunk's patch matrix in a convolution: the product is
# done chunk by chunk over the samples so the patches stay in cache. On the
# CPU the chunks are spread over the cores by the backend's block pool, each
# thread running im2col and the matrix product of whole chunks (see
# backends/cpu/block_pool.py), as sigma.ops.convolution does.
PATCH_CHUNK_BYTES = 2 * 1024 * 1024

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


def _merge_vendors(context: WideContext, layer: nn.Module, x, shared: bool):
    """Run a per-sample layer with the vendor axis folded into the batch axis."""
    if shared:
        return layer(context.tensor(x)).data, shared
    vendors, n = x.shape[:2]
    out = layer(context.tensor(x.reshape((vendors * n,) + x.shape[2:]))).data
    return out.reshape((vendors, n) + out.shape[1:]), shared


for _layer_type in PER_CHANNEL_LAYERS:
    register_wide_layer(_layer_type)(_merge_vendors)


@register_wide_layer(nn.Flatten)
def _flatten(context: WideContext, layer: nn.Flatten, x, shared: bool):
    sample_axes = x.ndim - (0 if shared else 1)      # axes of one vendor's batch
    start = layer.start_axis % sample_axes
    end = layer.end_axis % sample_axes
    if start != 1 or end != sample_axes - 1:
        raise ValueError(f"Flatten(start_axis={layer.start_axis}, end_axis={layer.end_axis}) inside a stage: only "
                         "Flatten(1, -1) (everything but the batch axis) is supported in a stage")
    leading = x.shape[:1] if shared else x.shape[:2]
    return x.reshape(leading + (-1,)), shared


def _along_last_axis(context: WideContext, layer: nn.Module, x, shared: bool):
    if layer.axis not in (-1, x.ndim - 1):
        raise ValueError(f"{type(layer).__name__}(axis={layer.axis}) inside a stage: only axis -1 is supported")
    return layer(context.tensor(x)).data, shared


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


def conv2d_array(backend, x, weight, groups: int, stride, padding, dilation, out=None, split: Optional[int] = None):
    """Convolution of (N, C, H, W) with (OC, C/groups, kh, kw) on raw arrays, chunked over the samples.

    With ``split = V`` the output channels are V blocks side by side (the
    vendors' filters) and the result is written as ``(V, N, OC/V, OH, OW)``;
    without, it is ``(N, OC, OH, OW)`` (into ``out`` when given).
    """
    xp = backend.xp
    n, channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    oh = (height + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (width + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if oh <= 0 or ow <= 0:
        raise ValueError(f"Conv2d inside a stage: kernel {(kh, kw)} does not fit input {tuple(x.shape)} "
                         f"with padding {tuple(padding)} and dilation {tuple(dilation)}")
    pixels = oh * ow
    per_group = out_channels // groups
    kernel_size = weight.shape[1] * kh * kw
    grouped_weight = weight.reshape(groups, per_group, kernel_size)
    block = out_channels // (split or 1)
    if out is None:
        out = xp.empty((split, n, block, oh, ow) if split else (n, out_channels, oh, ow), dtype=x.dtype)
    # numpy copies a 3-d transposed block faster than a 4-d one, so each copy keeps 3 axes.
    target = out.reshape((split, n, block, pixels)) if split else out.reshape((n, out_channels, pixels))
    per_sample = channels * kh * kw * pixels * x.dtype.itemsize
    step = n if backend.kind != "cpu" else max(1, PATCH_CHUNK_BYTES // max(per_sample, 1))
    chunks = [(start, min(start + step, n)) for start in range(0, n, step)]
    rows = channels * kh * kw
    # One patch array per thread, reused chunk after chunk (the first chunk is the largest).
    patch_buffers = [xp.empty(rows * step * pixels, dtype=x.dtype) if len(chunks) > 1 else None
                     for _ in range(backend.block_workers(len(chunks)))]

    def convolve_chunk(worker: int, index: int) -> None:
        start, stop = chunks[index]
        count = stop - start
        buffer = patch_buffers[worker]
        if buffer is None:
            patches = backend.im2col(x[start:stop], (kh, kw), tuple(stride), tuple(padding), tuple(dilation))
        else:
            patches = backend.im2col(x[start:stop], (kh, kw), tuple(stride), tuple(padding), tuple(dilation),
                                     buffer[:rows * count * pixels].reshape(rows, count, pixels))
        patches = patches.reshape(groups, kernel_size, count * pixels)
        product = grouped_weight[0] @ patches[0] if groups == 1 else xp.matmul(grouped_weight, patches)
        if split:   # (OC, count*P) -> (split, count, OC/split, P), one 3-d copy per block
            blocks = product.reshape(split, block, count, pixels)
            for vendor in range(split):
                target[vendor, start:stop] = blocks[vendor].transpose(1, 0, 2)
        else:
            target[start:stop] = product.reshape(out_channels, count, pixels).transpose(1, 0, 2)

    backend.run_blocks(convolve_chunk, len(chunks))
    return out


@register_wide_layer(nn.Conv2d)
def _conv2d(context: WideContext, layer: nn.Conv2d, x, shared: bool):
    xp, vendors = context.xp, context.vendors
    if x.ndim != (4 if shared else 5):
        raise ValueError(f"Conv2d inside a stage needs (N, C, H, W) input, got shape "
                         f"{tuple(x.shape[0 if shared else 1:])}")
    channels = x.shape[-3]
    if channels != layer.in_channels:
        raise ValueError(f"Conv2d inside a stage: expected {layer.in_channels} input channels, got {channels}")
    before, after = _conv_padding(layer)
    if before != after:
        x = xp.pad(x, [(0, 0)] * (x.ndim - 2) + [(before[0], after[0]), (before[1], after[1])])
        before = (0, 0)
    weight = context.values(layer.weight)                 # (V, OC, C/g, kh, kw)
    out_channels = layer.out_channels
    if shared and layer.groups == 1:
        stacked = weight.reshape((vendors * out_channels,) + weight.shape[2:])
        out = conv2d_array(context.backend, x, stacked, 1, layer.stride, before, layer.dilation, split=vendors)
    else:
        out = None
        for vendor in range(vendors):
            if out is None:
                first = conv2d_array(context.backend, x if shared else x[vendor], weight[vendor], layer.groups,
                                     layer.stride, before, layer.dilation)
                out = xp.empty((vendors,) + first.shape, dtype=first.dtype)
                out[0] = first
                continue
            conv2d_array(context.backend, x if shared else x[vendor], weight[vendor], layer.groups, layer.stride,
                         before, layer.dilation, out=out[vendor])
    if layer.bias is not None:
        out += context.values(layer.bias).reshape(vendors, 1, out_channels, 1, 1)
    return out, False


@register_wide_layer(nn.Linear)
def _linear(context: WideContext, layer: nn.Linear, x, shared: bool):
    xp, vendors = context.xp, context.vendors
    if x.ndim != (2 if shared else 3):
        raise ValueError(f"Linear inside a stage needs (N, features) input, got shape "
                         f"{tuple(x.shape[0 if shared else 1:])}; flatten first")
    if x.shape[-1] != layer.in_features:
        raise ValueError(f"Linear inside a stage: expected {layer.in_features} features, got {x.shape[-1]}")
    weight = context.values(layer.weight)                 # (V, out, in)
    out_features = layer.out_features
    if shared:
        n = x.shape[0]
        out = x @ weight.reshape(vendors * out_features, -1).T                          # (N, V*out)
        out = xp.ascontiguousarray(out.reshape(n, vendors, out_features).transpose(1, 0, 2))
    else:
        # A transposed view makes numpy's batched matmul leave BLAS (50x slower): transpose into a copy.
        out = xp.matmul(x, xp.ascontiguousarray(weight.transpose(0, 2, 1)))            # (V, N, out)
    if layer.bias is not None:
        out += context.values(layer.bias).reshape(vendors, 1, out_features)
    return out, False


@register_wide_layer(nn.InstanceNorm2d)
def _instance_norm(context: WideContext, layer: nn.InstanceNorm2d, x, shared: bool):
    xp, vendors = context.xp, context.vendors
    if x.ndim != (4 if shared else 5):
        raise ValueError(f"InstanceNorm2d inside a stage needs (N, C, H, W) input, got shape "
                         f"{tuple(x.shape[0 if shared else 1:])}")
    spatial = (x.ndim - 2, x.ndim - 1)
    mean = x.mean(axis=spatial, keepdims=True)
    out = x - mean
    variance = (out * out).mean(axis=spatial, keepdims=True)
    out *= 1.0 / xp.sqrt(variance + x.dtype.type(layer.eps))
    if layer.weight is not None:
        channels = out.shape[-3]
        shape = (vendors, 1, channels, 1, 1)
        out = out[None] * context.values(layer.weight).reshape(shape) if shared else \
            out * context.values(layer.weight).reshape(shape)
        out += context.values(layer.bias).reshape(shape)
        shared = False
    return out, shared
