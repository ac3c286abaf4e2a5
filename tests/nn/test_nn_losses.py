"""Losses (functions and modules) against torch.nn.functional: values and input gradients,
every reduction, label smoothing, soft targets, class axes beyond the second, pos_weight."""
import numpy as np
import pytest

import sigma
from sigma import nn
from sigma.nn import functional as F

from nn_oracle import assert_close

torch = pytest.importorskip("torch")
TF = torch.nn.functional

REDUCTIONS = ["mean", "sum", "none"]


def _compare(sigma_loss, torch_loss, input_array, target_array, dtype="float64", target_is_float=True):
    """Value and gradient of the input (and of a float target) agree."""
    x = input_array.astype(dtype)
    t = target_array.astype(dtype) if target_is_float else target_array
    xs, xt = sigma.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ts, tt = sigma.tensor(t), torch.tensor(t)
    out_s, out_t = sigma_loss(xs, ts), torch_loss(xt, tt)
    assert_close(out_s, out_t, dtype, "loss")
    seed = np.random.default_rng(3).standard_normal(out_t.shape).astype(dtype)
    out_s.backward(sigma.tensor(seed))
    out_t.backward(torch.tensor(seed))
    assert_close(xs.grad, xt.grad, dtype, "input gradient")


rng = np.random.default_rng(0)
LOGITS = rng.standard_normal((6, 5)) * 3
LABELS = rng.integers(0, 5, 6)
SOFT = rng.dirichlet(np.ones(5), 6)
LOGITS_3D = rng.standard_normal((3, 4, 5))   # (N, C, d)
LABELS_3D = rng.integers(0, 4, (3, 5))


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_with_integer_labels(reduction, smoothing):
    _compare(lambda x, t: F.cross_entropy(x, t, reduction, smoothing),
             lambda x, t: TF.cross_entropy(x, t, reduction=reduction, label_smoothing=smoothing),
             LOGITS, LABELS, target_is_float=False)


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_with_soft_targets(reduction, smoothing):
    _compare(lambda x, t: F.cross_entropy(x, t, reduction, smoothing),
             lambda x, t: TF.cross_entropy(x, t, reduction=reduction, label_smoothing=smoothing), LOGITS, SOFT)


def test_cross_entropy_one_hot_equals_integer_labels():
    one_hot = np.eye(5)[LABELS]
    from_labels = F.cross_entropy(sigma.tensor(LOGITS), sigma.tensor(LABELS), label_smoothing=0.1).item()
    from_one_hot = F.cross_entropy(sigma.tensor(LOGITS), sigma.tensor(one_hot), label_smoothing=0.1).item()
    assert from_labels == pytest.approx(from_one_hot, rel=1e-12)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_with_class_axis_one_of_three(reduction, smoothing):
    _compare(lambda x, t: F.cross_entropy(x, t, reduction, smoothing),
             lambda x, t: TF.cross_entropy(x, t, reduction=reduction, label_smoothing=smoothing),
             LOGITS_3D, LABELS_3D, target_is_float=False)
    soft = np.random.default_rng(1).dirichlet(np.ones(4), (3, 5)).transpose(0, 2, 1)
    _compare(lambda x, t: F.cross_entropy(x, t, reduction, smoothing),
             lambda x, t: TF.cross_entropy(x, t, reduction=reduction, label_smoothing=smoothing), LOGITS_3D, soft)


def test_cross_entropy_float32_uses_the_fused_kernel_and_matches_torch():
    _compare(lambda x, t: F.cross_entropy(x, t), lambda x, t: TF.cross_entropy(x, t), LOGITS, LABELS,
             dtype="float32", target_is_float=False)
    logits = sigma.tensor(LOGITS, dtype="float32", requires_grad=True)
    loss = F.cross_entropy(logits, sigma.tensor(LABELS))
    names, node = [], loss.grad_fn
    while node is not None:
        names.append(node.name)
        node = node.inputs[0].grad_fn
    assert names == ["Mul", "Sum", "SoftmaxCrossEntropy"]  # mean of the fused per-sample losses


def test_cross_entropy_is_stable_for_huge_logits():
    logits = sigma.tensor([[1000.0, -1000.0], [-1000.0, 1000.0]], dtype="float64")
    assert F.cross_entropy(logits, sigma.tensor([0, 0]), reduction="none").tolist() == [0.0, 2000.0]


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss(reduction):
    log_probs = LOGITS - np.log(np.exp(LOGITS).sum(1, keepdims=True))
    _compare(lambda x, t: F.nll_loss(x, t, reduction), lambda x, t: TF.nll_loss(x, t, reduction=reduction),
             log_probs, LABELS, target_is_float=False)
    _compare(lambda x, t: F.nll_loss(x, t, reduction), lambda x, t: TF.nll_loss(x, t, reduction=reduction),
             LOGITS_3D, LABELS_3D, target_is_float=False)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("sigma_loss, torch_loss", [
    (F.mse_loss, TF.mse_loss), (F.l1_loss, TF.l1_loss),
    (lambda x, t, reduction: F.huber_loss(x, t, reduction, delta=1.0),
     lambda x, t, reduction: TF.huber_loss(x, t, reduction=reduction, delta=1.0)),
    (lambda x, t, reduction: F.huber_loss(x, t, reduction, delta=0.3),
     lambda x, t, reduction: TF.huber_loss(x, t, reduction=reduction, delta=0.3)),
], ids=["mse", "l1", "huber-1", "huber-0.3"])
def test_regression_losses(sigma_loss, torch_loss, reduction):
    prediction, target = rng.standard_normal((4, 3)) * 2, rng.standard_normal((4, 3))
    _compare(lambda x, t: sigma_loss(x, t, reduction=reduction), lambda x, t: torch_loss(x, t, reduction=reduction),
             prediction, target)


