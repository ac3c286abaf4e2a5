"""The functional forms layers are built on, under the names users expect.

``sigma.nn.functional`` gathers Sigma's neural-network operations
(``relu``, ``conv2d``, ``max_pool2d``, ``softmax``, ``dropout``, ...), the
losses, and the functions defined here that have no primitive of their own:
``linear`` and the normalisations.

Example:
    >>> import sigma
    >>> import sigma.nn.functional as F
    >>> x = sigma.ones(2, 3)
    >>> F.linear(x, sigma.ones(4, 3), sigma.zeros(4)).tolist()
    [[3.0, 3.0, 3.0, 3.0], [3.0, 3.0, 3.0, 3.0]]
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

from sigma.ops import (avg_pool2d, conv1d, conv2d, dropout, elu, embedding, gelu, global_avg_pool2d, leaky_relu,
                       log_softmax, max_pool2d, pad, relu, sigmoid, softmax, softmax_cross_entropy, softplus, tanh)
from sigma.nn.normalise import normalise
from sigma.nn.losses import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, huber_loss,
                             l1_loss, mse_loss, nll_loss)
from sigma.ops.linalg import LinearMap
from sigma.tensor import Tensor

__all__ = ["linear", "batch_norm", "layer_norm", "instance_norm", "avg_pool2d", "conv1d", "conv2d", "dropout",
           "elu", "embedding", "gelu", "global_avg_pool2d", "leaky_relu", "log_softmax", "max_pool2d", "pad", "relu",
           "sigmoid", "softmax", "softmax_cross_entropy", "softplus", "tanh", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "cross_entropy", "huber_loss", "l1_loss", "mse_loss", "nll_loss"]


def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``x @ weight.T + bias`` for ``weight`` of shape (out, in), as ``torch.nn.functional.linear``.

    ``x`` may have any number of leading axes: (..., in) -> (..., out).
    """
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be (out_features, in_features), got shape {weight.shape}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {x.shape} does not end in in_features={weight.shape[1]} "
                         f"(weight {weight.shape})")
    if x.dtype != weight.dtype:
        raise TypeError(f"linear: input dtype {x.dtype} and weight dtype {weight.dtype} differ")
    if x.ndim == 1:
        return linear(x.reshape(1, -1), weight, bias).reshape(-1)
    out = LinearMap.apply(x, weight)
    if bias is not None:
        out = out + bias
    return out


def _channel_shape(x: Tensor) -> Tuple[int, ...]:
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _update_running(running: Tensor, batch_value, momentum: float) -> None:
    """``running = (1 - momentum) * running + momentum * batch_value`` on the raw array (not recorded)."""
    data = running.data
    data *= (1.0 - momentum)
    data += momentum * batch_value.astype(data.dtype, copy=False)


