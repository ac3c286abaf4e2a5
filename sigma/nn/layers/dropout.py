"""Dropout."""
from __future__ import annotations

from sigma.nn.module import Module
from sigma.ops import dropout
from sigma.tensor import Tensor


class Dropout(Module):
    """In training, zero each value with probability ``p`` and scale the rest by 1/(1-p); identity in eval.

    The mask comes from the input's backend stream (``sigma.manual_seed``).

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> layer = nn.Dropout(0.5).eval()
        >>> layer(sigma.ones(3)).tolist()
        [1.0, 1.0, 1.0]
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be a probability in [0, 1], got {p!r}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
