"""One fused primitive behind batch, layer and instance normalisation.

``y = (x - mean) / sqrt(var + eps) * weight + bias``, the statistics taken
over ``axes`` (or given, for evaluation with running statistics).

Built from separate operations, this keeps five activation-sized arrays
alive for the backward pass (the centred input, its square, the normalised
input, its scaled copy, the output); the primitive keeps only the mean and
the inverse standard deviation (one value per normalised group) and
recomputes the normalised input during backward, which is what made batch
norm dominate the CNN step's peak memory.

First-order backward is closed-form on raw arrays: with ``gw = grad * weight``
and means over ``axes``, ``dx = inv_std * (gw - mean(gw) - x_hat * mean(gw *
x_hat))`` for batch statistics (``dx = gw * inv_std`` for given ones). When a
graph of the gradient is requested (``create_graph=True``), backward instead
differentiates the same formula written with tensor operations, so higher
derivatives stay exact.
"""
from __future__ import annotations

from typing import Optional, Tuple

from sigma.autograd.function import Function
from sigma.autograd.grad_mode import grad_mode
from sigma.tensor import Tensor


def _reduce_to(xp, array, shape: Tuple[int, ...]):
    """Sum ``array`` over the axes where ``shape`` (same rank) has size 1."""
    axes = tuple(i for i, (a, s) in enumerate(zip(array.shape, shape)) if s == 1 and a != 1)
    out = array.sum(axis=axes, keepdims=True) if axes else array
    return out.reshape(shape)


class Normalise(Function):
    """Inputs ``(x[, weight][, bias])``; weight and bias already reshaped to broadcast against ``x``."""

    __slots__ = ("axes", "eps", "has_weight", "has_bias", "batch_statistics", "mean", "var", "inverse_std",
                 "per_channel")

    def forward(self, x, *affine, axes, eps, has_weight, has_bias, mean=None, var=None):
        self.axes, self.eps, self.has_weight, self.has_bias = axes, eps, has_weight, has_bias
        self.batch_statistics = mean is None
        # Batch norm proper (statistics per channel over every other axis) has
        # a fused kernel on the backend: one pass for the statistics and one
        # for the output, per channel, instead of numpy's six.
        self.per_channel = self.batch_statistics and x.ndim >= 2 and tuple(axes) == _channel_axes(x.ndim)
        if self.per_channel:
            return self._forward_per_channel(x, affine)
        if self.batch_statistics:
            mean = x.mean(axis=axes, keepdims=True)
            centred = x - mean
            var = (centred * centred).mean(axis=axes, keepdims=True)
        else:
            centred = x - mean
        self.mean, self.var = mean, var
        self.inverse_std = 1.0 / (var + eps) ** 0.5
        out = centred
        out *= self.inverse_std
        if has_weight:
            out *= affine[0]
        if has_bias:
            out += affine[-1]
        return out

    def _forward_per_channel(self, x, affine):
        channels = x.shape[1]
        xp = self.backend.xp
        weight = affine[0].reshape(channels) if self.has_weight else xp.ones(channels, dtype=x.dtype)
        bias = affine[-1].reshape(channels) if self.has_bias else xp.zeros(channels, dtype=x.dtype)
        out, mean, var, inverse_std = self.backend.normalise_channels(x, weight, bias, self.eps)
        shape = (1, channels) + (1,) * (x.ndim - 2)
        self.mean, self.var, self.inverse_std = mean.reshape(shape), var.reshape(shape), inverse_std.reshape(shape)
        return out

    def _backward_per_channel(self, grad):
        inputs = self.inputs
        x = inputs[0]
        channels = x.data.shape[1]
        weight = inputs[1].data.reshape(channels) if self.has_weight else x.backend.xp.ones(channels, x.data.dtype)
        grad_x, grad_weight, grad_bias = x.backend.normalise_channels_backward(
            grad.data, x.data, self.mean.reshape(channels), self.inverse_std.reshape(channels), weight,
            x.requires_grad)
        gradients = [_wrap(grad_x, x) if x.requires_grad else None]
        if self.has_weight:
            gradients.append(_wrap(grad_weight.reshape(inputs[1].data.shape), x) if inputs[1].requires_grad else None)
        if self.has_bias:
            gradients.append(_wrap(grad_bias.reshape(inputs[-1].data.shape), x) if inputs[-1].requires_grad else None)
        return tuple(gradients)

    def statistics(self):
        """(mean, biased variance) the forward pass used, shaped to broadcast against ``x``."""
        return self.mean, self.var

    def backward(self, grad):
        if grad_mode.enabled:
            return self._backward_differentiable(grad)
        if self.per_channel:
            return self._backward_per_channel(grad)
        inputs = self.inputs
        x = inputs[0]
        g = grad.data
        x_hat = (x.data - self.mean) * self.inverse_std
        gradients = [None]
        gw = g
        if self.has_weight:
            weight = inputs[1]
            gw = g * weight.data
            gradients.append(_wrap(_reduce_to(x.backend.xp, g * x_hat, weight.data.shape), x)
                             if weight.requires_grad else None)
        if self.has_bias:
            bias = inputs[-1]
            gradients.append(_wrap(_reduce_to(x.backend.xp, g, bias.data.shape), x) if bias.requires_grad else None)
        if x.requires_grad:
            if self.batch_statistics:
                mean_gw = gw.mean(axis=self.axes, keepdims=True)
                mean_gw_x_hat = (gw * x_hat).mean(axis=self.axes, keepdims=True)
                dx = gw - mean_gw
                dx -= x_hat * mean_gw_x_hat
                dx *= self.inverse_std
            else:
                dx = gw * self.inverse_std
            gradients[0] = _wrap(dx, x)
        return tuple(gradients)

    def _backward_differentiable(self, grad):
        """The same gradients as tensor operations of the inputs, so they can be differentiated again."""
        inputs = self.inputs
        x = inputs[0]
        weight = inputs[1] if self.has_weight else None
        bias = inputs[-1] if self.has_bias else None
        if self.batch_statistics:
            mean = x.mean(axis=self.axes, keepdims=True)
            centred = x - mean
            inverse_std = ((centred * centred).mean(axis=self.axes, keepdims=True) + self.eps) ** -0.5
        else:
            centred = x - _wrap(self.mean, x)
            inverse_std = _wrap(self.inverse_std, x)
        x_hat = centred * inverse_std
        gw = grad * weight if weight is not None else grad
        gradients = [None]
        if weight is not None:
            gradients.append(_sum_to(grad * x_hat, weight.shape) if weight.requires_grad else None)
        if bias is not None:
            gradients.append(_sum_to(grad, bias.shape) if bias.requires_grad else None)
        if x.requires_grad:
            if self.batch_statistics:
                dx = (gw - gw.mean(axis=self.axes, keepdims=True)
                      - x_hat * (gw * x_hat).mean(axis=self.axes, keepdims=True)) * inverse_std
            else:
                dx = gw * inverse_std
            gradients[0] = dx
        return tuple(gradients)


