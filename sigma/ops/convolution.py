"""Convolution.

Three primitives close under differentiation, as in every mature framework:

* ``Conv2d(x, w)``: the convolution,
* ``Conv2dInputGrad(g, w)``: its adjoint in ``x`` (a transposed convolution),
* ``Conv2dWeightGrad(x, g)``: its adjoint in ``w``.

Each one's backward is made of the three, so convolution is differentiable
to any order. All three run im2col + matrix products over the batch in
blocks small enough that the patch matrix stays in cache: materialising it
for a whole batch (164 MB for the second beautiful-MNIST layer at batch 128)
made the step memory-bound. Each block is one matrix product with
nb*OH*OW columns: few, large products keep BLAS efficient and its threads
busy (per-sample products meant one thread hand-off per sample, which on a
loaded 2-core machine cost more than the arithmetic).

``Unfold`` / ``Fold`` (im2col / col2im as primitives, adjoint to each other)
remain for average pooling and for users who want patches.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

from sigma.autograd.function import BinaryFunction, UnaryFunction
from sigma.autograd.grad_mode import grad_mode
from sigma.tensor import Tensor

IntPair = Union[int, Sequence[int]]

# Target size of one block's patch matrix on the CPU. A block is im2col'd and
# then multiplied at once, so the patch matrix should still be in cache when
# the matrix product reads it: at 16 MB a beautiful-MNIST layer's forward and
# backward took 1.2-1.4x as long as at 0.5-2 MB (single thread). Smaller
# blocks mean more hand-offs between numba's and BLAS's threads, so this is
# the largest size that was still as fast. GPUs take the whole batch.
CHUNK_BYTES = 2 * 1024 * 1024


def pair(op: str, name: str, value: IntPair, minimum: int) -> Tuple[int, int]:
    values = (value, value) if isinstance(value, int) else tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(values) != 2 or any(not isinstance(v, int) or v < minimum for v in values):
        raise ValueError(f"{op}: {name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return values


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


class _Geometry:
    """Everything about a convolution except its data."""

    __slots__ = ("kernel", "stride", "padding", "dilation", "groups", "input_shape", "out_channels",
                 "oh", "ow")

    def __init__(self, input_shape, out_channels, kernel, stride, padding, dilation, groups):
        self.input_shape = tuple(input_shape)
        self.out_channels = out_channels
        self.kernel, self.stride, self.padding, self.dilation, self.groups = kernel, stride, padding, dilation, groups
        _, _, h, w = input_shape
        self.oh = output_size(h, kernel[0], stride[0], padding[0], dilation[0])
        self.ow = output_size(w, kernel[1], stride[1], padding[1], dilation[1])

    def im2col(self, backend, x, out=None):
        """(nb, C, H, W) -> (C*kh*kw, nb, OH*OW), into ``out`` when given (CPU blocks reuse one)."""
        args = (x, self.kernel, self.stride, self.padding, self.dilation)
        return backend.im2col(*args) if out is None else backend.im2col(*args, out)

    def col2im(self, backend, cols, batch, out=None):
        """Adjoint of :meth:`im2col`: (C*kh*kw, nb, OH*OW) -> (nb, C, H, W), into ``out`` when given."""
        args = (cols, (batch,) + self.input_shape[1:], self.kernel, self.stride, self.padding, self.dilation)
        return backend.col2im(*args) if out is None else backend.col2im(*args, out)

    def blocks(self, backend):
        """(start, stop) ranges of the batch, each small enough for its patches to stay in cache."""
        n, c = self.input_shape[:2]
        if backend.kind != "cpu":
            return [(0, n)]
        per_sample = self.oh * self.ow * c * self.kernel[0] * self.kernel[1] * 4
        step = max(1, CHUNK_BYTES // max(per_sample, 1))
        # The threads take whole blocks in turn, so the blocks should split the batch evenly between
        # them: 128 samples as 5 x 25 + 3 gave one of two threads 75 samples and the other 53.
        workers = backend.block_workers(-(-n // step))
        if workers > 1:
            per_worker = -(-n // (workers * step))
            step = -(-n // (workers * per_worker))
        return [(s, min(s + step, n)) for s in range(0, n, step)]


class _Buffers:
    """Arrays one call reuses for every block of the batch, so that they stay in
    cache and the allocator maps no fresh pages per block. With a single block
    (GPUs, small batches) there is nothing to reuse: ``get`` returns None and
    the callee allocates."""

    def __init__(self, xp, blocks, dtype):
        self.xp, self.dtype = xp, dtype
        self.reuse = len(blocks) > 1
        self.arrays = {}

    def get(self, name, shape):
        if not self.reuse:
            return None
        size = math.prod(shape)
        if name not in self.arrays:   # the first block is the largest
            self.arrays[name] = self.xp.empty(size, dtype=self.dtype)
        return self.arrays[name][:size].reshape(shape)


def _block_product(xp, a, b, out):
    """``a @ b``, into ``out`` when given."""
    return xp.matmul(a, b) if out is None else xp.matmul(a, b, out=out)


def _channels_first(xp, g3, start, stop, out):
    """(nb, OC, P) slice of the output gradient -> contiguous (OC, nb, P)."""
    if stop - start == 1 and g3.flags.c_contiguous:   # one sample is already (OC, P): a view, no copy
        return g3[start][:, None, :]
    block = g3[start:stop].transpose(1, 0, 2)
    if out is None:
        return xp.ascontiguousarray(block)
    out[...] = block
    return out


def _winograd(backend, x, weight_shape, geometry: _Geometry) -> bool:
    return backend.winograd_applies(x.dtype, weight_shape, (geometry.oh, geometry.ow), geometry.stride,
                                    geometry.padding, geometry.dilation, geometry.groups)


def _conv_forward(backend, x, w, geometry: _Geometry):
    """(N, C, H, W) * (OC, C/g, kh, kw) -> (N, OC, OH, OW)."""
    if _winograd(backend, x, w.shape, geometry):
        return backend.winograd_convolution("forward", x, w, geometry.padding, w.shape)
    xp = backend.xp
    n = x.shape[0]
    groups, oc = geometry.groups, geometry.out_channels
    ocg = oc // groups
    p = geometry.oh * geometry.ow
    out = xp.empty((n, oc, p), dtype=x.dtype)
    w_groups = w.reshape(groups, ocg, -1)                        # (g, OCg, Kg)
    kg = w_groups.shape[2]
    blocks = geometry.blocks(backend)
    buffers = [_Buffers(xp, blocks, x.dtype) for _ in range(backend.block_workers(len(blocks)))]

    def block_forward(worker, index):
        start, stop = blocks[index]
        nb = stop - start
        mine = buffers[worker]
        cols = geometry.im2col(backend, x[start:stop], mine.get("cols", (groups * kg, nb, p)))
        if nb == 1:   # (OCg, P) is the sample's own slice of the output: no copy
            for g in range(groups):
                xp.matmul(w_groups[g], cols[g * kg:(g + 1) * kg].reshape(kg, p), out=out[start, g * ocg:(g + 1) * ocg])
            return
        for g in range(groups):
            product = _block_product(xp, w_groups[g], cols[g * kg:(g + 1) * kg].reshape(kg, nb * p),
                                     mine.get("product", (ocg, nb * p)))
            out[start:stop, g * ocg:(g + 1) * ocg] = product.reshape(ocg, nb, p).transpose(1, 0, 2)

    backend.run_blocks(block_forward, len(blocks))
    return out.reshape(n, oc, geometry.oh, geometry.ow)


def _conv_input_grad(backend, g, w, geometry: _Geometry):
    """Adjoint in x: (N, OC, OH, OW) -> (N, C, H, W)."""
    if _winograd(backend, g, w.shape, geometry):
        return backend.winograd_convolution("input_grad", g, w, geometry.padding, w.shape)
    xp = backend.xp
    n = g.shape[0]
    groups, oc = geometry.groups, geometry.out_channels
    ocg = oc // groups
    p = geometry.oh * geometry.ow
    g3 = g.reshape(n, oc, p)
    w_groups = w.reshape(groups, ocg, -1)
    kg = w_groups.shape[2]
    blocks = geometry.blocks(backend)
    if len(blocks) == 1:   # the whole batch at once (GPUs, small batches): nothing to reuse
        cols = xp.empty((groups * kg, n, p), dtype=g.dtype)
        _input_grad_columns(xp, g3, 0, n, w_groups, ocg, kg, cols, None)
        return geometry.col2im(backend, cols, n)
    out = xp.empty(geometry.input_shape, dtype=g.dtype)
    buffers = [_Buffers(xp, blocks, g.dtype) for _ in range(backend.block_workers(len(blocks)))]

    def block_input_grad(worker, index):
        start, stop = blocks[index]
        nb = stop - start
        mine = buffers[worker]
        cols = mine.get("cols", (groups * kg, nb, p))
        _input_grad_columns(xp, g3, start, stop, w_groups, ocg, kg, cols, mine.get("grad", (oc, nb, p)))
        geometry.col2im(backend, cols, nb, out[start:stop])

    backend.run_blocks(block_input_grad, len(blocks))
    return out


def _input_grad_columns(xp, g3, start, stop, w_groups, ocg, kg, cols, grad_buffer):
    """The patch gradients of samples [start, stop): w.T @ grad, per group, into ``cols``."""
    nb = stop - start
    p = g3.shape[2]
    grad_block = _channels_first(xp, g3, start, stop, grad_buffer)
    for gi in range(w_groups.shape[0]):
        xp.matmul(w_groups[gi].T, grad_block[gi * ocg:(gi + 1) * ocg].reshape(ocg, nb * p),
                  out=cols[gi * kg:(gi + 1) * kg].reshape(kg, nb * p))


def _conv_weight_grad(backend, x, g, geometry: _Geometry, weight_shape):
    """Adjoint in w: sum over the batch of grad x patches -> (OC, C/g, kh, kw)."""
    if _winograd(backend, x, weight_shape, geometry):
        return backend.winograd_convolution("weight_grad", x, g, geometry.padding, weight_shape)
    xp = backend.xp
    n = x.shape[0]
    groups, oc = geometry.groups, geometry.out_channels
    ocg = oc // groups
    p = geometry.oh * geometry.ow
    g3 = g.reshape(n, oc, p)
    kg = weight_shape[1] * weight_shape[2] * weight_shape[3]
    blocks = geometry.blocks(backend)
    workers = backend.block_workers(len(blocks))
    buffers = [_Buffers(xp, blocks, x.dtype) for _ in range(workers)]
    # Each thread sums its own blocks; the sums are added at the end.
    sums = [xp.zeros((groups, ocg, kg), dtype=x.dtype) for _ in range(workers)]

    def block_weight_grad(worker, index):
        start, stop = blocks[index]
        nb = stop - start
        mine = buffers[worker]
        cols = geometry.im2col(backend, x[start:stop], mine.get("cols", (groups * kg, nb, p)))
        grad_block = _channels_first(xp, g3, start, stop, mine.get("grad", (oc, nb, p)))
        for gi in range(groups):
            sums[worker][gi] += grad_block[gi * ocg:(gi + 1) * ocg].reshape(ocg, nb * p) @ \
                cols[gi * kg:(gi + 1) * kg].reshape(kg, nb * p).T

    backend.run_blocks(block_weight_grad, len(blocks))
    dw = sums[0]
    for partial in sums[1:]:
        dw += partial
    return dw.reshape(weight_shape)


class Conv2d(BinaryFunction):
    __slots__ = ("geometry",)

    def forward(self, x, w, geometry):
        self.geometry = geometry
        return _conv_forward(self.backend, x, w, geometry)

    def backward(self, grad):
        x, w = self.inputs
        geometry = self.geometry
        grad_x = Conv2dInputGrad.apply(grad, w, geometry) if x.requires_grad else None
        grad_w = Conv2dWeightGrad.apply(x, grad, geometry, w.data.shape) if w.requires_grad else None
        return grad_x, grad_w


class Conv2dInputGrad(BinaryFunction):
    """The transposed convolution: inputs (grad of the conv output, weight)."""
    __slots__ = ("geometry",)

    def forward(self, g, w, geometry):
        self.geometry = geometry
        return _conv_input_grad(self.backend, g, w, geometry)

    def backward(self, grad):
        g, w = self.inputs
        geometry = self.geometry
        grad_g = Conv2d.apply(grad, w, geometry) if g.requires_grad else None
        grad_w = Conv2dWeightGrad.apply(grad, g, geometry, w.data.shape) if w.requires_grad else None
        return grad_g, grad_w


class Conv2dWeightGrad(BinaryFunction):
    """Inputs (conv input, grad of the conv output) -> grad of the weight."""
    __slots__ = ("geometry", "weight_shape")

    def forward(self, x, g, geometry, weight_shape):
        self.geometry, self.weight_shape = geometry, weight_shape
        return _conv_weight_grad(self.backend, x, g, geometry, weight_shape)

    def backward(self, grad):
        x, g = self.inputs
        geometry = self.geometry
        grad_x = Conv2dInputGrad.apply(g, grad, geometry) if x.requires_grad else None
        grad_g = Conv2d.apply(x, grad, geometry) if g.requires_grad else None
        return grad_x, grad_g


class _AddChannelBias(BinaryFunction):
    """``out + bias`` per channel, written into ``out``'s own array: only for the fresh output of
    :class:`Conv2d` inside :func:`conv2d`, which nothing else can see.

    A separate ``out + bias`` would keep two arrays of the convolution's output size alive until
    backward (the sum, and ``out`` as the addition's graph input). Neither backward here reads
    ``out``'s values, so sharing the array is safe.
    """
    __slots__ = ()
    reads_input_values = False

    def forward(self, out, bias):
        out += bias.reshape(1, -1, *([1] * (out.ndim - 2)))
        return out

    def backward(self, grad):
        out, bias = self.inputs
        grad_bias = None
        if bias.requires_grad:
            grad_bias = grad.sum(axis=(0,) + tuple(range(2, grad.ndim))) if grad_mode.enabled else \
                Tensor._make(self.backend.channel_sums(grad.data), bias.backend, False, None)
        return (grad if out.requires_grad else None), grad_bias


class Unfold(UnaryFunction):
    """(N, C, H, W) -> (C*kh*kw, N, OH*OW): every patch of every image."""
    __slots__ = ("geometry",)

    def forward(self, x, kernel, stride, padding, dilation):
        self.geometry = (kernel, stride, padding, dilation)
        return self.backend.im2col(x, kernel, stride, padding, dilation)

    def backward(self, grad):
        return Fold.apply(grad, self.inputs[0].data.shape, *self.geometry)


class Fold(UnaryFunction):
    """Adjoint of :class:`Unfold`: add every patch back into its image."""
    __slots__ = ("geometry",)

    def forward(self, cols, input_shape, kernel, stride, padding, dilation):
        self.geometry = (kernel, stride, padding, dilation)
        return self.backend.col2im(cols, input_shape, kernel, stride, padding, dilation)

    def backward(self, grad):
        return Unfold.apply(grad, *self.geometry)


def conv2d(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: IntPair = 1,
           padding: IntPair = 0, dilation: IntPair = 1, groups: int = 1) -> Tensor:
    """2-d convolution (cross-correlation, as in every framework).

    ``x`` is (N, C, H, W), ``weight`` (OC, C/groups, kh, kw), ``bias`` (OC,).

    Example:
        >>> import sigma
        >>> x = sigma.ones(1, 1, 4, 4)
        >>> sigma.conv2d(x, sigma.ones(1, 1, 3, 3)).tolist()
        [[[[9.0, 9.0], [9.0, 9.0]]]]
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
    if not isinstance(groups, int) or groups < 1 or c % groups or out_channels % groups:
        raise ValueError(f"conv2d: groups={groups} must divide input channels {c} and output channels {out_channels}")
    if group_channels * groups != c:
        raise ValueError(f"conv2d: input {x.shape} has {c} channels but weight {weight.shape} expects "
                         f"{group_channels * groups} ({group_channels} per group x {groups} groups)")
    if x.dtype != weight.dtype:
        raise TypeError(f"conv2d: input dtype {x.dtype} and weight dtype {weight.dtype} differ")
    geometry = _Geometry(x.shape, out_channels, (kh, kw), stride, padding, dilation, groups)
    if geometry.oh <= 0 or geometry.ow <= 0:
        raise ValueError(f"conv2d: input {x.shape} is smaller than the dilated kernel {(kh, kw)} "
                         f"with padding {padding}")
    out = Conv2d.apply(x, weight, geometry)
    if bias is not None:
        if bias.shape != (out_channels,):
            raise ValueError(f"conv2d: bias must have shape ({out_channels},), got {bias.shape}")
        out = _AddChannelBias.apply(out, bias)
    return out


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
    if output_size(x.shape[2], weight.shape[2], stride, padding, dilation) <= 0:
        raise ValueError(f"conv1d: input {x.shape} is shorter than the dilated kernel ({weight.shape[2]}) "
                         f"with padding {padding} and dilation {dilation}")
    out = conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, stride=(1, stride), padding=(0, padding),
                 dilation=(1, dilation), groups=groups)
    return out.squeeze(2)
