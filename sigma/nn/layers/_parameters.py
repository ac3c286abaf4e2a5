"""Helpers layers share for making their parameters."""
from __future__ import annotations

import math
from typing import Any, Tuple

from sigma.nn import init
from sigma.nn.parameter import Parameter
from sigma.tensor import zeros


def new_parameter(shape: Tuple[int, ...], dtype: Any = None, device: Any = None) -> Parameter:
    """A zero-filled parameter; the layer's ``reset_parameters`` fills it."""
    return Parameter(zeros(tuple(shape), dtype=dtype, device=device))


def fill_like_torch(weight: Parameter, bias: "Parameter | None") -> None:
    """PyTorch's default for Linear and Conv: He uniform with slope sqrt(5), i.e. U(+-1/sqrt(fan_in)),
    and the bias U(+-1/sqrt(fan_in)) too."""
    init.he_uniform(a=math.sqrt(5.0))(weight)
    if bias is not None:
        fan_in, _ = init.fans(weight.shape)
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        if bound > 0:
            init.uniform(-bound, bound)(bias)


def check_positive_int(layer: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")
    return value
