"""Primitive differentiable functions.

A primitive implements ``forward`` on raw arrays of its backend's ``xp`` and
``backward`` on :class:`~sigma.Tensor` objects. Because ``backward`` is built
from tensor operations, it is itself differentiable: the engine runs it with
graph recording on when ``create_graph=True`` and gets higher-order gradients
for free; otherwise it runs under ``no_grad`` and no graph is built.

Example, a new primitive:
    >>> import sigma
    >>> from sigma.autograd import Function
    >>> class Cube(Function):
    ...     def forward(self, x):
    ...         return x * x * x
    ...     def backward(self, grad):
    ...         x, = self.inputs
    ...         return grad * 3 * x * x
    >>> x = sigma.tensor([2.0], requires_grad=True)
    >>> Cube.apply(x).sum().backward()
    >>> x.grad.tolist()
    [12.0]
"""
from __future__ import annotations

from typing import Any

from sigma.autograd.grad_mode import grad_mode


class Function:
    """Base class of primitives; see the module docstring.

    ``self.inputs`` holds the input tensors while the graph is alive (the
    engine clears it after backward unless ``retain_graph=True``).
    ``self.backend`` is the inputs' backend, set before ``forward`` runs, so
    a primitive calls that backend's kernels (not a guess from the array type:
    two backends may both hold numpy arrays).
    """

    __slots__ = ("inputs", "backend")

    # False for a primitive whose backward reads only its inputs' shapes, dtypes and graph, never their
    # values (an addition, a ReLU that keeps its own output). Its non-leaf inputs are then held through
    # value-less links (see :func:`graph_link`), so that an activation nothing else needs is freed after
    # the forward pass instead of living until backward, as PyTorch frees what no saved tensor holds.
    reads_input_values = True

    def forward(self, *arrays: Any) -> Any:
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__

    @classmethod
    def apply(cls, *inputs, **params):
        """Run ``forward`` on the inputs' arrays and record the node if needed."""
        fn = cls.__new__(cls)
        backend = inputs[0].backend
        for t in inputs:
            if t.backend is not backend:
                _different_backends(cls.__name__, inputs)
        fn.backend = backend
        data = fn.forward(*[t.data for t in inputs], **params)
        if grad_mode.enabled:
            for t in inputs:
                if t.requires_grad:
                    fn.inputs = inputs if cls.reads_input_values else tuple(graph_link(i) for i in inputs)
                    return _make(data, backend, True, fn)
        return _make(data, backend, False, None)

    def __repr__(self) -> str:
        return f"<{self.name}>"


class UnaryFunction(Function):
    """A primitive with one tensor input: a shorter, faster ``apply``."""

    __slots__ = ()

    @classmethod
    def apply(cls, x, *params):
        fn = cls.__new__(cls)
        fn.backend = x.backend
        data = fn.forward(x.data, *params)
        if x.requires_grad and grad_mode.enabled:
            fn.inputs = (x,) if cls.reads_input_values else (graph_link(x),)
            return _make(data, x.backend, True, fn)
        return _make(data, x.backend, False, None)


class BinaryFunction(Function):
    """A primitive with two tensor inputs on the same backend."""

    __slots__ = ()

    @classmethod
    def apply(cls, a, b, *params):
        if a.backend is not b.backend:
            _different_backends(cls.__name__, (a, b))
        fn = cls.__new__(cls)
        fn.backend = a.backend
        data = fn.forward(a.data, b.data, *params)
        if (a.requires_grad or b.requires_grad) and grad_mode.enabled:
            fn.inputs = (a, b) if cls.reads_input_values else (graph_link(a), graph_link(b))
            return _make(data, a.backend, True, fn)
        return _make(data, a.backend, False, None)


def graph_link(tensor):
    """``tensor`` as a graph input that does not keep its values alive.

    A leaf is returned as it is (its values are the user's, and its ``.grad`` must reach it). A non-leaf
    becomes a new tensor object with the same creator, ``requires_grad``, shape and dtype, whose data is a
    zero-strided view of one element: the engine routes gradients by creator, so it stands for
    ``tensor`` in backward, and ``tensor``'s own array is freed once nothing else holds it.

    Example:
        >>> import sigma
        >>> from sigma.autograd.function import graph_link
        >>> x = sigma.ones(1000, requires_grad=True) * 2
        >>> link = graph_link(x)
        >>> link.shape, link._node is x._node, link.data.strides
        ((1000,), True, (0,))
    """
    node = tensor._node
    if node is None:
        return tensor
    data = tensor.data
    xp = tensor.backend.xp
    return _make(xp.broadcast_to(xp.zeros((), dtype=data.dtype), data.shape), tensor.backend, tensor.requires_grad,
                 node)


def _different_backends(op: str, inputs) -> None:
    names = ", ".join(t.backend.name for t in inputs)
    raise RuntimeError(f"{op}: tensors on different backends ({names}); move them with .to(...) first")


def unbroadcast(grad, shape: tuple):
    """Sum ``grad`` over the axes that broadcasting expanded to reach ``shape``."""
    if grad.data.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        i + extra for i, size in enumerate(shape) if size == 1 and grad.data.shape[i + extra] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


_make = None  # set by sigma.tensor: Tensor._make (avoids an import cycle)
