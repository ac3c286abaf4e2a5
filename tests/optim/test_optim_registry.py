"""Optimisers by name: built-ins, third parties through the entry point group, clear errors."""
from importlib import metadata

import pytest

import sigma
import sigma.optim
from sigma.optim import registry

BUILT_INS = ["adadelta", "adagrad", "adam", "adamw", "random-search", "rmsprop", "sgd"]


def test_built_ins_are_available_by_name():
    assert set(BUILT_INS) <= set(sigma.optim.available())
    assert sigma.optim.get("adam") is sigma.optim.Adam
    assert sigma.optim.get(" RMSProp ") is sigma.optim.RMSProp
    w = sigma.tensor([1.0], requires_grad=True)
    optimiser = sigma.optim.get("adamw")([w], lr=1e-3)
    assert isinstance(optimiser, sigma.optim.AdamW) and optimiser.param_groups[0]["lr"] == 1e-3


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError) as raised:
        sigma.optim.get("adamm")
    message = str(raised.value)
    assert "unknown optimiser 'adamm'" in message and "adam, adamw" in message


@pytest.mark.parametrize("name", ["", "   ", None, 3])
def test_bad_names_are_explained(name):
    with pytest.raises(TypeError, match="named by a non-empty string"):
        sigma.optim.get(name)


def test_register_checks_the_class_and_refuses_to_replace_another():
    with pytest.raises(TypeError, match="is not a subclass of sigma.optim.Optimiser"):
        sigma.optim.register("not-an-optimiser", dict)

    class Impostor(sigma.optim.GradientOptimiser):
        defaults = {"lr": 0.1}

        @staticmethod
        def rule(param, grad, lr):
            return param - lr * grad

    with pytest.raises(ValueError, match="'adam' is taken by sigma.optim.adam.Adam"):
        sigma.optim.register("adam", Impostor)
    assert sigma.optim.get("adam") is sigma.optim.Adam


class _FakeEntryPoint:
    def __init__(self, name, target):
        self.name, self.value, self.group = name, f"fake_plugin:{name}", registry.ENTRY_POINT_GROUP
        self._target = target

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


class Lion(sigma.optim.GradientOptimiser):
    """The plug-in under test: Lion (Chen et al., 2023), the sign of an interpolated momentum."""

    defaults = {"lr": 1e-4, "betas": (0.9, 0.99)}
    state_names = ("exp_avg",)

    def scalars(self, group, step):
        beta1, beta2 = group["betas"]
        return {"lr": group["lr"], "beta1": beta1, "beta2": beta2}

    @staticmethod
    def rule(param, grad, exp_avg, lr, beta1, beta2):
        update = sigma.optim.elementwise.sign(beta1 * exp_avg + (1 - beta1) * grad)
        return param - lr * update, beta2 * exp_avg + (1 - beta2) * grad


@pytest.fixture
def fake_plugins(monkeypatch):
    entries = [_FakeEntryPoint("lion-test", Lion), _FakeEntryPoint("broken-test", ImportError("no module foo")),
               _FakeEntryPoint("wrong-type-test", object)]

    original = metadata.entry_points

    def entry_points(**selection):
        if selection.get("group") != "sigma.optimisers":
            return original(**selection)
        return entries

    monkeypatch.setattr(metadata, "entry_points", entry_points)
    monkeypatch.setattr(registry, "_registered", dict(registry._registered))
    return entries


def test_entry_point_optimisers_show_up_like_built_ins(fake_plugins):
    assert {"lion-test", "broken-test", "adam"} <= set(sigma.optim.available())
    assert sigma.optim.get("Lion-Test") is Lion
    w = sigma.tensor([1.0, -1.0], requires_grad=True)
    optimiser = sigma.optim.get("lion-test")([w], lr=0.1)
    w.grad = sigma.tensor([2.0, -3.0])
    optimiser.step()
    assert w.tolist() == pytest.approx([0.9, -0.9])


def test_broken_plugins_are_named_in_the_error(fake_plugins):
    with pytest.raises(ImportError, match="'broken-test' from entry point 'fake_plugin:broken-test'.*no module foo"):
        sigma.optim.get("broken-test")
    with pytest.raises(TypeError, match="is not a subclass of sigma.optim.Optimiser"):
        sigma.optim.get("wrong-type-test")


def test_plugin_passes_the_conformance_kit(fake_plugins):
    from sigma.testing import check_optimiser
    assert len(check_optimiser(sigma.optim.get("lion-test"), lr=0.02)) == 8
