"""Gradient optimisers written as an elementwise update rule plus its state.

A gradient optimiser says only how one element changes; this base class does
the rest: groups, state creation, serialisation, and applying the rule as one
fused pass per parameter (numba on the CPU, a cupy kernel on CUDA).
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar, Dict, Tuple

import numpy as np

from sigma.autograd import enable_grad
from sigma.optim.fused import rule_for
from sigma.optim.optimiser import Optimiser
from sigma.tensor import Tensor

__all__ = ["GradientOptimiser"]


class GradientOptimiser(Optimiser):
    """An optimiser defined by ``rule`` (one element's update) and ``state_names`` (its buffers).

    Subclasses set:

    * ``defaults``: hyperparameters and their default values;
    * ``state_names``: per-parameter buffers of the parameter's shape
      (zeros at first; override :meth:`initial_state` for other values);
    * ``rule``: a ``staticmethod`` taking ``(param, grad, *state, *scalars)``
      as numbers and returning the new parameter followed by the new state.
      Scalars are looked up by argument name in :meth:`scalars`: by default
      the group's numeric hyperparameters and ``step`` (1 on the first step).
      Use ``sigma.optim.elementwise`` (``sqrt``, ``where``, ``maximum``...)
      instead of ``math`` and ``if`` so that the rule also runs on GPUs.

    Example (momentum SGD in full):
        >>> import sigma
        >>> class Momentum(sigma.optim.GradientOptimiser):
        ...     defaults = {"lr": 0.1, "beta": 0.9}
        ...     state_names = ("velocity",)
        ...     @staticmethod
        ...     def rule(param, grad, velocity, lr, beta):
        ...         velocity = beta * velocity + grad
        ...         return param - lr * velocity, velocity
        >>> w = sigma.tensor([1.0], requires_grad=True)
        >>> optimiser = Momentum([w])
        >>> for _ in range(2):
        ...     w.grad = sigma.tensor([1.0]); optimiser.step()
        >>> round(w.item(), 4)  # 1 - 0.1 * 1 - 0.1 * 1.9
        0.71
    """

    state_names: ClassVar[Tuple[str, ...]] = ()
    rule: ClassVar[Callable]

    def add_param_group(self, group: Dict[str, Any]) -> None:
        if getattr(type(self), "rule", None) is None and type(self).variant is GradientOptimiser.variant:
            raise TypeError(f"{type(self).__name__} defines no update rule: give it a staticmethod "
                            "rule(param, grad, *state, *scalars)")
        super().add_param_group(group)
        # Check the group's rule now (argument names, what it returns) rather
        # than at the first step, deep inside a training loop.
        names, rule = self.variant(self.param_groups[-1])
        try:
            rule_for(rule, names)
        except TypeError:
            self.param_groups.pop()
            raise

    def variant(self, group: Dict[str, Any]) -> Tuple[Tuple[str, ...], Callable]:
        """The state names and rule for ``group``.

        Override to choose by hyperparameter when a setting needs other state,
        as Adam does for ``amsgrad`` (an extra buffer) and RMSProp for
        ``centered`` and ``momentum``.
        """
        return tuple(type(self).state_names), type(self).rule

    def initial_state(self, param: Tensor, group: Dict[str, Any]) -> Dict[str, Any]:
        """The state buffers of a parameter before its first step: zeros of its shape by default."""
        names, _ = self.variant(group)
        xp = param.backend.xp
        return {name: xp.zeros_like(param.data) for name in names}

    def scalars(self, group: Dict[str, Any], step: int) -> Dict[str, float]:
        """The numbers the rule takes besides the elements, for a parameter at ``step`` (1, 2, ...).

        By default: every numeric hyperparameter of the group and ``step``.
        Override to derive others once per step instead of once per element
        (bias corrections, ``1 - beta``).
        """
        values = {key: value for key, value in group.items()
                  if key != "params" and isinstance(value, (int, float, np.number))}
        values["step"] = step
        return values

    def step(self, closure: Callable[[], Any] = None):
        """Apply the rule to every parameter that has a gradient.

        ``closure``, when given, recomputes the loss (and its gradients) first,
        as in PyTorch; its value is returned.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            names, function = self.variant(group)
            rule = rule_for(function, names)
            scalars_at: Dict[int, Dict[str, float]] = {}
            for param in group["params"]:
                grad = param.grad
                if grad is None:
                    continue
                if grad.backend is not param.backend:
                    raise ValueError(f"{type(self).__name__}: a parameter on {param.device} has its gradient "
                                     f"on {grad.device}")
                state = self.state.get(param)
                if not state:
                    state = self.state[param] = {"step": 0, **self.initial_state(param, group)}
                state["step"] += 1
                step = state["step"]
                if step not in scalars_at:
                    scalars_at[step] = self.scalars(group, step)
                rule.apply(param.backend, param.data, grad.data, [state[name] for name in names], scalars_at[step])
        return loss

    def check_state(self, index: int, param: Tensor, group: Dict[str, Any], state: Dict[str, Any]) -> None:
        names, _ = self.variant(group)
        expected = {"step", *names}
        cls_name = type(self).__name__
        if set(state) != expected:
            missing = sorted(expected - set(state))
            extra = sorted(set(state) - expected)
            raise ValueError(f"{cls_name}.load_state_dict: state of parameter {index} should hold {sorted(expected)}"
                             f"{'; missing ' + str(missing) if missing else ''}"
                             f"{'; unexpected ' + str(extra) if extra else ''}")
        step = state["step"]
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"{cls_name}.load_state_dict: step of parameter {index} must be a "
                             f"non-negative integer, got {step!r}")
        for name in names:
            shape = tuple(getattr(state[name], "shape", ()))
            if not param.backend.is_array(state[name]) or shape != param.shape:
                raise ValueError(f"{cls_name}.load_state_dict: {name!r} of parameter {index} has shape {shape}, "
                                 f"the parameter has shape {param.shape}")
