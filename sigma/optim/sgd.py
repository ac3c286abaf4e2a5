"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay.

The update is PyTorch's ``torch.optim.SGD`` (Sutskever et al., 2013 for the
momentum form): with ``g = grad + weight_decay * param``, the buffer starts
as ``g`` and then becomes ``momentum * buffer + (1 - dampening) * g``; the
step uses the buffer, or ``g + momentum * buffer`` with Nesterov.
"""
from __future__ import annotations

from typing import Any, Dict

from sigma.optim.elementwise import where
from sigma.optim.gradient import GradientOptimiser
from sigma.optim.optimiser import check_non_negative
from sigma.optim.registry import register

__all__ = ["SGD"]


@register("sgd")
class SGD(GradientOptimiser):
    """SGD: ``param -= lr * g`` with optional momentum (``momentum_buffer`` state), Nesterov and weight decay.

    Example:
        >>> import sigma
        >>> w = sigma.tensor([1.0], requires_grad=True)
        >>> optimiser = sigma.optim.SGD([w], lr=0.1, momentum=0.9)
        >>> for _ in range(2):
        ...     w.grad = sigma.tensor([1.0]); optimiser.step()
        >>> round(w.item(), 4)  # 1 - 0.1 * 1 - 0.1 * (0.9 + 1)
        0.71
    """

    defaults = {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False}

    def check_hyperparameters(self, group: Dict[str, Any]) -> None:
        check_non_negative(self, group, "lr", "momentum", "weight_decay")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: Nesterov momentum needs momentum > 0 and dampening 0, got momentum "
                             f"{group['momentum']} and dampening {group['dampening']}")

    def variant(self, group):
        if group["momentum"] == 0:
            return (), SGD.plain_rule
        return ("momentum_buffer",), SGD.momentum_rule

    def scalars(self, group: Dict[str, Any], step: int) -> Dict[str, float]:
        return {"lr": group["lr"], "weight_decay": group["weight_decay"], "momentum": group["momentum"],
                "keep": 1.0 - group["dampening"], "first": step == 1, "nesterov": bool(group["nesterov"])}

    @staticmethod
    def plain_rule(param, grad, lr, weight_decay):
        grad = grad + weight_decay * param
        return param - lr * grad

    @staticmethod
    def momentum_rule(param, grad, momentum_buffer, lr, weight_decay, momentum, keep, first, nesterov):
        grad = grad + weight_decay * param
        momentum_buffer = where(first, grad, momentum * momentum_buffer + keep * grad)
        grad = where(nesterov, grad + momentum * momentum_buffer, momentum_buffer)
        return param - lr * grad, momentum_buffer

