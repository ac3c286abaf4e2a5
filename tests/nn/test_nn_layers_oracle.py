"""Every layer against its torch.nn twin: same weights, forward, input and parameter gradients,
buffers; training and evaluation mode; float64 tightly and float32 loosely."""
import numpy as np
import pytest

import sigma
from sigma import nn

from nn_oracle import check_against_torch

torch = pytest.importorskip("torch")
tnn = torch.nn

pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same.:UserWarning")

MODES = [pytest.param(True, id="train"), pytest.param(False, id="eval")]
DTYPES = ["float64", "float32"]


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# (id, sigma factory, torch factory, input shape)
CASES = [
    ("linear", lambda: nn.Linear(5, 3), lambda: tnn.Linear(5, 3), (4, 5)),
    ("linear-3d-input", lambda: nn.Linear(5, 3), lambda: tnn.Linear(5, 3), (2, 3, 5)),
    ("linear-no-bias", lambda: nn.Linear(5, 3, bias=False), lambda: tnn.Linear(5, 3, bias=False), (4, 5)),
    ("conv2d", lambda: nn.Conv2d(3, 4, 3), lambda: tnn.Conv2d(3, 4, 3), (2, 3, 7, 6)),
    ("conv2d-stride-padding", lambda: nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 2)),
     lambda: tnn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 2)), (2, 3, 7, 6)),
    ("conv2d-dilation-groups", lambda: nn.Conv2d(4, 6, 3, dilation=2, groups=2, bias=False),
     lambda: tnn.Conv2d(4, 6, 3, dilation=2, groups=2, bias=False), (2, 4, 8, 9)),
    ("conv2d-depthwise", lambda: nn.Conv2d(3, 6, 3, padding=1, groups=3),
     lambda: tnn.Conv2d(3, 6, 3, padding=1, groups=3), (2, 3, 5, 5)),
    ("conv2d-same-even-kernel", lambda: nn.Conv2d(2, 3, (4, 3), padding="same", dilation=(1, 2)),
     lambda: tnn.Conv2d(2, 3, (4, 3), padding="same", dilation=(1, 2)), (2, 2, 6, 7)),
    ("conv2d-valid", lambda: nn.Conv2d(2, 3, 2, padding="valid"), lambda: tnn.Conv2d(2, 3, 2, padding="valid"),
     (1, 2, 4, 4)),
    ("conv1d", lambda: nn.Conv1d(3, 4, 3, stride=2, padding=1), lambda: tnn.Conv1d(3, 4, 3, stride=2, padding=1),
     (2, 3, 9)),
    ("conv1d-dilation-groups", lambda: nn.Conv1d(4, 2, 2, dilation=3, groups=2),
     lambda: tnn.Conv1d(4, 2, 2, dilation=3, groups=2), (2, 4, 10)),
    ("conv1d-same", lambda: nn.Conv1d(2, 2, 4, padding="same"), lambda: tnn.Conv1d(2, 2, 4, padding="same"),
     (1, 2, 7)),
    ("maxpool2d", lambda: nn.MaxPool2d(2), lambda: tnn.MaxPool2d(2), (2, 3, 6, 6)),
    ("maxpool2d-stride-padding", lambda: nn.MaxPool2d(3, stride=2, padding=1),
     lambda: tnn.MaxPool2d(3, stride=2, padding=1), (2, 2, 7, 6)),
    ("avgpool2d", lambda: nn.AvgPool2d(2), lambda: tnn.AvgPool2d(2), (2, 3, 6, 6)),
    ("avgpool2d-stride-padding", lambda: nn.AvgPool2d(3, stride=2, padding=1),
     lambda: tnn.AvgPool2d(3, stride=2, padding=1), (2, 2, 7, 6)),
    ("global-avgpool2d", lambda: nn.GlobalAvgPool2d(), lambda: tnn.Sequential(tnn.AdaptiveAvgPool2d(1), tnn.Flatten()),
     (2, 3, 4, 5)),
    ("batchnorm1d", lambda: nn.BatchNorm1d(4), lambda: tnn.BatchNorm1d(4), (6, 4)),
    ("batchnorm1d-3d", lambda: nn.BatchNorm1d(3), lambda: tnn.BatchNorm1d(3), (4, 3, 5)),
    ("batchnorm2d", lambda: nn.BatchNorm2d(3), lambda: tnn.BatchNorm2d(3), (2, 3, 4, 5)),
    ("batchnorm2d-no-affine", lambda: nn.BatchNorm2d(3, affine=False), lambda: tnn.BatchNorm2d(3, affine=False),
     (2, 3, 4, 5)),
    ("batchnorm2d-no-tracking", lambda: nn.BatchNorm2d(3, track_running_stats=False),
     lambda: tnn.BatchNorm2d(3, track_running_stats=False), (2, 3, 4, 5)),
    ("layernorm", lambda: nn.LayerNorm(5), lambda: tnn.LayerNorm(5), (3, 4, 5)),
    ("layernorm-2d-no-bias", lambda: nn.LayerNorm((4, 5), bias=False), lambda: tnn.LayerNorm((4, 5), bias=False),
     (3, 4, 5)),
    ("layernorm-no-affine", lambda: nn.LayerNorm(5, elementwise_affine=False),
     lambda: tnn.LayerNorm(5, elementwise_affine=False), (3, 5)),
    ("instancenorm2d", lambda: nn.InstanceNorm2d(3), lambda: tnn.InstanceNorm2d(3), (2, 3, 4, 5)),
    ("instancenorm2d-affine", lambda: nn.InstanceNorm2d(3, affine=True), lambda: tnn.InstanceNorm2d(3, affine=True),
     (2, 3, 4, 5)),
    ("instancenorm2d-unbatched", lambda: nn.InstanceNorm2d(3, affine=True),
     lambda: tnn.InstanceNorm2d(3, affine=True), (3, 4, 5)),
    ("flatten", lambda: nn.Flatten(), lambda: tnn.Flatten(), (2, 3, 4, 5)),
    ("flatten-range", lambda: nn.Flatten(0, 2), lambda: tnn.Flatten(0, 2), (2, 3, 4, 5)),
    ("identity", lambda: nn.Identity(), lambda: tnn.Identity(), (2, 3)),
    ("relu", lambda: nn.ReLU(), lambda: tnn.ReLU(), (4, 6)),
    ("leaky-relu", lambda: nn.LeakyReLU(0.2), lambda: tnn.LeakyReLU(0.2), (4, 6)),
    ("elu", lambda: nn.ELU(0.7), lambda: tnn.ELU(0.7), (4, 6)),
    ("gelu", lambda: nn.GELU(), lambda: tnn.GELU(), (4, 6)),
    ("gelu-tanh", lambda: nn.GELU("tanh"), lambda: tnn.GELU("tanh"), (4, 6)),
    ("sigmoid", lambda: nn.Sigmoid(), lambda: tnn.Sigmoid(), (4, 6)),
    ("tanh", lambda: nn.Tanh(), lambda: tnn.Tanh(), (4, 6)),
    ("softplus", lambda: nn.Softplus(beta=2.0, threshold=3.0), lambda: tnn.Softplus(beta=2.0, threshold=3.0), (4, 6)),
    ("softmax", lambda: nn.Softmax(axis=1), lambda: tnn.Softmax(dim=1), (3, 4, 2)),
    ("log-softmax", lambda: nn.LogSoftmax(axis=-1), lambda: tnn.LogSoftmax(dim=-1), (3, 4)),
]


