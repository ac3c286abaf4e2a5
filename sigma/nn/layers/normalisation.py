"""Normalisation layers: batch, layer and instance normalisation."""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from sigma.nn import init
from sigma.nn.functional import batch_norm, instance_norm, layer_norm
from sigma.nn.layers._parameters import check_positive_int, new_parameter
from sigma.nn.module import Module
from sigma.tensor import Tensor, ones, tensor, zeros



def _add_scale_and_running_statistics(layer, num_features: int, affine: bool, track_running_stats: bool,
                                      dtype, device) -> None:
    """The per-feature weight and bias (when affine) and the running-statistics
    buffers (``None`` when not tracked) that batch and instance norm share."""
    layer.weight = new_parameter((num_features,), dtype, device) if affine else None
    layer.bias = new_parameter((num_features,), dtype, device) if affine else None
    tracked = track_running_stats
    layer.register_buffer("running_mean", zeros(num_features, dtype=dtype, device=device) if tracked else None)
    layer.register_buffer("running_var", ones(num_features, dtype=dtype, device=device) if tracked else None)
    layer.register_buffer("num_batches_tracked", tensor(0, dtype="int64", device=device) if tracked else None)

class _BatchNorm(Module):
    input_axes: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device: Any = None, dtype: Any = None):
        super().__init__()
        layer = type(self).__name__
        self.num_features = check_positive_int(layer, "num_features", num_features)
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{layer}: momentum must be in [0, 1] or None (cumulative average), got {momentum}")
        self.eps, self.momentum = eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        _add_scale_and_running_statistics(self, num_features, affine, track_running_stats, dtype, device)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones()(self.weight)
            init.zeros()(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        layer = type(self).__name__
        if x.ndim not in self.input_axes:
            raise ValueError(f"{layer}: input must have {' or '.join(map(str, self.input_axes))} axes, "
                             f"got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{layer}: expected {self.num_features} channels (axis 1), got input of shape {x.shape}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.data)
        use_batch_statistics = self.training or self.running_mean is None
        return batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, use_batch_statistics,
                          factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L) (Ioffe & Szegedy 2015), exactly as PyTorch.

    Training normalises with the batch's mean and biased variance and moves
    the ``running_mean``/``running_var`` buffers toward the batch mean and
    unbiased variance by ``momentum`` (``None``: a cumulative average over
    ``num_batches_tracked``); evaluation uses the running buffers.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> bn = nn.BatchNorm1d(1, eps=0.0)
        >>> out = bn(sigma.tensor([[1.0], [3.0]]))
        >>> out.tolist(), round(bn.running_mean.item(), 4), round(bn.running_var.item(), 4)
        ([[-1.0], [1.0]], 0.2, 1.1)
    """

    input_axes = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of each channel of (N, C, H, W); see :class:`BatchNorm1d`.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> bn = nn.BatchNorm2d(3).eval()   # fresh running stats: mean 0, var 1
        >>> bn(sigma.ones(1, 3, 2, 2)).shape
        (1, 3, 2, 2)
    """

    input_axes = (4,)


class LayerNorm(Module):
    """Normalise over the last axes given by ``normalized_shape``, then scale and shift per element.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> norm = nn.LayerNorm(4)
        >>> out = norm(sigma.arange(8.0).reshape(2, 4))
        >>> [round(v, 4) for v in out[0].tolist()]
        [-1.3416, -0.4472, 0.4472, 1.3416]
    """

    def __init__(self, normalized_shape: Union[int, Sequence[int]], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True, device: Any = None, dtype: Any = None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be positive ints, got {normalized_shape!r}")
        self.normalized_shape, self.eps, self.elementwise_affine = shape, eps, elementwise_affine
        self.weight = new_parameter(shape, dtype, device) if elementwise_affine else None
        self.bias = new_parameter(shape, dtype, device) if elementwise_affine and bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones()(self.weight)
        if self.bias is not None:
            init.zeros()(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class InstanceNorm2d(Module):
    """Normalise each channel of each sample of (N, C, H, W) over its own H x W (Ulyanov et al. 2016).

    Defaults as PyTorch: no affine parameters and no running statistics. With
    ``track_running_stats=True`` the buffers follow the batch average of the
    per-instance statistics in training and are used in evaluation.
    Unbatched (C, H, W) input works too.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> out = nn.InstanceNorm2d(2)(sigma.arange(16.0).reshape(2, 2, 2, 2))
        >>> [round(v, 4) for v in out[0, 0].reshape(-1).tolist()]
        [-1.3416, -0.4472, 0.4472, 1.3416]
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = False,
                 track_running_stats: bool = False, device: Any = None, dtype: Any = None):
        super().__init__()
        self.num_features = check_positive_int("InstanceNorm2d", "num_features", num_features)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"InstanceNorm2d: momentum must be in [0, 1], got {momentum}")
        self.eps, self.momentum, self.affine, self.track_running_stats = eps, momentum, affine, track_running_stats
        _add_scale_and_running_statistics(self, num_features, affine, track_running_stats, dtype, device)
        if affine:
            init.ones()(self.weight)
            init.zeros()(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in (3, 4):
            raise ValueError(f"InstanceNorm2d: input must be (N, C, H, W) or (C, H, W), got shape {x.shape}")
        if x.shape[-3] != self.num_features:
            raise ValueError(f"InstanceNorm2d: expected {self.num_features} channels (axis -3), "
                             f"got input of shape {x.shape}")
        unbatched = x.ndim == 3
        if unbatched:
            x = x.unsqueeze(0)
        # num_batches_tracked exists for state-dict compatibility with PyTorch, which never advances it here.
        use_input_stats = self.training or not self.track_running_stats
        out = instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias, use_input_stats,
                            self.momentum, self.eps)
        return out.squeeze(0) if unbatched else out

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")
