"""Sigma's operations. Importing this package also gives ``Tensor`` its
operator and method forms (``x + y``, ``x.sum()``), which call the same
functions as ``sigma.add``/``sigma.sum``."""
from __future__ import annotations

from sigma.ops import convolution, elementwise, linalg, movement, neural, pooling, reduction
from sigma.ops.convolution import conv1d, conv2d
from sigma.ops.elementwise import (clip, elu, gelu, leaky_relu, maximum, minimum, softplus, where)
from sigma.ops.linalg import matmul
from sigma.ops.movement import (broadcast_to, concat, expand, flatten, index_add, pad, permute, reshape,
                                split, squeeze, stack, transpose, unsqueeze)
from sigma.ops.neural import (dropout, embedding, gather, log_softmax, softmax, softmax_cross_entropy)
from sigma.ops.pooling import avg_pool2d, global_avg_pool2d, max_pool2d
from sigma.ops.reduction import (all, any, argmax, argmin, logsumexp, max, mean, min, std, sum, var)
from sigma.tensor import Tensor

_e = elementwise


def add(a, b):
    return _e.Add.apply(a, a._constant(b)) if isinstance(a, Tensor) else _e.Add.apply(b._constant(a), b)


def sub(a, b):
    return _e.Sub.apply(a, a._constant(b)) if isinstance(a, Tensor) else _e.Sub.apply(b._constant(a), b)


def mul(a, b):
    return _e.Mul.apply(a, a._constant(b)) if isinstance(a, Tensor) else _e.Mul.apply(b._constant(a), b)


def div(a, b):
    return _e.Div.apply(a, a._constant(b)) if isinstance(a, Tensor) else _e.Div.apply(b._constant(a), b)


def pow(a, b):
    """``a ** b``; a constant number exponent uses the cheaper primitive."""
    if isinstance(a, Tensor) and isinstance(b, (int, float)) and not isinstance(b, bool):
        return _e.PowScalar.apply(a, b)
    if isinstance(a, Tensor):
        return _e.Pow.apply(a, a._constant(b))
    return _e.Pow.apply(b._constant(a), b)


def neg(x):
    return _e.Neg.apply(x)


def exp(x):
    return _e.Exp.apply(x)


def log(x):
    return _e.Log.apply(x)


def log1p(x):
    return _e.Log1p.apply(x)


def sqrt(x):
    return _e.Sqrt.apply(x)


def abs(x):
    return _e.Abs.apply(x)


def sin(x):
    return _e.Sin.apply(x)


def cos(x):
    return _e.Cos.apply(x)


def relu(x):
    return _e.Relu.apply(x)


def sigmoid(x):
    return _e.Sigmoid.apply(x)


def tanh(x):
    return _e.Tanh.apply(x)


def erf(x):
    return _e.Erf.apply(x)


def _bind() -> None:
    T = Tensor
    T.__add__ = lambda a, b: _e.Add.apply(a, b if isinstance(b, Tensor) else a._constant(b))
    T.__radd__ = lambda a, b: _e.Add.apply(a._constant(b), a)
    T.__sub__ = lambda a, b: _e.Sub.apply(a, b if isinstance(b, Tensor) else a._constant(b))
    T.__rsub__ = lambda a, b: _e.Sub.apply(a._constant(b), a)
    T.__mul__ = lambda a, b: _e.Mul.apply(a, b if isinstance(b, Tensor) else a._constant(b))
    T.__rmul__ = lambda a, b: _e.Mul.apply(a._constant(b), a)
    T.__truediv__ = lambda a, b: _e.Div.apply(a, b if isinstance(b, Tensor) else a._constant(b))
    T.__rtruediv__ = lambda a, b: _e.Div.apply(a._constant(b), a)
    T.__pow__ = pow
    T.__rpow__ = lambda a, b: _e.Pow.apply(a._constant(b), a)
    T.__neg__ = neg
    T.__matmul__ = lambda a, b: matmul(a, b if isinstance(b, Tensor) else a._constant(b))
    T.__rmatmul__ = lambda a, b: matmul(a._constant(b), a)
    T.__abs__ = abs
    T.__getitem__ = movement.getitem
    for op, method in (("__eq__", "__eq__"), ("__ne__", "__ne__"), ("__lt__", "__lt__"),
                       ("__le__", "__le__"), ("__gt__", "__gt__"), ("__ge__", "__ge__")):
        setattr(T, op, (lambda m: lambda a, b: _e.compare(m, a, b))(method))
    T.__hash__ = object.__hash__
    for function in (exp, log, log1p, sqrt, sin, cos, relu, sigmoid, tanh, erf, clip, leaky_relu, elu, gelu,
                     softplus, sum, mean, max, min, var, std, logsumexp, argmax, argmin, any, all, reshape,
                     permute, transpose, expand, flatten, squeeze, unsqueeze, pad, split, softmax, log_softmax,
                     matmul, maximum, minimum, gather):
        setattr(T, function.__name__, function)
    T.abs = abs
    T.pow = pow
    T.neg = neg
    T.concat = lambda x, others, axis=0: concat([x] + list(others), axis)
    T.T = property(lambda x: permute(x, *reversed(range(x.ndim))))


_bind()

__all__ = [name for name in dir() if not name.startswith("_")]