@pytest.mark.parametrize("train", MODES)
@pytest.mark.parametrize("name, make_sigma, make_torch, shape", CASES, ids=[c[0] for c in CASES])
def test_layer_matches_torch_float64(name, make_sigma, make_torch, shape, train):
    check_against_torch(torch, make_sigma(), make_torch(), data(*shape), "float64", train)


@pytest.mark.parametrize("name, make_sigma, make_torch, shape", CASES, ids=[c[0] for c in CASES])
def test_layer_matches_torch_float32(name, make_sigma, make_torch, shape):
    check_against_torch(torch, make_sigma(), make_torch(), data(*shape), "float32", train=True)


@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
@pytest.mark.parametrize("make_sigma, make_torch, shape", [
    (lambda m: nn.BatchNorm1d(4, momentum=m), lambda m: tnn.BatchNorm1d(4, momentum=m), (5, 4)),
    (lambda m: nn.BatchNorm2d(3, momentum=m), lambda m: tnn.BatchNorm2d(3, momentum=m), (2, 3, 3, 4)),
], ids=["bn1d", "bn2d"])
def test_batchnorm_running_statistics_follow_torch_over_steps_then_eval(make_sigma, make_torch, shape, momentum):
    sigma_layer, torch_layer = make_sigma(momentum), make_torch(momentum)
    batches = [data(*shape, seed=s) * (s + 1) + s for s in range(4)]
    check_against_torch(torch, sigma_layer, torch_layer, batches, "float64", train=True, steps=4)
    assert int(sigma_layer.num_batches_tracked.item()) == 4
    # evaluation now uses the running statistics the four steps produced
    out_sigma, out_torch = check_against_torch(torch, sigma_layer, torch_layer, data(*shape, seed=9), "float64",
                                               train=False)
    assert not np.allclose(out_sigma.numpy(), sigma_layer.train()(sigma.tensor(data(*shape, seed=9))).numpy())


