"""Winograd convolution on the CPU (backends/cpu/winograd.py): its matrices, its three passes against the
im2col path, when it is chosen, and that it is deterministic."""
import numpy as np
import pytest

import backends
import sigma
import sigma.ops.convolution as convolution
from backends.cpu import winograd


@pytest.fixture
def cpu():
    backend = backends.get("cpu")
    before = backend.winograd
    yield backend
    backend.winograd = before


def _direct_correlation(d, w, m):
    r = len(w)
    return np.array([sum(d[i + k] * w[k] for k in range(r)) for i in range(m)])


@pytest.mark.parametrize("m, r", [(2, 3), (4, 3), (2, 5), (4, 5)])
def test_transforms_compute_correlation_and_its_weight_gradient(m, r):
    t = winograd.transforms(m, r)
    alpha = m + r - 1
    rng = np.random.default_rng(m * 10 + r)
    d, w, g = rng.standard_normal(alpha), rng.standard_normal(r), rng.standard_normal(m)
    np.testing.assert_allclose(t.output @ ((t.kernel @ w) * (t.input @ d)), _direct_correlation(d, w, m),
                               rtol=0, atol=1e-12)
    # The weight gradient of one tile: correlation of the input tile with the output gradient.
    np.testing.assert_allclose(t.kernel_output @ ((t.gradient @ g) * (t.input @ d)), _direct_correlation(d, g, r),
                               rtol=0, atol=1e-12)
    # The input transform's rows were scaled to integers (cheap, exact in float32).
    assert np.array_equal(t.input, np.round(t.input))


def test_transforms_without_points_are_refused():
    with pytest.raises(ValueError, match="no interpolation points for tiles of 10"):
        winograd.transforms(6, 5)


def test_terms_list_each_rows_nonzero_entries():
    t = winograd.terms(np.array([[0.0, 3.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0]]), np.float32)
    assert t.counts.tolist() == [2, 0]
    assert t.columns[0, :2].tolist() == [1, 3]
    assert t.weights[0, :2].tolist() == [3.0, -1.0]
    assert t.weights.dtype == np.float32


def _apply_paired(paired, x):
    """What the kernels compute from PairedTerms, written out in Python."""
    out = np.zeros(len(paired.single.counts))
    for p, (first, second, even_sign, odd_sign) in enumerate(paired.pairs):
        half = paired.width
        even = sum(paired.weights[p, k] * x[paired.columns[p, k]] for k in range(half))
        odd = sum(paired.weights[p, half + k] * x[paired.columns[p, half + k]] for k in range(half))
        out[first], out[second] = even + odd, even_sign * even + odd_sign * odd
    for i, count in enumerate(paired.single.counts):
        if count:
            out[i] = sum(paired.single.weights[i, k] * x[paired.single.columns[i, k]] for k in range(count))
    return out


@pytest.mark.parametrize("m, r", [(2, 3), (4, 3), (2, 5), (4, 5)])
@pytest.mark.parametrize("which", ["input", "gradient"])
def test_paired_terms_compute_the_same_product_with_fewer_terms(m, r, which):
    matrix = getattr(winograd.transforms(m, r), which)
    paired = winograd.paired_terms(matrix, np.float64)
    assert len(paired.pairs) >= 1   # the points p and -p pair up in every transform
    x = np.random.default_rng(m + r).standard_normal(matrix.shape[1])
    np.testing.assert_allclose(_apply_paired(paired, x), matrix @ x, rtol=1e-12, atol=1e-12)
    terms_paired = 2 * paired.width * len(paired.pairs) + paired.single.counts.sum()
    assert terms_paired <= np.count_nonzero(matrix)


@pytest.mark.parametrize("out_size, r, expected", [(20, 5, 4), (24, 5, 4), (6, 3, 2), (8, 3, 4), (5, 3, 2)])
def test_tile_size_takes_the_fewest_multiplications(out_size, r, expected):
    assert winograd.tile_size(out_size, out_size, r) == expected


def _reference(cpu, x, w, g, padding):
    """The three passes by im2col + matrix products."""
    cpu.winograd = False
    geometry = convolution._Geometry(x.shape, w.shape[0], w.shape[2:], (1, 1), padding, (1, 1), 1)
    return (convolution._conv_forward(cpu, x, w, geometry), convolution._conv_input_grad(cpu, g, w, geometry),
            convolution._conv_weight_grad(cpu, x, g, geometry, w.shape))


# (batch, channels, out channels, kernel, height, width, padding): batches that are not a whole number of
# blocks, odd output sizes (partial tiles), every padding up to r - 1, both tile sizes.
SHAPES = [
    (5, 16, 16, 3, 7, 9, (1, 1)),
    (33, 16, 24, 5, 24, 24, (0, 0)),
    (3, 16, 16, 5, 6, 7, (4, 2)),
    (17, 20, 16, 3, 10, 10, (0, 2)),
    (1, 16, 16, 5, 20, 21, (2, 2)),
]


