"""The checks the op tests share: PyTorch as the oracle for values and
gradients, finite differences (``sigma.testing.gradcheck``) for gradients.

``check(sigma_fn, torch_fn, *arrays, device=...)`` runs one op case three
ways: against PyTorch in float64 (to 1e-10 relative) and in float32 (to 1e-5
relative), forward values and ``torch.autograd`` gradients under the same
random output weights; then against central differences in float64.
Float arrays become inputs that require grad; integer and bool arrays are
passed as constants (labels, indices).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pytest

import sigma
from sigma.testing import gradcheck

torch = pytest.importorskip("torch")

RELATIVE_TOLERANCE = {"float64": 1e-10, "float32": 1e-5}
DTYPES = ("float64", "float32")


def as_list(result) -> list:
    return list(result) if isinstance(result, (tuple, list)) else [result]


def is_float(array) -> bool:
    return np.asarray(array).dtype.kind == "f"


def to_sigma(array, dtype: str, device: str):
    """A float array becomes a leaf that requires grad; other arrays stay constants."""
    array = np.asarray(array)
    if is_float(array):
        return sigma.tensor(array.astype(dtype), device=device, requires_grad=True)
    return sigma.tensor(array, device=device)


def to_torch(array, dtype: str):
    array = np.asarray(array)
    if is_float(array):
        return torch.tensor(array.astype(dtype), requires_grad=True)
    return torch.tensor(array)


def host(value) -> np.ndarray:
    if isinstance(value, sigma.Tensor):
        return value.numpy()
    if isinstance(value, torch.Tensor):
        return value.detach().numpy()
    return np.asarray(value)


def assert_close(actual, expected, dtype: str, what: str) -> None:
    """Elementwise relative tolerance, with an absolute floor scaled to the data
    so that values near zero are judged on the array's scale, not their own."""
    actual, expected = host(actual), host(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    if expected.dtype.kind in "biu":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    rtol = RELATIVE_TOLERANCE[dtype]
    finite = np.abs(expected[np.isfinite(expected)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64), rtol=rtol,
                               atol=rtol * scale, err_msg=what)


def compare_with_torch(sigma_fn: Callable, torch_fn: Callable, arrays: Sequence, device: str, dtype: str,
                       gradients: bool = True) -> None:
    """Forward values and input gradients of ``sigma_fn`` against ``torch_fn`` in ``dtype``."""
    sigma_inputs = [to_sigma(a, dtype, device) for a in arrays]
    torch_inputs = [to_torch(a, dtype) for a in arrays]
    sigma_outputs = as_list(sigma_fn(*sigma_inputs))
    torch_outputs = as_list(torch_fn(*torch_inputs))
    assert len(sigma_outputs) == len(torch_outputs), "number of outputs differs"
    for k, (mine, theirs) in enumerate(zip(sigma_outputs, torch_outputs)):
        assert_close(mine, theirs, dtype, f"{dtype} forward, output {k}")
        if theirs.dtype.is_floating_point:
            assert mine.dtype == np.dtype(dtype), f"{dtype} forward, output {k} has dtype {mine.dtype}"
    if not gradients:
        return

    variables = [i for i, a in enumerate(arrays) if is_float(a)]
    pairs = [(s, t) for s, t in zip(sigma_outputs, torch_outputs) if t.requires_grad]
    assert pairs, "no output depends on a float input; pass gradients=False"
    assert all(s.requires_grad for s, _ in pairs), "a sigma output does not require grad where torch's does"
    rng = np.random.default_rng(1234)
    weights = [rng.standard_normal(tuple(t.shape)).astype(dtype) for _, t in pairs]
    sigma_grads = sigma.autograd.grad([s for s, _ in pairs], [sigma_inputs[i] for i in variables],
                                      grad_outputs=[sigma.tensor(w, device=device) for w in weights],
                                      allow_unused=True)
    torch_grads = torch.autograd.grad([t for _, t in pairs], [torch_inputs[i] for i in variables],
                                      grad_outputs=[torch.tensor(w) for w in weights], allow_unused=True)
    for i, mine, theirs in zip(variables, sigma_grads, torch_grads):
        shape = np.shape(arrays[i])
        expected = np.zeros(shape, dtype) if theirs is None else host(theirs)
        if mine is None:
            mine = np.zeros(shape, dtype)
        else:
            assert mine.dtype == np.dtype(dtype), f"{dtype} gradient of input {i} has dtype {mine.dtype}"
        assert_close(mine, expected, dtype, f"{dtype} gradient of input {i}")


def check(sigma_fn: Callable, torch_fn: Callable, *arrays, device: str = "cpu", gradients: bool = True,
          finite_differences: bool = True) -> None:
    """The full check of one op case; see the module docstring.

    Turn ``finite_differences`` off where the inputs sit on a kink on purpose
    (ties, clip boundaries): the derivative there is a convention, not a limit.
    """
    for dtype in DTYPES:
        compare_with_torch(sigma_fn, torch_fn, arrays, device, dtype, gradients)
    if gradients and finite_differences:
        assert gradcheck(sigma_fn, [to_sigma(a, "float64", device) for a in arrays])


def torch_axis(axis, ndim: int):
    """Sigma's ``axis=None`` (all axes) in the form every torch reduction accepts."""
    return tuple(range(ndim)) if axis is None else axis
