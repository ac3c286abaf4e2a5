"""Optimisers that scale each element's step by its gradient history: Adagrad, Adadelta, RMSProp.

Each follows the definition in ``torch.optim`` (which the tests check for 20
steps in float64):

* Adagrad (Duchi et al., 2011): ``sum += g * g``;
  ``param -= lr / (1 + (step - 1) * lr_decay) * g / (sqrt(sum) + eps)``.
* Adadelta (Zeiler, 2012): ``square_avg`` and ``acc_delta`` are running
  averages (factor ``rho``) of ``g * g`` and of the squared updates;
  ``delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g``.
* RMSProp (Hinton's lecture 6e; centred form after Graves, 2013):
  ``square_avg = alpha * square_avg + (1 - alpha) * g * g``, divided into the
  step as ``sqrt(square_avg - grad_avg ** 2) + eps`` when centred, with an
  optional momentum buffer.

In all three, ``g = grad + weight_decay * param``.
"""
from __future__ import annotations

from typing import Any, Dict

from sigma.optim.elementwise import sqrt
from sigma.optim.gradient import GradientOptimiser
from sigma.optim.optimiser import check_non_negative
from sigma.optim.registry import register
from sigma.tensor import Tensor

__all__ = ["Adagrad", "Adadelta", "RMSProp"]


