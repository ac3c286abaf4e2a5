"""Gradient clipping by global norm and by value.

Both replace ``param.grad`` with a new tensor instead of scaling it in place:
the autodiff engine may hand the same array to several leaves, and an
in-place change to one gradient would silently change the others.
"""
from __future__ import annotations

import math
from typing import Iterable, List, Union

from sigma.autograd import no_grad
from sigma.tensor import Tensor

__all__ = ["clip_grad_norm", "clip_grad_value", "grad_norm"]


def _with_grads(params: Union[Tensor, Iterable[Tensor]], caller: str) -> List[Tensor]:
    params = [params] if isinstance(params, Tensor) else list(params)
    for i, param in enumerate(params):
        if not isinstance(param, Tensor):
            raise TypeError(f"{caller}: parameter {i} is a {type(param).__name__}, not a sigma.Tensor")
    with_grads = [p for p in params if p.grad is not None]
    backends = {p.grad.backend.name for p in with_grads}
    if len(backends) > 1:
        raise ValueError(f"{caller}: gradients live on several backends {sorted(backends)}; "
                         "clip each backend's parameters separately")
    return with_grads


def grad_norm(params: Union[Tensor, Iterable[Tensor]], norm_type: float = 2.0) -> Tensor:
    """The norm of all gradients taken together, as a one-value tensor (0 when there are none).

    Example:
        >>> import sigma
        >>> a, b = sigma.zeros(1, requires_grad=True), sigma.zeros(1, requires_grad=True)
        >>> a.grad, b.grad = sigma.tensor([3.0]), sigma.tensor([4.0])
        >>> sigma.optim.grad_norm([a, b]).item()
        5.0
    """
    return _total_norm(_with_grads(params, "grad_norm"), float(norm_type))


def _total_norm(params: List[Tensor], norm_type: float) -> Tensor:
    if not params:
        return Tensor(0.0)
    backend = params[0].grad.backend
    xp = backend.xp
    grads = [p.grad.data for p in params]
    # Accumulate in float64 at least, so a float32 sum of millions of
    # squares does not lose the small ones.
    dtype = xp.result_type(xp.float64, *[g.dtype for g in grads])
    if norm_type == math.inf:
        per_grad = [xp.max(xp.abs(g)).astype(dtype) if g.size else xp.zeros((), dtype) for g in grads]
        total = xp.max(xp.stack(per_grad))
    elif norm_type <= 0:
        raise ValueError(f"norm_type must be > 0 or inf, got {norm_type}")
    else:
        per_grad = [xp.sum(xp.abs(g.astype(dtype)) ** norm_type) for g in grads]
        total = xp.sum(xp.stack(per_grad)) ** (1.0 / norm_type)
    return Tensor._make(xp.asarray(total, dtype=grads[0].dtype), backend, False, None)


def clip_grad_norm(params: Union[Tensor, Iterable[Tensor]], max_norm: float, norm_type: float = 2.0,
                   error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients together so that their total norm is at most ``max_norm``.

    As PyTorch's ``clip_grad_norm_``: the factor is
    ``min(1, max_norm / (total_norm + 1e-6))``. Returns the total norm before
    clipping (a one-value tensor). With ``error_if_nonfinite=True`` a NaN or
    infinite norm raises instead of spreading NaN into every gradient.

    Example:
        >>> import sigma
        >>> w = sigma.zeros(2, requires_grad=True)
        >>> w.grad = sigma.tensor([3.0, 4.0])
        >>> sigma.optim.clip_grad_norm([w], max_norm=1.0).item()
        5.0
        >>> [round(v, 4) for v in w.grad.tolist()]
        [0.6, 0.8]
    """
    if not max_norm >= 0:
        raise ValueError(f"clip_grad_norm: max_norm must be >= 0, got {max_norm!r}")
    params = _with_grads(params, "clip_grad_norm")
    total = _total_norm(params, float(norm_type))
    if not params:
        return total
    if error_if_nonfinite and not math.isfinite(total.item()):
        raise RuntimeError(f"clip_grad_norm: the total norm of the gradients is {total.item()}; "
                           "pass error_if_nonfinite=False to clip anyway")
    xp = total.backend.xp
    # Computed on the device, so that clipping does not wait for the GPU.
    factor = xp.minimum(max_norm / (total.data + 1e-6), 1.0)
    with no_grad():
        for param in params:
            grad = param.grad.data
            param.grad = Tensor._make(grad * factor.astype(grad.dtype), param.grad.backend, False, None)
    return total


def clip_grad_value(params: Union[Tensor, Iterable[Tensor]], clip_value: float) -> Tensor:
    """Clip every gradient element into ``[-clip_value, clip_value]``; returns the total 2-norm before clipping.

    Example:
        >>> import sigma
        >>> w = sigma.zeros(3, requires_grad=True)
        >>> w.grad = sigma.tensor([-2.0, 0.5, 3.0])
        >>> _ = sigma.optim.clip_grad_value([w], 1.0)
        >>> w.grad.tolist()
        [-1.0, 0.5, 1.0]
    """
    if not clip_value >= 0:
        raise ValueError(f"clip_grad_value: clip_value must be >= 0, got {clip_value!r}")
    params = _with_grads(params, "clip_grad_value")
    total = _total_norm(params, 2.0)
    with no_grad():
        for param in params:
            grad = param.grad.data
            xp = param.grad.backend.xp
            param.grad = Tensor._make(xp.clip(grad, -clip_value, clip_value).astype(grad.dtype, copy=False),
                                      param.grad.backend, False, None)
    return total
