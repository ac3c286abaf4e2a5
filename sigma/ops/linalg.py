"""Matrix multiplication (batched, broadcasting like numpy's ``matmul``)."""
from __future__ import annotations

from sigma.autograd.function import BinaryFunction, unbroadcast
from sigma.tensor import Tensor


class MatMul(BinaryFunction):
    """``a @ b`` for tensors with at least two dimensions."""
    __slots__ = ()

    def forward(self, a, b):
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(f"matmul: {a.shape} @ {b.shape}: inner dimensions {a.shape[-1]} and "
                             f"{b.shape[-2]} differ")
        if a.dtype != b.dtype:
            raise TypeError(f"matmul: {a.shape} @ {b.shape}: dtypes {a.dtype} and {b.dtype} differ; "
                            "cast one with .astype()")
        try:
            return self.backend.matmul(a, b)
        except ValueError:
            raise ValueError(f"matmul: batch shapes of {a.shape} and {b.shape} cannot be broadcast") from None

    def backward(self, grad):
        a, b = self.inputs
        grad_a = grad_b = None
        if a.requires_grad:
            grad_a = unbroadcast(grad @ b.transpose(-1, -2), a.data.shape)
        if b.requires_grad:
            grad_b = unbroadcast(a.transpose(-1, -2) @ grad, b.data.shape)
        return grad_a, grad_b


class LinearMap(BinaryFunction):
    """``x @ w.T`` for ``x`` (..., in) and ``w`` (out, in): a linear layer's product.

    A primitive of its own (rather than ``x @ w.T``) so that the weight's gradient is computed as
    ``grad.T @ x`` and comes out row-major like the weight: through a transpose it would be a
    column-major view, and the optimiser's fused kernels would copy it every step.
    """
    __slots__ = ()

    def forward(self, x, w):
        if x.ndim == 2:
            return self.backend.matmul(x, w.T)
        rows = x.reshape(-1, x.shape[-1])
        return self.backend.matmul(rows, w.T).reshape(x.shape[:-1] + (w.shape[0],))

    def backward(self, grad):
        x, w = self.inputs
        grad_x = grad @ w if x.requires_grad else None
        grad_w = None
        if w.requires_grad:
            rows = grad.reshape(-1, grad.shape[-1])
            grad_w = rows.transpose(0, 1) @ x.reshape(-1, x.shape[-1])
        return grad_x, grad_w


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product with numpy's rules, 1-d operands included.

    Example:
        >>> import sigma
        >>> (sigma.ones(2, 3) @ sigma.ones(3)).tolist()
        [3.0, 3.0]
    """
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least one dimension, got {a.shape} @ {b.shape}")
    if a.ndim >= 2 and b.ndim >= 2:
        return MatMul.apply(a, b)
    left = a.reshape(1, a.shape[0]) if a.ndim == 1 else a
    right = b.reshape(b.shape[0], 1) if b.ndim == 1 else b
    out = MatMul.apply(left, right)
    # Drop the added row axis first: it sits at -2 only while the column axis is still there.
    if a.ndim == 1:
        out = out.reshape(out.shape[:-2] + out.shape[-1:])
    if b.ndim == 1:
        out = out.reshape(out.shape[:-1])
    return out