def test_instancenorm_running_statistics_follow_torch():
    sigma_layer = nn.InstanceNorm2d(3, affine=True, track_running_stats=True, momentum=0.2)
    torch_layer = tnn.InstanceNorm2d(3, affine=True, track_running_stats=True, momentum=0.2)
    batches = [data(2, 3, 4, 4, seed=s) * (s + 1) + s for s in range(3)]
    check_against_torch(torch, sigma_layer, torch_layer, batches, "float64", train=True, steps=3)
    check_against_torch(torch, sigma_layer, torch_layer, data(2, 3, 4, 4, seed=5), "float64", train=False)


@pytest.mark.parametrize("train", MODES)
def test_embedding_matches_torch_with_padding_index(train):
    indices = np.array([[0, 3, 5], [5, 1, 0]])
    sigma_layer, torch_layer = nn.Embedding(7, 4, padding_idx=5), tnn.Embedding(7, 4, padding_idx=5)
    out, _ = check_against_torch(torch, sigma_layer, torch_layer, indices, "float64", train)
    assert np.all(sigma_layer.weight.grad.numpy()[5] == 0)
    assert np.any(sigma_layer.weight.grad.numpy()[0] != 0)


def test_embedding_starts_with_a_zero_padding_row_and_standard_normal_elsewhere():
    layer = nn.Embedding(2000, 8, padding_idx=-1)
    weights = layer.weight.numpy()
    assert layer.padding_idx == 1999 and np.all(weights[1999] == 0)
    assert abs(weights[:-1].mean()) < 0.03 and abs(weights[:-1].std() - 1) < 0.03


def test_dropout_keeps_expected_fraction_scales_survivors_and_routes_gradient_through_the_mask():
    layer = nn.Dropout(0.3)
    x = sigma.ones(200, 100, requires_grad=True)
    out = layer(x)
    values = out.numpy()
    kept = values != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(values[kept], 1 / 0.7, rtol=1e-6)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.where(kept, 1 / 0.7, 0.0), rtol=1e-6)
    layer.eval()
    assert np.array_equal(layer(x).numpy(), x.numpy())


def test_dropout_mask_is_repeatable_under_a_seed():
    sigma.manual_seed(5)
    first = nn.Dropout(0.5)(sigma.ones(50)).numpy()
    sigma.manual_seed(5)
    second = nn.Dropout(0.5)(sigma.ones(50)).numpy()
    assert np.array_equal(first, second) and 10 < (first == 0).sum() < 40


