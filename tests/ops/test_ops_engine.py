"""How the autodiff engine behaves: accumulation, freeing the graph, retain_graph,
no_grad, detach, and gradients that must not share memory."""
import numpy as np
import pytest

import sigma
from ops_oracle import torch


def leaf(values, device, dtype="float64"):
    return sigma.tensor(np.asarray(values, dtype=float), dtype=dtype, device=device, requires_grad=True)


def test_a_value_used_several_times_accumulates(device):
    x = leaf([0.5, -1.0, 2.0], device)
    y = x * x + x * 3.0 + x.exp() * x
    y.sum().backward()
    t = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    (t * t + t * 3.0 + t.exp() * t).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-12)


def test_an_intermediate_used_by_several_consumers_gets_their_sum(device):
    x = leaf([1.0, 2.0], device)
    h = x * 2.0
    (h * h + h.sin() + h).sum().backward()
    expected = (2 * 2 * np.array([2.0, 4.0])) + 2 * np.cos([2.0, 4.0]) + 2
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)


def test_grad_accumulates_across_backward_calls(device):
    x = leaf([1.0, 2.0], device)
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    assert x.grad.tolist() == [3.0 + 2.0, 3.0 + 4.0]
    x.zero_grad()
    (x * 3.0).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_second_backward_on_a_freed_graph_raises(device):
    x = leaf([1.0, 2.0], device)
    y = (x.exp() * 2.0).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="already freed.*retain_graph=True"):
        y.backward()


def test_reusing_a_freed_intermediate_raises(device):
    x = leaf([1.0, 2.0], device)
    h = x.exp()
    h.sum().backward()
    with pytest.raises(RuntimeError, match="already freed"):
        (h * 2.0).sum().backward()


def test_retain_graph_allows_two_backwards(device):
    x = leaf([1.0, 2.0], device)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.tolist() == [4.0, 8.0]


def test_backward_on_a_non_scalar_needs_a_gradient(device):
    x = leaf([[1.0, 2.0], [3.0, 4.0]], device)
    y = x * 2.0
    with pytest.raises(RuntimeError, match=r"shape \(2, 2\), not a single value"):
        y.backward()
    with pytest.raises(ValueError, match=r"gradient of shape \(2,\) given for an output of shape \(2, 2\)"):
        y.backward(sigma.ones(2, device=device))
    y.backward(sigma.tensor([[1.0, 0.0], [0.0, 1.0]], device=device))
    assert x.grad.tolist() == [[2.0, 0.0], [0.0, 2.0]]


def test_backward_on_a_tensor_without_graph_raises(device):
    with pytest.raises(RuntimeError, match="does not require grad"):
        sigma.ones(2, device=device).sum().backward()


def test_no_grad_records_nothing(device):
    x = leaf([1.0, 2.0], device)
    with sigma.no_grad():
        y = (x * 2.0).exp().sum()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()
    assert x.grad is None

    @sigma.no_grad()
    def evaluate(t):
        return t * 3.0

    assert not evaluate(x).requires_grad
    assert (x * 3.0).requires_grad  # the decorator restored grad mode


def test_enable_grad_inside_no_grad(device):
    x = leaf([1.0], device)
    with sigma.no_grad():
        with sigma.enable_grad():
            y = x * 2.0
    assert y.requires_grad


def test_detach_cuts_the_gradient(device):
    x = leaf([1.0, 3.0], device)
    (x * x.detach()).sum().backward()
    assert x.grad.tolist() == [1.0, 3.0]
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None


def test_constants_do_not_receive_gradients(device):
    x = leaf([1.0, 2.0], device)
    c = sigma.tensor([3.0, 4.0], dtype="float64", device=device)
    (x * c).sum().backward()
    assert c.grad is None and x.grad.tolist() == [3.0, 4.0]


def test_autograd_grad_leaves_dot_grad_alone(device):
    x = leaf([1.0, 2.0], device)
    (g,) = sigma.autograd.grad((x * x).sum(), [x])
    assert g.tolist() == [2.0, 4.0] and x.grad is None
    unused = leaf([1.0], device)
    with pytest.raises(RuntimeError, match="not used"):
        sigma.autograd.grad((x * 2.0).sum(), [x, unused])
    assert sigma.autograd.grad((x * 2.0).sum(), [x, unused], allow_unused=True)[1] is None


def test_create_graph_gives_a_differentiable_grad(device):
    x = leaf([2.0], device)
    (x ** 3).sum().backward(create_graph=True)
    assert x.grad.requires_grad and x.grad.tolist() == [12.0]
    (second,) = sigma.autograd.grad(x.grad.sum(), [x])
    assert second.tolist() == [12.0]
    y = leaf([2.0], device)
    (y ** 3).sum().backward()
    assert not y.grad.requires_grad


def test_backward_through_a_leaf_itself(device):
    x = leaf([1.0, 2.0], device)
    x.backward(sigma.tensor([5.0, 6.0], dtype="float64", device=device))
    assert x.grad.tolist() == [5.0, 6.0]


def test_leaf_grads_do_not_alias_each_other(device):
    a = leaf([1.0, 2.0], device)
    b = leaf([3.0, 4.0], device)
    (a + b).sum().backward()
    b.grad.data[0] = 100.0
    assert a.grad.tolist() == [1.0, 1.0]


def test_leaf_grads_that_are_views_of_one_array_do_not_alias(device):
    a = leaf([[1.0, 2.0], [3.0, 4.0]], device)
    b = leaf([5.0, 6.0, 7.0, 8.0], device)
    (a.reshape(4) + b).sum().backward()
    b.grad.data[0] = 100.0
    assert a.grad.tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_leaf_grad_does_not_alias_the_gradient_passed_to_backward(device):
    x = leaf([1.0, 2.0], device)
    seed = sigma.tensor([1.0, 1.0], dtype="float64", device=device)
    (x + 1.0).backward(seed)
    x.grad.data[0] = 100.0
    assert seed.tolist() == [1.0, 1.0]


def test_gradient_has_the_dtype_of_its_leaf(device):
    x = leaf([1.0, 2.0], device, dtype="float32")
    y = sigma.tensor([3.0, 4.0], dtype="float64", device=device)
    (x * y).sum().backward()
    assert x.grad.dtype == np.float32


def test_requires_grad_only_for_floats(device):
    with pytest.raises(TypeError, match="only float tensors can require gradients"):
        sigma.tensor([1, 2], device=device, requires_grad=True)


def test_operations_on_constants_do_not_record(device):
    a = sigma.tensor([1.0, 2.0], device=device)
    y = (a * 2.0).exp().sum()
    assert not y.requires_grad and y.grad_fn is None
