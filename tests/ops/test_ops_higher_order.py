"""Second (and third) derivatives: composites against PyTorch with
create_graph=True on both sides, every primitive's backward against finite
differences (gradgradcheck), and nested sigma.grad."""
import numpy as np
import pytest

import sigma
from ops_oracle import DTYPES, assert_close, to_sigma, to_torch, torch
from sigma.testing.gradcheck import gradgradcheck

F = torch.nn.functional


def compare_second_derivatives(sigma_fn, torch_fn, arrays, device, dtype):
    """First derivatives (with create_graph) and a Hessian-vector product, both sides."""
    rng = np.random.default_rng(99)
    sigma_inputs = [to_sigma(a, dtype, device) for a in arrays]
    torch_inputs = [to_torch(a, dtype) for a in arrays]
    positions = [i for i, t in enumerate(torch_inputs) if t.is_floating_point()]
    sigma_out, torch_out = sigma_fn(*sigma_inputs), torch_fn(*torch_inputs)
    output_weight = rng.standard_normal(tuple(torch_out.shape)).astype(dtype)
    sigma_first = sigma.autograd.grad(sigma_out, [sigma_inputs[i] for i in positions],
                                      grad_outputs=sigma.tensor(output_weight, device=device), create_graph=True)
    torch_first = torch.autograd.grad(torch_out, [torch_inputs[i] for i in positions],
                                      grad_outputs=torch.tensor(output_weight), create_graph=True)
    directions = [rng.standard_normal(np.shape(arrays[i])).astype(dtype) for i in positions]
    for k, (mine, theirs) in enumerate(zip(sigma_first, torch_first)):
        assert_close(mine, theirs, dtype, f"{dtype} first derivative {k}")
    sigma_second = sigma.autograd.grad(list(sigma_first), [sigma_inputs[i] for i in positions],
                                       grad_outputs=[sigma.tensor(d, device=device) for d in directions],
                                       allow_unused=True)
    torch_second = torch.autograd.grad(list(torch_first), [torch_inputs[i] for i in positions],
                                       grad_outputs=[torch.tensor(d) for d in directions], allow_unused=True)
    for k, (mine, theirs) in enumerate(zip(sigma_second, torch_second)):
        shape = np.shape(arrays[positions[k]])
        mine = np.zeros(shape) if mine is None else mine
        theirs = np.zeros(shape) if theirs is None else theirs
        assert_close(mine, theirs, dtype, f"{dtype} Hessian-vector product, input {k}")


def _mlp_loss(framework):
    softmax_cross_entropy = sigma.softmax_cross_entropy if framework == "sigma" else F.cross_entropy
    labels = np.array([0, 2, 1, 2, 0, 1])

    def loss(x, w1, b1, w2, b2):
        target = sigma.tensor(labels, device=x.device) if framework == "sigma" else torch.tensor(labels)
        hidden = (x @ w1 + b1).tanh()
        return softmax_cross_entropy(hidden @ w2 + b2, target)

    return loss


