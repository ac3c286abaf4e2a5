"""``Tensor``: an array on a backend, plus what autodiff needs.

Operations live in ``sigma.ops``; the methods here are thin doors into them,
so ``x.relu()`` and ``sigma.relu(x)`` are the same call.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from backends import Backend
from sigma import device as _device
from sigma.autograd import engine as _engine
from sigma.autograd import function as _function

_FLOAT_KINDS = "f"


class Tensor:
    """An n-dimensional array that records operations for differentiation.

    Float tensors made from Python numbers are float32 (see
    ``sigma.set_default_dtype``); arrays keep their dtype.

    Example:
        >>> import sigma
        >>> x = sigma.tensor([[1.0, 2.0]])
        >>> w = sigma.tensor([[3.0], [4.0]], requires_grad=True)
        >>> b = sigma.tensor([0.5], requires_grad=True)
        >>> y = (x @ w + b).relu().sum()
        >>> y.backward()
        >>> w.grad.tolist(), b.grad.tolist()
        ([[1.0], [2.0]], [1.0])
    """

    __slots__ = ("data", "backend", "requires_grad", "grad", "_node", "__weakref__")
    __array_priority__ = 1000  # numpy scalars defer to our operators

    def __init__(self, data: Any, dtype: Any = None, device: "str | Backend | None" = None,
                 requires_grad: bool = False):
        if isinstance(data, Tensor):
            data = data.data
        backend = _device.resolve(device)
        if dtype is None and not hasattr(data, "dtype"):
            array = np.asarray(data)
            if array.dtype.kind == "f" or array.dtype == object:
                dtype = _device.get_default_dtype()
            data = array
        self.data = backend.asarray(data, dtype=dtype)
        self.backend = backend
        self.grad = None
        self._node = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _make(data, backend: Backend, requires_grad: bool, node) -> "Tensor":
        # The per-op path: no argument checks, no conversions.
        t = _new(Tensor)
        t.data = data
        t.backend = backend
        t.requires_grad = requires_grad
        t.grad = None
        t._node = node
        return t

    # -- description -----------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def device(self) -> str:
        """Name of the backend holding the data (``"cpu"``, ``"cuda:0"``)."""
        return self.backend.name

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self):
        """The primitive that made this tensor, or ``None`` for a leaf."""
        return self._node

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", precision=4, threshold=20)
        extras = []
        if self.data.dtype != np.float32:
            extras.append(f"dtype={self.data.dtype}")
        if self.backend.name != "cpu":
            extras.append(f"device={self.backend.name!r}")
        if self._node is not None:
            extras.append(f"grad_fn={self._node!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body] + extras) + ")"

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous; use .any() or .all()")
        return bool(self.item())

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    # -- conversion -----------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The data as a numpy array (a view on the CPU, a copy from a GPU)."""
        return self.backend.to_host(self.data)

    def __array__(self, dtype=None, copy=None):
        array = self.numpy()
        return array if dtype is None else array.astype(dtype, copy=False)

    def item(self) -> Any:
        """The single value as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item(): the tensor has {self.data.size} values (shape {self.shape}), not one")
        return self.numpy().reshape(()).item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def to(self, device: "str | Backend | None" = None, dtype: Any = None) -> "Tensor":
        """This tensor on another backend and/or with another dtype (differentiable).

        Example:
            >>> import sigma
            >>> sigma.tensor([1.0]).to("cpu", dtype="float64").dtype
            dtype('float64')
        """
        from sigma.ops.movement import ToBackend
        out = self
        if device is not None:
            target = _device.resolve(device)
            if target is not self.backend:
                out = ToBackend.apply(out, target)
        if dtype is not None and np.dtype(dtype) != out.dtype:
            out = out.astype(dtype)
        return out

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def astype(self, dtype: Any) -> "Tensor":
        """A copy with another dtype; differentiable between float dtypes."""
        from sigma.ops.elementwise import Cast
        return Cast.apply(self, np.dtype(dtype))

    def float(self) -> "Tensor":
        return self.astype(np.float32)

    def double(self) -> "Tensor":
        return self.astype(np.float64)

    # -- autodiff -----------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Mark this leaf as a variable whose gradient ``backward`` computes."""
        if requires_grad and self.data.dtype.kind not in _FLOAT_KINDS:
            raise TypeError(f"only float tensors can require gradients, this one is {self.data.dtype}")
        if not requires_grad and self._node is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor; use .detach() instead")
        self.requires_grad = requires_grad
        return self

    def detach(self) -> "Tensor":
        """The same data, cut from the graph."""
        return Tensor._make(self.data, self.backend, False, None)

    def clone(self) -> "Tensor":
        """A copy of the data (differentiable)."""
        from sigma.ops.elementwise import Copy
        return Copy.apply(self)

    def backward(self, gradient: Optional["Tensor"] = None, retain_graph: bool = False,
                 create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into the ``.grad`` of every leaf that requires grad.

        ``self`` must hold one value unless ``gradient`` is given. The graph is
        freed afterwards unless ``retain_graph=True``.
        """
        _engine.run_backward([self], [gradient], retain_graph=retain_graph or create_graph,
                             create_graph=create_graph)

    def zero_grad(self) -> None:
        self.grad = None

    # -- in-place updates (no graph; for optimisers and initialisers) -----------
    def copy_(self, source: Any) -> "Tensor":
        """Overwrite the data in place from a tensor or array of the same shape."""
        array = source.data if isinstance(source, Tensor) else self.backend.asarray(source)
        if tuple(array.shape) != self.shape:
            raise ValueError(f"copy_: source of shape {tuple(array.shape)} into a tensor of shape {self.shape}")
        self.data[...] = array
        return self

    def __setitem__(self, index, value) -> None:
        if self.requires_grad and self._node is None and _function.grad_mode.enabled:
            raise RuntimeError("in-place assignment to a leaf that requires grad; do it under sigma.no_grad()")
        if self._node is not None:
            raise RuntimeError("in-place assignment to a tensor that is part of a graph would corrupt its gradient")
        self.data[_raw_index(index)] = value.data if isinstance(value, Tensor) else value

    # -- creation helpers bound to this tensor's backend and dtype --------------
    def zeros_like(self) -> "Tensor":
        return Tensor._make(self.backend.xp.zeros(self.data.shape, self.data.dtype), self.backend, False, None)

    def ones_like(self) -> "Tensor":
        return Tensor._make(self.backend.xp.ones(self.data.shape, self.data.dtype), self.backend, False, None)

    def _constant(self, value: Any) -> "Tensor":
        if isinstance(value, Tensor):
            return value
        dtype = self.data.dtype
        if dtype.kind in "iub" and isinstance(value, float):
            dtype = _device.get_default_dtype()
        return Tensor._make(self.backend.xp.asarray(value, dtype=dtype), self.backend, False, None)


_new = object.__new__
_function._make = Tensor._make


def _raw_index(index):
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


# -- creation functions ---------------------------------------------------------

def tensor(data: Any, dtype: Any = None, device: "str | Backend | None" = None,
           requires_grad: bool = False) -> Tensor:
    """Make a tensor from a number, nested list, numpy/cupy array or tensor.

    Example:
        >>> import sigma
        >>> sigma.tensor([1, 2]).dtype, sigma.tensor([1.5]).dtype
        (dtype('int64'), dtype('float32'))
    """
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def _shape(shape: Sequence) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def _filled(fill: str, shape, dtype, device, requires_grad) -> Tensor:
    backend = _device.resolve(device)
    dtype = np.dtype(dtype) if dtype is not None else _device.get_default_dtype()
    data = getattr(backend.xp, fill)(_shape(shape), dtype=dtype)
    return Tensor._make(data, backend, False, None).requires_grad_(requires_grad)


def zeros(*shape, dtype: Any = None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros: ``sigma.zeros(2, 3)`` or ``sigma.zeros((2, 3))``."""
    return _filled("zeros", shape, dtype, device, requires_grad)


def ones(*shape, dtype: Any = None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones: ``sigma.ones(2, 3)``."""
    return _filled("ones", shape, dtype, device, requires_grad)


def full(shape, value: float, dtype: Any = None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor filled with ``value``."""
    t = _filled("empty", (shape,) if isinstance(shape, int) else (tuple(shape),), dtype, device, requires_grad)
    t.data[...] = value
    return t


def zeros_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    return t.zeros_like().requires_grad_(requires_grad)


def ones_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    return t.ones_like().requires_grad_(requires_grad)


def arange(start, stop=None, step=1, dtype: Any = None, device=None) -> Tensor:
    """Evenly spaced values, as numpy's ``arange``."""
    backend = _device.resolve(device)
    data = backend.xp.arange(start, stop, step) if stop is not None else backend.xp.arange(start)
    if dtype is not None:
        data = data.astype(dtype)
    elif data.dtype.kind == "f":
        data = data.astype(_device.get_default_dtype())
    return Tensor._make(data, backend, False, None)


def eye(n: int, m: Optional[int] = None, dtype: Any = None, device=None) -> Tensor:
    backend = _device.resolve(device)
    return Tensor._make(backend.xp.eye(n, m, dtype=dtype or _device.get_default_dtype()), backend, False, None)


def rand(*shape, dtype: Any = None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform values in [0, 1) from the backend's random stream."""
    backend = _device.resolve(device)
    data = backend.random.uniform(_shape(shape), dtype=dtype or _device.get_default_dtype())
    return Tensor._make(data, backend, False, None).requires_grad_(requires_grad)


def randn(*shape, dtype: Any = None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal values from the backend's random stream."""
    backend = _device.resolve(device)
    data = backend.random.normal(_shape(shape), dtype=dtype or _device.get_default_dtype())
    return Tensor._make(data, backend, False, None).requires_grad_(requires_grad)


def randint(low: int, high: int, shape: Sequence[int], device=None) -> Tensor:
    """Integers in [low, high) from the backend's random stream."""
    backend = _device.resolve(device)
    return Tensor._make(backend.random.integers(low, high, tuple(shape)), backend, False, None)
