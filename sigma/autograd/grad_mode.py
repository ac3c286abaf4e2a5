"""Whether operations record a graph. Thread-local, like PyTorch's grad mode,
so a GUI thread running inference never switches it off for the trainer."""
from __future__ import annotations

import functools
import threading


class _GradMode(threading.local):
    enabled = True


grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    """True while operations record the graph that ``backward`` walks."""
    return grad_mode.enabled


class set_grad_enabled:
    """Context manager (and decorator) that turns graph recording on or off.

    Example:
        >>> import sigma
        >>> x = sigma.tensor([1.0], requires_grad=True)
        >>> with sigma.set_grad_enabled(False):
        ...     y = x * 2
        >>> y.requires_grad
        False
    """

    def __init__(self, enabled: bool):
        self.enabled = bool(enabled)

    def __enter__(self):
        self.previous = grad_mode.enabled
        grad_mode.enabled = self.enabled
        return self

    def __exit__(self, *exc):
        grad_mode.enabled = self.previous
        return False

    def __call__(self, function):
        enabled = self.enabled

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            # a fresh manager per call: the decorated function may recurse or run in threads
            with set_grad_enabled(enabled):
                return function(*args, **kwargs)
        return wrapper


class no_grad(set_grad_enabled):
    """Turn off graph recording, e.g. for evaluation.

    Example:
        >>> import sigma
        >>> w = sigma.tensor([2.0], requires_grad=True)
        >>> with sigma.no_grad():
        ...     (w * 3).requires_grad
        False
    """

    def __init__(self):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Turn graph recording back on inside a ``no_grad`` block."""

    def __init__(self):
        super().__init__(True)
