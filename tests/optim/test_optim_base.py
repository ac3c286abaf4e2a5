"""The optimiser base: parameter groups, state_dict round trips, errors, zero_grad, closures."""
import copy

import numpy as np
import pytest

import sigma
import sigma.optim


def _params(*shapes, dtype="float32"):
    rng = np.random.default_rng(0)
    return [sigma.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in shapes]


def _train(optimiser, params, steps, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        optimiser.zero_grad()
        loss = sum(((p - sigma.tensor(rng.standard_normal(p.shape).astype(p.dtype))) ** 2).sum() for p in params)
        loss.backward()
        optimiser.step()


def test_param_groups_take_defaults_and_their_own_values():
    a, b = _params((2,), (3,))
    optimiser = sigma.optim.Adam([{"params": [a]}, {"params": b, "lr": 0.5, "betas": (0.5, 0.9)}], lr=0.01)
    assert optimiser.param_groups[0]["lr"] == 0.01 and optimiser.param_groups[0]["betas"] == (0.9, 0.999)
    assert optimiser.param_groups[1]["lr"] == 0.5 and optimiser.param_groups[1]["betas"] == (0.5, 0.9)
    assert optimiser.defaults["lr"] == 0.01
    assert [id(p) for p in optimiser.parameters()] == [id(a), id(b)]


def test_add_param_group_and_repr():
    a, b = _params((2,), (3,))
    optimiser = sigma.optim.SGD([a], lr=0.1)
    optimiser.add_param_group({"params": [b], "momentum": 0.9})
    assert optimiser.param_groups[1]["momentum"] == 0.9 and optimiser.param_groups[1]["lr"] == 0.1
    assert "group 1: 1 parameter(s)" in repr(optimiser)


@pytest.mark.parametrize("make,error,words", [
    (lambda p: sigma.optim.SGD(p[0]), TypeError, "single tensor"),
    (lambda p: sigma.optim.SGD([]), ValueError, "empty parameter list"),
    (lambda p: sigma.optim.SGD(p, lr=-1.0), ValueError, "lr must be a number >= 0, got -1.0"),
    (lambda p: sigma.optim.SGD(p, learning_rate=0.1), TypeError, "unknown hyperparameter(s) ['learning_rate']"),
    (lambda p: sigma.optim.SGD([{"params": p, "mommentum": 0.9}]), TypeError, "['mommentum']"),
    (lambda p: sigma.optim.SGD([p[0], p[0]]), ValueError, "appears twice"),
    (lambda p: sigma.optim.SGD([{"params": [p[0]]}, {"params": [p[0]]}]), ValueError, "appears twice"),
    (lambda p: sigma.optim.SGD([p[0] * 2]), ValueError, "not a leaf"),
    (lambda p: sigma.optim.SGD([np.zeros(3)]), TypeError, "not a sigma.Tensor"),
    (lambda p: sigma.optim.SGD([sigma.tensor([1, 2])]), TypeError, "only optimise float tensors"),
    (lambda p: sigma.optim.SGD(p, nesterov=True), ValueError, "Nesterov momentum needs momentum > 0"),
    (lambda p: sigma.optim.Adam(p, betas=(0.9, 1.5)), ValueError, "betas must be two numbers in [0, 1)"),
    (lambda p: sigma.optim.Adadelta(p, rho=2.0), ValueError, "rho must be in [0, 1], got 2.0"),
    (lambda p: sigma.optim.RMSProp(p, alpha=-0.1), ValueError, "alpha must be in [0, 1]"),
    (lambda p: sigma.optim.Adagrad(p, eps=float("nan")), ValueError, "eps must be a number >= 0, got nan"),
])
def test_bad_construction_is_explained(make, error, words):
    params = _params((2,), (3,))
    with pytest.raises(error) as raised:
        make(params)
    assert words in str(raised.value)


@pytest.mark.parametrize("make", [
    lambda p: sigma.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    lambda p: sigma.optim.Adagrad(p, lr=0.1, initial_accumulator_value=0.1),
    lambda p: sigma.optim.Adadelta(p),
    lambda p: sigma.optim.RMSProp(p, centered=True, momentum=0.5),
    lambda p: sigma.optim.Adam(p, lr=0.01, amsgrad=True),
    lambda p: sigma.optim.AdamW([{"params": p[:1]}, {"params": p[1:], "lr": 0.1}], lr=0.01),
], ids=["sgd", "adagrad", "adadelta", "rmsprop", "adam", "adamw-groups"])
def test_restored_optimiser_continues_bit_identically(make):
    params = _params((4, 3), (3,))
    optimiser = make(params)
    _train(optimiser, params, 4, seed=1)
    saved = copy.deepcopy(optimiser.state_dict())
    copies = [sigma.tensor(p.numpy().copy(), requires_grad=True) for p in params]
    _train(optimiser, params, 5, seed=2)

    restored = make(copies)
    restored.load_state_dict(saved)
    _train(restored, copies, 5, seed=2)
    for original, copied in zip(params, copies):
        np.testing.assert_array_equal(original.numpy(), copied.numpy())


def test_state_dict_is_plain_numpy_keyed_by_index_and_a_snapshot():
    params = _params((2, 2), (2,))
    optimiser = sigma.optim.Adam([{"params": [params[0]]}, {"params": [params[1]], "lr": 0.5}])
    _train(optimiser, params, 2)
    saved = optimiser.state_dict()
    assert sorted(saved["state"]) == [0, 1]
    assert [g["params"] for g in saved["param_groups"]] == [[0], [1]]
    assert saved["state"][1]["step"] == 2
    exp_avg = saved["state"][0]["exp_avg"]
    assert type(exp_avg) is np.ndarray and exp_avg.dtype == np.float32 and exp_avg.shape == (2, 2)
    frozen = exp_avg.copy()
    _train(optimiser, params, 2)
    np.testing.assert_array_equal(exp_avg, frozen)  # the snapshot did not follow the live state
    assert not np.array_equal(optimiser.state[params[0]]["exp_avg"], frozen)


def test_loading_does_not_alias_the_given_arrays():
    params = _params((3,))
    optimiser = sigma.optim.SGD(params, lr=0.1, momentum=0.9)
    _train(optimiser, params, 1)
    saved = optimiser.state_dict()
    buffer = saved["state"][0]["momentum_buffer"].copy()
    optimiser.load_state_dict(saved)
    _train(optimiser, params, 1)
    np.testing.assert_array_equal(saved["state"][0]["momentum_buffer"], buffer)


def test_state_keys_may_be_strings_as_in_hdf5_and_arrays_take_the_parameter_dtype():
    params = _params((3,), dtype="float64")
    optimiser = sigma.optim.SGD(params, lr=0.1, momentum=0.9)
    _train(optimiser, params, 1)
    saved = optimiser.state_dict()
    saved["state"] = {"0": {"step": np.int64(1), "momentum_buffer": saved["state"][0]["momentum_buffer"]
                            .astype(np.float32)}}
    optimiser.load_state_dict(saved)
    assert optimiser.state[params[0]]["momentum_buffer"].dtype == np.float64
    assert optimiser.state[params[0]]["step"] == 1 and type(optimiser.state[params[0]]["step"]) is int


def test_loading_restores_group_hyperparameters():
    params = _params((3,))
    optimiser = sigma.optim.SGD(params, lr=0.1)
    saved = optimiser.state_dict()
    saved["param_groups"][0]["lr"] = 0.25
    optimiser.load_state_dict(saved)
    assert optimiser.param_groups[0]["lr"] == 0.25
    assert optimiser.param_groups[0]["params"][0] is params[0]


def _saved_adam():
    params = _params((4, 3), (3,))
    optimiser = sigma.optim.Adam(params)
    _train(optimiser, params, 1)
    return optimiser.state_dict()


@pytest.mark.parametrize("change,words", [
    (lambda s: s.pop("state"), "expected a dict with 'state' and 'param_groups'"),
    (lambda s: s["param_groups"].append(dict(s["param_groups"][0])), "has 1 parameter group(s), the state has 2"),
    (lambda s: s["param_groups"][0]["params"].pop(), "group 0 has 2 parameter(s), the state's group 0 has 1"),
    (lambda s: s["param_groups"][0].pop("betas"), "lacks hyperparameter(s) ['betas']"),
    (lambda s: s["state"].update({5: s["state"][0]}), "state for parameter 5, but the optimiser has 2"),
    (lambda s: s["state"][0].pop("exp_avg_sq"), "missing ['exp_avg_sq']"),
    (lambda s: s["state"][0].update({"extra": 1}), "unexpected ['extra']"),
    (lambda s: s["state"][0].update({"exp_avg": np.zeros((3, 4), np.float32)}),
     "'exp_avg' of parameter 0 has shape (3, 4), the parameter has shape (4, 3)"),
    (lambda s: s["state"][1].update({"step": -1}), "step of parameter 1 must be a non-negative integer, got -1"),
    (lambda s: s["state"].update({"first": {}}), "keyed by parameter index, got key 'first'"),
    (lambda s: s["param_groups"][0].update({"lr": -2.0}), "lr must be a number >= 0, got -2.0"),
])
def test_mismatched_state_is_rejected_before_anything_changes(change, words):
    params = _params((4, 3), (3,))
    optimiser = sigma.optim.Adam(params, lr=0.01)
    _train(optimiser, params, 1)
    before = copy.deepcopy(optimiser.state_dict())
    saved = _saved_adam()
    change(saved)
    with pytest.raises(ValueError) as raised:
        optimiser.load_state_dict(saved)
    assert words in str(raised.value)
    after = optimiser.state_dict()
    assert after["param_groups"] == before["param_groups"]
    np.testing.assert_array_equal(after["state"][0]["exp_avg"], before["state"][0]["exp_avg"])


def test_adam_state_cannot_go_into_sgd():
    params = _params((4, 3), (3,))
    with pytest.raises(ValueError, match="was it saved from another optimiser"):
        sigma.optim.SGD(params, momentum=0.9).load_state_dict(_saved_adam())


def test_loaded_hyperparameters_decide_the_expected_state():
    params = _params((4, 3), (3,))
    optimiser = sigma.optim.Adam(params, amsgrad=True)
    optimiser.load_state_dict(_saved_adam())  # saved without amsgrad: its two buffers fit
    assert optimiser.param_groups[0]["amsgrad"] is False
    saved = _saved_adam()
    saved["param_groups"][0]["amsgrad"] = True
    with pytest.raises(ValueError, match=r"missing \['max_exp_avg_sq'\]"):
        optimiser.load_state_dict(saved)


def test_zero_grad_and_parameters_without_gradients():
    a, b = _params((2,), (2,))
    optimiser = sigma.optim.SGD([a, b], lr=0.1)
    (a * a).sum().backward()
    before_b = b.numpy().copy()
    optimiser.step()
    np.testing.assert_array_equal(b.numpy(), before_b)
    assert optimiser.state.get(b) is None
    optimiser.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(a.grad.numpy(), np.zeros(2, np.float32))
    assert b.grad is None
    optimiser.zero_grad()
    assert a.grad is None


def test_zero_grad_without_none_does_not_touch_shared_gradient_memory():
    a, b = _params((2,), (2,))
    shared = sigma.tensor([1.0, 2.0])
    a.grad, b.grad = shared, shared
    sigma.optim.SGD([a], lr=0.1).zero_grad(set_to_none=False)
    assert b.grad.tolist() == [1.0, 2.0]


def test_step_runs_the_closure_with_gradients_and_returns_its_loss():
    (w,) = _params((3,))
    optimiser = sigma.optim.SGD([w], lr=0.25)

    def closure():
        optimiser.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    start = w.numpy().copy()
    with sigma.no_grad():
        loss = optimiser.step(closure)
    assert loss.item() == pytest.approx(float((start ** 2).sum()), rel=1e-6)
    np.testing.assert_allclose(w.numpy(), start * 0.5, rtol=1e-6)


def test_gradient_of_wrong_shape_is_explained():
    (w,) = _params((3,))
    w.grad = sigma.ones(4)
    with pytest.raises(ValueError, match=r"gradient of shape \(4,\) for a parameter of shape \(3,\)"):
        sigma.optim.Adam([w]).step()


def test_float64_gradient_on_float32_parameter_keeps_the_parameter_float32():
    (w,) = _params((3,))
    w.grad = sigma.ones(3, dtype="float64")
    sigma.optim.SGD([w], lr=0.5).step()
    assert w.dtype == np.float32


def test_learning_rate_edits_apply_on_the_next_step():
    w = sigma.tensor([1.0], requires_grad=True)
    optimiser = sigma.optim.SGD([w], lr=0.1)
    w.grad = sigma.tensor([1.0])
    optimiser.step()
    optimiser.param_groups[0]["lr"] = 0.5
    optimiser.step()
    assert w.item() == pytest.approx(1.0 - 0.1 - 0.5)


def test_rules_are_checked_when_the_optimiser_is_made():
    class NoRule(sigma.optim.GradientOptimiser):
        defaults = {"lr": 0.1}

    class SwappedState(sigma.optim.GradientOptimiser):
        defaults = {"lr": 0.1}
        state_names = ("exp_avg", "exp_avg_sq")

        @staticmethod
        def rule(param, grad, exp_avg_sq, exp_avg, lr):
            return param, exp_avg, exp_avg_sq

    (w,) = _params((2,))
    with pytest.raises(TypeError, match="NoRule defines no update rule"):
        NoRule([w])
    with pytest.raises(TypeError, match=r"are \('exp_avg_sq', 'exp_avg'\) but the state is named"):
        SwappedState([w])