COMPOSITES = {
    "tanh(x) * sin(x)": (lambda x: x.tanh() * x.sin(), lambda x: x.tanh() * x.sin(), [(3, 4)]),
    "softplus": (sigma.softplus, F.softplus, [(3, 4)]),
    "log_softmax": (lambda x: sigma.log_softmax(x, axis=-1), lambda x: torch.log_softmax(x, dim=-1), [(3, 5)]),
    "softmax over axis 0": (lambda x: sigma.softmax(x, axis=0), lambda x: torch.softmax(x, dim=0), [(4, 3)]),
    "gelu": (sigma.gelu, F.gelu, [(6,)]),
    "gelu tanh": (lambda x: sigma.gelu(x, approximate="tanh"), lambda x: F.gelu(x, approximate="tanh"), [(6,)]),
    "sigmoid * exp / sqrt": (lambda x: x.sigmoid() * x.exp() / (x * x + 1.0).sqrt(),
                             lambda x: x.sigmoid() * x.exp() / (x * x + 1.0).sqrt(), [(5,)]),
    "elu and leaky_relu": (lambda x: sigma.elu(x) * sigma.leaky_relu(x, 0.1),
                           lambda x: F.elu(x) * F.leaky_relu(x, 0.1), [(7,)]),
    "x ** y": (lambda x, y: (x * x + 0.5) ** y, lambda x, y: (x * x + 0.5) ** y, [(3,), (3,)]),
    "var and std": (lambda x: x.var(axis=1, correction=1) * x.std(axis=1),
                    lambda x: x.var(dim=1) * x.std(dim=1, correction=0), [(3, 4)]),
    "logsumexp": (lambda x: sigma.logsumexp(x, axis=(0, 2)), lambda x: torch.logsumexp(x, dim=(0, 2)), [(2, 3, 4)]),
    "batched matmul": (lambda a, b: (a @ b).tanh(), lambda a, b: (a @ b).tanh(), [(2, 3, 4), (4, 2)]),
    "tiny MLP loss": (_mlp_loss("sigma"), _mlp_loss("torch"), [(6, 4), (4, 5), (5,), (5, 3), (3,)]),
    "conv2d": (lambda x, w: sigma.conv2d(x, w, stride=2, padding=1).tanh(),
               lambda x, w: F.conv2d(x, w, stride=2, padding=1).tanh(), [(2, 2, 5, 5), (3, 2, 3, 3)]),
    "conv2d grouped, dilated": (lambda x, w: sigma.conv2d(x, w, dilation=2, groups=2) ** 2,
                                lambda x, w: F.conv2d(x, w, dilation=2, groups=2) ** 2, [(1, 4, 6, 6), (2, 2, 2, 2)]),
    "max_pool2d": (lambda x: sigma.max_pool2d(x.sin(), 3, 2, 1) ** 2, lambda x: F.max_pool2d(x.sin(), 3, 2, 1) ** 2,
                   [(1, 2, 5, 5)]),
    "avg_pool2d": (lambda x: sigma.avg_pool2d(x * x, 2, 1) ** 2, lambda x: F.avg_pool2d(x * x, 2, 1) ** 2,
                   [(1, 2, 4, 4)]),
    "indexing with repeats": (lambda x: x[np.array([0, 2, 0])].exp(), lambda x: x[torch.tensor([0, 2, 0])].exp(),
                              [(3, 2)]),
    "gather": (lambda x: sigma.gather(x * x, np.array([[1, 1], [0, 2]]), axis=1),
               lambda x: torch.gather(x * x, 1, torch.tensor([[1, 1], [0, 2]])), [(2, 3)]),
    "max and min": (lambda x: x.max(axis=0) * x.min(axis=1).sum(), lambda x: x.amax(dim=0) * x.amin(dim=1).sum(),
                    [(3, 4)]),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(COMPOSITES))
def test_second_derivatives_match_torch(device, rng, name, dtype):
    sigma_fn, torch_fn, shapes = COMPOSITES[name]
    arrays = [rng.standard_normal(shape) for shape in shapes]
    compare_second_derivatives(sigma_fn, torch_fn, arrays, device, dtype)


def test_cross_entropy_second_derivative_in_the_logits(device, rng):
    logits = rng.standard_normal((4, 3))
    labels = np.array([2, 0, 0, 1])
    for dtype in DTYPES:
        compare_second_derivatives(lambda x: sigma.softmax_cross_entropy(x, labels, reduction="none"),
                                   lambda x: F.cross_entropy(x, torch.tensor(labels), reduction="none"),
                                   [logits], device, dtype)


