"""Optimisers by name: the built-ins, and third parties' through an entry point.

Built-ins register with :func:`register`. A package adds its own by
declaring an entry point in the group ``sigma.optimisers`` (the name is what
users type, the value the optimiser class)::

    # setup.py of a plug-in
    entry_points={"sigma.optimisers": ["lion = my_package.lion:Lion"]}

after which ``sigma.optim.get("lion")`` finds it like a built-in.

Example:
    >>> import sigma
    >>> sigma.optim.get("adam") is sigma.optim.Adam
    True
    >>> "sgd" in sigma.optim.available()
    True
"""
from __future__ import annotations

from importlib import metadata
from typing import Dict, List, Optional, Type

__all__ = ["register", "get", "available", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "sigma.optimisers"

_registered: Dict[str, type] = {}


def _normalise(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"an optimiser is named by a non-empty string such as 'adam', got {name!r}")
    return name.strip().lower()


def register(name: str, optimiser: Optional[type] = None):
    """Register an optimiser class under ``name``; usable as a class decorator.

    Registering a different class under a taken name is an error (so two
    plug-ins cannot silently replace each other).

    Example:
        >>> import sigma
        >>> @sigma.optim.register("plain-descent")
        ... class PlainDescent(sigma.optim.GradientOptimiser):
        ...     defaults = {"lr": 0.1}
        ...     @staticmethod
        ...     def rule(param, grad, lr):
        ...         return param - lr * grad
        >>> sigma.optim.get("Plain-Descent") is PlainDescent
        True
    """
    key = _normalise(name)

    def add(cls: type) -> type:
        from sigma.optim.optimiser import Optimiser
        if not (isinstance(cls, type) and issubclass(cls, Optimiser)):
            raise TypeError(f"register({name!r}): {cls!r} is not a subclass of sigma.optim.Optimiser")
        existing = _registered.get(key)
        if existing is not None and _qualified(existing) != _qualified(cls):
            raise ValueError(f"the optimiser name {key!r} is taken by {_qualified(existing)}; "
                             f"choose another name for {_qualified(cls)}")
        _registered[key] = cls
        return cls

    return add if optimiser is None else add(optimiser)


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _entry_points() -> Dict[str, "metadata.EntryPoint"]:
    # Read on each call (it is cheap) so that packages installed while the
    # process runs, and tests that replace the metadata, are seen.
    return {_normalise(entry.name): entry for entry in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def get(name: str) -> Type:
    """The optimiser class registered as ``name`` (case-insensitive), built-in or from a plug-in.

    Raises ``KeyError`` listing the known names for an unknown one.
    """
    key = _normalise(name)
    if key in _registered:
        return _registered[key]
    entry = _entry_points().get(key)
    if entry is None:
        raise KeyError(f"unknown optimiser {name!r}; known optimisers: {', '.join(available())}")
    try:
        cls = entry.load()
    except Exception as error:
        raise ImportError(f"the optimiser {key!r} from entry point {entry.value!r} "
                          f"(group {ENTRY_POINT_GROUP!r}) failed to load: {error}") from error
    return register(key, cls)


def available() -> List[str]:
    """Names of every optimiser that :func:`get` can return: built-ins and plug-ins, sorted."""
    return sorted(set(_registered) | set(_entry_points()))
