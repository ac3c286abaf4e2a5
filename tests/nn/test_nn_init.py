"""Initialisers: statistics match the published formulas (and torch.nn.init's draws), orthogonality,
seeding, and applying by name pattern with the most specific pattern winning."""
import math

import numpy as np
import pytest

import sigma
from sigma import nn
from sigma.nn import init

torch = pytest.importorskip("torch")

CONV_SHAPE = (64, 32, 3, 3)      # fan_in 288, fan_out 576
LINEAR_SHAPE = (300, 500)        # fan_in 500, fan_out 300


def _draw(initialiser, shape, dtype="float64"):
    return initialiser(sigma.zeros(*shape, dtype=dtype)).numpy()


@pytest.mark.parametrize("shape", [CONV_SHAPE, LINEAR_SHAPE], ids=["conv", "linear"])
@pytest.mark.parametrize("make, torch_fill, std_of_fans, uniform", [
    (lambda: init.xavier_uniform(), torch.nn.init.xavier_uniform_, lambda fi, fo: math.sqrt(2 / (fi + fo)), True),
    (lambda: init.xavier_normal(gain=2.0), lambda t: torch.nn.init.xavier_normal_(t, gain=2.0),
     lambda fi, fo: 2 * math.sqrt(2 / (fi + fo)), False),
    (lambda: init.he_uniform(), torch.nn.init.kaiming_uniform_, lambda fi, fo: math.sqrt(2 / fi), True),
    (lambda: init.he_normal(mode="fan_out"), lambda t: torch.nn.init.kaiming_normal_(t, mode="fan_out"),
     lambda fi, fo: math.sqrt(2 / fo), False),
    (lambda: init.he_normal(a=0.2, nonlinearity="leaky_relu"),
     lambda t: torch.nn.init.kaiming_normal_(t, a=0.2, nonlinearity="leaky_relu"),
     lambda fi, fo: math.sqrt(2 / (1 + 0.04)) / math.sqrt(fi), False),
    (lambda: init.kaiming_uniform(nonlinearity="tanh", mode="fan_out"),
     lambda t: torch.nn.init.kaiming_uniform_(t, nonlinearity="tanh", mode="fan_out"),
     lambda fi, fo: (5 / 3) / math.sqrt(fo), True),
    (lambda: init.he_uniform(a=math.sqrt(5)), lambda t: torch.nn.init.kaiming_uniform_(t, a=math.sqrt(5)),
     lambda fi, fo: 1 / math.sqrt(3 * fi), True),
], ids=["xavier-uniform", "xavier-normal-gain2", "he-uniform", "he-normal-fan-out", "he-normal-leaky",
        "he-uniform-tanh-fan-out", "he-uniform-torch-default"])
def test_fan_based_initialisers_match_formula_and_torch(make, torch_fill, std_of_fans, uniform, shape):
    fan_in, fan_out = init.fans(shape)
    expected_std = std_of_fans(fan_in, fan_out)
    values = _draw(make(), shape)
    reference = torch_fill(torch.empty(shape, dtype=torch.float64)).numpy()
    assert abs(values.mean()) < 5 * expected_std / math.sqrt(values.size)
    assert values.std() == pytest.approx(expected_std, rel=0.03)
    assert values.std() == pytest.approx(reference.std(), rel=0.05)
    if uniform:
        bound = math.sqrt(3) * expected_std
        assert np.abs(values).max() <= bound and np.abs(values).max() > 0.99 * bound
        assert np.abs(reference).max() <= bound * (1 + 1e-12)


def test_fans_count_the_receptive_field():
    assert init.fans(CONV_SHAPE) == (288, 576)
    assert init.fans((10, 4)) == (4, 10)
    assert init.fans((8, 2, 5)) == (10, 40)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.fans((5,))