@pytest.mark.parametrize("with_pos_weight", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_logits(reduction, with_pos_weight):
    logits = rng.standard_normal((5, 3)) * 4
    targets = rng.uniform(0, 1, (5, 3))
    pos_weight = np.array([0.5, 2.0, 3.0]) if with_pos_weight else None
    _compare(lambda x, t: F.binary_cross_entropy_with_logits(
                 x, t, reduction, None if pos_weight is None else sigma.tensor(pos_weight)),
             lambda x, t: TF.binary_cross_entropy_with_logits(
                 x, t, reduction=reduction, pos_weight=None if pos_weight is None else torch.tensor(pos_weight)),
             logits, targets)


def test_binary_cross_entropy_with_logits_is_stable_for_huge_logits():
    loss = F.binary_cross_entropy_with_logits(sigma.tensor([800.0, -800.0], dtype="float64"),
                                              sigma.tensor([0.0, 1.0], dtype="float64"), reduction="none")
    assert loss.tolist() == [800.0, 800.0]


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_on_probabilities(reduction):
    probabilities = np.array([[0.1, 0.9, 0.5], [0.3, 0.999, 0.02]])
    targets = np.array([[0.0, 1.0, 1.0], [0.5, 0.0, 1.0]])
    _compare(lambda x, t: F.binary_cross_entropy(x, t, reduction),
             lambda x, t: TF.binary_cross_entropy(x, t, reduction=reduction), probabilities, targets)


@pytest.mark.parametrize("module, torch_module, target", [
    (nn.CrossEntropyLoss(label_smoothing=0.1), torch.nn.CrossEntropyLoss(label_smoothing=0.1), LABELS),
    (nn.CrossEntropyLoss(reduction="sum"), torch.nn.CrossEntropyLoss(reduction="sum"), SOFT),
    (nn.NLLLoss(reduction="none"), torch.nn.NLLLoss(reduction="none"), LABELS),
    (nn.MSELoss(), torch.nn.MSELoss(), SOFT),
    (nn.L1Loss(reduction="sum"), torch.nn.L1Loss(reduction="sum"), SOFT),
    (nn.HuberLoss(delta=0.5), torch.nn.HuberLoss(delta=0.5), SOFT),
    (nn.BCEWithLogitsLoss(pos_weight=sigma.tensor(np.arange(1.0, 6.0))),
     torch.nn.BCEWithLogitsLoss(pos_weight=torch.arange(1.0, 6.0, dtype=torch.float64)), SOFT),
], ids=["ce", "ce-soft", "nll", "mse", "l1", "huber", "bce-logits"])
def test_loss_modules_match_torch_modules(module, torch_module, target):
    _compare(module, torch_module, LOGITS, target, target_is_float=target.dtype.kind == "f")


def test_bce_pos_weight_is_a_buffer_that_moves_with_the_module():
    loss = nn.BCEWithLogitsLoss(pos_weight=sigma.tensor([2.0]))
    assert [name for name, _ in loss.named_buffers()] == ["pos_weight"]
    loss.to(dtype="float64")
    assert loss.pos_weight.dtype == np.float64


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.cross_entropy(sigma.zeros(3, 4), sigma.tensor([0, 1])), ValueError, r"labels of shape \(3,\)"),
    (lambda: F.cross_entropy(sigma.zeros(2, 4), sigma.tensor([0, 4])), ValueError, r"\[0, 4\)"),
    (lambda: F.cross_entropy(sigma.zeros(2, 4), sigma.zeros(2, 3)), ValueError, "input's shape"),
    (lambda: F.cross_entropy(sigma.zeros(4), sigma.tensor([0])), ValueError, "shape"),
    (lambda: F.cross_entropy(sigma.zeros(2, 4), sigma.tensor([0, 1]), reduction="avg"), ValueError, "'avg'"),
    (lambda: F.cross_entropy(sigma.zeros(2, 4), sigma.tensor([0, 1]), label_smoothing=1.5), ValueError, "in \\[0, 1\\]"),
    (lambda: F.nll_loss(sigma.zeros(2, 4), sigma.zeros(2)), TypeError, "integer"),
    (lambda: F.mse_loss(sigma.zeros(2, 3), sigma.zeros(3, 2)), ValueError, r"\(2, 3\).*\(3, 2\)"),
    (lambda: F.huber_loss(sigma.zeros(2), sigma.zeros(2), delta=0.0), ValueError, "delta"),
    (lambda: F.binary_cross_entropy(sigma.tensor([1.5]), sigma.tensor([1.0])), ValueError, "probabilities"),
    (lambda: F.binary_cross_entropy_with_logits(sigma.zeros(2, 3), sigma.zeros(2, 3), pos_weight=sigma.ones(2)),
     ValueError, "pos_weight"),
])
def test_bad_loss_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_targets_may_be_numpy_arrays_or_lists():
    logits = sigma.tensor(LOGITS)
    expected = F.cross_entropy(logits, sigma.tensor(LABELS)).item()
    assert F.cross_entropy(logits, LABELS).item() == expected
    assert F.mse_loss(sigma.tensor([1.0, 2.0]), [0.0, 0.0]).item() == 2.5