@register("adagrad")
class Adagrad(GradientOptimiser):
    """Adagrad: steps shrink with the sum of squared gradients (state ``sum``).

    Example:
        >>> import sigma
        >>> w = sigma.tensor([1.0], requires_grad=True)
        >>> optimiser = sigma.optim.Adagrad([w], lr=0.5)
        >>> w.grad = sigma.tensor([2.0]); optimiser.step()
        >>> round(w.item(), 4)  # 1 - 0.5 * 2 / sqrt(4)
        0.5
    """

    defaults = {"lr": 1e-2, "lr_decay": 0.0, "weight_decay": 0.0, "initial_accumulator_value": 0.0, "eps": 1e-10}
    state_names = ("sum",)

    def check_hyperparameters(self, group: Dict[str, Any]) -> None:
        check_non_negative(self, group, "lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    def initial_state(self, param: Tensor, group: Dict[str, Any]) -> Dict[str, Any]:
        xp = param.backend.xp
        return {"sum": xp.full(param.shape, group["initial_accumulator_value"], dtype=param.dtype)}

    def scalars(self, group: Dict[str, Any], step: int) -> Dict[str, float]:
        return {"weight_decay": group["weight_decay"], "eps": group["eps"],
                "clr": group["lr"] / (1 + (step - 1) * group["lr_decay"])}

    @staticmethod
    def rule(param, grad, sum, weight_decay, eps, clr):  # noqa: A002 - PyTorch's name for the state
        grad = grad + weight_decay * param
        sum = sum + grad * grad  # noqa: A001
        return param - clr * (grad / (sqrt(sum) + eps)), sum


@register("adadelta")
class Adadelta(GradientOptimiser):
    """Adadelta: unit-correct steps from running averages of squared gradients and updates.

    Example:
        >>> import sigma
        >>> w = sigma.tensor([1.0], requires_grad=True)
        >>> optimiser = sigma.optim.Adadelta([w], lr=1.0, rho=0.0, eps=1e-6)
        >>> w.grad = sigma.tensor([2.0]); optimiser.step()
        >>> round(1 - w.item(), 6)  # sqrt(eps) / sqrt(4 + eps) * 2
        0.001
    """

    defaults = {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0}
    state_names = ("square_avg", "acc_delta")

    def check_hyperparameters(self, group: Dict[str, Any]) -> None:
        check_non_negative(self, group, "lr", "eps", "weight_decay")
        if not 0.0 <= group["rho"] <= 1.0:
            raise ValueError(f"Adadelta: rho must be in [0, 1], got {group['rho']!r}")

    def scalars(self, group: Dict[str, Any], step: int) -> Dict[str, float]:
        return {"lr": group["lr"], "rho": group["rho"], "keep": 1.0 - group["rho"], "eps": group["eps"],
                "weight_decay": group["weight_decay"]}

    @staticmethod
    def rule(param, grad, square_avg, acc_delta, lr, rho, keep, eps, weight_decay):
        grad = grad + weight_decay * param
        square_avg = square_avg * rho + keep * (grad * grad)
        delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * grad
        acc_delta = acc_delta * rho + keep * (delta * delta)
        return param - lr * delta, square_avg, acc_delta


@register("rmsprop")
class RMSProp(GradientOptimiser):
    """RMSProp: steps divided by a running root mean square of the gradient.

    ``centered=True`` subtracts the squared running mean (state
    ``grad_avg``); ``momentum > 0`` adds a buffer (``momentum_buffer``).

    Example:
        >>> import sigma
        >>> w = sigma.tensor([1.0], requires_grad=True)
        >>> optimiser = sigma.optim.RMSProp([w], lr=0.1, alpha=0.0, eps=0.0)
        >>> w.grad = sigma.tensor([3.0]); optimiser.step()
        >>> round(w.item(), 4)  # 1 - 0.1 * 3 / sqrt(9)
        0.9
    """

    defaults = {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0, "centered": False}

    def check_hyperparameters(self, group: Dict[str, Any]) -> None:
        check_non_negative(self, group, "lr", "eps", "weight_decay", "momentum")
        if not 0.0 <= group["alpha"] <= 1.0:
            raise ValueError(f"RMSProp: alpha must be in [0, 1], got {group['alpha']!r}")

    def variant(self, group):
        centered, momentum = bool(group["centered"]), group["momentum"] > 0
        if centered and momentum:
            return ("square_avg", "grad_avg", "momentum_buffer"), RMSProp.centered_momentum_rule
        if centered:
            return ("square_avg", "grad_avg"), RMSProp.centered_rule
        if momentum:
            return ("square_avg", "momentum_buffer"), RMSProp.momentum_rule
        return ("square_avg",), RMSProp.plain_rule

    def scalars(self, group: Dict[str, Any], step: int) -> Dict[str, float]:
        return {"lr": group["lr"], "alpha": group["alpha"], "keep": 1.0 - group["alpha"], "eps": group["eps"],
                "weight_decay": group["weight_decay"], "momentum": group["momentum"]}

    @staticmethod
    def plain_rule(param, grad, square_avg, lr, alpha, keep, eps, weight_decay):
        grad = grad + weight_decay * param
        square_avg = square_avg * alpha + keep * (grad * grad)
        return param - lr * (grad / (sqrt(square_avg) + eps)), square_avg

    @staticmethod
    def centered_rule(param, grad, square_avg, grad_avg, lr, alpha, keep, eps, weight_decay):
        grad = grad + weight_decay * param
        square_avg = square_avg * alpha + keep * (grad * grad)
        grad_avg = grad_avg + keep * (grad - grad_avg)
        average = sqrt(square_avg - grad_avg * grad_avg) + eps
        return param - lr * (grad / average), square_avg, grad_avg

    @staticmethod
    def momentum_rule(param, grad, square_avg, momentum_buffer, lr, alpha, keep, eps, weight_decay, momentum):
        grad = grad + weight_decay * param
        square_avg = square_avg * alpha + keep * (grad * grad)
        momentum_buffer = momentum_buffer * momentum + grad / (sqrt(square_avg) + eps)
        return param - lr * momentum_buffer, square_avg, momentum_buffer

    @staticmethod
    def centered_momentum_rule(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, keep, eps,
                               weight_decay, momentum):
        grad = grad + weight_decay * param
        square_avg = square_avg * alpha + keep * (grad * grad)
        grad_avg = grad_avg + keep * (grad - grad_avg)
        average = sqrt(square_avg - grad_avg * grad_avg) + eps
        momentum_buffer = momentum_buffer * momentum + grad / average
        return param - lr * momentum_buffer, square_avg, grad_avg, momentum_buffer
