"""softmax/log_softmax, the fused softmax cross-entropy, dropout and embedding."""
import numpy as np
import pytest

import sigma
from ops_oracle import check, torch

F = torch.nn.functional


@pytest.mark.parametrize("axis", [-1, 0, 1, -2])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_and_log_softmax(device, rng, name, axis):
    x = rng.standard_normal((3, 4, 5)) * 2
    check(lambda t: getattr(sigma, name)(t, axis=axis), lambda t: getattr(torch, name)(t, dim=axis), x,
          device=device)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_is_stable_for_huge_logits(device, name):
    x = np.array([[1000.0, 999.0, -1000.0], [-5000.0, -5001.0, -4999.5]])
    check(lambda t: getattr(sigma, name)(t), lambda t: getattr(torch, name)(t, dim=-1), x, device=device)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_softmax_cross_entropy(device, rng, reduction):
    logits = rng.standard_normal((6, 5)) * 2
    labels = np.array([0, 4, 2, 2, 1, 4])
    check(lambda x, y: sigma.softmax_cross_entropy(x, y, reduction=reduction),
          lambda x, y: F.cross_entropy(x, y, reduction=reduction), logits, labels, device=device)


def test_softmax_cross_entropy_takes_labels_as_array_list_or_int32(device, rng):
    logits = rng.standard_normal((3, 4))
    expected = F.cross_entropy(torch.tensor(logits), torch.tensor([1, 3, 0])).item()
    x = sigma.tensor(logits, dtype="float64", device=device)
    for labels in ([1, 3, 0], np.array([1, 3, 0], dtype=np.int32), sigma.tensor([1, 3, 0], device=device)):
        assert sigma.softmax_cross_entropy(x, labels).item() == pytest.approx(expected, rel=1e-12)


def test_softmax_cross_entropy_with_extreme_logits(device):
    logits = np.array([[1000.0, -1000.0, 0.0], [-300.0, -310.0, -290.0]])
    check(lambda x, y: sigma.softmax_cross_entropy(x, y, reduction="none"),
          lambda x, y: F.cross_entropy(x, y, reduction="none"), logits, np.array([1, 2]), device=device,
          finite_differences=False)


def test_dropout_same_seed_same_mask(device):
    x = sigma.ones(50, 40, device=device)
    sigma.manual_seed(7)
    first = sigma.dropout(x, 0.3).numpy()
    sigma.manual_seed(7)
    second = sigma.dropout(x, 0.3).numpy()
    sigma.manual_seed(8)
    other = sigma.dropout(x, 0.3).numpy()
    np.testing.assert_array_equal(first, second)
    assert (first != other).any()


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_rate_and_scaling(device, p):
    x = sigma.tensor(np.full((200, 100), 2.0), device=device, requires_grad=True)
    y = sigma.dropout(x, p)
    values = y.numpy()
    dropped = values == 0
    # 20,000 draws: the observed rate is within 4.5 standard deviations of p.
    assert abs(dropped.mean() - p) < 4.5 * np.sqrt(p * (1 - p) / dropped.size)
    np.testing.assert_allclose(values[~dropped], 2.0 / (1.0 - p), rtol=1e-6)
    y.sum().backward()
    gradient = x.grad.numpy()
    np.testing.assert_array_equal(gradient == 0, dropped)
    np.testing.assert_allclose(gradient[~dropped], 1.0 / (1.0 - p), rtol=1e-6)


def test_dropout_keeps_dtype(device):
    for dtype in ("float32", "float64"):
        assert sigma.dropout(sigma.ones(4, dtype=dtype, device=device), 0.5).dtype == np.dtype(dtype)


def test_dropout_in_eval_mode_and_at_p_zero_is_the_identity(device, rng):
    x = sigma.tensor(rng.standard_normal((4, 5)), device=device, requires_grad=True)
    for y in (sigma.dropout(x, 0.5, training=False), sigma.dropout(x, 1.0, training=False),
              sigma.dropout(x, 0.0)):
        np.testing.assert_array_equal(y.numpy(), x.numpy())
        x.grad = None
        (y * 3.0).sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), np.full((4, 5), 3.0, np.float32))


def test_dropout_with_p_one_zeroes_everything(device, rng):
    x = sigma.tensor(rng.standard_normal((3, 3)), device=device, requires_grad=True)
    y = sigma.dropout(x, 1.0)
    y.sum().backward()
    assert not y.numpy().any() and not x.grad.numpy().any()


def test_embedding_with_repeated_indices(device, rng):
    weight = rng.standard_normal((5, 3))
    indices = np.array([[0, 4, 4], [2, 0, 4]])
    check(lambda w: sigma.embedding(indices, w), lambda w: F.embedding(torch.tensor(indices), w), weight,
          device=device)
    check(lambda w: sigma.embedding(sigma.tensor(indices, device=device), w),
          lambda w: F.embedding(torch.tensor(indices), w), weight, device=device)


def test_embedding_gradient_counts_each_use(device):
    weight = sigma.tensor(np.zeros((4, 2)), device=device, requires_grad=True)
    sigma.embedding(np.array([1, 3, 1, 1]), weight).sum().backward()
    assert weight.grad.tolist() == [[0, 0], [3, 3], [0, 0], [1, 1]]
