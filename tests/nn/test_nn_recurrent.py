"""RNN, LSTM and GRU (and their cells) against torch.nn with the same weights: outputs, final
states, and gradients of the input, the initial state and every parameter."""
import numpy as np
import pytest

import sigma
from sigma import nn

from nn_oracle import assert_close, copy_weights, torch_dtype

torch = pytest.importorskip("torch")

KINDS = {"rnn-tanh": (nn.RNN, torch.nn.RNN, {}), "rnn-relu": (nn.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
         "lstm": (nn.LSTM, torch.nn.LSTM, {}), "gru": (nn.GRU, torch.nn.GRU, {})}


def _pair(kind, dtype, **settings):
    sigma_class, torch_class, extra = KINDS[kind]
    settings = {**extra, **settings}
    sigma_layer = sigma_class(3, 4, **settings).to(dtype=dtype)
    torch_layer = torch_class(3, 4, **settings).to(torch_dtype(torch, dtype))
    copy_weights(sigma_layer, torch_layer)
    return sigma_layer, torch_layer


def _flat(state):
    return list(state) if isinstance(state, tuple) else [state]


def _check(kind, dtype="float64", input_shape=(5, 2, 3), with_state=False, train=True, **settings):
    sigma_layer, torch_layer = _pair(kind, dtype, **settings)
    sigma_layer.train(train)
    torch_layer.train(train)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(input_shape).astype(dtype)
    x_sigma, x_torch = sigma.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    states_sigma = states_torch = None
    if with_state:
        directions = 2 if settings.get("bidirectional") else 1
        count = settings.get("num_layers", 1) * directions
        batched = len(input_shape) == 3
        batch = input_shape[0 if settings.get("batch_first") else 1] if batched else None
        shape = (count, batch, 4) if batched else (count, 4)
        parts = [rng.standard_normal(shape).astype(dtype) for _ in range(2 if kind == "lstm" else 1)]
        sigma_parts = [sigma.tensor(p, requires_grad=True) for p in parts]
        torch_parts = [torch.tensor(p, requires_grad=True) for p in parts]
        states_sigma = tuple(sigma_parts) if kind == "lstm" else sigma_parts[0]
        states_torch = tuple(torch_parts) if kind == "lstm" else torch_parts[0]
    out_sigma, final_sigma = sigma_layer(x_sigma, states_sigma)
    out_torch, final_torch = torch_layer(x_torch, states_torch)
    assert_close(out_sigma, out_torch, dtype, "outputs")
    for i, (a, b) in enumerate(zip(_flat(final_sigma), _flat(final_torch))):
        assert_close(a, b, dtype, f"final state {i}")

    # one loss touching the outputs and every final state
    seeds = [rng.standard_normal(t.shape).astype(dtype) for t in [out_torch] + _flat(final_torch)]
    loss_sigma = sum(((t * sigma.tensor(s)).sum() for t, s in zip([out_sigma] + _flat(final_sigma), seeds)),
                     sigma.tensor(0.0, dtype=dtype))
    loss_torch = sum((t * torch.tensor(s)).sum() for t, s in zip([out_torch] + _flat(final_torch), seeds))
    loss_sigma.backward()
    loss_torch.backward()
    assert_close(x_sigma.grad, x_torch.grad, dtype, "input gradient")
    if with_state:
        for i, (a, b) in enumerate(zip(_flat(states_sigma), _flat(states_torch))):
            assert_close(a.grad, b.grad, dtype, f"initial state {i} gradient")
    sigma_parameters = dict(sigma_layer.named_parameters())
    for name, parameter in torch_layer.named_parameters():
        assert_close(sigma_parameters[name].grad, parameter.grad, dtype, f"gradient of {name}")
    return sigma_layer


@pytest.mark.parametrize("kind", list(KINDS))
def test_single_layer_matches_torch(kind):
    _check(kind)


@pytest.mark.parametrize("kind", list(KINDS))
def test_two_layers_batch_first_with_initial_state_match_torch(kind):
    _check(kind, input_shape=(2, 5, 3), with_state=True, num_layers=2, batch_first=True)


@pytest.mark.parametrize("kind", list(KINDS))
def test_bidirectional_two_layers_with_state_match_torch(kind):
    _check(kind, input_shape=(4, 3, 3), with_state=True, num_layers=2, bidirectional=True)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_without_bias_matches_torch(kind):
    layer = _check(kind, bias=False)
    assert [name for name, _ in layer.named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]


@pytest.mark.parametrize("kind", ["rnn-tanh", "lstm", "gru"])
def test_unbatched_input_with_state_matches_torch(kind):
    _check(kind, input_shape=(6, 3), with_state=True, num_layers=2)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_float32_matches_torch(kind):
    _check(kind, dtype="float32", input_shape=(2, 6, 3), with_state=True, num_layers=2, batch_first=True)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_dropout_between_layers_is_off_in_eval_and_matches_torch(kind):
    _check(kind, train=False, num_layers=3, dropout=0.5)


def test_dropout_between_layers_changes_training_outputs_only():
    lstm = nn.LSTM(3, 8, num_layers=2, dropout=0.5)
    x = sigma.randn(4, 2, 3)
    first, _ = lstm(x)
    second, _ = lstm(x)
    assert not np.allclose(first.numpy(), second.numpy())
    lstm.eval()
    assert np.array_equal(lstm(x)[0].numpy(), lstm(x)[0].numpy())


def test_parameter_names_and_shapes_are_torchs():
    sigma_names = [(n, p.shape) for n, p in nn.LSTM(3, 4, num_layers=2, bidirectional=True).named_parameters()]
    torch_names = [(n, tuple(p.shape)) for n, p in
                   torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True).named_parameters()]
    assert sigma_names == torch_names


