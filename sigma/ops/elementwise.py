"""Elementwise primitives and the composites built from them.

Every primitive's backward is written with tensor operations, so it can be
differentiated again (``create_graph=True``).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

import backends

from sigma.autograd.function import BinaryFunction, Function, UnaryFunction, unbroadcast
from sigma.tensor import Tensor


def _broadcast_error(op: str, a, b, error: Exception):
    return ValueError(f"{op}: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be broadcast together") \
        if "broadcast" in str(error) else error


# -- binary arithmetic ----------------------------------------------------------

class Add(BinaryFunction):
    __slots__ = ()
    reads_input_values = False

    def forward(self, a, b):
        try:
            return a + b
        except ValueError as error:
            raise _broadcast_error("add", a, b, error) from None

    def backward(self, grad):
        a, b = self.inputs
        return (unbroadcast(grad, a.data.shape) if a.requires_grad else None,
                unbroadcast(grad, b.data.shape) if b.requires_grad else None)


class Sub(BinaryFunction):
    __slots__ = ()

    def forward(self, a, b):
        try:
            return a - b
        except ValueError as error:
            raise _broadcast_error("sub", a, b, error) from None

    def backward(self, grad):
        a, b = self.inputs
        return (unbroadcast(grad, a.data.shape) if a.requires_grad else None,
                unbroadcast(-grad, b.data.shape) if b.requires_grad else None)


class Mul(BinaryFunction):
    __slots__ = ()

    def forward(self, a, b):
        try:
            return a * b
        except ValueError as error:
            raise _broadcast_error("mul", a, b, error) from None

    def backward(self, grad):
        a, b = self.inputs
        return (unbroadcast(grad * b, a.data.shape) if a.requires_grad else None,
                unbroadcast(grad * a, b.data.shape) if b.requires_grad else None)


class Div(BinaryFunction):
    __slots__ = ()

    def forward(self, a, b):
        try:
            return a / b
        except ValueError as error:
            raise _broadcast_error("div", a, b, error) from None

    def backward(self, grad):
        a, b = self.inputs
        grad_a = grad / b
        return (unbroadcast(grad_a, a.data.shape) if a.requires_grad else None,
                unbroadcast(-grad_a * a / b, b.data.shape) if b.requires_grad else None)


class Pow(BinaryFunction):
    """``a ** b`` for tensor exponents; d/db uses log(a), defined for a > 0."""
    __slots__ = ()

    def forward(self, a, b):
        try:
            return a ** b
        except ValueError as error:
            raise _broadcast_error("pow", a, b, error) from None

    def backward(self, grad):
        a, b = self.inputs
        grad_a = None
        if a.requires_grad:
            # At 0 ** 0, b * a ** (b - 1) is 0 * inf; the derivative there is 0 (as in PyTorch).
            exponent = where((a.data == 0) & (b.data == 0), 1.0, b - 1.0)
            grad_a = unbroadcast(grad * b * a ** exponent, a.data.shape)
        grad_b = None
        if b.requires_grad:
            # 0 ** b has derivative 0 in b (for b > 0); avoid log(0) = -inf * 0 = nan.
            safe = where(a.data > 0, a, a.ones_like())
            grad_b = unbroadcast(grad * (a ** b) * safe.log(), b.data.shape)
        return grad_a, grad_b


class PowScalar(UnaryFunction):
    """``x ** p`` for a constant Python exponent."""
    __slots__ = ("exponent",)

    def forward(self, x, exponent):
        self.exponent = exponent
        return x ** exponent

    def backward(self, grad):
        x, = self.inputs
        p = self.exponent
        if p == 0:
            return grad * 0
        if p == 2:
            return grad * x * 2.0
        return grad * p * x ** (p - 1)


class Maximum(BinaryFunction):
    """Elementwise maximum; ties split the gradient evenly (as PyTorch does)."""
    __slots__ = ()

    def forward(self, a, b):
        try:
            return _xp(a).maximum(a, b)
        except ValueError as error:
            raise _broadcast_error("maximum", a, b, error) from None

    def backward(self, grad):
        a, b = self.inputs
        share_a = _constant_like(grad, (a.data > b.data) + 0.5 * (a.data == b.data))
        return (unbroadcast(grad * share_a, a.data.shape) if a.requires_grad else None,
                unbroadcast(grad * (1.0 - share_a), b.data.shape) if b.requires_grad else None)


def maximum(a: Tensor, b: Any) -> Tensor:
    """Elementwise maximum of two tensors (or a tensor and a number)."""
    a, b = _pair(a, b)
    return Maximum.apply(a, b)


def minimum(a: Tensor, b: Any) -> Tensor:
    """Elementwise minimum."""
    a, b = _pair(a, b)
    return -Maximum.apply(-a, -b)


def _pair(a, b):
    if isinstance(a, Tensor):
        return a, a._constant(b)
    b_tensor = b if isinstance(b, Tensor) else None
    if b_tensor is None:
        raise TypeError("expected at least one tensor")
    return b_tensor._constant(a), b_tensor


# -- unary ----------------------------------------------------------------------

class Neg(UnaryFunction):
    __slots__ = ()

    def forward(self, x):
        return -x

    def backward(self, grad):
        return -grad


class Exp(UnaryFunction):
    __slots__ = ("out",)

    def forward(self, x):
        self.out = out = _xp(x).exp(x)
        return out

    def backward(self, grad):
        x, = self.inputs
        # Recompute from x when recording, so the result stays differentiable.
        if _recording():
            return grad * x.exp()
        return grad * Tensor._make(self.out, x.backend, False, None)


class Log(UnaryFunction):
    __slots__ = ()

    def forward(self, x):
        return _xp(x).log(x)

    def backward(self, grad):
        x, = self.inputs
        return grad / x


class Log1p(UnaryFunction):
    __slots__ = ()

    def forward(self, x):
        return _xp(x).log1p(x)

    def backward(self, grad):
        x, = self.inputs
        return grad / (x + 1.0)


class Sqrt(UnaryFunction):
    __slots__ = ()

    def forward(self, x):
        return _xp(x).sqrt(x)

    def backward(self, grad):
        x, = self.inputs
        return grad / (x.sqrt() * 2.0)


class Abs(UnaryFunction):
    __slots__ = ()

    def forward(self, x):
        return _xp(x).abs(x)

    def backward(self, grad):
        x, = self.inputs
        return grad * _constant_like(x, _xp(x.data).sign(x.data))


class Sin(UnaryFunction):
    __slots__ = ()

    def forward(self, x):
        return _xp(x).sin(x)

    def backward(self, grad):
        return grad * self.inputs[0].cos()


class Cos(UnaryFunction):
    __slots__ = ()

    def forward(self, x):
        return _xp(x).cos(x)

    def backward(self, grad):
        return -grad * self.inputs[0].sin()


class Relu(UnaryFunction):
    __slots__ = ("output",)
    reads_input_values = False  # the mask comes from the output, which the next layer keeps anyway

    def forward(self, x):
        self.output = self.backend.relu(x)
        return self.output

    def backward(self, grad):
        x, = self.inputs
        # d relu is a step: constant in x, so the mask needs no graph. output > 0 exactly where x > 0.
        if not _recording():
            return Tensor._make(self.backend.relu_backward(grad.data, self.output), x.backend, False, None)
        return grad * _constant_like(x, self.output > 0)


class Sigmoid(UnaryFunction):
    __slots__ = ("out",)

    def forward(self, x):
        xp = _xp(x)
        # Two branches keep exp from overflowing for large |x|.
        z = xp.exp(-xp.abs(x))
        self.out = out = xp.where(x >= 0, 1 / (1 + z), z / (1 + z)).astype(x.dtype, copy=False)
        return out

    def backward(self, grad):
        x, = self.inputs
        s = x.sigmoid() if _recording() else Tensor._make(self.out, x.backend, False, None)
        return grad * s * (1.0 - s)


class Tanh(UnaryFunction):
    __slots__ = ("out",)

    def forward(self, x):
        self.out = out = _xp(x).tanh(x)
        return out

    def backward(self, grad):
        x, = self.inputs
        t = x.tanh() if _recording() else Tensor._make(self.out, x.backend, False, None)
        return grad * (1.0 - t * t)


class Erf(UnaryFunction):
    __slots__ = ()

    def forward(self, x):
        return self.backend.erf(x)

    def backward(self, grad):
        x, = self.inputs
        return grad * (x * x * -1.0).exp() * (2.0 / math.sqrt(math.pi))


class Clip(UnaryFunction):
    """Clamp to [low, high]; the gradient passes where low <= x <= high."""
    __slots__ = ("low", "high")

    def forward(self, x, low, high):
        self.low, self.high = low, high
        return _xp(x).clip(x, low, high)

    def backward(self, grad):
        x, = self.inputs
        inside = _xp(x.data).ones(x.data.shape, dtype=bool)
        if self.low is not None:
            inside &= x.data >= self.low
        if self.high is not None:
            inside &= x.data <= self.high
        return grad * _constant_like(x, inside)


class Where(Function):
    """``where(condition, a, b)``; condition is constant (no gradient)."""
    __slots__ = ("condition",)

    def forward(self, a, b, condition):
        self.condition = condition
        try:
            return _xp(a).where(condition, a, b)
        except ValueError as error:
            raise ValueError(f"where: condition {tuple(condition.shape)}, a {tuple(a.shape)} and "
                             f"b {tuple(b.shape)} cannot be broadcast together") from None

    def backward(self, grad):
        a, b = self.inputs
        zero = grad.zeros_like()
        cond = self.condition
        return (unbroadcast(where(cond, grad, zero), a.data.shape) if a.requires_grad else None,
                unbroadcast(where(cond, zero, grad), b.data.shape) if b.requires_grad else None)


def where(condition: Any, a: Any, b: Any) -> Tensor:
    """Pick from ``a`` where ``condition`` holds, else from ``b`` (numpy broadcasting).

    Example:
        >>> import sigma
        >>> x = sigma.tensor([-1.0, 2.0])
        >>> sigma.where(x > 0, x, 0.0).tolist()
        [0.0, 2.0]
    """
    ref = a if isinstance(a, Tensor) else b
    if not isinstance(ref, Tensor):
        raise TypeError("where: a or b must be a tensor")
    a, b = ref._constant(a), ref._constant(b)
    cond = condition.data if isinstance(condition, Tensor) else ref.backend.xp.asarray(condition)
    return Where.apply(a, b, condition=cond)


class Cast(UnaryFunction):
    __slots__ = ()

    def forward(self, x, dtype):
        return x.astype(dtype)

    def backward(self, grad):
        x, = self.inputs
        return grad.astype(x.dtype) if grad.dtype != x.dtype else grad

    @classmethod
    def apply(cls, x, dtype):
        if np.dtype(dtype).kind != "f" and x.requires_grad:
            return Tensor._make(x.data.astype(dtype), x.backend, False, None)
        return super().apply(x, dtype)


class Copy(UnaryFunction):
    __slots__ = ()

    def forward(self, x):
        return x.copy()

    def backward(self, grad):
        return grad


# -- comparisons (no gradient) ---------------------------------------------------

def compare(op: str, a: Tensor, b: Any) -> Tensor:
    other = b.data if isinstance(b, Tensor) else b
    try:
        result = getattr(a.data, op)(other)
    except ValueError as error:
        raise ValueError(f"{op.strip('_')}: shapes {a.shape} and {getattr(other, 'shape', ())} "
                         "cannot be broadcast together") from error
    if result is NotImplemented:
        raise TypeError(f"cannot compare a tensor with {type(b).__name__}")
    return Tensor._make(result, a.backend, False, None)


# -- composites -----------------------------------------------------------------

def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """``x`` where positive, ``negative_slope * x`` elsewhere."""
    return where(x.data > 0, x, x * negative_slope)


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere."""
    positive = x.data > 0
    # where, not minimum(x, 0): minimum splits its gradient at a tie, which
    # would halve the derivative at exactly 0 (PyTorch's is alpha there).
    negative = (where(positive, 0.0, x).exp() - 1.0) * alpha
    return where(positive, x, negative)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit: ``x * Phi(x)``; ``approximate="tanh"`` for the tanh form."""
    if approximate == "tanh":
        inner = (x + x * x * x * 0.044715) * math.sqrt(2.0 / math.pi)
        return x * (inner.tanh() + 1.0) * 0.5
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return x * (Erf.apply(x * (1.0 / math.sqrt(2.0))) + 1.0) * 0.5


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta x)) / beta``, linear above ``threshold`` (as PyTorch)."""
    bx = x * beta if beta != 1.0 else x
    # log1p(exp(-|bx|)) + relu(bx), with -|bx| written as a where so that its
    # derivative at 0 is 1, not abs's 0: the slope there is then sigmoid(0) = 1/2.
    negative_magnitude = where(bx.data > 0, -bx, bx)
    smooth = negative_magnitude.exp().log1p() + bx.relu()
    if beta != 1.0:
        smooth = smooth / beta
    return where(bx.data > threshold, x, smooth)


def clip(x: Tensor, low: Any = None, high: Any = None) -> Tensor:
    """Clamp values into [low, high]; either bound may be ``None``."""
    if low is None and high is None:
        raise ValueError("clip: give low, high or both")
    return Clip.apply(x, low, high)


# -- helpers --------------------------------------------------------------------

def _xp(array):
    return np if isinstance(array, (np.ndarray, np.generic)) else backends.for_array(array).xp


def _constant_like(x: Tensor, array) -> Tensor:
    return Tensor._make(array.astype(x.data.dtype, copy=False), x.backend, False, None)


def _recording() -> bool:
    from sigma.autograd.grad_mode import grad_mode
    return grad_mode.enabled
