"""Module machinery: names, containers, buffers, state dicts, modes, devices, hooks, graphs."""
import json

import numpy as np
import pytest

import sigma
from sigma import nn

from nn_oracle import assert_close, copy_weights

torch = pytest.importorskip("torch")


class Block(nn.Module):
    """A residual block with its own parameter, a list of layers and a dict of heads."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(sigma.ones(4))
        self.layers = [nn.Linear(4, 4), nn.Linear(4, 4)]
        self.heads = {"a": nn.Linear(4, 2), "b": nn.Linear(4, 3)}
        self.register_buffer("steps", sigma.zeros(1))
        self.register_buffer("scratch", sigma.zeros(2), persistent=False)

    def forward(self, x):
        h = x
        for layer in self.layers:
            h = layer(h).relu()
        h = x + h * self.scale
        return self.heads["a"](h), self.heads["b"](h)


class TorchBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(4))
        self.layers = torch.nn.ModuleList([torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)])
        self.heads = torch.nn.ModuleDict({"a": torch.nn.Linear(4, 2), "b": torch.nn.Linear(4, 3)})
        self.register_buffer("steps", torch.zeros(1))
        self.register_buffer("scratch", torch.zeros(2), persistent=False)

    def forward(self, x):
        h = x
        for layer in self.layers:
            h = layer(h).relu()
        h = x + h * self.scale
        return self.heads["a"](h), self.heads["b"](h)


def test_names_and_order_match_torch_for_lists_dicts_and_own_parameters():
    names = [n for n, _ in Block().named_parameters()]
    assert names == [n for n, _ in TorchBlock().named_parameters()]
    assert names[:3] == ["scale", "layers.0.weight", "layers.0.bias"]
    assert list(Block().state_dict()) == list(TorchBlock().state_dict())
    assert [n for n, _ in Block().named_buffers()] == ["steps", "scratch"]
    assert [n for n, _ in Block().named_modules()] == ["", "layers.0", "layers.1", "heads.a", "heads.b"]
    assert [n for n, _ in Block().named_children()] == ["layers.0", "layers.1", "heads.a", "heads.b"]


def test_multi_output_residual_graph_matches_torch_gradients():
    block, reference = Block().to(dtype="float64"), TorchBlock().double()
    copy_weights(block, reference)
    x = np.random.default_rng(0).standard_normal((3, 4))
    xs, xt = sigma.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    a, b = block(xs)
    ta, tb = reference(xt)
    ((a * a).sum() + b.sum() * 3).backward()
    ((ta * ta).sum() + tb.sum() * 3).backward()
    assert_close(xs.grad, xt.grad, "float64", "input gradient")
    grads = dict(reference.named_parameters())
    for name, p in block.named_parameters():
        assert_close(p.grad, grads[name].grad, "float64", name)


def test_multi_input_module_and_shared_weights_accumulate_gradient_from_both_uses():
    class Siamese(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Linear(3, 2)
            self.also_encoder = self.encoder     # the same module under a second name

        def forward(self, left, right):
            return (self.encoder(left) - self.also_encoder(right)).abs().sum()

    net = Siamese()
    assert [n for n, _ in net.named_parameters()] == ["encoder.weight", "encoder.bias"]
    assert len(list(net.parameters())) == 2 and len(list(net.modules())) == 2
    assert list(net.state_dict()) == ["encoder.weight", "encoder.bias", "also_encoder.weight", "also_encoder.bias"]
    left, right = sigma.randn(5, 3), sigma.randn(5, 3)
    net(left, right).backward()
    w = net.encoder.weight.numpy()
    sign = np.sign(left.numpy() @ w.T - right.numpy() @ w.T)
    np.testing.assert_allclose(net.encoder.weight.grad.numpy(), sign.T @ (left.numpy() - right.numpy()), rtol=1e-5)
    # a state dict with both names loads back into the shared module
    net.load_state_dict({k: v.numpy() * 0 for k, v in net.state_dict().items()})
    assert np.all(net.encoder.weight.numpy() == 0)


def test_shared_parameter_counted_once():
    first = nn.Linear(3, 3)
    second = nn.Linear(3, 3)
    second.weight = first.weight                # tied weights
    net = nn.Sequential(first, second)
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias", "1.bias"]
    assert net.describe((1, 3)).total_parameters == 9 + 3 + 3


def test_state_dict_round_trip_is_in_place_and_accepts_numpy():
    source, target = Block(), Block()
    source.steps.data[...] = 7
    parameters_before = list(target.parameters())
    result = target.load_state_dict({k: v.numpy() for k, v in source.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert all(a is b for a, b in zip(parameters_before, target.parameters()))
    for (name, a), (_, b) in zip(source.state_dict().items(), target.state_dict().items()):
        assert np.array_equal(a.numpy(), b.numpy()), name
    assert "scratch" not in source.state_dict()
    assert target.steps.item() == 7


def test_state_dict_shares_the_live_arrays_and_is_detached():
    layer = nn.Linear(2, 2)
    state = layer.state_dict()
    assert not state["weight"].requires_grad and type(state["weight"]) is sigma.Tensor
    layer.weight.data[0, 0] = 5.0
    assert state["weight"].numpy()[0, 0] == 5.0


def test_load_state_dict_strict_errors_name_the_keys_and_write_nothing():
    layer = nn.Linear(3, 2)
    before = layer.weight.numpy().copy()
    good = {k: v.numpy() * 0 for k, v in layer.state_dict().items()}
    with pytest.raises(KeyError, match=r"missing keys \['bias'\], unexpected keys \['b'\]"):
        layer.load_state_dict({"weight": good["weight"], "b": good["bias"]})
    with pytest.raises(ValueError, match=r"'weight' expects shape \(2, 3\), got \(3, 2\)"):
        layer.load_state_dict({"weight": good["weight"].T, "bias": good["bias"]})
    with pytest.raises(ValueError, match="shape mismatch"):
        layer.load_state_dict({"weight": good["weight"].T}, strict=False)
    with pytest.raises(TypeError, match="'bias'"):
        layer.load_state_dict({"weight": good["weight"], "bias": ["a", "b"]})
    with pytest.raises(TypeError, match="mapping"):
        layer.load_state_dict([good["weight"]])
    assert np.array_equal(layer.weight.numpy(), before)
    result = layer.load_state_dict({"weight": good["weight"], "extra": 1}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["extra"]
    assert np.all(layer.weight.numpy() == 0)


def test_load_state_dict_casts_to_each_targets_dtype():
    bn = nn.BatchNorm1d(2)
    bn.load_state_dict({"weight": [1, 2], "bias": np.zeros(2, np.float64), "running_mean": sigma.ones(2),
                        "running_var": sigma.ones(2), "num_batches_tracked": np.array(3.0)})
    assert bn.weight.dtype == np.float32 and bn.weight.tolist() == [1.0, 2.0]
    assert bn.num_batches_tracked.dtype == np.int64 and bn.num_batches_tracked.item() == 3


def test_train_and_eval_reach_every_module():
    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(), nn.BatchNorm1d(2)), Block())
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(TypeError, match="True or False"):
        net.train("no")


def test_to_dtype_keeps_the_tensor_objects_and_moves_gradients():
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    parameters = list(net.parameters())
    net(sigma.randn(4, 2)).sum().backward()
    net.to(dtype="float64")
    assert all(a is b for a, b in zip(parameters, net.parameters()))
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in net.parameters())
    assert net[1].running_mean.dtype == np.float64 and net[1].num_batches_tracked.dtype == np.int64
    out = net(sigma.randn(4, 2, dtype="float64"))
    assert out.dtype == np.float64
    with pytest.raises(TypeError, match="float"):
        net.to(dtype="int32")


def test_to_device_moves_parameters_buffers_and_gradients(device):
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    net(sigma.randn(4, 2)).sum().backward()
    weight = net[0].weight
    net.to(device)
    assert net[0].weight is weight
    assert all(t.device == sigma.zeros(1, device=device).device for t in list(net.parameters()) + list(net.buffers()))
    assert all(p.grad.device == weight.device for p in net.parameters())


def test_zero_grad_and_requires_grad():
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    net(sigma.ones(1, 2)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net[0].requires_grad_(False)
    net(sigma.ones(1, 2)).sum().backward()
    assert net[0].weight.grad is None and net[1].weight.grad is not None


def test_assigning_a_plain_tensor_over_a_parameter_is_refused():
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="Linear.weight, which is a Parameter"):
        layer.weight = layer.weight * 2
    layer.weight = nn.Parameter(sigma.zeros(2, 2))
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    bn = nn.BatchNorm1d(2)
    with pytest.raises(TypeError, match="buffer"):
        bn.running_mean = nn.Parameter(sigma.zeros(2))
    bn.running_mean = sigma.ones(2)   # rebinding a buffer with a tensor is fine
    assert bn.state_dict()["running_mean"].tolist() == [1.0, 1.0]


def test_register_buffer_checks():
    module = nn.Module()
    with pytest.raises(TypeError, match="plain Tensor"):
        module.register_buffer("x", nn.Parameter(sigma.zeros(1)))
    with pytest.raises(ValueError, match="without '.'"):
        module.register_buffer("a.b", sigma.zeros(1))
    module.other = 3
    with pytest.raises(KeyError, match="already has an attribute 'other'"):
        module.register_buffer("other", sigma.zeros(1))


def test_parameter_is_a_float_tensor_sharing_data():
    t = sigma.zeros(3)
    p = nn.Parameter(t)
    assert isinstance(p, sigma.Tensor) and p.requires_grad and p.data is t.data
    assert not nn.Parameter(t, requires_grad=False).requires_grad
    with pytest.raises(TypeError, match="float"):
        nn.Parameter(sigma.tensor([1, 2]))
    assert repr(nn.Parameter(sigma.tensor([1.0, 2.0]))) == "Parameter([1., 2.], shape=(2,))"


def test_subclass_that_forgets_super_init_still_works():
    class Bare(nn.Module):
        def __init__(self):
            self.inner = nn.Linear(2, 2)

        def forward(self, x):
            return self.inner(x)

    bare = Bare()
    assert [n for n, _ in bare.named_parameters()] == ["inner.weight", "inner.bias"]
    assert bare.training and not bare.eval().training


def test_a_module_referring_to_its_parent_does_not_loop():
    parent = nn.Sequential(nn.Linear(2, 2))
    parent[0].owner = parent
    assert [n for n, _ in parent.named_modules()] == ["", "0"]
    assert len(parent.state_dict()) == 2


def test_sequential_indexing_slicing_naming_and_errors():
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert isinstance(net[-1], nn.Linear) and len(net[1:]) == 2
    assert [n for n, _ in net[1:].named_parameters()] == ["2.weight", "2.bias"]
    net[1] = nn.Tanh()
    assert isinstance(net[1], nn.Tanh)
    named = nn.Sequential({"encode": nn.Linear(2, 2), "act": nn.ReLU()})
    assert named.encode is named["encode"] is named[0]
    assert [n for n, _ in named.named_parameters()] == ["encode.weight", "encode.bias"]
    with pytest.raises(IndexError, match="index 3 out of range for 3"):
        net[3]
    with pytest.raises(TypeError, match="must be a Module"):
        nn.Sequential(nn.Linear(1, 1), lambda x: x)
    with pytest.raises(AttributeError, match="decode"):
        named.decode
    with pytest.raises(KeyError, match="names: \\['encode', 'act'\\]"):
        named["decode"]


def test_module_list_and_dict():
    blocks = nn.ModuleList([nn.Linear(2, 2)])
    blocks.extend([nn.Linear(2, 2), nn.ReLU()])
    blocks.insert(0, nn.Tanh())
    assert [type(b).__name__ for b in blocks] == ["Tanh", "Linear", "Linear", "ReLU"]
    assert [n for n, _ in blocks.named_parameters()][:2] == ["1.weight", "1.bias"]
    del blocks[0]
    assert [n for n, _ in blocks.named_parameters()][:2] == ["0.weight", "0.bias"]
    heads = nn.ModuleDict()
    heads["x"] = nn.Linear(1, 1)
    assert "x" in heads and heads.x is heads["x"] and list(heads) == ["x"]
    with pytest.raises(ValueError, match="without '.'"):
        heads["a.b"] = nn.Linear(1, 1)
    with pytest.raises(TypeError, match="must be a Module"):
        nn.ModuleList([3])


def test_repr_is_an_indented_tree():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.ReLU(), nn.Dropout(0.25)), nn.LSTM(4, 5, num_layers=2))
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1))\n"
        "  (1): Sequential(\n"
        "    (0): ReLU()\n"
        "    (1): Dropout(p=0.25)\n"
        "  )\n"
        "  (2): LSTM(4, 5, num_layers=2)\n"
        ")")


def test_forward_hooks_see_and_may_replace_outputs():
    layer = nn.Linear(2, 2)
    seen = []
    handle = layer.register_forward_hook(lambda m, inputs, out: seen.append((m, inputs[0].shape, out.shape)))
    doubling = layer.register_forward_hook(lambda m, inputs, out: out * 2)
    x = sigma.ones(3, 2)
    doubled = layer(x)
    assert seen == [(layer, (3, 2), (3, 2))]
    doubling.remove()
    np.testing.assert_allclose(doubled.numpy(), 2 * layer(x).numpy())
    handle.remove()
    layer(x)
    assert len(seen) == 2   # the second call above still saw it, the third did not


def test_apply_visits_children_first():
    visited = []
    nn.Sequential(nn.Linear(1, 1), nn.Sequential(nn.ReLU())).apply(lambda m: visited.append(type(m).__name__))
    assert visited == ["Linear", "ReLU", "Sequential", "Sequential"]


def test_forward_missing_is_reported():
    with pytest.raises(NotImplementedError, match="Module does not define forward"):
        nn.Module()(sigma.ones(1))


def test_state_dict_values_serialise_for_checkpoints():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    arrays = {k: v.numpy().tolist() for k, v in net.state_dict().items()}
    restored = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    restored.load_state_dict(json.loads(json.dumps(arrays)))
    x = sigma.randn(3, 2)
    assert np.array_equal(net.eval()(x).numpy(), restored.eval()(x).numpy())