@pytest.mark.parametrize("layer, torch_layer, in_features", [
    (lambda: nn.Linear(40, 300), lambda: tnn.Linear(40, 300), 40),
    (lambda: nn.Conv2d(6, 256, 3, groups=2), lambda: tnn.Conv2d(6, 256, 3, groups=2), 27),
], ids=["linear", "conv2d"])
def test_default_initialisation_is_torchs_uniform_on_one_over_sqrt_fan_in(layer, torch_layer, in_features):
    sigma_layer, reference = layer(), torch_layer()
    bound = 1 / np.sqrt(in_features)
    for name, tolerance in (("weight", 0.05), ("bias", 0.2)):
        values = getattr(sigma_layer, name).numpy()
        torch_values = getattr(reference, name).detach().numpy()
        # both draws fill the same interval (torch's reaches close to its edge)
        assert np.abs(values).max() <= bound and np.abs(torch_values).max() <= bound
        assert np.abs(values).max() > 0.9 * bound
        assert abs(values.std() - bound / np.sqrt(3)) < tolerance * bound / np.sqrt(3)
        assert abs(values.mean()) < 4 * bound / np.sqrt(3 * values.size)


def test_default_initialisation_is_seeded_by_manual_seed():
    sigma.manual_seed(3)
    a = nn.Linear(4, 4).weight.numpy().copy()
    sigma.manual_seed(3)
    b = nn.Linear(4, 4).weight.numpy().copy()
    c = nn.Linear(4, 4).weight.numpy()
    assert np.array_equal(a, b) and not np.array_equal(b, c)


@pytest.mark.parametrize("make, shape, message", [
    (lambda: nn.Linear(3, 2), (4, 5), "in_features=3"),
    (lambda: nn.Conv2d(3, 2, 3), (1, 4, 5, 5), "expected 3 input channels"),
    (lambda: nn.Conv2d(3, 2, 3), (3, 5, 5), "4 axes"),
    (lambda: nn.BatchNorm2d(3), (2, 4, 5, 5), "expected 3 channels"),
    (lambda: nn.BatchNorm1d(3), (1, 3), "more than one value per channel"),
    (lambda: nn.LayerNorm(4), (2, 5), "normalized_shape (4,)"),
    (lambda: nn.InstanceNorm2d(3), (2, 3), "(N, C, H, W)"),
    (lambda: nn.InstanceNorm2d(3), (2, 3, 5), "expected 3 channels (axis -3), got input of shape (2, 3, 5)"),
    (lambda: nn.MaxPool2d(4), (1, 1, 3, 3), "smaller than the kernel"),
])
def test_layers_reject_bad_input_with_a_message_naming_the_shapes(make, shape, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()(sigma.zeros(*shape))


@pytest.mark.parametrize("make, message", [
    (lambda: nn.Linear(0, 2), "in_features must be a positive int"),
    (lambda: nn.Conv2d(3, 4, 3, groups=2), "groups=2 must divide"),
    (lambda: nn.Conv2d(3, 4, 3, stride=2, padding="same"), "needs stride 1"),
    (lambda: nn.Conv2d(3, 4, 3, padding="full"), "'valid' or 'same'"),
    (lambda: nn.Dropout(1.5), "p must be a probability"),
    (lambda: nn.Embedding(5, 2, padding_idx=5), "padding_idx 5 out of range"),
    (lambda: nn.BatchNorm2d(3, momentum=2.0), "momentum must be in"),
    (lambda: nn.GELU("fast"), "approximate must be"),
])
def test_layers_reject_bad_settings(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_embedding_rejects_out_of_range_and_float_indices():
    table = nn.Embedding(4, 2)
    with pytest.raises(IndexError, match=r"\[0, 4\)"):
        table(sigma.tensor([1, 4]))
    with pytest.raises(TypeError, match="integers"):
        table(sigma.tensor([1.0]))


def test_layers_run_on_each_backend(device):
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    net.to(device)
    x = sigma.randn(2, 1, 6, 6, device=device)
    out = net(x)
    out.sum().backward()
    assert out.device == sigma.tensor(0.0, device=device).device
    assert all(p.grad is not None and p.grad.device == out.device for p in net.parameters())
    assert net[1].running_mean.device == out.device
