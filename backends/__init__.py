"""Array backends and their registry.

``backends.get("cpu")`` and ``backends.get("cuda:0")`` return one shared
:class:`Backend` per device name. Third parties add kinds through the entry
point group ``sigma.backends``: each entry's name is the kind (the part
before ``:``) and its value a callable ``factory(device_name) -> Backend``.

Example:
    >>> import backends
    >>> backends.get("cpu").name
    'cpu'
    >>> "cpu" in backends.available()
    True
"""
from __future__ import annotations

import threading
from importlib import metadata
from typing import Callable, Dict, List

from backends.backend import Backend, RandomStream

__all__ = ["Backend", "RandomStream", "get", "instances", "for_array", "available", "register", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "sigma.backends"


def _make_cpu(name: str) -> Backend:
    from backends.cpu import CPUBackend
    if name != "cpu":
        raise ValueError(f"unknown cpu device {name!r}: the CPU backend is called 'cpu'")
    return CPUBackend(name)


def _make_cuda(name: str) -> Backend:
    from backends.cuda import CUDABackend
    return CUDABackend(name)


_factories: Dict[str, Callable[[str], Backend]] = {"cpu": _make_cpu, "cuda": _make_cuda}
_instances: Dict[str, Backend] = {}
_lock = threading.Lock()
_entry_points_loaded = False


def register(kind: str, factory: Callable[[str], Backend]) -> None:
    """Register a backend kind, e.g. ``register("mydev", MyBackend)``.

    ``factory`` receives the full device name (``"mydev:1"``).
    """
    if not kind or ":" in kind:
        raise ValueError(f"backend kind must be a non-empty name without ':', got {kind!r}")
    _factories[kind] = factory


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        _factories.setdefault(entry.name, entry.load())


def _normalise(name: str) -> str:
    name = name.strip().lower()
    if name == "cuda" or name == "gpu":
        return "cuda:0"
    return name


def get(name: "str | Backend" = "cpu") -> Backend:
    """Return the backend for a device name (``"cpu"``, ``"cuda:0"``, ...).

    Raises ``ValueError`` for an unknown kind and ``RuntimeError`` when the
    kind is known but cannot start here (no cupy, no GPU).
    """
    if isinstance(name, Backend):
        return name
    if not isinstance(name, str):
        raise TypeError(f"a device is named by a string such as 'cpu' or 'cuda:0', got {type(name).__name__}")
    name = _normalise(name)
    backend = _instances.get(name)
    if backend is not None:
        return backend
    kind = name.split(":", 1)[0]
    if kind not in _factories:
        _load_entry_points()
    if kind not in _factories:
        raise ValueError(f"unknown backend {name!r}; known kinds: {sorted(_factories)}")
    with _lock:
        if name not in _instances:
            _instances[name] = _factories[kind](name)
    return _instances[name]


def instances() -> List[Backend]:
    """The backends created so far in this process (their random streams are
    what a checkpoint saves and ``sigma.manual_seed`` seeds)."""
    return list(_instances.values())


def for_array(array) -> Backend:
    """The backend that owns a raw array (numpy -> cpu, cupy -> its GPU)."""
    import numpy
    if isinstance(array, (numpy.ndarray, numpy.generic)):
        return get("cpu")
    device = getattr(array, "device", None)
    device_id = getattr(device, "id", None)
    if device_id is not None:
        return get(f"cuda:{device_id}")
    for backend in list(_instances.values()):
        if backend.is_array(array):
            return backend
    raise TypeError(f"no backend owns arrays of type {type(array).__name__}")


def available() -> List[str]:
    """Device names that can be created on this machine right now."""
    _load_entry_points()
    names = ["cpu"]
    try:
        import cupy
        count = cupy.cuda.runtime.getDeviceCount()
        names += [f"cuda:{i}" for i in range(count)]
    except Exception:
        pass
    for kind in _factories:
        if kind in ("cpu", "cuda"):
            continue
        try:
            get(kind)
            names.append(kind)
        except Exception:
            pass
    return names
