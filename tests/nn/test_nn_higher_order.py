"""Layers stay differentiable to second order: the fused normalisation's closed-form backward
is swapped for a differentiable one under create_graph, and recurrent layers are plain graphs."""
import numpy as np
import pytest

import sigma
from sigma import nn
from sigma.nn import functional as F
from sigma.testing import gradcheck, gradgradcheck

from nn_oracle import assert_close, copy_weights

torch = pytest.importorskip("torch")


def _tensors(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [sigma.tensor(rng.standard_normal(s), dtype="float64", requires_grad=True) for s in shapes]


NORMALISATIONS = {
    "batch-norm-train": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), (4, 3, 2), (3,)),
    "batch-norm-eval": (lambda x, w, b: F.batch_norm(x, sigma.tensor([0.1, -0.2, 0.3], dtype="float64"),
                                                     sigma.tensor([1.5, 0.5, 2.0], dtype="float64"), w, b),
                        (4, 3, 2), (3,)),
    "layer-norm": (lambda x, w, b: F.layer_norm(x, (2, 3), w.reshape(2, 3), b.reshape(2, 3)), (3, 2, 3), (6,)),
    "instance-norm": (lambda x, w, b: F.instance_norm(x, weight=w, bias=b), (2, 3, 2, 2), (3,)),
}


@pytest.mark.parametrize("name", list(NORMALISATIONS))
def test_normalisation_first_and_second_derivatives_match_finite_differences(name):
    function, x_shape, parameter_shape = NORMALISATIONS[name]
    inputs = _tensors(x_shape, parameter_shape, parameter_shape)
    assert gradcheck(function, inputs)
    assert gradgradcheck(function, inputs)


def test_normalisation_without_affine_parameters_has_correct_second_derivatives():
    x, = _tensors((5, 4))
    assert gradgradcheck(lambda t: F.layer_norm(t, (4,)) * sigma.tensor(np.arange(4.0)), [x])
    assert gradgradcheck(lambda t: F.batch_norm(t, None, None, training=True) ** 2, [x])


def test_batch_norm_gradient_penalty_matches_torch():
    # d/dparams of |d loss / d x|^2, the WGAN-GP pattern, through a BatchNorm layer
    layer, reference = nn.BatchNorm1d(3).to(dtype="float64"), torch.nn.BatchNorm1d(3).double()
    with torch.no_grad():
        reference.weight.copy_(torch.tensor([0.5, 1.5, -1.0], dtype=torch.float64))
        reference.bias.copy_(torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
    copy_weights(layer, reference)
    data = np.random.default_rng(1).standard_normal((5, 3))
    x, tx = sigma.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    (gx,) = sigma.autograd.grad((layer(x) ** 3).sum(), [x], create_graph=True)
    (tgx,) = torch.autograd.grad((reference(tx) ** 3).sum(), [tx], create_graph=True)
    assert_close(gx, tgx, "float64", "first derivative")
    (gx * gx).sum().backward()
    (tgx * tgx).sum().backward()
    assert_close(x.grad, tx.grad, "float64", "second derivative in x")
    assert_close(layer.weight.grad, reference.weight.grad, "float64", "second derivative in weight")
    assert_close(layer.bias.grad, reference.bias.grad, "float64", "second derivative in bias")


@pytest.mark.parametrize("make", [lambda: nn.LSTM(2, 3), lambda: nn.GRU(2, 3), lambda: nn.RNN(2, 3)],
                         ids=["lstm", "gru", "rnn"])
def test_recurrent_second_derivatives_match_finite_differences(make):
    layer = make().to(dtype="float64")
    x, = _tensors((3, 2, 2))
    assert gradgradcheck(lambda t: layer(t)[0], [x])


def test_linear_and_conv_second_derivatives_in_the_weights():
    linear = nn.Linear(3, 2).to(dtype="float64")
    x, = _tensors((4, 3))
    assert gradgradcheck(lambda w: F.linear(x, w, linear.bias).tanh(), [linear.weight])
    conv = nn.Conv2d(2, 2, 2, padding=1).to(dtype="float64")
    image, = _tensors((1, 2, 3, 3))
    assert gradgradcheck(lambda w, t: F.conv2d(t, w, conv.bias, padding=1).tanh(), [conv.weight, image])


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_gradient_penalty_through_a_two_layer_recurrent_stack_after_a_linear_matches_torch(kind):
    # the inner gradient of layer 2 must stop at its inputs yet stay connected to layer 1 and the Linear
    sigma_net = getattr(nn, kind)(3, 4, num_layers=2, bidirectional=True).to(dtype="float64")
    torch_net = getattr(torch.nn, kind)(3, 4, num_layers=2, bidirectional=True).double()
    copy_weights(sigma_net, torch_net)
    projection, torch_projection = nn.Linear(2, 3).to(dtype="float64"), torch.nn.Linear(2, 3).double()
    copy_weights(projection, torch_projection)
    data = np.random.default_rng(4).standard_normal((5, 2, 2))
    x, tx = sigma.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    out, _ = sigma_net(projection(x).tanh())
    tout, _ = torch_net(torch_projection(tx).tanh())
    (gx,) = sigma.autograd.grad((out * out).sum(), [x], create_graph=True)
    (tgx,) = torch.autograd.grad((tout * tout).sum(), [tx], create_graph=True)
    assert_close(gx, tgx, "float64", "first derivative")
    (gx * gx).sum().backward()
    (tgx * tgx).sum().backward()
    assert_close(x.grad, tx.grad, "float64", "second derivative in x")
    torch_parameters = dict(torch_net.named_parameters())
    for name, parameter in sigma_net.named_parameters():
        assert_close(parameter.grad, torch_parameters[name].grad, "float64", name)
    assert_close(projection.weight.grad, torch_projection.weight.grad, "float64", "projection weight")
