"""check_optimiser passes the built-ins and catches deliberately broken optimisers."""
import numpy as np
import pytest

import sigma
import sigma.optim
from sigma.testing import check_optimiser

ALL_CHECKS = ["lowers the loss", "deterministic under a seed", "state_dict is a plain snapshot", "state round trip",
              "rejects a state that does not fit", "uses each group's hyperparameters",
              "leaves parameters without gradients alone", "every available backend"]


@pytest.mark.parametrize("cls,hyperparameters", [
    (sigma.optim.SGD, {"lr": 0.05}),
    (sigma.optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    (sigma.optim.Adagrad, {"lr": 0.1}),
    (sigma.optim.Adadelta, {}),
    (sigma.optim.RMSProp, {"lr": 0.01, "centered": True, "momentum": 0.5}),
    (sigma.optim.Adam, {"lr": 0.05}),
    (sigma.optim.AdamW, {"lr": 0.05, "amsgrad": True}),
    (sigma.optim.RandomSearch, {"lr": 0.05}),
], ids=["sgd", "sgd-nesterov", "adagrad", "adadelta", "rmsprop", "adam", "adamw-amsgrad", "random-search"])
def test_built_ins_pass(cls, hyperparameters):
    assert check_optimiser(cls, **hyperparameters) == ALL_CHECKS


class _Descent(sigma.optim.GradientOptimiser):
    defaults = {"lr": 0.1}

    @staticmethod
    def rule(param, grad, lr):
        return param - lr * grad


class Ascent(_Descent):
    @staticmethod
    def rule(param, grad, lr):
        return param + lr * grad


class HiddenCounter(_Descent):
    """Decays its step with a counter that state_dict does not save."""

    def __init__(self, params, **hyperparameters):
        super().__init__(params, **hyperparameters)
        self.calls = 0

    def scalars(self, group, step):
        self.calls += 1
        return {"lr": group["lr"] / self.calls}


class LiveStateDict(sigma.optim.SGD):
    """Returns its live buffers instead of copies."""

    def state_dict(self):
        saved = super().state_dict()
        for index, param in enumerate(self.parameters()):
            if param in self.state:
                saved["state"][index]["momentum_buffer"] = self.state[param]["momentum_buffer"]
        return saved


class TensorInState(sigma.optim.SGD):
    def state_dict(self):
        saved = super().state_dict()
        saved["state"][0]["momentum_buffer"] = sigma.tensor(saved["state"][0]["momentum_buffer"])
        return saved


class Unseeded(sigma.optim.ForwardOptimiser):
    """Random search drawing from the operating system's entropy."""

    defaults = {"lr": 0.05}

    def search(self, handle):
        rng = np.random.default_rng()
        deltas = [np.concatenate([np.zeros((1,) + p.shape), rng.standard_normal((8,) + p.shape) * 0.05])
                  for p in handle.parameters]
        losses = handle.evaluate(deltas)
        best = int(np.argmin(losses))
        for param, delta in zip(handle.parameters, deltas):
            param.data[...] = param.data + delta[best].astype(param.dtype)
        return float(losses[best])


class IgnoresGroups(_Descent):
    def scalars(self, group, step):
        return {"lr": self.defaults["lr"]}


class ChangesDtype(_Descent):
    def step(self, closure=None):
        loss = super().step(closure)
        for param in self.parameters():
            param.data = param.data.astype(np.float64)
        return loss


class AcceptsAnyState(_Descent):
    """Keeps a buffer but does not check what it loads."""

    state_names = ("velocity",)

    @staticmethod
    def rule(param, grad, velocity, lr):
        velocity = 0.5 * velocity + grad
        return param - lr * velocity, velocity

    def check_state(self, index, param, group, state):
        pass


class TouchesIdleParameters(_Descent):
    def step(self, closure=None):
        loss = super().step(closure)
        for param in self.parameters():
            if param.grad is None:
                param.data[...] = 0
        return loss


@pytest.mark.parametrize("cls,check,words", [
    (Ascent, "lowers the loss", "the loss went from"),
    (LiveStateDict, "state_dict is a plain snapshot", "changed when the optimiser took more steps"),
    (TensorInState, "state_dict is a plain snapshot", "is a sigma.tensor.Tensor"),
    (HiddenCounter, "state round trip", "differs from the run that never stopped"),
    (AcceptsAnyState, "rejects a state that does not fit", "shapes do not match the parameters"),
    (Unseeded, "deterministic under a seed", "two runs from seed 1234 differ"),
    (IgnoresGroups, "uses each group's hyperparameters", "a group with lr=0 moved"),
    (ChangesDtype, "lowers the loss", "became shape (4, 3), float64"),
    (TouchesIdleParameters, "leaves parameters without gradients alone", "never had a gradient changed"),
])
def test_broken_optimisers_are_caught_and_named(cls, check, words):
    hyperparameters = {"lr": 0.05, "momentum": 0.9} if issubclass(cls, sigma.optim.SGD) else {"lr": 0.05}
    with pytest.raises(AssertionError) as raised:
        check_optimiser(cls, **hyperparameters)
    message = str(raised.value)
    assert message.startswith(f"check_optimiser({cls.__name__}): {check}: "), message
    assert words in message, message


def test_only_optimiser_classes_are_checked():
    with pytest.raises(TypeError, match="takes a subclass of sigma.optim.Optimiser"):
        check_optimiser(sigma.optim.SGD([sigma.zeros(1, requires_grad=True)]))
