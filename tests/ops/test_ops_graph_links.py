"""Value-less graph links: an intermediate that only additions and ReLUs consume is freed after the forward
pass, and gradients (first and second order, shared inputs, autograd.grad on intermediates) are unchanged."""
import gc
import weakref

import numpy as np
import pytest

import sigma
from sigma import nn

torch = pytest.importorskip("torch")


def test_an_intermediate_read_only_by_relu_is_freed_after_forward():
    x = sigma.randn(4, 8)
    layer = nn.Linear(8, 8)
    pre_activation = layer(x)          # linear + bias: the sum is read only by the ReLU
    watcher = weakref.ref(pre_activation.data)
    out = pre_activation.relu()
    del pre_activation
    gc.collect()
    assert watcher() is None           # nothing keeps the pre-activation's values
    out.sum().backward()
    assert layer.weight.grad is not None and np.abs(layer.weight.grad.numpy()).sum() > 0


def test_an_intermediate_a_multiplication_reads_stays_alive():
    x = sigma.randn(4, 8, requires_grad=True)
    h = x * 3.0
    watcher = weakref.ref(h.data)
    out = (h * h).sum()                # a product needs its inputs' values in backward
    del h
    gc.collect()
    assert watcher() is not None
    out.backward()
    np.testing.assert_allclose(x.grad.numpy(), 18.0 * x.numpy(), rtol=1e-5)


def test_gradients_match_torch_through_shared_and_linked_intermediates():
    rng = np.random.default_rng(0)
    a, w = rng.normal(size=(5, 6)), rng.normal(size=(6, 6))
    sa, sw = (sigma.tensor(v, dtype="float64", requires_grad=True) for v in (a, w))
    ta, tw = (torch.tensor(v, requires_grad=True) for v in (a, w))
    results = []
    for x, weight, lib in ((sa, sw, sigma), (ta, tw, torch)):
        h = x @ weight
        r = h.relu() if lib is sigma else torch.relu(h)
        y = r + h                       # h reaches the output twice: through the ReLU's link and directly
        z = (y + r * r).sum()
        results.append(z)
    results[0].backward()
    results[1].backward()
    np.testing.assert_allclose(sa.grad.numpy(), ta.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(sw.grad.numpy(), tw.grad.numpy(), rtol=1e-12)


def test_autograd_grad_of_a_linked_intermediate_and_second_order():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(3, 4))
    sx = sigma.tensor(v, dtype="float64", requires_grad=True)
    tx = torch.tensor(v, requires_grad=True)
    sh, th = sx * 2.0 + 1.0, tx * 2.0 + 1.0
    s_out, t_out = (sh.relu() + sh).tanh().sum(), (torch.relu(th) + th).tanh().sum()
    s_dh, = sigma.autograd.grad(s_out, [sh], create_graph=True)
    t_dh, = torch.autograd.grad(t_out, [th], create_graph=True)
    np.testing.assert_allclose(s_dh.numpy(), t_dh.detach().numpy(), rtol=1e-10, atol=1e-14)
    (s_dh * s_dh).sum().backward()
    (t_dh * t_dh).sum().backward()
    np.testing.assert_allclose(sx.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert np.abs(sx.grad.numpy()).max() > 1e-3


def test_a_second_backward_through_a_freed_graph_is_still_refused():
    x = sigma.randn(3, requires_grad=True)
    h = x * 2.0
    out = (h.relu() + h).sum()
    out.backward()
    with pytest.raises(RuntimeError, match="already freed"):
        out.backward()


def test_max_pooling_frees_its_input_and_its_gradient_matches_torch():
    rng = np.random.default_rng(2)
    v = rng.normal(size=(2, 3, 6, 6))
    sx = sigma.tensor(v, dtype="float64", requires_grad=True)
    hidden = sx * 1.5
    watcher = weakref.ref(hidden.data)
    pooled = sigma.max_pool2d(hidden, 2)
    del hidden
    gc.collect()
    assert watcher() is None
    (pooled * pooled).sum().backward()
    tx = torch.tensor(v, requires_grad=True)
    tp = torch.nn.functional.max_pool2d(tx * 1.5, 2)
    (tp * tp).sum().backward()
    np.testing.assert_allclose(sx.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