def batch_norm(x: Tensor, running_mean: Optional[Tensor], running_var: Optional[Tensor],
               weight: Optional[Tensor] = None, bias: Optional[Tensor] = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel (axis 1) of (N, C, ...) with batch or running statistics.

    ``training=True`` uses the batch's mean and biased variance and, when
    running buffers are given, updates them in place:
    ``running = (1 - momentum) running + momentum batch`` with the unbiased
    variance for ``running_var`` (Ioffe & Szegedy 2015; PyTorch does the
    same). ``training=False`` uses the running buffers.

    Example:
        >>> import sigma
        >>> import sigma.nn.functional as F
        >>> x = sigma.tensor([[1.0], [3.0]])
        >>> mean, var = sigma.zeros(1), sigma.ones(1)
        >>> F.batch_norm(x, mean, var, training=True, eps=0.0).tolist()
        [[-1.0], [1.0]]
        >>> [round(v, 4) for v in (mean.item(), var.item())]  # 0.9 * old + 0.1 * (2, 2)
        [0.2, 1.1]
    """
    if x.ndim < 2:
        raise ValueError(f"batch_norm: input must be (N, C, ...), got shape {x.shape}")
    channels = x.shape[1]
    shape = _channel_shape(x)
    for name, tensor in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                         ("bias", bias)):
        if tensor is not None and tensor.shape != (channels,):
            raise ValueError(f"batch_norm: {name} must have shape ({channels},) for input {x.shape}, "
                             f"got {tensor.shape}")
    w = weight.reshape(shape) if weight is not None else None
    b = bias.reshape(shape) if bias is not None else None
    axes = (0,) + tuple(range(2, x.ndim))
    if training:
        count = x.size // channels
        if count <= 1:
            raise ValueError(f"batch_norm: training needs more than one value per channel, got input {x.shape}")
        out, mean, var = normalise(x, axes, w, b, eps)
        if running_mean is not None:
            _update_running(running_mean, mean.reshape(channels), momentum)
        if running_var is not None:
            _update_running(running_var, var.reshape(channels) * (count / (count - 1)), momentum)
        return out
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm: evaluation (training=False) needs running_mean and running_var")
    mean = running_mean.data.astype(x.dtype, copy=False).reshape(shape)
    var = running_var.data.astype(x.dtype, copy=False).reshape(shape)
    return normalise(x, axes, w, b, eps, mean, var)[0]


def layer_norm(x: Tensor, normalized_shape: Sequence[int], weight: Optional[Tensor] = None,
               bias: Optional[Tensor] = None, eps: float = 1e-5) -> Tensor:
    """Normalise over the last ``len(normalized_shape)`` axes (Ba et al. 2016, "Layer Normalization").

    Example:
        >>> import sigma
        >>> import sigma.nn.functional as F
        >>> F.layer_norm(sigma.tensor([[1.0, 3.0]]), (2,), eps=0.0).tolist()
        [[-1.0, 1.0]]
    """
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(normalized_shape)
    if k == 0 or x.shape[x.ndim - k:] != normalized_shape or x.ndim < k:
        raise ValueError(f"layer_norm: input of shape {x.shape} does not end in normalized_shape {normalized_shape}")
    for name, tensor in (("weight", weight), ("bias", bias)):
        if tensor is not None and tensor.shape != normalized_shape:
            raise ValueError(f"layer_norm: {name} must have shape {normalized_shape}, got {tensor.shape}")
    full_shape = (1,) * (x.ndim - k) + normalized_shape
    w = weight.reshape(full_shape) if weight is not None else None
    b = bias.reshape(full_shape) if bias is not None else None
    return normalise(x, tuple(range(x.ndim - k, x.ndim)), w, b, eps)[0]


def instance_norm(x: Tensor, running_mean: Optional[Tensor] = None, running_var: Optional[Tensor] = None,
                  weight: Optional[Tensor] = None, bias: Optional[Tensor] = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each sample's channels (N, C, ...) over their own spatial positions (Ulyanov et al. 2016).

    With ``use_input_stats`` and running buffers, the buffers move toward
    the batch average of the per-instance mean and unbiased variance; with
    ``use_input_stats=False`` the running buffers are used instead.

    Example:
        >>> import sigma
        >>> import sigma.nn.functional as F
        >>> F.instance_norm(sigma.tensor([[[1.0, 3.0]], [[0.0, 4.0]]]), eps=0.0).tolist()
        [[[-1.0, 1.0]], [[-1.0, 1.0]]]
    """
    if x.ndim < 3:
        raise ValueError(f"instance_norm: input must be (N, C, positions...), got shape {x.shape}")
    channels = x.shape[1]
    shape = _channel_shape(x)
    for name, tensor in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                         ("bias", bias)):
        if tensor is not None and tensor.shape != (channels,):
            raise ValueError(f"instance_norm: {name} must have shape ({channels},) for input {x.shape}, "
                             f"got {tensor.shape}")
    w = weight.reshape(shape) if weight is not None else None
    b = bias.reshape(shape) if bias is not None else None
    axes = tuple(range(2, x.ndim))
    if use_input_stats:
        count = x.size // (x.shape[0] * channels)
        if count <= 1:
            raise ValueError(f"instance_norm: needs more than one position per channel, got input {x.shape}")
        out, mean, var = normalise(x, axes, w, b, eps)
        if running_mean is not None:
            _update_running(running_mean, mean.reshape(x.shape[0], channels).mean(axis=0), momentum)
        if running_var is not None:
            unbiased = var.reshape(x.shape[0], channels) * (count / (count - 1))
            _update_running(running_var, unbiased.mean(axis=0), momentum)
        return out
    if running_mean is None or running_var is None:
        raise ValueError("instance_norm: use_input_stats=False needs running_mean and running_var")
    mean = running_mean.data.astype(x.dtype, copy=False).reshape(shape)
    var = running_var.data.astype(x.dtype, copy=False).reshape(shape)
    return normalise(x, axes, w, b, eps, mean, var)[0]
