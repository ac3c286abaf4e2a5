"""Finite-difference checks of gradients (first and second order).

An analytic gradient is checked the cheap way: one backward pass with random
weights ``v`` on the outputs gives the vector-Jacobian product ``v^T J``,
and central differences of the scalar ``v . f(x)`` give the same vector
numerically, one input element at a time. A wrong derivative is caught with
probability one, because a random ``v`` is never orthogonal to the error.
"""
from __future__ import annotations

from typing import Any, Callable, List, Sequence

import numpy as np

from sigma.autograd.engine import grad as _autograd_grad
from sigma.autograd.grad_mode import enable_grad, no_grad
from sigma.tensor import Tensor


class GradcheckError(AssertionError):
    """The analytic and the numerical gradient disagree."""


def gradcheck(function: Callable[..., Any], inputs: Sequence[Any], eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, seed: int = 0) -> bool:
    """Check ``function``'s backward against central finite differences.

    ``function`` is called as ``function(*inputs)`` and returns a tensor or a
    tuple of tensors. Every input tensor with ``requires_grad=True`` is
    checked and must be float64 (float32 differences are too coarse); other
    inputs are passed through untouched. The inputs are not modified: the
    check perturbs copies.

    Returns ``True``, or raises :class:`GradcheckError` naming the input, the
    worst element and both values. An element passes when
    ``|analytic - numerical| <= atol + rtol * |numerical|``.

    Example:
        >>> import sigma
        >>> from sigma.testing import gradcheck
        >>> x = sigma.tensor([0.5, -1.0, 2.0], dtype="float64", requires_grad=True)
        >>> gradcheck(lambda t: (t * t).sin(), [x])
        True
    """
    inputs = list(inputs)
    positions = _differentiable_positions("gradcheck", inputs)
    probes = [_fresh_leaf(inputs[i]) if i in positions else inputs[i] for i in range(len(inputs))]
    variables = [probes[i] for i in positions]
    rng = np.random.default_rng(seed)

    outputs = _as_list(function(*probes))
    float_outputs = [o for o in outputs if isinstance(o, Tensor) and o.dtype.kind == "f"]
    if not float_outputs:
        raise ValueError("gradcheck: the function returned no float tensor to differentiate")
    weights = [rng.standard_normal(o.shape) for o in float_outputs]

    analytic = _vector_jacobian(float_outputs, weights, variables)

    def projected(*arguments) -> float:
        with no_grad():
            values = [o for o in _as_list(function(*arguments)) if isinstance(o, Tensor) and o.dtype.kind == "f"]
        return float(sum(np.sum(o.numpy().astype(np.float64) * w) for o, w in zip(values, weights)))

    for position, variable, expected in zip(positions, variables, analytic):
        numerical = _numerical_gradient(projected, probes, variable, eps)
        _compare(f"input {position}", expected, numerical, atol, rtol)
    return True


def gradgradcheck(function: Callable[..., Any], inputs: Sequence[Any], eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, seed: int = 0) -> bool:
    """Check second derivatives: the gradient of ``function`` (with fixed random
    output weights) must itself pass :func:`gradcheck`.

    This exercises every primitive's backward as a differentiable function,
    which is what ``create_graph=True`` relies on.

    Example:
        >>> import sigma
        >>> from sigma.testing.gradcheck import gradgradcheck
        >>> x = sigma.tensor([0.5, -1.0], dtype="float64", requires_grad=True)
        >>> gradgradcheck(lambda t: t.tanh() * t.exp(), [x])
        True
    """
    inputs = list(inputs)
    positions = _differentiable_positions("gradgradcheck", inputs)
    rng = np.random.default_rng(seed + 1)
    output_weights: List[np.ndarray] = []

    def first_derivative(*arguments):
        # gradcheck evaluates its function under no_grad; this one needs a graph to differentiate.
        with enable_grad():
            outputs = [o for o in _as_list(function(*arguments)) if isinstance(o, Tensor) and o.dtype.kind == "f"]
        if not output_weights:
            output_weights.extend(rng.standard_normal(o.shape) for o in outputs)
        variables = [arguments[i] for i in positions]
        return tuple(_vector_jacobian(outputs, output_weights, variables, create_graph=True))

    return gradcheck(first_derivative, inputs, eps=eps, atol=atol, rtol=rtol, seed=seed)


def _differentiable_positions(op: str, inputs: List[Any]) -> List[int]:
    positions = []
    for i, value in enumerate(inputs):
        if isinstance(value, Tensor) and value.requires_grad:
            if value.dtype != np.float64:
                raise TypeError(f"{op}: input {i} is {value.dtype}; finite differences need float64 "
                                "(make it with dtype='float64' or call .double())")
            positions.append(i)
    if not positions:
        raise ValueError(f"{op}: no input has requires_grad=True, so there is nothing to check")
    return positions


def _fresh_leaf(tensor: Tensor) -> Tensor:
    # A contiguous private copy: perturbing it in place leaves the caller's data alone.
    copy = tensor.backend.xp.array(tensor.data, copy=True, order="C")
    return Tensor._make(copy, tensor.backend, True, None)


def _as_list(result: Any) -> list:
    return list(result) if isinstance(result, (tuple, list)) else [result]


def _vector_jacobian(outputs, weights, variables, create_graph: bool = False):
    """``sum_k weights[k] . d outputs[k] / d variable`` for each variable (zeros where unused)."""
    connected = [(o, w) for o, w in zip(outputs, weights) if o.requires_grad]
    if not connected:
        return [v.zeros_like() for v in variables]
    seeds = [Tensor._make(o.backend.asarray(w.astype(o.dtype)), o.backend, False, None) for o, w in connected]
    grads = _autograd_grad([o for o, _ in connected], variables, grad_outputs=seeds,
                           create_graph=create_graph, retain_graph=create_graph, allow_unused=True)
    return [g if g is not None else v.zeros_like() for g, v in zip(grads, variables)]


def _numerical_gradient(projected: Callable[..., float], probes: list, variable: Tensor, eps: float) -> np.ndarray:
    flat = variable.data.reshape(-1)  # a view: the probe is contiguous
    result = np.empty(flat.shape[0], dtype=np.float64)
    for j in range(flat.shape[0]):
        original = float(flat[j])
        flat[j] = original + eps
        above = projected(*probes)
        flat[j] = original - eps
        below = projected(*probes)
        flat[j] = original
        result[j] = (above - below) / (2.0 * eps)
    return result.reshape(variable.shape)


def _compare(name: str, analytic: Tensor, numerical: np.ndarray, atol: float, rtol: float) -> None:
    got = analytic.numpy().astype(np.float64)
    if got.shape != numerical.shape:
        raise GradcheckError(f"gradcheck: {name}: analytic gradient has shape {got.shape}, "
                             f"the input {numerical.shape}")
    excess = np.abs(got - numerical) - (atol + rtol * np.abs(numerical))
    excess = np.where(np.isnan(got) | np.isnan(numerical), np.inf, excess)
    failing = int(np.count_nonzero(excess > 0))
    if failing:
        worst = np.unravel_index(int(np.argmax(excess)), excess.shape)
        raise GradcheckError(
            f"gradcheck: {name} (shape {got.shape}): {failing} of {got.size} elements differ; worst at "
            f"{tuple(int(i) for i in worst)}: analytic {float(got[worst])!r}, numerical {float(numerical[worst])!r} "
            f"(allowed {atol} + {rtol} * |numerical|)")
