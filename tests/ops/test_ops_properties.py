"""Property tests (hypothesis): broadcasting and reductions on random shapes."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import sigma

# The device fixture is a plain string, so sharing it across examples is safe.
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

BINARY = {
    "add": (lambda a, b: a + b, lambda a, b, g: (g, g)),
    "sub": (lambda a, b: a - b, lambda a, b, g: (g, -g)),
    "mul": (lambda a, b: a * b, lambda a, b, g: (g * b, g * a)),
    "div": (lambda a, b: a / b, lambda a, b, g: (g / b, -g * a / b ** 2)),
    "maximum": (lambda a, b: sigma.maximum(a, b) if isinstance(a, sigma.Tensor) else np.maximum(a, b),
                lambda a, b, g: (g * (a > b), g * (b > a))),
}


def sum_into(shape, gradient):
    """Add each element of ``gradient`` into the element of ``shape`` that broadcasting copied it from.

    Written with an index map and bincount, independently of Sigma's unbroadcast."""
    source = np.broadcast_to(np.arange(int(np.prod(shape))).reshape(shape), gradient.shape)
    return np.bincount(source.ravel(), weights=gradient.ravel(), minlength=int(np.prod(shape))).reshape(shape)


@SETTINGS
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4),
       name=st.sampled_from(sorted(BINARY)), seed=st.integers(0, 2 ** 32 - 1),
       dtype=st.sampled_from(["float32", "float64"]))
def test_broadcasting_forward_and_gradients(device, shapes, name, seed, dtype):
    (a_shape, b_shape), out_shape = shapes.input_shapes, shapes.result_shape
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 2.0, a_shape) * rng.choice([-1, 1], a_shape)
    b = rng.uniform(0.5, 2.0, b_shape) * rng.choice([-1, 1], b_shape)
    a, b = np.asarray(a, dtype), np.asarray(b, dtype)  # ties in maximum have probability zero
    upstream = rng.standard_normal(out_shape).astype(dtype)
    function, local_gradients = BINARY[name]

    x = sigma.tensor(a, device=device, requires_grad=True)
    y = sigma.tensor(b, device=device, requires_grad=True)
    out = function(x, y)
    out.backward(sigma.tensor(upstream, device=device))

    rtol = 1e-12 if dtype == "float64" else 1e-5
    expected = function(a.astype(np.float64), b.astype(np.float64))
    assert out.shape == expected.shape == out_shape and out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out.numpy(), expected, rtol=rtol, atol=rtol)
    a_full, b_full = np.broadcast_to(a, out_shape).astype(np.float64), np.broadcast_to(b, out_shape).astype(np.float64)
    grad_a, grad_b = local_gradients(a_full, b_full, upstream.astype(np.float64))
    assert x.grad.shape == a_shape and y.grad.shape == b_shape
    np.testing.assert_allclose(x.grad.numpy(), sum_into(a_shape, grad_a), rtol=rtol, atol=10 * rtol)
    np.testing.assert_allclose(y.grad.numpy(), sum_into(b_shape, grad_b), rtol=rtol, atol=10 * rtol)


@st.composite
def shape_and_axes(draw):
    shape = draw(array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    chosen = draw(st.lists(st.integers(0, len(shape) - 1), unique=True, max_size=len(shape)))
    axes = tuple(a - len(shape) if draw(st.booleans()) else a for a in chosen)  # some negative
    axis = draw(st.sampled_from([None, axes, axes[0] if len(axes) == 1 else axes]))
    return shape, axis


REDUCTIONS = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min}


@SETTINGS
@given(case=shape_and_axes(), name=st.sampled_from(sorted(REDUCTIONS)), keepdims=st.booleans(),
       seed=st.integers(0, 2 ** 32 - 1))
def test_reductions_agree_with_numpy(device, case, name, keepdims, seed):
    shape, axis = case  # axis=() reduces nothing, as in numpy
    data = np.random.default_rng(seed).standard_normal(shape)
    x = sigma.tensor(data, dtype="float64", device=device, requires_grad=True)
    out = getattr(sigma, name)(x, axis=axis, keepdims=keepdims)
    expected = REDUCTIONS[name](data, axis=axis, keepdims=keepdims)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)

    out.backward(sigma.ones(out.shape, dtype="float64", device=device))
    assert x.grad.shape == shape
    gradient = x.grad.numpy()
    count = data.size // np.size(expected)  # values per reduced slice
    if name == "sum":
        np.testing.assert_array_equal(gradient, np.ones(shape))
    elif name == "mean":
        np.testing.assert_allclose(gradient, np.full(shape, 1.0 / count), rtol=1e-12)
    else:
        # Random normals have no ties: all gradient sits on the extreme of each reduced slice.
        extreme = REDUCTIONS[name](data, axis=axis, keepdims=True)
        np.testing.assert_array_equal(gradient, (data == extreme).astype(float))


@SETTINGS
@given(shape=array_shapes(min_dims=1, max_dims=3, max_side=4), seed=st.integers(0, 2 ** 32 - 1))
def test_gradient_of_sum_is_ones_for_float32(device, shape, seed):
    data = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    x = sigma.tensor(data, device=device, requires_grad=True)
    x.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), np.ones(shape, np.float32))


@SETTINGS
@given(shape=array_shapes(min_dims=2, max_dims=4, max_side=4), seed=st.integers(0, 2 ** 32 - 1), data=st.data())
def test_max_ties_share_the_gradient_within_each_slice(device, shape, seed, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    values = np.random.default_rng(seed).integers(0, 3, size=shape).astype(np.float64)  # many ties
    x = sigma.tensor(values, dtype="float64", device=device, requires_grad=True)
    x.max(axis=axis).sum().backward()
    gradient = x.grad.numpy()
    np.testing.assert_allclose(gradient.sum(axis=axis), np.ones(np.delete(shape, axis % len(shape))), rtol=1e-12)
    is_max = values == values.max(axis=axis, keepdims=True)
    assert (gradient[~is_max] == 0).all()
    np.testing.assert_allclose(gradient[is_max], np.broadcast_to(1.0 / is_max.sum(axis=axis, keepdims=True),
                                                                  shape)[is_max], rtol=1e-12)
