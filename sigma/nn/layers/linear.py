"""The fully connected layer."""
from __future__ import annotations

from typing import Any

from sigma.nn.functional import linear
from sigma.nn.layers._parameters import check_positive_int, fill_like_torch, new_parameter
from sigma.nn.module import Module
from sigma.tensor import Tensor


class Linear(Module):
    """``y = x @ weight.T + bias`` with ``weight`` (out_features, in_features), as in PyTorch.

    Initialised like PyTorch: weight and bias uniform in +-1/sqrt(in_features).
    Input (..., in_features) -> output (..., out_features).

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> layer = nn.Linear(3, 2)
        >>> layer.weight.shape, layer(sigma.ones(5, 3)).shape
        ((2, 3), (5, 2))
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: Any = None,
                 dtype: Any = None):
        super().__init__()
        self.in_features = check_positive_int("Linear", "in_features", in_features)
        self.out_features = check_positive_int("Linear", "out_features", out_features)
        self.weight = new_parameter((out_features, in_features), dtype, device)
        self.bias = new_parameter((out_features,), dtype, device) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fill_like_torch(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
