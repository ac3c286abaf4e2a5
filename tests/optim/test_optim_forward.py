"""Forward-only optimisers: loss handles (one by one and batched) and random search."""
import copy

import numpy as np
import pytest

import sigma
import sigma.optim
from sigma.optim import BatchedLossHandle, LossHandle, RandomSearch


def _regression(seed=0, n=64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5))
    true_w = rng.standard_normal((5, 2))
    y = x @ true_w + 0.01 * rng.standard_normal((n, 2))
    return x, y


def _model(dtype="float64"):
    rng = np.random.default_rng(7)
    w = sigma.tensor(rng.standard_normal((5, 2)) * 0.1, dtype=dtype)
    b = sigma.tensor(np.zeros(2), dtype=dtype)
    return w, b


def _loss_function(w, b, x, y):
    xs, ys = sigma.tensor(x, dtype=w.dtype), sigma.tensor(y, dtype=w.dtype)
    return lambda: ((xs @ w + b - ys) ** 2).mean()


def _batched_loss_function(x, y, dtype):
    xs, ys = sigma.tensor(x, dtype=dtype), sigma.tensor(y, dtype=dtype)

    def losses(values):
        w, b = values  # (K, 5, 2), (K, 2)
        predictions = xs @ w + b.unsqueeze(1)  # (K, n, 2): all candidates in one batched product
        return ((predictions - ys) ** 2).mean(axis=(1, 2))

    return losses


def test_loss_handle_evaluates_candidates_and_restores_parameters_exactly():
    w, b = _model()
    x, y = _regression()
    handle = LossHandle(_loss_function(w, b, x, y), [w, b])
    before = [w.numpy().copy(), b.numpy().copy()]
    deltas = [np.random.default_rng(1).standard_normal((4, 5, 2)), None]
    losses = handle.evaluate(deltas)
    assert losses.shape == (4,) and losses.dtype == np.float64
    np.testing.assert_array_equal(w.numpy(), before[0])
    for k in range(4):
        expected = np.mean((x @ (before[0] + deltas[0][k]) + before[1] - y) ** 2)
        assert losses[k] == pytest.approx(expected, rel=1e-12)
    assert handle.evaluations == 4
    assert handle.loss() == pytest.approx(np.mean((x @ before[0] - y) ** 2), rel=1e-12)


def test_loss_handle_restores_parameters_when_the_loss_fails():
    w = sigma.tensor([1.0, 2.0])
    calls = []

    def loss():
        calls.append(w.tolist())
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return (w * w).sum()

    with pytest.raises(RuntimeError, match="out of memory"):
        LossHandle(loss, [w]).evaluate([np.ones((3, 2))])
    assert w.tolist() == [1.0, 2.0]


def test_batched_handle_gives_the_same_losses_in_one_call():
    w, b = _model()
    x, y = _regression()
    calls = []
    batched = _batched_loss_function(x, y, "float64")

    def counted(values):
        calls.append(values[0].shape)
        return batched(values)

    deltas = [np.random.default_rng(2).standard_normal((6, 5, 2)), np.random.default_rng(3).standard_normal((6, 2))]
    one_by_one = LossHandle(_loss_function(w, b, x, y), [w, b]).evaluate(deltas)
    at_once = BatchedLossHandle(counted, [w, b]).evaluate(deltas)
    np.testing.assert_allclose(at_once, one_by_one, rtol=1e-12)
    assert calls == [(6, 5, 2)]
    assert BatchedLossHandle(batched, [w, b]).evaluate([None, deltas[1]]).shape == (6,)


@pytest.mark.parametrize("deltas,words", [
    ([np.zeros((2, 5, 2))], "1 perturbation(s) for 2 parameter(s)"),
    ([np.zeros((2, 2, 5)), None],
     "perturbation 0 has shape (2, 2, 5); parameter 0 has shape (5, 2), so it needs (K, 5, 2)"),
    ([np.zeros((2, 5, 2)), np.zeros((3, 2))], "different or zero numbers of candidates [2, 3]"),
    ([None, None], "every perturbation is None"),
])
def test_bad_perturbations_are_explained(deltas, words):
    w, b = _model()
    with pytest.raises(ValueError) as raised:
        LossHandle(lambda: (w * w).sum(), [w, b]).evaluate(deltas)
    assert words in str(raised.value)