def _channel_axes(ndim: int) -> Tuple[int, ...]:
    return (0,) + tuple(range(2, ndim))


def _wrap(array, like: Tensor) -> Tensor:
    return Tensor._make(array, like.backend, False, None)


def _sum_to(t: Tensor, shape: Tuple[int, ...]) -> Tensor:
    axes = tuple(i for i, (a, s) in enumerate(zip(t.shape, shape)) if s == 1 and a != 1)
    return t.sum(axis=axes, keepdims=True) if axes else t


def normalise(x: Tensor, axes: Tuple[int, ...], weight: Optional[Tensor], bias: Optional[Tensor], eps: float,
              mean=None, var=None):
    """Run :class:`Normalise`; returns ``(output, mean, biased_var)`` (raw arrays shaped like the statistics).

    ``weight`` and ``bias`` must already broadcast against ``x``; ``mean`` and
    ``var`` (raw arrays), when given, replace the batch statistics.
    """
    affine = [t for t in (weight, bias) if t is not None]
    for t in affine:
        if t.backend is not x.backend:
            raise RuntimeError(f"normalise: weight/bias on {t.backend.name}, input on {x.backend.name}")
    function_inputs = [x] + affine
    fn = Normalise.__new__(Normalise)
    fn.backend = x.backend
    data = fn.forward(x.data, *[t.data for t in affine], axes=axes, eps=eps, has_weight=weight is not None,
                      has_bias=bias is not None, mean=mean, var=var)
    requires_grad = grad_mode.enabled and any(t.requires_grad for t in function_inputs)
    if requires_grad:
        fn.inputs = tuple(function_inputs)
    out = Tensor._make(data, x.backend, requires_grad, fn if requires_grad else None)
    batch_mean, batch_var = fn.statistics()
    return out, batch_mean, batch_var
