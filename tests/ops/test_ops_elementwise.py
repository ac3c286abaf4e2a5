"""Elementwise ops: arithmetic with broadcasting, pow, unary maths, activations,
clip, comparisons and where, each against PyTorch and finite differences."""
import numpy as np
import pytest

import sigma
from ops_oracle import check, compare_with_torch, torch

F = torch.nn.functional

BROADCAST_PAIRS = [
    ((3, 4), (3, 4)),
    ((3, 4), (4,)),        # right operand broadcast
    ((4,), (3, 4)),        # left operand broadcast
    ((2, 1, 4), (3, 1)),   # both broadcast, different ranks
    ((3, 1), (1, 4)),
    ((), (2, 3)),          # 0-d on either side
    ((2, 3), ()),
]


def away_from_zero(rng, shape):
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 2.0, size=shape)


BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "div": (lambda a, b: a / b, lambda a, b: a / b),
    "pow": (lambda a, b: a ** b, lambda a, b: a ** b),
    "maximum": (sigma.maximum, torch.maximum),
    "minimum": (sigma.minimum, torch.minimum),
    "function add": (sigma.add, torch.add),
    "function sub": (sigma.sub, torch.sub),
    "function mul": (sigma.mul, torch.mul),
    "function div": (sigma.div, torch.div),
    "function pow": (sigma.pow, torch.pow),
}


@pytest.mark.parametrize("shapes", BROADCAST_PAIRS, ids=str)
@pytest.mark.parametrize("name", list(BINARY))
def test_binary_ops_broadcast_both_ways(device, rng, name, shapes):
    a = rng.standard_normal(shapes[0])
    b = rng.standard_normal(shapes[1])
    if "div" in name:
        b = away_from_zero(rng, shapes[1])
    if "pow" in name:
        a = rng.uniform(0.5, 2.0, size=shapes[0])  # d/db a**b needs log(a)
    check(*BINARY[name], a, b, device=device)


SCALAR_CASES = {
    "scalar + x": (lambda x: 2.5 + x),
    "x + scalar": (lambda x: x + 2.5),
    "scalar - x": (lambda x: 2.5 - x),
    "x - scalar": (lambda x: x - 2.5),
    "scalar * x": (lambda x: -1.5 * x),
    "x * scalar": (lambda x: x * -1.5),
    "scalar / x": (lambda x: 3.0 / x),
    "x / scalar": (lambda x: x / 3.0),
    "int scalar * x": (lambda x: 3 * x),
    "x - int scalar": (lambda x: x - 2),
    "scalar ** x": (lambda x: 1.7 ** x),
    "-x": (lambda x: -x),
}


@pytest.mark.parametrize("name", list(SCALAR_CASES))
def test_python_scalars_on_either_side(device, rng, name):
    function = SCALAR_CASES[name]
    check(function, function, away_from_zero(rng, (2, 3)), device=device)


@pytest.mark.parametrize("exponent", [2, 3, 0.5, -1.5, 1, 0, -2, 2.5])
def test_pow_with_scalar_exponent(device, rng, exponent):
    x = rng.uniform(0.5, 2.0, size=(3, 4))
    check(lambda t: t ** exponent, lambda t: t ** exponent, x, device=device)
    check(lambda t: sigma.pow(t, exponent), lambda t: torch.pow(t, exponent), x, device=device)


def test_pow_integer_exponent_of_negative_base(device, rng):
    x = -rng.uniform(0.5, 2.0, size=(5,))
    check(lambda t: t ** 3, lambda t: t ** 3, x, device=device)


def test_pow_at_zero_base_matches_torch_convention(device):
    """0 ** b: PyTorch gives d/da = 0 where b == 0 and d/db = 0 where a == 0 (no nan)."""
    a = np.array([0.0, 0.0, 0.0, 2.0])
    b = np.array([0.0, 1.0, 2.5, 0.0])
    check(lambda x, y: x ** y, lambda x, y: x ** y, a, b, device=device, finite_differences=False)


def test_numpy_scalar_on_the_left_defers_to_the_tensor(device):
    x = sigma.tensor([1.0, 2.0], device=device, requires_grad=True)
    y = np.float32(3.0) * x
    assert isinstance(y, sigma.Tensor) and y.dtype == np.float32
    y.sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def positive(rng, shape):
    return rng.uniform(0.3, 3.0, size=shape)


