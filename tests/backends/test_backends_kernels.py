"""Backend kernels against plain numpy references, and adjoint pairs against
each other (<A x, y> == <x, A* y>)."""
import numpy as np
import pytest

import backends


def _naive_im2col(x, kernel, stride, padding, dilation):
    n, c, h, w = x.shape
    kh, kw = kernel
    padded = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((c * kh * kw, n, oh * ow), x.dtype)
    for ch in range(c):
        for ki in range(kh):
            for kj in range(kw):
                row = (ch * kh + ki) * kw + kj
                for i in range(oh):
                    for j in range(ow):
                        out[row, :, i * ow + j] = padded[:, ch, i * stride[0] + ki * dilation[0],
                                                         j * stride[1] + kj * dilation[1]]
    return out


# Outputs up to backends.cpu.kernels.SMALL_WIDTH wide take the CPU's "small" kernels, wider ones the
# row-by-row kernels: both kinds are here.
GEOMETRIES = [
    ((2, 3, 7, 6), (3, 3), (1, 1), (0, 0), (1, 1)),
    ((1, 2, 9, 8), (3, 2), (2, 1), (1, 2), (2, 1)),
    ((3, 1, 5, 5), (1, 1), (2, 2), (0, 0), (1, 1)),
    ((2, 3, 12, 11), (3, 3), (1, 1), (1, 1), (1, 1)),
    ((1, 2, 17, 16), (3, 2), (2, 1), (1, 2), (2, 1)),
    ((2, 2, 14, 14), (3, 3), (2, 2), (1, 1), (1, 1)),
    ((2, 2, 6, 5), (3, 3), (2, 1), (1, 2), (1, 2)),
]


@pytest.mark.parametrize("shape,kernel,stride,padding,dilation", GEOMETRIES)
def test_im2col_matches_reference_and_col2im_is_its_adjoint(device, shape, kernel, stride, padding, dilation):
    b = backends.get(device)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    cols = b.to_host(b.im2col(b.asarray(x), kernel, stride, padding, dilation))
    np.testing.assert_allclose(cols, _naive_im2col(x, kernel, stride, padding, dilation), rtol=0, atol=0)
    y = rng.standard_normal(cols.shape)
    back = b.to_host(b.col2im(b.asarray(y), shape, kernel, stride, padding, dilation))
    np.testing.assert_allclose(np.vdot(cols, y), np.vdot(x, back), rtol=1e-12)


@pytest.mark.parametrize("shape,kernel,stride,padding,dilation", GEOMETRIES)
def test_cpu_im2col_and_col2im_fill_a_given_array_in_float32(shape, kernel, stride, padding, dilation):
    # Convolution reuses one buffer per call for every block of the batch; the
    # kernels must overwrite it completely (stale values from the previous
    # block, here NaN, must not survive anywhere, padding included).
    b = backends.get("cpu")
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(np.float32)
    expected = _naive_im2col(x, kernel, stride, padding, dilation)
    cols = np.full(expected.shape, np.nan, dtype=np.float32)
    assert b.im2col(x, kernel, stride, padding, dilation, cols) is cols
    np.testing.assert_array_equal(cols, expected)
    image = np.full(shape, np.nan, dtype=np.float32)
    assert b.col2im(cols, shape, kernel, stride, padding, dilation, image) is image
    np.testing.assert_allclose(image, b.col2im(cols.astype(np.float64), shape, kernel, stride, padding, dilation),
                               rtol=1e-6, atol=1e-5)


