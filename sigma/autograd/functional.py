"""Function transforms: ``grad(f)`` and ``value_and_grad(f)``.

They nest: ``grad(grad(f))`` gives second derivatives, because an inner
``grad`` whose arguments already carry a graph records its own backward.
"""
from __future__ import annotations

from typing import Callable, Sequence, Union

from sigma.autograd.engine import run_backward
from sigma.autograd.grad_mode import enable_grad

ArgNums = Union[int, Sequence[int]]


def _prepare(args, argnums: ArgNums):
    from sigma.tensor import Tensor, tensor
    positions = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    args = list(args)
    nested = False
    for i in positions:
        if i >= len(args):
            raise ValueError(f"grad: argnums {i} but the function got {len(args)} arguments")
        arg = args[i]
        if isinstance(arg, Tensor) and arg.requires_grad:
            nested = True  # an outer transform traces through this argument
        else:
            arg = arg.detach() if isinstance(arg, Tensor) else tensor(arg)
            args[i] = arg.requires_grad_(True)
    return args, positions, nested


def value_and_grad(function: Callable, argnums: ArgNums = 0) -> Callable:
    """Return ``g(*args) -> (function(*args), gradient)``.

    ``function`` must return a tensor with a single value. ``argnums`` picks
    the arguments to differentiate (an int gives one gradient, a sequence a
    tuple of them).

    Example:
        >>> import sigma
        >>> f = lambda x: (x * x).sum()
        >>> value, g = sigma.value_and_grad(f)(sigma.tensor([1.0, 2.0]))
        >>> value.item(), g.tolist()
        (5.0, [2.0, 4.0])
    """
    def wrapped(*args, **kwargs):
        args, positions, nested = _prepare(args, argnums)
        with enable_grad():
            value = function(*args, **kwargs)
        if value.data.size != 1:
            raise RuntimeError(f"grad: the function must return a single value, got shape {value.shape}")
        if not value.requires_grad:
            raise RuntimeError("grad: the function's result does not depend on the differentiated arguments")
        grads = run_backward([value], [None], retain_graph=nested, create_graph=nested,
                             inputs=[args[i] for i in positions], allow_unused=True)
        grads = tuple(g if g is not None else args[i].zeros_like() for g, i in zip(grads, positions))
        if not nested:
            value = value.detach()
        return value, grads[0] if isinstance(argnums, int) else grads

    return wrapped


def grad(function: Callable, argnums: ArgNums = 0) -> Callable:
    """Return a function computing the gradient of ``function``.

    Example:
        >>> import sigma
        >>> d2 = sigma.grad(sigma.grad(lambda x: (x ** 3).sum()))
        >>> d2(sigma.tensor([2.0])).tolist()
        [12.0]
    """
    value_and_gradient = value_and_grad(function, argnums)

    def wrapped(*args, **kwargs):
        return value_and_gradient(*args, **kwargs)[1]

    return wrapped
