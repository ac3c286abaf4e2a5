"""``Parameter``: a tensor that a :class:`~sigma.nn.Module` owns and trains."""
from __future__ import annotations

from typing import Any

import numpy as np

from sigma.tensor import Tensor


class Parameter(Tensor):
    """A float tensor that a module registers as trainable.

    Assigning a ``Parameter`` to an attribute of a ``Module`` makes it part of
    ``module.parameters()`` and ``module.state_dict()``. A ``Parameter`` made
    from a tensor shares that tensor's array (no copy).

    Example:
        >>> import sigma
        >>> from sigma.nn import Parameter
        >>> p = Parameter(sigma.zeros(2, 3))
        >>> p.requires_grad, p.shape
        (True, (2, 3))
    """

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True, dtype: Any = None, device: Any = None):
        super().__init__(data, dtype=dtype, device=device)
        if self.data.dtype.kind != "f":
            raise TypeError(f"Parameter: parameters must be float tensors, got dtype {self.data.dtype}")
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", precision=4, threshold=20)
        extras = [f"shape={self.shape}"]
        if self.data.dtype != np.float32:
            extras.append(f"dtype={self.data.dtype}")
        if self.backend.name != "cpu":
            extras.append(f"device={self.backend.name!r}")
        if not self.requires_grad:
            extras.append("requires_grad=False")
        return "Parameter(" + ", ".join([body] + extras) + ")"