def test_batched_loss_of_the_wrong_length_is_explained():
    w, _ = _model()
    with pytest.raises(ValueError, match="returned 1 value"):
        BatchedLossHandle(lambda values: np.zeros(1), [w]).evaluate([np.zeros((3, 5, 2))])


def _train_random_search(handle_kind, steps, dtype="float64", optimiser=None, params=None, start=0):
    x, y = _regression(n=256)
    w, b = params if params is not None else _model(dtype)
    optimiser = optimiser or RandomSearch([{"params": [w]}, {"params": [b], "lr": 0.02}], lr=0.05, population=16,
                                          seed=3)
    history = []
    for step in range(start, start + steps):
        rows = slice((step % 8) * 32, (step % 8 + 1) * 32)  # minibatches of 32
        if handle_kind == "batched":
            closure = BatchedLossHandle(_batched_loss_function(x[rows], y[rows], dtype), [w, b])
        else:
            closure = _loss_function(w, b, x[rows], y[rows])
        before = float(_loss_function(w, b, x[rows], y[rows])().item())
        after = optimiser.step(closure)
        assert after <= before  # never worse on the step's own batch
        history.append(float(_loss_function(w, b, x, y)().item()))
    return optimiser, (w, b), history


def test_random_search_decreases_the_loss():
    x, y = _regression(n=256)
    w, b = _model()
    start = float(_loss_function(w, b, x, y)().item())
    _, _, history = _train_random_search("sequential", 60)
    assert history[-1] < 0.5 * start


def test_random_search_is_the_same_through_a_batched_handle():
    _, (w1, b1), _ = _train_random_search("sequential", 10)
    _, (w2, b2), _ = _train_random_search("batched", 10)
    np.testing.assert_allclose(w1.numpy(), w2.numpy(), rtol=1e-12)
    np.testing.assert_allclose(b1.numpy(), b2.numpy(), rtol=1e-12)


def test_random_search_resumes_bit_identically_from_its_state():
    optimiser, (w, b), _ = _train_random_search("batched", 5)
    saved = copy.deepcopy(optimiser.state_dict())
    middle = (sigma.tensor(w.numpy().copy()), sigma.tensor(b.numpy().copy()))
    _train_random_search("batched", 5, optimiser=optimiser, params=(w, b), start=5)

    restored = RandomSearch([{"params": [middle[0]]}, {"params": [middle[1]], "lr": 0.02}], lr=0.05, population=16,
                            seed=3)
    restored.load_state_dict(saved)
    _train_random_search("batched", 5, optimiser=restored, params=middle, start=5)
    np.testing.assert_array_equal(middle[0].numpy(), w.numpy())
    np.testing.assert_array_equal(middle[1].numpy(), b.numpy())


def test_random_search_never_picks_a_nan_loss():
    w = sigma.tensor([1.0])
    optimiser = RandomSearch([w], lr=1.0, population=4)
    assert optimiser.step(lambda: sigma.tensor(float("nan")) if w.item() != 1.0 else (w * w).sum()) == 1.0
    assert w.item() == 1.0


def test_forward_step_needs_a_loss_over_its_own_parameters():
    w, b = _model()
    optimiser = RandomSearch([w, b])
    with pytest.raises(TypeError, match="needs the loss"):
        optimiser.step()
    with pytest.raises(ValueError, match="covers 1 parameter"):
        optimiser.step(LossHandle(lambda: (w * w).sum(), [w]))
    with pytest.raises(TypeError, match="a loss is a number or a one-value tensor"):
        optimiser.step(lambda: "low")
    with pytest.raises(ValueError, match="every group must use the same population"):
        RandomSearch([{"params": [w]}, {"params": [b], "population": 3}])


def test_random_search_passes_the_conformance_kit():
    from sigma.testing import check_optimiser
    assert "state round trip" in check_optimiser(RandomSearch, lr=0.05, population=4)
