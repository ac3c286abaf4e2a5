"""Sigma: a machine-learning framework with its own autodiff.

Example:
    >>> import sigma
    >>> x = sigma.randn(32, 784)
    >>> w = sigma.randn(784, 10, requires_grad=True)
    >>> b = sigma.zeros(10, requires_grad=True)
    >>> y = (x @ w + b).relu().sum()
    >>> y.backward()
    >>> w.grad.shape
    (784, 10)
"""
from sigma.version import __version__
from sigma.device import default_backend, get_default_dtype, manual_seed, set_default_dtype, use
from sigma.tensor import (Tensor, arange, eye, full, ones, ones_like, rand, randint, randn, tensor, zeros,
                          zeros_like)
from sigma.autograd import (enable_grad, grad, is_grad_enabled, no_grad, set_grad_enabled, value_and_grad)
from sigma import autograd
from sigma.ops import *  # noqa: F401,F403  (the op functions: sigma.relu, sigma.conv2d, ...)
from sigma.ops import __all__ as _ops_all

# sigma.grad is the function transform; the engine's torch-style form is sigma.autograd.grad.
from sigma.autograd.functional import grad  # noqa: F811

float32 = "float32"
float64 = "float64"

# The layers users build on, imported last: they are written with everything above.
from sigma import nn, optim, data  # noqa: E402
