"""Shape and data movement: reshape, permute, expand, pad, indexing, concat.

``reshape``, ``permute``, ``expand``, ``pad``, ``getitem``/``index_add`` and
``concat`` are primitives; ``transpose``, ``stack``, ``split``, ``squeeze``,
``unsqueeze`` and ``flatten`` are built on them.
"""
from __future__ import annotations

from typing import Any, List, Sequence

import numpy as np

from sigma.autograd.function import Function, UnaryFunction
from sigma.ops.elementwise import _xp
from sigma.tensor import Tensor, _raw_index


class Reshape(UnaryFunction):
    __slots__ = ()

    def forward(self, x, shape):
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} values) "
                             f"into {tuple(shape)}") from None

    def backward(self, grad):
        return grad.reshape(self.inputs[0].data.shape)


class Permute(UnaryFunction):
    __slots__ = ("axes",)

    def forward(self, x, axes):
        if sorted(a % max(x.ndim, 1) for a in axes) != list(range(x.ndim)):
            raise ValueError(f"permute: {tuple(axes)} is not a permutation of the {x.ndim} axes of {x.shape}")
        self.axes = axes
        try:
            return x.transpose(axes)
        except ValueError:  # an axis out of range that the modulo above wrapped into place
            raise ValueError(f"permute: {tuple(axes)} is not a permutation of the {x.ndim} axes of {x.shape}") from None

    def backward(self, grad):
        inverse = tuple(int(i) for i in np.argsort([a % grad.ndim for a in self.axes]))
        return grad.permute(*inverse)


class Expand(UnaryFunction):
    """Broadcast to a larger shape (a view); backward sums the copies."""
    __slots__ = ()

    def forward(self, x, shape):
        try:
            return _xp(x).broadcast_to(x, shape)
        except ValueError:
            raise ValueError(f"expand: cannot broadcast shape {x.shape} to {tuple(shape)}") from None

    def backward(self, grad):
        from sigma.autograd.function import unbroadcast
        return unbroadcast(grad, self.inputs[0].data.shape)


class Pad(UnaryFunction):
    """Constant padding; ``widths`` is numpy's ((before, after), ...) per axis."""
    __slots__ = ("widths",)

    def forward(self, x, widths, value):
        if len(widths) != x.ndim:
            raise ValueError(f"pad: {len(widths)} (before, after) pairs for a tensor with {x.ndim} axes")
        if any(b < 0 or a < 0 for b, a in widths):
            raise ValueError(f"pad: negative widths {widths}")
        self.widths = widths
        return _xp(x).pad(x, widths, mode="constant", constant_values=value)

    def backward(self, grad):
        index = tuple(slice(b, grad.shape[i] - a) for i, (b, a) in enumerate(self.widths))
        return grad[index]


class GetItem(UnaryFunction):
    """Basic and advanced indexing; backward scatters with ``index_add``."""
    __slots__ = ("index",)

    def forward(self, x, index):
        self.index = index
        try:
            return x[index]
        except IndexError as error:
            raise IndexError(f"getitem: {error} (tensor shape {x.shape})") from None

    def backward(self, grad):
        x, = self.inputs
        return IndexAdd.apply(grad, x.data.shape, self.index)


class IndexAdd(UnaryFunction):
    """Zeros of ``shape`` with ``values`` added at ``index`` (repeats accumulate)."""
    __slots__ = ("index",)

    def forward(self, values, shape, index):
        self.index = index
        xp = _xp(values)
        if _is_basic(index):
            out = xp.zeros(shape, dtype=values.dtype)
            out[index] += values
            return out
        if isinstance(index, (np.ndarray,)) or hasattr(index, "dtype"):
            if index.dtype != bool and values.ndim >= 1:
                # Row gather (embeddings, x[labels]): a dedicated kernel beats add.at.
                return self.backend.scatter_add(shape, index, values)
        out = xp.zeros(shape, dtype=values.dtype)
        xp.add.at(out, index, values)
        return out

    def backward(self, grad):
        return grad[self.index]