@pytest.mark.parametrize("tiles", [(2,), (4,)])
@pytest.mark.parametrize("n, c, oc, r, h, w, padding", SHAPES)
def test_three_passes_equal_im2col_in_float64(cpu, monkeypatch, tiles, n, c, oc, r, h, w, padding):
    monkeypatch.setattr(winograd, "TILES", tiles)
    rng = np.random.default_rng(n + c + r)
    x = rng.standard_normal((n, c, h, w))
    weight = rng.standard_normal((oc, c, r, r))
    out_h, out_w = h + 2 * padding[0] - r + 1, w + 2 * padding[1] - r + 1
    g = rng.standard_normal((n, oc, out_h, out_w))
    forward, input_grad, weight_grad = _reference(cpu, x, weight, g, padding)
    cpu.winograd = True
    np.testing.assert_allclose(winograd.forward(cpu, x, weight, padding), forward, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(winograd.input_gradient(cpu, g, weight, padding), input_grad, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(winograd.weight_gradient(cpu, x, g, padding, r), weight_grad, rtol=1e-10, atol=1e-9)


def test_float32_stays_close_to_the_float64_result(cpu):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((20, 32, 24, 24))
    weight = rng.standard_normal((32, 32, 5, 5)) * 0.1
    g = rng.standard_normal((20, 32, 20, 20))
    exact = _reference(cpu, x, weight, g, (0, 0))
    cpu.winograd = True
    x32, w32, g32 = (a.astype(np.float32) for a in (x, weight, g))
    results = (winograd.forward(cpu, x32, w32, (0, 0)), winograd.input_gradient(cpu, g32, w32, (0, 0)),
               winograd.weight_gradient(cpu, x32, g32, (0, 0), 5))
    for result, reference in zip(results, exact):
        assert result.dtype == np.float32
        assert np.abs(result - reference).max() / np.abs(reference).max() < 1e-4


def test_gradient_of_the_wrong_size_is_refused(cpu):
    x = np.zeros((2, 16, 12, 12), np.float32)
    with pytest.raises(ValueError, match="does not match the output 8x8"):
        winograd.weight_gradient(cpu, x, np.zeros((2, 16, 9, 9), np.float32), (0, 0), 5)


def test_unknown_pass_is_refused(cpu):
    with pytest.raises(ValueError, match="unknown pass 'backward'"):
        cpu.winograd_convolution("backward", None, None, (0, 0), (16, 16, 3, 3))


@pytest.mark.parametrize("change, expected", [
    ({}, True),
    ({"stride": (2, 2)}, False),
    ({"dilation": (2, 1)}, False),
    ({"groups": 2}, False),
    ({"weight_shape": (32, 32, 7, 7)}, False),
    ({"weight_shape": (32, 32, 3, 5)}, False),
    ({"weight_shape": (32, 8, 5, 5)}, False),        # too few input channels for the products
    ({"output_size": (10, 10)}, False),              # too small an image: im2col was faster
    ({"padding": (5, 0)}, False),                    # more padding than r - 1: no full correlation form
    ({"dtype": np.float16}, False),
    ({"dtype": np.float64}, True),
])
def test_winograd_is_chosen_only_where_it_computes_and_gains(cpu, change, expected):
    arguments = {"dtype": np.float32, "weight_shape": (32, 32, 5, 5), "output_size": (20, 20),
                 "stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1}
    arguments.update(change)
    assert cpu.winograd_applies(**arguments) is expected
    cpu.winograd = False
    assert cpu.winograd_applies(**{**arguments, "dtype": np.float32}) is False


def test_conv2d_layer_gradients_match_with_and_without_winograd(cpu, monkeypatch):
    calls = []
    for name in ("forward", "input_gradient", "weight_gradient"):
        original = getattr(winograd, name)
        monkeypatch.setattr(winograd, name, lambda *args, _original=original, _name=name:
                            calls.append(_name) or _original(*args))
    rng = np.random.default_rng(7)
    x_data = rng.standard_normal((6, 16, 18, 18))
    w_data = rng.standard_normal((16, 16, 3, 3))
    results = {}
    for flag in (False, True):
        cpu.winograd = flag
        x = sigma.tensor(x_data, requires_grad=True)
        w = sigma.tensor(w_data, requires_grad=True)
        out = sigma.conv2d(x, w, padding=1)
        (out * out).sum().backward()
        results[flag] = (out.numpy(), x.grad.numpy(), w.grad.numpy())
    assert set(calls) == {"forward", "input_gradient", "weight_gradient"}   # the layer did go through it
    for with_winograd, with_im2col in zip(results[True], results[False]):
        np.testing.assert_allclose(with_winograd, with_im2col, rtol=1e-9, atol=1e-9)


def test_conv2d_matches_torch(cpu):
    torch = pytest.importorskip("torch")
    cpu.winograd = True
    rng = np.random.default_rng(8)
    x_data, w_data = rng.standard_normal((9, 32, 24, 24)), rng.standard_normal((24, 32, 5, 5))
    x, w = sigma.tensor(x_data, requires_grad=True), sigma.tensor(w_data, requires_grad=True)
    out = sigma.conv2d(x, w, padding=2)
    out.sum().backward()
    tx = torch.tensor(x_data, requires_grad=True)
    tw = torch.tensor(w_data, requires_grad=True)
    tout = torch.nn.functional.conv2d(tx, tw, padding=2)
    tout.sum().backward()
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-9, atol=1e-8)


def test_results_are_the_same_bits_every_run(cpu):
    """A resumed run must repeat the original bit for bit: blocks go to threads in a fixed split."""
    cpu.winograd = True
    rng = np.random.default_rng(11)
    x = rng.standard_normal((70, 16, 22, 22)).astype(np.float32)
    g = rng.standard_normal((70, 16, 18, 18)).astype(np.float32)
    first = winograd.weight_gradient(cpu, x, g, (0, 0), 5)
    for _ in range(3):
        assert np.array_equal(winograd.weight_gradient(cpu, x, g, (0, 0), 5), first)
