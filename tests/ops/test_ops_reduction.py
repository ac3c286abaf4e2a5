"""Reductions with axis/keepdims (tuple and negative axes), ties in max/min,
variance and standard deviation, logsumexp, argmax/argmin."""
import numpy as np
import pytest

import sigma
from ops_oracle import check, compare_with_torch, torch, torch_axis

AXES = [None, 0, -1, 1, (0, 2), (-1, 0), (0, 1, 2)]


def reduction(name, axis, keepdims, **options):
    """The sigma and torch forms of one reduction."""
    def mine(x):
        return getattr(sigma, name)(x, axis=axis, keepdims=keepdims, **options)

    def theirs(x):
        dim = torch_axis(axis, x.ndim)
        if name in ("sum", "mean", "logsumexp"):
            return getattr(torch, name)(x, dim=dim, keepdim=keepdims)
        if name in ("max", "min"):
            return getattr(torch, "a" + name)(x, dim=dim, keepdim=keepdims)
        return getattr(torch, name)(x, dim=dim, keepdim=keepdims, correction=options.get("correction", 0))

    return mine, theirs


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "logsumexp"])
def test_reductions_over_axes(device, rng, name, axis, keepdims):
    x = rng.standard_normal((2, 3, 4))
    check(*reduction(name, axis, keepdims), x, device=device)


@pytest.mark.parametrize("correction", [0, 1])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, -1, (0, 2)], ids=str)
@pytest.mark.parametrize("name", ["var", "std"])
def test_variance_and_standard_deviation(device, rng, name, axis, keepdims, correction):
    x = rng.standard_normal((2, 3, 4)) + 1.0
    check(*reduction(name, axis, keepdims, correction=correction), x, device=device)


def test_method_forms_match_the_functions(device, rng):
    x = rng.standard_normal((3, 4))
    check(lambda t: t.sum(axis=-1), lambda t: t.sum(dim=-1), x, device=device)
    check(lambda t: t.mean(), lambda t: t.mean(), x, device=device)
    check(lambda t: t.max(axis=0, keepdims=True), lambda t: t.amax(dim=0, keepdim=True), x, device=device)
    check(lambda t: t.var(axis=1, correction=1), lambda t: t.var(dim=1), x, device=device)


@pytest.mark.parametrize("axis", [None, 1, 0, (0, 1)], ids=str)
@pytest.mark.parametrize("name", ["max", "min"])
def test_ties_share_the_gradient_evenly_like_amax(device, name, axis):
    x = np.array([[1.0, 3.0, 3.0, 0.0],
                  [2.0, 2.0, 2.0, 2.0],
                  [-1.0, 3.0, -1.0, 0.5]])
    if name == "min":
        x = -x
    check(*reduction(name, axis, False), x, device=device, finite_differences=False)


def test_max_of_a_0d_tensor_and_a_one_element_axis(device, rng):
    check(*reduction("max", None, False), np.array(1.5), device=device)
    check(*reduction("max", 1, False), rng.standard_normal((3, 1, 2)), device=device)


def test_logsumexp_is_stable_for_large_values(device):
    x = np.array([[1000.0, 1000.0, -1000.0], [-800.0, -801.0, -5000.0]])
    compare_with_torch(*reduction("logsumexp", -1, False), [x], device, "float64")
    # In float32 PyTorch's gradient exp(x - lse) carries lse's rounding (its ulp
    # at 1000 is 6e-5), so judge Sigma's float32 result by the exact one instead.
    t = sigma.tensor(x, dtype="float32", device=device, requires_grad=True)
    value = sigma.logsumexp(t, axis=-1)
    value.sum().backward()
    exact = np.array([1000.0 + np.log(2.0), -800.0 + np.log1p(np.exp(-1.0))])
    np.testing.assert_allclose(value.numpy(), exact, rtol=1e-6)
    softmax = np.array([[0.5, 0.5, 0.0], [1 / (1 + np.exp(-1.0)), 1 / (1 + np.exp(1.0)), 0.0]])
    np.testing.assert_allclose(t.grad.numpy(), softmax, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_and_argmin_match_torch(device, rng, name, axis, keepdims):
    x = rng.standard_normal((3, 5))
    mine = getattr(sigma, name)(sigma.tensor(x, device=device), axis=axis, keepdims=keepdims)
    if axis is None:
        theirs = getattr(torch, name)(torch.tensor(x)).numpy()
        if keepdims:
            theirs = theirs.reshape(1, 1)
    else:
        theirs = getattr(torch, name)(torch.tensor(x), dim=axis, keepdim=keepdims).numpy()
    assert mine.dtype.kind == "i" and not mine.requires_grad
    np.testing.assert_array_equal(mine.numpy(), theirs)


def test_argmax_carries_no_gradient(device):
    x = sigma.tensor([[1.0, 5.0], [7.0, 2.0]], device=device, requires_grad=True)
    index = x.argmax(axis=1)
    assert index.tolist() == [1, 0] and index.grad_fn is None


def test_reductions_keep_float32(device, rng):
    x = sigma.tensor(rng.standard_normal((4, 3)), dtype="float32", device=device)
    for name in ("sum", "mean", "max", "min", "var", "std", "logsumexp"):
        assert getattr(sigma, name)(x, axis=0).dtype == np.float32, name


def test_sum_over_no_axes_is_the_identity_as_in_numpy(device, rng):
    # (torch.sum(dim=()) would reduce everything; Sigma follows numpy here.)
    x = rng.standard_normal((2, 3))
    check(lambda t: t.sum(axis=()), lambda t: t.clone(), x, device=device)


@pytest.mark.parametrize("correction", [0, 1])
def test_std_of_constant_values_has_zero_gradient_like_torch(device, correction):
    x = np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 4.0]])
    check(lambda t: t.std(axis=1, correction=correction), lambda t: t.std(dim=1, correction=correction), x,
          device=device, finite_differences=False)


@pytest.mark.parametrize("axis", [0, -1, (0,)], ids=str)
@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "logsumexp"])
def test_reducing_a_0d_tensor_over_axis_0_or_minus_1(device, name, axis):
    # PyTorch treats a 0-d tensor as having one axis of length 1 here.
    check(*reduction(name, axis, False), np.array(1.25), device=device)
