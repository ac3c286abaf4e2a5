"""Activation functions as modules, for ``Sequential`` and friends."""
from __future__ import annotations

from sigma.nn.module import Module
from sigma.ops import elu, gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, softplus, tanh
from sigma.tensor import Tensor

__all__ = ["ReLU", "LeakyReLU", "ELU", "GELU", "Sigmoid", "Tanh", "Softplus", "Softmax", "LogSoftmax"]


class ReLU(Module):
    """``max(x, 0)``.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> nn.ReLU()(sigma.tensor([-1.0, 2.0])).tolist()
        [0.0, 2.0]
    """

    def forward(self, x: Tensor) -> Tensor:
        return relu(x)


class LeakyReLU(Module):
    """``x`` where positive, ``negative_slope * x`` elsewhere.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> nn.LeakyReLU(0.5)(sigma.tensor([-2.0, 2.0])).tolist()
        [-1.0, 2.0]
    """

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    """``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> [round(v, 4) for v in nn.ELU()(sigma.tensor([-1.0, 1.0])).tolist()]
        [-0.6321, 1.0]
    """

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Tensor) -> Tensor:
        return elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class GELU(Module):
    """``x * Phi(x)`` (``approximate="tanh"`` for the tanh approximation).

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> [round(v, 4) for v in nn.GELU()(sigma.tensor([-1.0, 1.0])).tolist()]
        [-0.1587, 0.8413]
    """

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Sigmoid(Module):
    """``1 / (1 + exp(-x))``.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> nn.Sigmoid()(sigma.tensor([0.0])).tolist()
        [0.5]
    """

    def forward(self, x: Tensor) -> Tensor:
        return sigmoid(x)


class Tanh(Module):
    """Hyperbolic tangent.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> nn.Tanh()(sigma.tensor([0.0])).tolist()
        [0.0]
    """

    def forward(self, x: Tensor) -> Tensor:
        return tanh(x)


class Softplus(Module):
    """``log(1 + exp(beta x)) / beta``, linear where ``beta x > threshold``.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> [round(v, 4) for v in nn.Softplus()(sigma.tensor([0.0, 30.0])).tolist()]
        [0.6931, 30.0]
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x: Tensor) -> Tensor:
        return softplus(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Softmax(Module):
    """Softmax along ``axis`` (PyTorch's ``dim``).

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> nn.Softmax(axis=1)(sigma.zeros(1, 4)).tolist()
        [[0.25, 0.25, 0.25, 0.25]]
    """

    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = axis

    def forward(self, x: Tensor) -> Tensor:
        return softmax(x, self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class LogSoftmax(Module):
    """Log of the softmax along ``axis``, computed stably.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> [round(v, 4) for v in nn.LogSoftmax()(sigma.zeros(2)).tolist()]
        [-0.6931, -0.6931]
    """

    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = axis

    def forward(self, x: Tensor) -> Tensor:
        return log_softmax(x, self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"
