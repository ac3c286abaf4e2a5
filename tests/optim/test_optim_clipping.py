"""Gradient clipping: results, new gradient tensors (never in-place), edge cases."""
import numpy as np
import pytest

import sigma
import sigma.optim


def test_clipping_replaces_gradients_that_share_memory():
    a, b = sigma.zeros(2, requires_grad=True), sigma.zeros(2, requires_grad=True)
    (a + b).sum().backward()  # the engine may hand both leaves gradients over one array
    a.grad = b.grad  # make the sharing certain
    shared = b.grad
    total = sigma.optim.clip_grad_norm([a], max_norm=0.5)
    assert total.item() == pytest.approx(np.sqrt(2))
    assert shared.tolist() == [1.0, 1.0] and b.grad.tolist() == [1.0, 1.0]
    np.testing.assert_allclose(a.grad.numpy(), [0.5 / np.sqrt(2)] * 2, rtol=1e-5)
    sigma.optim.clip_grad_value([a, b], 0.1)
    assert shared.tolist() == [1.0, 1.0]
    assert b.grad.tolist() == pytest.approx([0.1, 0.1])


def test_small_gradients_are_left_as_they_are_and_the_norm_is_returned():
    w = sigma.zeros(3, requires_grad=True)
    w.grad = sigma.tensor([0.1, -0.2, 0.2])
    total = sigma.optim.clip_grad_norm(w, max_norm=10.0)
    assert total.item() == pytest.approx(0.3)
    np.testing.assert_allclose(w.grad.numpy(), [0.1, -0.2, 0.2], rtol=1e-6)
    assert w.grad.dtype == np.float32 and total.dtype == np.float32


def test_parameters_without_gradients_are_skipped():
    a, b = sigma.zeros(2, requires_grad=True), sigma.zeros(2, requires_grad=True)
    a.grad = sigma.tensor([3.0, 4.0])
    assert sigma.optim.clip_grad_norm([a, b], 1.0).item() == pytest.approx(5.0)
    assert b.grad is None
    assert sigma.optim.clip_grad_norm([b], 1.0).item() == 0.0
    assert sigma.optim.grad_norm([a, b], norm_type=1).item() == pytest.approx(1.4, rel=1e-5)  # 0.6 + 0.8


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_non_finite_norm_is_reported_when_asked():
    w = sigma.zeros(2, requires_grad=True)
    w.grad = sigma.tensor([float("inf"), 1.0])
    with pytest.raises(RuntimeError, match="total norm of the gradients is inf"):
        sigma.optim.clip_grad_norm([w], 1.0, error_if_nonfinite=True)
    assert w.grad.tolist() == [float("inf"), 1.0]  # the refusal changed nothing
    assert sigma.optim.clip_grad_norm([w], 1.0).item() == float("inf")
    # As in PyTorch: the factor is 0, so inf * 0 gives NaN for a NaN check to stop.
    assert np.isnan(w.grad.numpy()[0]) and w.grad.numpy()[1] == 0.0


@pytest.mark.parametrize("call,words", [
    (lambda w: sigma.optim.clip_grad_norm([w], -1.0), "max_norm must be >= 0, got -1.0"),
    (lambda w: sigma.optim.clip_grad_norm([w], 1.0, norm_type=0), "norm_type must be > 0 or inf, got 0.0"),
    (lambda w: sigma.optim.clip_grad_value([w], float("nan")), "clip_value must be >= 0, got nan"),
])
def test_bad_arguments_are_explained(call, words):
    w = sigma.zeros(2, requires_grad=True)
    w.grad = sigma.ones(2)
    with pytest.raises(ValueError) as raised:
        call(w)
    assert words in str(raised.value)


def test_non_tensors_are_explained():
    with pytest.raises(TypeError, match="parameter 0 is a ndarray, not a sigma.Tensor"):
        sigma.optim.clip_grad_norm([np.zeros(2)], 1.0)
