"""Adam (Kingma & Ba, 2015), its AMSGrad form (Reddi et al., 2018) and AdamW (Loshchilov & Hutter, 2019).

As in ``torch.optim``: ``exp_avg`` and ``exp_avg_sq`` are running averages
of ``g`` and ``g * g`` (factors ``betas``); the step is
``lr / (1 - beta1 ** step) * exp_avg / (sqrt(v) / sqrt(1 - beta2 ** step) + eps)``
where ``v`` is ``exp_avg_sq``, or its running maximum ``max_exp_avg_sq``
with ``amsgrad=True``. Adam adds ``weight_decay * param`` to the gradient;
AdamW instead shrinks the parameter by ``1 - lr * weight_decay`` first.
"""
from __future__ import annotations

import math
from typing import Any, Dict

from sigma.optim.elementwise import maximum, sqrt
from sigma.optim.gradient import GradientOptimiser
from sigma.optim.optimiser import check_non_negative
from sigma.optim.registry import register

__all__ = ["Adam", "AdamW"]


@register("adam")
class Adam(GradientOptimiser):
    """Adam: per-element steps from bias-corrected running moments of the gradient.

    Example:
        >>> import sigma
        >>> w = sigma.tensor([1.0], requires_grad=True)
        >>> optimiser = sigma.optim.Adam([w], lr=0.1)
        >>> w.grad = sigma.tensor([5.0]); optimiser.step()
        >>> round(w.item(), 4)  # the first step is lr * sign(grad)
        0.9
    """

    defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False}
    decoupled_weight_decay = False

    def check_hyperparameters(self, group: Dict[str, Any]) -> None:
        check_non_negative(self, group, "lr", "eps", "weight_decay")
        betas = group["betas"]
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2 and all(0.0 <= b < 1.0 for b in betas)):
            raise ValueError(f"{type(self).__name__}: betas must be two numbers in [0, 1), got {betas!r}")

    def variant(self, group):
        if group["amsgrad"]:
            return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"), Adam.amsgrad_rule
        return ("exp_avg", "exp_avg_sq"), Adam.rule

    def scalars(self, group: Dict[str, Any], step: int) -> Dict[str, float]:
        beta1, beta2 = group["betas"]
        lr, weight_decay = group["lr"], group["weight_decay"]
        decoupled = type(self).decoupled_weight_decay
        return {"shrink": 1.0 - lr * weight_decay if decoupled else 1.0,
                "weight_decay": 0.0 if decoupled else weight_decay,
                "keep1": 1.0 - beta1, "beta2": beta2, "keep2": 1.0 - beta2, "eps": group["eps"],
                "step_size": lr / (1.0 - beta1 ** step),
                "correction2_sqrt": math.sqrt(1.0 - beta2 ** step)}

    @staticmethod
    def rule(param, grad, exp_avg, exp_avg_sq, shrink, weight_decay, keep1, beta2, keep2, eps, step_size,
             correction2_sqrt):
        param = param * shrink
        grad = grad + weight_decay * param
        exp_avg = exp_avg + keep1 * (grad - exp_avg)
        exp_avg_sq = exp_avg_sq * beta2 + keep2 * (grad * grad)
        denominator = sqrt(exp_avg_sq) / correction2_sqrt + eps
        return param - step_size * (exp_avg / denominator), exp_avg, exp_avg_sq

    @staticmethod
    def amsgrad_rule(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, shrink, weight_decay, keep1, beta2, keep2,
                     eps, step_size, correction2_sqrt):
        param = param * shrink
        grad = grad + weight_decay * param
        exp_avg = exp_avg + keep1 * (grad - exp_avg)
        exp_avg_sq = exp_avg_sq * beta2 + keep2 * (grad * grad)
        max_exp_avg_sq = maximum(max_exp_avg_sq, exp_avg_sq)
        denominator = sqrt(max_exp_avg_sq) / correction2_sqrt + eps
        return param - step_size * (exp_avg / denominator), exp_avg, exp_avg_sq, max_exp_avg_sq


@register("adamw")
class AdamW(Adam):
    """Adam with decoupled weight decay: ``param *= 1 - lr * weight_decay`` before the Adam step.

    Example:
        >>> import sigma
        >>> w = sigma.tensor([1.0], requires_grad=True)
        >>> optimiser = sigma.optim.AdamW([w], lr=0.1, weight_decay=0.5)
        >>> w.grad = sigma.tensor([0.0]); optimiser.step()
        >>> round(w.item(), 4)  # only the decay acts on a zero gradient
        0.95
    """

    defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2, "amsgrad": False}
    decoupled_weight_decay = True