@pytest.mark.parametrize("nonlinearity, param", [("linear", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                                                 ("leaky_relu", None), ("leaky_relu", 0.3), ("selu", None),
                                                 ("conv2d", None)])
def test_gains_match_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(torch.nn.init.calculate_gain(nonlinearity, param))


def test_uniform_normal_constant_zeros_ones():
    values = _draw(init.uniform(-2.0, 3.0), (200, 200))
    assert values.min() >= -2.0 and values.max() < 3.0
    assert values.mean() == pytest.approx(0.5, abs=0.03) and values.std() == pytest.approx(5 / math.sqrt(12), rel=0.02)
    values = _draw(init.normal(1.5, 0.2), (200, 200))
    assert values.mean() == pytest.approx(1.5, abs=0.005) and values.std() == pytest.approx(0.2, rel=0.02)
    assert np.all(_draw(init.constant(0.25), (3, 4)) == 0.25)
    assert np.all(_draw(init.zeros(), (3,)) == 0) and np.all(_draw(init.ones(), (3,)) == 1)


@pytest.mark.parametrize("shape", [(4, 9), (9, 4), (6, 6), (8, 2, 3, 3)])
def test_orthogonal_gives_orthonormal_rows_or_columns(shape):
    w = _draw(init.orthogonal(gain=1.5), shape).reshape(shape[0], -1)
    rows, cols = w.shape
    product = w @ w.T if rows <= cols else w.T @ w
    np.testing.assert_allclose(product, 1.5 ** 2 * np.eye(min(rows, cols)), atol=1e-10)


def test_orthogonal_is_uniformly_signed_not_biased_by_qr():
    # Without the sign fix from R's diagonal, QR returns a biased distribution (e.g. the first
    # entry of a column is non-positive far more than half the time with LAPACK's convention).
    firsts = np.array([_draw(init.orthogonal(), (3, 3))[0, 0] for _ in range(400)])
    assert 0.4 < (firsts > 0).mean() < 0.6


def test_orthogonal_rejects_vectors():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.orthogonal()(sigma.zeros(5))


def test_seeded_initialisers_are_repeatable_continue_their_stream_and_leave_the_global_one_alone():
    sigma.manual_seed(0)
    before = sigma.randn(3).numpy()
    sigma.manual_seed(0)
    first = init.he_normal(seed=7)
    a1, a2 = _draw(first, (4, 4)), _draw(first, (4, 4))
    b1 = _draw(init.he_normal(seed=7), (4, 4))
    after = sigma.randn(3).numpy()
    assert np.array_equal(a1, b1)            # same seed, same values
    assert not np.array_equal(a1, a2)        # one initialiser continues its own stream
    assert np.array_equal(before, after)     # the backend stream was not touched
    assert not np.array_equal(a1, _draw(init.he_normal(seed=8), (4, 4)))


def test_seeded_initialiser_gives_the_same_values_in_float32_and_float64():
    w32 = _draw(init.xavier_uniform(seed=3), (5, 5), "float32")
    w64 = _draw(init.xavier_uniform(seed=3), (5, 5), "float64")
    np.testing.assert_allclose(w32, w64, rtol=1e-6)


def test_unseeded_initialisers_follow_manual_seed():
    sigma.manual_seed(11)
    a = _draw(init.orthogonal(), (3, 5))
    sigma.manual_seed(11)
    b = _draw(init.orthogonal(), (3, 5))
    assert np.array_equal(a, b) and not np.array_equal(a, _draw(init.orthogonal(), (3, 5)))


def test_initialisers_reject_integer_tensors_and_bad_settings():
    with pytest.raises(TypeError, match="float"):
        init.normal()(sigma.tensor([1, 2]))
    with pytest.raises(ValueError, match="mode"):
        init.he_normal(mode="fan_avg")
    with pytest.raises(ValueError, match="nonlinearity"):
        init.he_normal(nonlinearity="swish")
    with pytest.raises(ValueError, match="low < high"):
        init.uniform(1.0, 1.0)
    with pytest.raises(TypeError, match="seed"):
        init.normal(seed=1.5)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
        self.head = nn.Linear(4, 3)


def test_apply_most_specific_pattern_wins_and_reports_what_it_set():
    net = _Net()
    chosen = init.apply(net, {
        "*": init.constant(1.0),
        "*.weight": init.constant(2.0),
        "head.*": init.constant(3.0),        # one wildcard, shorter than "*.weight": loses on head.weight
        "head.bias": init.constant(4.0),     # exact name: always wins
        "features.1.*": init.constant(5.0),  # one wildcard, longer than "*.weight"
    })
    assert chosen == {"*": ["features.0.bias"], "*.weight": ["features.0.weight", "head.weight"], "head.*": [],
                      "head.bias": ["head.bias"], "features.1.*": ["features.1.weight", "features.1.bias"]}
    assert np.all(net.features[0].bias.numpy() == 1) and np.all(net.head.weight.numpy() == 2)
    assert np.all(net.head.bias.numpy() == 4) and np.all(net.features[1].weight.numpy() == 5)


def test_apply_rejects_equally_specific_matches_and_unknown_patterns():
    net = _Net()
    with pytest.raises(ValueError, match="equally specific"):
        init.apply(net, {"head.*": init.zeros(), "*.bias": init.ones()})
    with pytest.raises(KeyError, match="decoder"):
        init.apply(net, {"decoder.*": init.zeros()})
    assert init.apply(net, {"decoder.*": init.zeros(), "head.bias": init.zeros()}, strict=False) == {
        "decoder.*": [], "head.bias": ["head.bias"]}
    with pytest.raises(TypeError, match="not callable"):
        init.apply(net, {"*": 0.0})


def test_apply_initialises_a_shared_parameter_once():
    calls = []
    shared = nn.Linear(2, 2)
    net = nn.Sequential(shared, nn.ReLU(), shared)
    init.apply(net, {"*.weight": lambda p: calls.append(p.shape)})
    assert calls == [(2, 2)]


def test_he_normal_with_apply_gives_each_weight_its_own_spread():
    net = nn.Sequential(nn.Linear(400, 300), nn.ReLU(), nn.Linear(300, 50))
    init.apply(net, {"*.weight": init.he_normal(seed=0), "*.bias": init.zeros()})
    assert net[0].weight.numpy().std() == pytest.approx(math.sqrt(2 / 400), rel=0.03)
    assert net[2].weight.numpy().std() == pytest.approx(math.sqrt(2 / 300), rel=0.03)
    assert np.all(net[2].bias.numpy() == 0)
