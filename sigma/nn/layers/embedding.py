"""Embedding: a trainable lookup table."""
from __future__ import annotations

from typing import Any, Optional

from sigma.nn import init
from sigma.nn.layers._parameters import check_positive_int, new_parameter
from sigma.nn.module import Module
from sigma.ops import embedding, where
from sigma.tensor import Tensor


class Embedding(Module):
    """Rows of ``weight`` (num_embeddings, embedding_dim) picked by integer indices of any shape.

    Initialised N(0, 1), as in PyTorch. The row ``padding_idx`` (if given)
    starts at zero and receives no gradient, so it stays put.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> table = nn.Embedding(10, 4, padding_idx=0)
        >>> out = table(sigma.tensor([[0, 3], [9, 0]]))
        >>> out.shape, out[0, 0].tolist()
        ((2, 2, 4), [0.0, 0.0, 0.0, 0.0])
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: Optional[int] = None,
                 device: Any = None, dtype: Any = None):
        super().__init__()
        self.num_embeddings = check_positive_int("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = check_positive_int("Embedding", "embedding_dim", embedding_dim)
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} out of range for {num_embeddings} rows")
            padding_idx %= num_embeddings
        self.padding_idx = padding_idx
        self.weight = new_parameter((num_embeddings, embedding_dim), dtype, device)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal()(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, indices: Any) -> Tensor:
        out = embedding(indices, self.weight)
        if self.padding_idx is None:
            return out
        data = indices.data if isinstance(indices, Tensor) else self.weight.backend.asarray(indices)
        trained = (data != self.padding_idx)[..., None]
        # Same values either way; only the padding positions are cut from the graph.
        return where(trained, out, out.detach())

    def extra_repr(self) -> str:
        extra = f"{self.num_embeddings}, {self.embedding_dim}"
        return extra + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")
