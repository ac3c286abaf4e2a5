"""The functions an update rule may call, for every way a rule is run.

An optimiser's update rule (see :class:`sigma.optim.GradientOptimiser`) is a
function of *scalars*: one element of the parameter, its gradient and its
state. Sigma runs the same function in three ways:

* compiled with numba into one loop over the flattened arrays (CPU);
* traced into a CUDA ``ElementwiseKernel`` (GPUs, through cupy);
* called once with whole arrays (any other backend, and for checking).

Python's ``if`` and ``math.sqrt`` work only in the first way, so rules use
these functions instead; each one works on numbers, numpy or cupy arrays,
inside numba-compiled code and on the symbols of the CUDA tracer.

Example:
    >>> import numpy as np
    >>> from sigma.optim.elementwise import sqrt, where
    >>> float(sqrt(4.0)), where(np.array([True, False]), 1.0, -1.0).tolist()
    (2.0, [1.0, -1.0])
"""
from __future__ import annotations

import numpy as np
from numba.extending import overload

__all__ = ["sqrt", "exp", "log", "abs", "sign", "maximum", "minimum", "where"]

_builtin_abs = abs


def _is_symbol(*values) -> bool:
    # The CUDA tracer's symbols carry this marker; checking for it keeps this
    # module free of the tracer's import.
    return any(getattr(v, "_sigma_rule_symbol", False) for v in values)


def _array_module(*values):
    """numpy, or cupy when any argument is a cupy array."""
    for value in values:
        if type(value).__module__.startswith("cupy"):
            import cupy
            return cupy
    return np


def _unary(name: str, x):
    if _is_symbol(x):
        return x._function(name, x)
    return getattr(_array_module(x), name)(x)


def sqrt(x):
    """Square root, elementwise."""
    return _unary("sqrt", x)


def exp(x):
    """Exponential, elementwise."""
    return _unary("exp", x)


def log(x):
    """Natural logarithm, elementwise."""
    return _unary("log", x)


def abs(x):  # noqa: A001 - the name a rule author expects
    """Absolute value, elementwise."""
    if _is_symbol(x):
        return x._function("abs", x)
    return _array_module(x).abs(x)


def sign(x):
    """-1, 0 or 1 by the sign of ``x`` (NaN stays NaN), elementwise."""
    return _unary("sign", x)


def maximum(a, b):
    """The larger of ``a`` and ``b``; NaN if either is NaN (as ``numpy.maximum``)."""
    if _is_symbol(a, b):
        symbol = a if _is_symbol(a) else b
        return symbol._function("maximum", a, b)
    return _array_module(a, b).maximum(a, b)


def minimum(a, b):
    """The smaller of ``a`` and ``b``; NaN if either is NaN (as ``numpy.minimum``)."""
    if _is_symbol(a, b):
        symbol = a if _is_symbol(a) else b
        return symbol._function("minimum", a, b)
    return _array_module(a, b).minimum(a, b)


def where(condition, if_true, if_false):
    """``if_true`` where ``condition`` holds, else ``if_false`` (a branch-free ``if``)."""
    if _is_symbol(condition, if_true, if_false):
        symbol = next(v for v in (condition, if_true, if_false) if _is_symbol(v))
        return symbol._function("where", condition, if_true, if_false)
    return _array_module(condition, if_true, if_false).where(condition, if_true, if_false)


# -- the same functions inside numba-compiled rules (scalars only) ------------------

@overload(sqrt)
def _sqrt_scalar(x):
    return lambda x: np.sqrt(x)


@overload(exp)
def _exp_scalar(x):
    return lambda x: np.exp(x)


@overload(log)
def _log_scalar(x):
    return lambda x: np.log(x)


@overload(abs)
def _abs_scalar(x):
    return lambda x: _builtin_abs(x)


@overload(sign)
def _sign_scalar(x):
    return lambda x: np.sign(x)


@overload(maximum)
def _maximum_scalar(a, b):
    def implementation(a, b):
        # NaN wins, as in numpy.maximum.
        return a if (a > b or a != a) else b
    return implementation


@overload(minimum)
def _minimum_scalar(a, b):
    def implementation(a, b):
        return a if (a < b or a != a) else b
    return implementation


@overload(where)
def _where_scalar(condition, if_true, if_false):
    def implementation(condition, if_true, if_false):
        return if_true if condition else if_false
    return implementation
