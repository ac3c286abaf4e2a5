"""The default backend (device) and default float dtype for new tensors."""
from __future__ import annotations

from typing import Any

import numpy as np

import backends
from backends import Backend

_default_backend: Backend = None  # created on first use, so importing sigma stays cheap
_default_dtype = np.dtype(np.float32)


def use(device: "str | Backend") -> Backend:
    """Make ``device`` the default backend for new tensors and return it.

    Example:
        >>> import sigma
        >>> sigma.use("cpu").name
        'cpu'
    """
    global _default_backend
    _default_backend = backends.get(device)
    return _default_backend


def default_backend() -> Backend:
    """The backend new tensors go to when no ``device`` is given."""
    global _default_backend
    if _default_backend is None:
        _default_backend = backends.get("cpu")
    return _default_backend


def resolve(device: Any) -> Backend:
    """A ``Backend`` from a name, a backend, or ``None`` (the default)."""
    if device is None:
        return default_backend()
    if isinstance(device, Backend):
        return device
    return backends.get(device)


def set_default_dtype(dtype: Any) -> None:
    """Set the float dtype of tensors made from Python numbers (float32 or float64).

    Example:
        >>> import sigma
        >>> sigma.set_default_dtype("float64"); sigma.tensor([1.0]).dtype
        dtype('float64')
        >>> sigma.set_default_dtype("float32")
    """
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"default dtype must be float32 or float64, got {dtype}")
    _default_dtype = dtype


def get_default_dtype() -> np.dtype:
    """The float dtype of tensors made from Python numbers."""
    return _default_dtype


def manual_seed(seed: int) -> None:
    """Seed the random stream of every backend created so far and of the default one.

    Example:
        >>> import sigma
        >>> sigma.manual_seed(0); a = sigma.randn(2)
        >>> sigma.manual_seed(0); b = sigma.randn(2)
        >>> bool((a == b).all())
        True
    """
    default_backend()
    for backend in backends.instances():
        backend.random.seed(seed)