def normal(rng, shape):
    return rng.standard_normal(shape) * 1.5


UNARY = {
    "neg": (sigma.neg, torch.neg, normal),
    "exp": (sigma.exp, torch.exp, normal),
    "log": (sigma.log, torch.log, positive),
    "log1p": (sigma.log1p, torch.log1p, lambda rng, shape: rng.uniform(-0.7, 3.0, size=shape)),
    "sqrt": (sigma.sqrt, torch.sqrt, positive),
    "abs": (sigma.abs, torch.abs, normal),
    "sin": (sigma.sin, torch.sin, normal),
    "cos": (sigma.cos, torch.cos, normal),
    "erf": (sigma.erf, torch.erf, normal),
    "relu": (sigma.relu, torch.relu, normal),
    "sigmoid": (sigma.sigmoid, torch.sigmoid, normal),
    "tanh": (sigma.tanh, torch.tanh, normal),
    "leaky_relu": (sigma.leaky_relu, F.leaky_relu, normal),
    "leaky_relu 0.2": (lambda x: sigma.leaky_relu(x, 0.2), lambda x: F.leaky_relu(x, 0.2), normal),
    "elu": (sigma.elu, F.elu, normal),
    "elu alpha 0.5": (lambda x: sigma.elu(x, alpha=0.5), lambda x: F.elu(x, alpha=0.5), normal),
    "gelu": (sigma.gelu, F.gelu, normal),
    "gelu tanh": (lambda x: sigma.gelu(x, approximate="tanh"), lambda x: F.gelu(x, approximate="tanh"), normal),
    "softplus": (sigma.softplus, F.softplus, normal),
    "softplus beta 2 threshold 1": (lambda x: sigma.softplus(x, beta=2.0, threshold=1.0),
                                    lambda x: F.softplus(x, beta=2.0, threshold=1.0), normal),
    "clip": (lambda x: sigma.clip(x, -0.5, 0.8), lambda x: torch.clamp(x, -0.5, 0.8), normal),
    "clip low only": (lambda x: sigma.clip(x, low=-0.3), lambda x: torch.clamp(x, min=-0.3), normal),
    "clip high only": (lambda x: sigma.clip(x, high=0.4), lambda x: torch.clamp(x, max=0.4), normal),
    "x.exp() method": (lambda x: x.exp(), lambda x: x.exp(), normal),
    "x.abs() method": (lambda x: abs(x), lambda x: abs(x), normal),
    "square via mul": (lambda x: x * x, lambda x: x * x, normal),
}


@pytest.mark.parametrize("shape", [(), (5,), (2, 3, 4)], ids=str)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_ops(device, rng, name, shape):
    sigma_fn, torch_fn, sample = UNARY[name]
    check(sigma_fn, torch_fn, sample(rng, shape), device=device)


EXTREMES = np.array([-200.0, -40.0, -19.0, -3.0, -1e-4, 1e-4, 3.0, 19.0, 21.0, 40.0, 200.0])


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softplus", "softplus beta 2 threshold 1", "elu",
                                  "gelu", "gelu tanh", "erf", "leaky_relu"])
def test_activations_stay_finite_and_exact_at_extremes(device, name):
    sigma_fn, torch_fn, _ = UNARY[name]
    for dtype in ("float64", "float32"):
        compare_with_torch(sigma_fn, torch_fn, [EXTREMES], device, dtype)


KINKS = {
    "relu": (sigma.relu, torch.relu),
    "abs": (sigma.abs, torch.abs),
    "leaky_relu": (lambda x: sigma.leaky_relu(x, 0.2), lambda x: F.leaky_relu(x, 0.2)),
    "elu": (sigma.elu, F.elu),
    "softplus": (sigma.softplus, F.softplus),
    "softplus at its threshold": (lambda x: sigma.softplus(x - 20.0), lambda x: F.softplus(x - 20.0)),
    "clip": (lambda x: sigma.clip(x, 0.0, 1.0), lambda x: torch.clamp(x, 0.0, 1.0)),
    "clip high": (lambda x: sigma.clip(x, high=0.0), lambda x: torch.clamp(x, max=0.0)),
}