def test_default_initialisation_is_uniform_on_one_over_sqrt_hidden():
    gru = nn.GRU(10, 64)
    bound = 1 / 8
    values = np.concatenate([p.numpy().ravel() for p in gru.parameters()])
    assert np.abs(values).max() <= bound and np.abs(values).max() > 0.99 * bound
    assert abs(values.std() - bound / np.sqrt(3)) < 0.03 * bound


@pytest.mark.parametrize("sigma_class, torch_class, state_count", [
    (nn.RNNCell, torch.nn.RNNCell, 1), (nn.LSTMCell, torch.nn.LSTMCell, 2), (nn.GRUCell, torch.nn.GRUCell, 1)])
def test_cells_match_torch(sigma_class, torch_class, state_count):
    sigma_cell = sigma_class(3, 4).to(dtype="float64")
    torch_cell = torch_class(3, 4).double()
    copy_weights(sigma_cell, torch_cell)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 3))
    parts = [rng.standard_normal((5, 4)) for _ in range(state_count)]
    s_parts = [sigma.tensor(p, requires_grad=True) for p in parts]
    t_parts = [torch.tensor(p, requires_grad=True) for p in parts]
    s_x, t_x = sigma.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    s_out = sigma_cell(s_x, tuple(s_parts) if state_count == 2 else s_parts[0])
    t_out = torch_cell(t_x, tuple(t_parts) if state_count == 2 else t_parts[0])
    s_out, t_out = _flat(s_out), _flat(t_out)
    for a, b in zip(s_out, t_out):
        assert_close(a, b, "float64", "cell output")
    sum((o * (i + 1)).sum() for i, o in enumerate(s_out)).backward()
    sum((o * (i + 1)).sum() for i, o in enumerate(t_out)).backward()
    assert_close(s_x.grad, t_x.grad, "float64", "input gradient")
    for a, b in zip(s_parts, t_parts):
        assert_close(a.grad, b.grad, "float64", "state gradient")
    grads = {n: p.grad for n, p in sigma_cell.named_parameters()}
    for name, p in torch_cell.named_parameters():
        assert_close(grads[name], p.grad, "float64", name)


def test_lstm_gradient_reaches_the_first_step_through_the_recurrence():
    lstm = nn.LSTM(2, 3)
    x = sigma.randn(12, 1, 2, requires_grad=True)
    _, (h_n, _) = lstm(x)
    h_n.sum().backward()
    # only the final state is used, so the first input influences it only through eleven recurrent steps
    assert np.abs(x.grad.numpy()[0]).sum() > 0


@pytest.mark.parametrize("call, message", [
    (lambda: nn.LSTM(3, 4)(sigma.zeros(5, 2, 4)), r"\(T, B, 3\)"),
    (lambda: nn.LSTM(3, 4)(sigma.zeros(5, 2, 3), sigma.zeros(1, 2, 4)), "pair"),
    (lambda: nn.GRU(3, 4, num_layers=2)(sigma.zeros(5, 2, 3), sigma.zeros(1, 2, 4)), r"\(2, 2, 4\)"),
    (lambda: nn.RNN(3, 4, nonlinearity="sigmoid"), "'tanh' or 'relu'"),
    (lambda: nn.RNN(3, 4)(sigma.zeros(0, 2, 3)), "empty"),
    (lambda: nn.LSTMCell(3, 4)(sigma.zeros(2, 3), (sigma.zeros(2, 5), sigma.zeros(2, 5))), r"\(2, 4\)"),
])
def test_bad_input_and_state_shapes_are_named(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_input_and_weights_of_different_dtypes_are_refused():
    with pytest.raises(TypeError, match="share one dtype"):
        nn.GRU(3, 4)(sigma.zeros(5, 2, 3, dtype="float64"))