def test_cpu_im2col_rejects_an_output_array_it_cannot_fill():
    b = backends.get("cpu")
    x = np.zeros((2, 1, 4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"im2col: out must be a C-contiguous float32 array of shape \(9, 2, 4\)"):
        b.im2col(x, (3, 3), (1, 1), (0, 0), (1, 1), np.empty((9, 2, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="col2im: out must be a C-contiguous float32"):
        b.col2im(np.zeros((9, 2, 4), np.float32), x.shape, (3, 3), (1, 1), (0, 0), (1, 1),
                 np.empty((2, 1, 4, 4), dtype=np.float64))


def test_max_pool_matches_reference_and_scatter_is_adjoint_of_gather(device):
    b = backends.get(device)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7, 6))
    out, argmax = b.max_pool2d(b.asarray(x), (3, 2), (2, 2), (1, 1))
    out, argmax = b.to_host(out), b.to_host(argmax)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            window = padded[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 2]
            np.testing.assert_array_equal(out[:, :, i, j], window.max(axis=(2, 3)))
    np.testing.assert_array_equal(np.take_along_axis(x.reshape(2, 3, -1), argmax.reshape(2, 3, -1), 2)
                                  .reshape(out.shape), out)
    g = rng.standard_normal(out.shape)
    scattered = b.to_host(b.pool_scatter(b.asarray(g), b.asarray(argmax), x.shape))
    gathered = b.to_host(b.pool_gather(b.asarray(x), b.asarray(argmax)))
    np.testing.assert_allclose(np.vdot(scattered, x), np.vdot(g, gathered), rtol=1e-12)


def test_max_pool_propagates_nan(device):
    b = backends.get(device)
    x = np.zeros((1, 1, 2, 2))
    x[0, 0, 1, 0] = np.nan
    out, _ = b.max_pool2d(b.asarray(x), (2, 2), (2, 2), (0, 0))
    assert np.isnan(b.to_host(out)).all()


def test_scatter_add_accumulates_repeated_rows(device):
    b = backends.get(device)
    index = np.array([[0, 2], [2, 2]])
    values = np.arange(12, dtype=np.float64).reshape(2, 2, 3)
    out = b.to_host(b.scatter_add((4, 3), b.asarray(index), b.asarray(values)))
    expected = np.zeros((4, 3))
    np.add.at(expected, index.ravel(), values.reshape(4, 3))
    np.testing.assert_array_equal(out, expected)


def test_softmax_cross_entropy_is_stable_and_exact(device):
    b = backends.get(device)
    logits = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
    labels = np.array([0, 2])
    loss, probs = (b.to_host(a) for a in b.softmax_cross_entropy(b.asarray(logits), b.asarray(labels)))
    shifted = logits - logits.max(1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    np.testing.assert_allclose(loss, -log_probs[[0, 1], labels], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(probs, np.exp(log_probs), rtol=1e-12)


def test_erf_matches_math(device):
    import math
    b = backends.get(device)
    x = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(b.to_host(b.erf(b.asarray(x))), [math.erf(v) for v in x], rtol=1e-12)


# -- fused batch normalisation, ReLU gradient, channel sums ---------------------------------------
# Each backend's kernel against the generic formulas of the Backend base class (what cupy runs).

def _generic(method):
    from backends.backend import Backend
    return getattr(Backend, method)


@pytest.mark.parametrize("dtype,tolerance", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("shape", [(6, 3, 4, 5), (9, 4)])
def test_normalise_channels_matches_the_generic_formula(device, shape, dtype, tolerance):
    b = backends.get(device)
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 3 + 5).astype(dtype)
    weight, bias = rng.standard_normal(shape[1]).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)
    grad = rng.standard_normal(shape).astype(dtype)
    arrays = [b.asarray(a) for a in (x, weight, bias, grad)]
    fast = b.normalise_channels(arrays[0], arrays[1], arrays[2], 1e-5)
    slow = _generic("normalise_channels")(b, arrays[0], arrays[1], arrays[2], 1e-5)
    for got, want in zip(fast, slow):
        np.testing.assert_allclose(b.to_host(got), b.to_host(want), rtol=tolerance, atol=tolerance)
    axes = (0,) + tuple(range(2, len(shape)))
    np.testing.assert_allclose(b.to_host(fast[1]), x.astype(np.float64).mean(axis=axes), rtol=tolerance)
    mean, inverse_std = fast[1], fast[3]
    fast_grads = b.normalise_channels_backward(arrays[3], arrays[0], mean, inverse_std, arrays[1])
    slow_grads = _generic("normalise_channels_backward")(b, arrays[3], arrays[0], mean, inverse_std, arrays[1])
    for got, want in zip(fast_grads, slow_grads):
        np.testing.assert_allclose(b.to_host(got), b.to_host(want), rtol=10 * tolerance, atol=10 * tolerance)
    without_input_grad = b.normalise_channels_backward(arrays[3], arrays[0], mean, inverse_std, arrays[1], False)
    assert without_input_grad[0] is None
    np.testing.assert_allclose(b.to_host(without_input_grad[1]), b.to_host(fast_grads[1]))


def test_normalise_channels_propagates_nan_to_its_channel_only(device):
    b = backends.get(device)
    x = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    x[1, 2, 3] = np.nan
    out, mean, var, _ = b.normalise_channels(b.asarray(x), b.asarray(np.ones(3)), b.asarray(np.zeros(3)), 1e-5)
    out = b.to_host(out)
    assert np.isnan(out[:, 2]).all() and np.isfinite(out[:, :2]).all()
    assert np.isnan(b.to_host(mean)[2]) and np.isnan(b.to_host(var)[2])


def test_relu_its_gradient_and_channel_sums_match_numpy(device):
    b = backends.get(device)
    rng = np.random.default_rng(2)
    output = np.maximum(rng.standard_normal((4, 3, 5, 2)), 0).astype(np.float32)
    grad = rng.standard_normal(output.shape).astype(np.float32)
    x = rng.standard_normal((4, 3, 5, 2)).astype(np.float32)
    x[0, 0, 0, 0], x[1, 1, 1, 1] = np.nan, -np.inf
    np.testing.assert_array_equal(b.to_host(b.relu(b.asarray(x))), np.maximum(x, 0))   # NaN kept
    got = b.to_host(b.relu_backward(b.asarray(grad), b.asarray(output)))
    np.testing.assert_array_equal(got, np.where(output > 0, grad, 0))
    assert got.dtype == np.float32
    sums = b.to_host(b.channel_sums(b.asarray(grad)))
    np.testing.assert_allclose(sums, grad.astype(np.float64).sum(axis=(0, 2, 3)), rtol=1e-5)
    assert sums.dtype == np.float32


def test_max_pool_2x2_windows_pick_nans_ties_and_maxima_in_scan_order(device):
    # The CPU backend writes the 2x2, stride-2 window out by hand; the scan order must stay the general one.
    b = backends.get(device)
    x = np.zeros((1, 6, 5, 5))   # odd size: the last row and column are not in any window
    for plane, (y, col) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        x[0, plane, y, col] = np.nan
    x[0, 4] = 1.0                                    # all tied: the first position wins
    x[0, 5, 1, 1], x[0, 5, 0, 1] = 3.0, 3.0          # a tie between the second and fourth: the second wins
    out, argmax = (b.to_host(a) for a in b.max_pool2d(b.asarray(x), (2, 2), (2, 2), (0, 0)))
    for plane, position in enumerate([0, 1, 5, 6]):   # flat positions of (0,0), (0,1), (1,0), (1,1) in a 5-wide plane
        assert np.isnan(out[0, plane, 0, 0]) and argmax[0, plane, 0, 0] == position
        assert argmax[0, plane, 1, 1] == 2 * 5 + 2      # a window of zeros: its first position
    assert argmax[0, 4, 0, 0] == 0 and argmax[0, 5, 0, 0] == 1 and out[0, 5, 0, 0] == 3.0


@pytest.mark.parametrize("dtype", [np.float16, np.int32])
def test_fused_kernels_take_other_dtypes_through_the_generic_formulas(dtype):
    cpu = backends.get("cpu")
    x = np.array([[[-1, 2], [3, -4]], [[5, 6], [-7, 8]]], dtype=dtype)   # (N=2, C=2, 2)
    np.testing.assert_array_equal(cpu.relu(x), np.maximum(x, 0))
    np.testing.assert_array_equal(cpu.relu_backward(x, np.maximum(x, 0)), np.where(x > 0, x, 0))
    np.testing.assert_array_equal(cpu.channel_sums(x), x.sum(axis=(0, 2)))
    out, mean, var, inverse_std = cpu.normalise_channels(x, np.ones(2, dtype), np.zeros(2, dtype), 1e-5)
    np.testing.assert_allclose(np.asarray(mean, np.float64), x.astype(np.float64).mean(axis=(0, 2)), rtol=1e-3)


def test_convolution_and_pooling_kernels_name_a_dtype_they_cannot_run():
    import sigma
    x = sigma.tensor(np.ones((1, 1, 4, 4), np.float16))
    with pytest.raises(TypeError, match="im2col: .* got float16; cast first"):
        sigma.conv2d(x, sigma.tensor(np.ones((1, 1, 3, 3), np.float16)))
    with pytest.raises(TypeError, match="max_pool2d: .* got float16"):
        sigma.max_pool2d(x, 2)
    pooled, _ = backends.get("cpu").max_pool2d(np.arange(16, dtype=np.int32).reshape(1, 1, 4, 4), (2, 2), (2, 2),
                                               (0, 0))
    assert pooled.tolist() == [[[[5, 7], [13, 15]]]]   # integers still run