GRADGRAD_CASES = {
    "add/sub broadcast": (lambda a, b: (a + b) * (a - b), [(3, 4), (4,)]),
    "mul/div": (lambda a, b: a * b / (b * b + 1.0), [(2, 3), (2, 1)]),
    "pow": (lambda a, b: (a * a + 0.5) ** b, [(3,), (3,)]),
    "pow scalar": (lambda x: (x * x + 0.1) ** 1.5 + x ** 3, [(4,)]),
    "exp/log/log1p/sqrt": (lambda x: (x * x + 0.5).log() * x.exp() + (x * x).log1p() + (x * x + 1.0).sqrt(), [(4,)]),
    "sin/cos/tanh/sigmoid/erf": (lambda x: x.sin() * x.cos() + x.tanh() * x.sigmoid() + x.erf(), [(5,)]),
    "activations": (lambda x: sigma.gelu(x) + sigma.softplus(x, beta=2.0) + sigma.elu(x) * x, [(5,)]),
    "relu, abs, clip, maximum": (lambda x: x.relu() * x + abs(x) * x + sigma.clip(x, -0.5, 0.5) * x
                                 + sigma.maximum(x, x * 0.5) ** 2, [(6,)]),
    "reductions": (lambda x: x.sum(axis=0) * x.mean(axis=1, keepdims=True) + x.max(axis=-1, keepdims=True) ** 2,
                   [(3, 4)]),
    "var/std/logsumexp": (lambda x: x.var(axis=0) * x.std(axis=0) + sigma.logsumexp(x * x, axis=1).sum(), [(3, 4)]),
    "matmul": (lambda a, b: (a @ b) ** 2, [(2, 3), (3, 2)]),
    "movement": (lambda x: (sigma.concat([x.T, x.reshape(4, 3)[:, ::-1]], axis=1).expand(2, 4, 6)
                            * sigma.pad(x, [(1, 0), (0, 2)])) ** 2, [(3, 4)]),
    "stack/split/squeeze": (lambda x: sigma.stack([p.squeeze(0) ** 2 for p in x.split(1)], axis=1), [(3, 2)]),
    "indexing/gather/index_add": (lambda x: x[np.array([1, 1, 0])] ** 2
                                  + sigma.gather(x * x, np.array([[0, 0], [1, 0], [1, 1]]), 1)
                                  + sigma.index_add((3, 2), np.array([0, 0, 2]), x * x), [(3, 2)]),
    "softmax/log_softmax": (lambda x: sigma.softmax(x, axis=0) * sigma.log_softmax(x, axis=1), [(3, 3)]),
    "cross entropy": (lambda x: sigma.softmax_cross_entropy(x, np.array([1, 0, 2]), reduction="none"), [(3, 3)]),
    "conv2d": (lambda x, w: sigma.conv2d(x, w, stride=2, padding=1, groups=2) ** 2, [(1, 2, 3, 3), (2, 1, 2, 2)]),
    "conv1d": (lambda x, w, b: sigma.conv1d(x, w, b, dilation=2) ** 2, [(1, 2, 5), (2, 2, 2), (2,)]),
    "pooling": (lambda x: sigma.max_pool2d(x, 2, 1) ** 2 + sigma.avg_pool2d(x * x, 3, 2, 1).sum(), [(1, 1, 3, 4)]),
    "embedding": (lambda w: sigma.embedding(np.array([2, 0, 2]), w) ** 3, [(3, 2)]),
    "where": (lambda a, b: sigma.where(a.data > 0, a * b, b * b), [(4,), (4,)]),
}


@pytest.mark.parametrize("name", list(GRADGRAD_CASES))
def test_every_backward_is_differentiable(device, rng, name):
    """Second derivatives against finite differences of the first (float64)."""
    function, shapes = GRADGRAD_CASES[name]
    inputs = [sigma.tensor(rng.standard_normal(shape), dtype="float64", device=device, requires_grad=True)
              for shape in shapes]
    assert gradgradcheck(function, inputs)


def test_nested_grad_transforms(device):
    x = sigma.tensor([2.0], dtype="float64", device=device)
    assert sigma.grad(sigma.grad(lambda t: (t ** 3).sum()))(x).tolist() == [12.0]
    third = sigma.grad(sigma.grad(sigma.grad(lambda t: t.sin().sum())))(x)
    assert third.item() == pytest.approx(-np.cos(2.0), rel=1e-12)
    second = sigma.grad(sigma.grad(lambda t: (t.tanh() * t.sin()).sum()))(x)
    tanh = np.tanh(2.0)
    slope, curvature = 1 - tanh ** 2, -2 * tanh * (1 - tanh ** 2)
    expected = curvature * np.sin(2.0) + 2 * slope * np.cos(2.0) - tanh * np.sin(2.0)
    assert second.item() == pytest.approx(expected, rel=1e-12)


def test_value_and_grad_nested_in_grad(device):
    def gradient_norm(t):
        value, gradient = sigma.value_and_grad(lambda s: (s.exp() * s).sum())(t)
        return (gradient * gradient).sum() + value

    x = sigma.tensor([0.3, -0.2], dtype="float64", device=device)
    mine = sigma.grad(gradient_norm)(x).numpy()
    t = torch.tensor([0.3, -0.2], dtype=torch.float64, requires_grad=True)
    value = (t.exp() * t).sum()
    (gradient,) = torch.autograd.grad(value, t, create_graph=True)
    (theirs,) = torch.autograd.grad((gradient * gradient).sum() + value, t)
    np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-12)