def _is_basic(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice, type(None), type(Ellipsis))) for i in items)


class Concat(Function):
    __slots__ = ("axis", "sizes")

    def forward(self, *arrays, axis):
        self.axis = axis
        self.sizes = [a.shape[axis] for a in arrays]
        try:
            return _xp(arrays[0]).concatenate(arrays, axis=axis)
        except ValueError:
            shapes = ", ".join(str(a.shape) for a in arrays)
            raise ValueError(f"concat: shapes {shapes} differ outside axis {axis}") from None

    def backward(self, grad):
        out = []
        start = 0
        index = [slice(None)] * grad.ndim
        for t, size in zip(self.inputs, self.sizes):
            if t.requires_grad:
                index[self.axis] = slice(start, start + size)
                out.append(grad[tuple(index)])
            else:
                out.append(None)
            start += size
        return tuple(out)


class ToBackend(UnaryFunction):
    """Move data between backends; the gradient moves back."""
    __slots__ = ()

    def forward(self, x, target):
        return target.asarray(x)

    @classmethod
    def apply(cls, x, target):
        fn = cls.__new__(cls)
        fn.backend = target
        data = target.asarray(x.backend.to_host(x.data) if target.kind == "cpu" else x.data)
        from sigma.autograd.grad_mode import grad_mode
        if x.requires_grad and grad_mode.enabled:
            fn.inputs = (x,)
            return Tensor._make(data, target, True, fn)
        return Tensor._make(data, target, False, None)

    def backward(self, grad):
        return grad.to(self.inputs[0].backend)


# -- public functions ----------------------------------------------------------

def _check_axis(op: str, axis: int, ndim: int) -> None:
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for a tensor with {ndim} dimensions")


def _shape_args(shape: Sequence) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    for s in shape:
        if type(s) is not int:
            return tuple(int(s) for s in shape)  # numpy integers, or a clear TypeError
    return tuple(shape)


def reshape(x: Tensor, *shape) -> Tensor:
    """Same values, new shape (one dimension may be -1)."""
    shape = _shape_args(shape)
    if shape == x.data.shape:
        return x
    return Reshape.apply(x, shape)


def permute(x: Tensor, *axes) -> Tensor:
    """Reorder axes: ``x.permute(0, 2, 1)``."""
    return Permute.apply(x, _shape_args(axes))


def transpose(x: Tensor, axis0: int = -2, axis1: int = -1) -> Tensor:
    """Swap two axes (the last two by default)."""
    if x.ndim < 2:
        return x
    axes = list(range(x.ndim))
    try:
        axes[axis0], axes[axis1] = axes[axis1], axes[axis0]
    except IndexError:
        bad = axis0 if not -x.ndim <= axis0 < x.ndim else axis1
        raise ValueError(f"transpose: axis {bad} is out of range for a tensor with {x.ndim} dimensions") from None
    return Permute.apply(x, tuple(axes))


def expand(x: Tensor, *shape) -> Tensor:
    """Broadcast to ``shape`` without copying."""
    shape = _shape_args(shape)
    if shape == x.data.shape:
        return x
    return Expand.apply(x, shape)


def broadcast_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    return expand(x, tuple(shape))


def pad(x: Tensor, widths: Sequence, value: float = 0.0) -> Tensor:
    """Pad with a constant; ``widths`` per axis as (before, after) pairs.

    Example:
        >>> import sigma
        >>> sigma.pad(sigma.tensor([1.0, 2.0]), [(1, 0)]).tolist()
        [0.0, 1.0, 2.0]
    """
    widths = tuple((int(b), int(a)) for b, a in widths)
    return Pad.apply(x, widths, value)


def getitem(x: Tensor, index: Any) -> Tensor:
    index = _raw_index(index)
    if x.backend.kind != "cpu":
        index = _on_device(x.backend, index)
    return GetItem.apply(x, index)


