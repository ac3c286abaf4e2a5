"""Sigma's reverse-mode autodiff: grad mode, primitives, the engine, transforms."""
from sigma.autograd.engine import grad
from sigma.autograd.function import BinaryFunction, Function, UnaryFunction, unbroadcast
from sigma.autograd.functional import value_and_grad
from sigma.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled

__all__ = ["Function", "UnaryFunction", "BinaryFunction", "unbroadcast", "grad", "value_and_grad",
           "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled"]