@pytest.mark.parametrize("name", list(KINKS))
def test_gradient_convention_on_kinks_matches_torch(device, name):
    """At 0 (and the clip bounds) the derivative is a convention; PyTorch's is the one users know.
    Clip passes the gradient where low <= x <= high."""
    x = np.array([-1.0, 0.0, 1.0, 0.5, 2.0])
    check(*KINKS[name], x, device=device, finite_differences=False)


def test_clip_boundary_gradient_is_one(device):
    x = sigma.tensor([-1.0, -0.5, 0.0, 0.5, 1.0], device=device, requires_grad=True)
    sigma.clip(x, -0.5, 0.5).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_maximum_and_minimum_split_ties_evenly(device):
    a = np.array([1.0, 2.0, 3.0, -1.0])
    b = np.array([1.0, 0.0, 3.0, 5.0])
    check(sigma.maximum, torch.maximum, a, b, device=device, finite_differences=False)
    check(sigma.minimum, torch.minimum, a, b, device=device, finite_differences=False)


def test_maximum_with_a_number(device, rng):
    x = rng.standard_normal((3, 4))
    check(lambda t: sigma.maximum(t, 0.1), lambda t: torch.clamp(t, min=0.1), x, device=device)
    check(lambda t: sigma.minimum(0.1, t), lambda t: torch.clamp(t, max=0.1), x, device=device)


COMPARISONS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4))], ids=str)
@pytest.mark.parametrize("name", list(COMPARISONS))
def test_comparisons_broadcast_and_give_bool(device, rng, name, shapes):
    # Integers drawn as floats make equal pairs likely, so == and != are tested on both outcomes.
    a = rng.integers(-2, 3, size=shapes[0]).astype(np.float64)
    b = rng.integers(-2, 3, size=shapes[1]).astype(np.float64)
    compare = COMPARISONS[name]
    check(compare, compare, a, b, device=device, gradients=False)
    result = compare(sigma.tensor(a, device=device), sigma.tensor(b, device=device))
    assert result.dtype == np.bool_ and not result.requires_grad


@pytest.mark.parametrize("name", list(COMPARISONS))
def test_comparisons_with_scalars_on_either_side(device, rng, name):
    compare = COMPARISONS[name]
    x = rng.integers(-2, 3, size=(2, 5)).astype(np.float64)
    check(lambda t: compare(t, 1.0), lambda t: compare(t, 1.0), x, device=device, gradients=False)
    check(lambda t: compare(1.0, t), lambda t: compare(1.0, t), x, device=device, gradients=False)


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4), (3, 4)), ((3, 4), (4,), (3, 1)), ((3, 1), (1, 4), ()),
                                    ((2, 3, 4), (4,), (3, 4))], ids=str)
def test_where_broadcasts_and_routes_gradients(device, rng, shapes):
    condition_shape, a_shape, b_shape = shapes
    condition = rng.standard_normal(condition_shape) > 0
    a = rng.standard_normal(a_shape)
    b = rng.standard_normal(b_shape)
    check(lambda x, y: sigma.where(sigma.tensor(condition, device=device), x, y),
          lambda x, y: torch.where(torch.tensor(condition), x, y), a, b, device=device)


def test_where_with_a_number_on_either_side(device, rng):
    x = rng.standard_normal((3, 4))
    check(lambda t: sigma.where(t > 0, t, 0.5), lambda t: torch.where(t > 0, t, 0.5), x, device=device)
    check(lambda t: sigma.where(t > 0, -2.0, t * 3), lambda t: torch.where(t > 0, -2.0, t * 3), x, device=device)


def test_cast_between_float_dtypes_carries_the_gradient_back(device, rng):
    x = sigma.tensor(rng.standard_normal(4), dtype="float32", device=device, requires_grad=True)
    y = x.double()
    assert y.dtype == np.float64
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy(), rtol=1e-6)


def test_clone_is_a_differentiable_copy(device, rng):
    x = rng.standard_normal((2, 3))
    check(lambda t: t.clone() * 2.0, lambda t: t.clone() * 2.0, x, device=device)
    original = sigma.tensor(x, device=device)
    copy = original.clone()
    copy.data[0, 0] = 99.0
    assert original.numpy()[0, 0] == x[0, 0]