def _on_device(backend, index):
    """Index arrays made on the host (numpy, lists) moved to the tensor's device."""
    if isinstance(index, tuple):
        return tuple(_on_device(backend, i) for i in index)
    if isinstance(index, (np.ndarray, list)):
        return backend.asarray(index)
    return index


def index_add(shape: Sequence[int], index: Any, values: Tensor) -> Tensor:
    """Zeros of ``shape`` with ``values`` added at ``index``; repeated indices accumulate.

    Example:
        >>> import sigma
        >>> sigma.index_add((3,), [0, 2, 0], sigma.tensor([1.0, 2.0, 3.0])).tolist()
        [4.0, 0.0, 2.0]
    """
    shape = tuple(shape)
    index = _raw_index(index)
    if hasattr(index, "dtype") and index.dtype.kind in "iu" and index.size and shape:
        # The row kernel does not check bounds; an index past the end would write outside the array.
        low, high = int(index.min()), int(index.max())
        bad = low if low < -shape[0] else high if high >= shape[0] else None
        if bad is not None:
            raise IndexError(f"index_add: index {bad} is out of range for axis 0 of size {shape[0]}")
    return IndexAdd.apply(values, shape, index)


def concat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concat: no tensors given")
    ndim = tensors[0].ndim
    if not -ndim <= axis < ndim:
        raise ValueError(f"concat: axis {axis} out of range for {ndim}-d tensors")
    return Concat.apply(*tensors, axis=axis % ndim)


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors of one shape along a new axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: no tensors given")
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack: all tensors need one shape, got {sorted(shapes)}")
    ndim = tensors[0].ndim + 1
    if not -ndim <= axis < ndim:
        raise ValueError(f"stack: axis {axis} out of range for the {ndim}-d result")
    axis %= ndim
    return concat([unsqueeze(t, axis) for t in tensors], axis=axis)


def split(x: Tensor, sections: "int | Sequence[int]", axis: int = 0) -> List[Tensor]:
    """Split into pieces: an int gives pieces of that size, a list gives the sizes."""
    _check_axis("split", axis, x.ndim)
    length = x.shape[axis]
    if isinstance(sections, int):
        if sections <= 0:
            raise ValueError(f"split: piece size must be positive, got {sections}")
        sizes = [min(sections, length - s) for s in range(0, length, sections)]
    else:
        sizes = list(sections)
        if sum(sizes) != length:
            raise ValueError(f"split: sizes {sizes} add up to {sum(sizes)}, not the axis length {length}")
    out, start = [], 0
    index = [slice(None)] * x.ndim
    for size in sizes:
        index[axis] = slice(start, start + size)
        out.append(x[tuple(index)])
        start += size
    return out


def squeeze(x: Tensor, axis: "int | None" = None) -> Tensor:
    if axis is None:
        return reshape(x, tuple(s for s in x.shape if s != 1))
    _check_axis("squeeze", axis, x.ndim)
    if x.shape[axis] != 1:
        raise ValueError(f"squeeze: axis {axis} has size {x.shape[axis]}, not 1")
    shape = list(x.shape)
    del shape[axis]
    return reshape(x, tuple(shape))


def unsqueeze(x: Tensor, axis: int) -> Tensor:
    ndim = x.ndim + 1
    if not -ndim <= axis < ndim:
        raise ValueError(f"unsqueeze: axis {axis} out of range for the {ndim}-d result")
    axis %= ndim
    shape = list(x.shape)
    shape.insert(axis, 1)
    return reshape(x, tuple(shape))


def flatten(x: Tensor, start_axis: int = 0, end_axis: int = -1) -> Tensor:
    """Merge axes ``start_axis..end_axis`` into one."""
    if x.ndim == 0:
        return reshape(x, (1,))
    _check_axis("flatten", start_axis, x.ndim)
    _check_axis("flatten", end_axis, x.ndim)
    start, end = start_axis % x.ndim, end_axis % x.ndim
    merged = 1
    for s in x.shape[start:end + 1]:
        merged *= s
    return reshape(x, x.shape[:start] + (merged,) + x.shape[end + 1:])
