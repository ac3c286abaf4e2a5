"""The interface every array backend implements.

A backend owns one device: its array module (``xp``), its random stream,
host/device transfer, synchronisation and the fused kernels that plain
array calls would make slow. Sigma's autodiff talks to arrays only through
this interface, so nothing above ``backends/`` knows whether it holds numpy
or cupy arrays.
"""
from __future__ import annotations

import contextlib

from typing import Any, Callable, Sequence

import numpy as np


class RandomStream:
    """A seeded random stream whose state can be saved and restored exactly.

    Example:
        >>> import backends
        >>> stream = backends.get("cpu").random
        >>> stream.seed(0)
        >>> state = stream.get_state()
        >>> a = stream.uniform((3,))
        >>> stream.set_state(state)
        >>> bool((stream.uniform((3,)) == a).all())
        True
    """

    def seed(self, seed: int) -> None:
        raise NotImplementedError

    def get_state(self) -> dict:
        raise NotImplementedError

    def set_state(self, state: dict) -> None:
        raise NotImplementedError

    def uniform(self, shape: Sequence[int], low: float = 0.0, high: float = 1.0, dtype: Any = np.float32):
        raise NotImplementedError

    def normal(self, shape: Sequence[int], mean: float = 0.0, std: float = 1.0, dtype: Any = np.float32):
        raise NotImplementedError

    def integers(self, low: int, high: int, shape: Sequence[int]):
        raise NotImplementedError

    def permutation(self, n: int):
        raise NotImplementedError


class Backend:
    """Base class of array backends (``cpu``, ``cuda:0``, ...).

    Subclasses set ``name``, ``kind`` and ``xp`` and implement the transfer,
    random and kernel methods. Kernels take and return arrays of ``xp``.

    Example:
        >>> import backends
        >>> cpu = backends.get("cpu")
        >>> cpu.to_host(cpu.asarray([1.0, 2.0])).tolist()
        [1.0, 2.0]
    """

    name: str = "abstract"
    kind: str = "abstract"
    xp: Any = None
    random: RandomStream

    def __repr__(self) -> str:
        return f"<Backend {self.name}>"

    def __reduce__(self):
        # One backend object per device: copying or unpickling a tensor (or a
        # model) must give back the registry's instance, not a twin that
        # operations would take for another device.
        import backends
        return (backends.get, (self.name,))

    # -- transfer -------------------------------------------------------
    def asarray(self, data: Any, dtype: Any = None):
        """Return ``data`` as an array of this backend (no copy if already one)."""
        raise NotImplementedError

    def to_host(self, array: Any) -> np.ndarray:
        """Return a numpy copy (or view, for the CPU) of a backend array."""
        raise NotImplementedError

    def is_array(self, obj: Any) -> bool:
        """True if ``obj`` is an array that lives on this backend."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait until all queued work on the device has finished."""

    def share_threads(self, workers: int) -> contextlib.AbstractContextManager:
        """A context in which the calling thread uses its share of this backend's kernel threads when
        ``workers`` threads run kernels at once (several workers in one process); a no-op by default."""
        return contextlib.nullcontext()

    # -- work in blocks -----------------------------------------------------
    def block_workers(self, blocks: int) -> int:
        """How many threads :meth:`run_blocks` spreads ``blocks`` blocks over (one by default)."""
        return 1

    def run_blocks(self, work: Callable[[int, int], None], blocks: int) -> None:
        """Call ``work(worker, block)`` for ``block`` in ``range(blocks)``; ``worker`` is below
        :meth:`block_workers` and numbers the thread, for per-thread buffers. In order, here by default.

        Example:
            >>> import backends
            >>> done = []
            >>> backends.get("cpu").run_blocks(lambda worker, block: done.append(block), 3)
            >>> sorted(done)
            [0, 1, 2]
        """
        for block in range(blocks):
            work(0, block)

    def matmul(self, a, b):
        """``a @ b`` with numpy's rules (the matrix products of ``MatMul`` and ``LinearMap``)."""
        return a @ b

    # -- fused kernels ------------------------------------------------------
    def erf(self, x):
        """The error function, elementwise."""
        raise NotImplementedError

    def winograd_applies(self, dtype, weight_shape: tuple, output_size: tuple, stride: tuple, padding: tuple,
                         dilation: tuple, groups: int) -> bool:
        """Whether :meth:`winograd_convolution` can compute this convolution (``output_size``: its
        output's height and width), and should (faster than im2col). No backend has it unless it says so."""
        return False

    def winograd_convolution(self, pass_: str, a, b, padding: tuple, shape: tuple):
        """One pass of a stride-1 convolution by Winograd's minimal filtering: ``pass_`` is "forward"
        (a = x, b = w), "input_grad" (a = output gradient, b = w) or "weight_grad" (a = x, b = output
        gradient); ``shape`` is the weight's shape."""
        raise NotImplementedError

    def im2col(self, x, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple):
        """(N, C, H, W) -> (C*kh*kw, N, OH*OW) patches: one matrix product then convolves the batch."""
        raise NotImplementedError

    def col2im(self, cols, input_shape: tuple, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple):
        """Adjoint of :meth:`im2col`: scatter-add patches back to (N, C, H, W)."""
        raise NotImplementedError

    def max_pool2d(self, x, kernel: tuple, stride: tuple, padding: tuple):
        """Return ``(out, argmax)``; argmax holds flat indices into ``x``'s (H*W) plane."""
        raise NotImplementedError

    def pool_scatter(self, grad, argmax, input_shape: tuple):
        """Adjoint of gathering ``x.reshape(N, C, H*W)`` at ``argmax``."""
        raise NotImplementedError

    def pool_gather(self, x, argmax):
        """Gather ``x.reshape(N, C, H*W)`` at ``argmax`` (the adjoint of :meth:`pool_scatter`)."""
        n, c = x.shape[:2]
        flat = x.reshape(n, c, -1)
        idx = argmax.reshape(n, c, -1)
        return self.xp.take_along_axis(flat, idx, axis=2).reshape(argmax.shape)

    def normalise_channels(self, x, weight, bias, eps: float):
        """Batch normalisation of (N, C, ...) with each channel's batch statistics.

        ``weight`` and ``bias`` have shape (C,). Returns ``(out, mean, var,
        inverse_std)``, the last three of shape (C,): the mean, the biased
        variance and ``1 / sqrt(var + eps)``.
        """
        axes, shape = _channel_axes(x)
        mean = x.mean(axis=axes)
        centred = x - mean.reshape(shape)
        var = (centred * centred).mean(axis=axes)
        inverse_std = 1.0 / self.xp.sqrt(var + eps)
        out = centred
        out *= (inverse_std * weight).reshape(shape)
        out += bias.reshape(shape)
        return out, mean, var, inverse_std

    def normalise_channels_backward(self, grad, x, mean, inverse_std, weight, need_input_grad: bool = True):
        """Gradients of :meth:`normalise_channels`: ``(grad_x or None, grad_weight, grad_bias)``.

        With ``x_hat = (x - mean) * inverse_std`` and ``M`` values per channel,
        ``grad_x = weight * inverse_std * (grad - sum(grad) / M - x_hat * sum(grad * x_hat) / M)``.
        """
        axes, shape = _channel_axes(x)
        x_hat = (x - mean.reshape(shape)) * inverse_std.reshape(shape)
        grad_bias = grad.sum(axis=axes)
        grad_weight = (grad * x_hat).sum(axis=axes)
        grad_x = None
        if need_input_grad:
            count = x.size // x.shape[1]
            grad_x = grad - (grad_bias / count).reshape(shape)
            grad_x -= x_hat * (grad_weight / count).reshape(shape)
            grad_x *= (weight * inverse_std).reshape(shape)
        return grad_x, grad_weight, grad_bias

    def channel_sums(self, x):
        """Sum of (N, C, ...) over every axis but the channels: shape (C,), as a bias gradient needs."""
        return x.sum(axis=_channel_axes(x)[0])

    def relu(self, x):
        """``max(x, 0)`` elementwise, NaN kept."""
        return self.xp.maximum(x, 0)

    def relu_backward(self, grad, output):
        """``grad`` where a ReLU's ``output`` is positive, 0 elsewhere."""
        return grad * (output > 0)

    def scatter_add(self, shape: tuple, index, values):
        """Zeros of ``shape`` with ``values`` added at rows ``index`` along axis 0."""
        raise NotImplementedError

    def softmax_cross_entropy(self, logits, labels):
        """Return ``(per_sample_loss, softmax)`` for integer labels, stably."""
        raise NotImplementedError


def _channel_axes(x) -> tuple:
    """For (N, C, ...): the axes that are not channels, and the shape that broadcasts a (C,) array."""
    return (0,) + tuple(range(2, x.ndim)), (1, -1) + (1,) * (x.ndim - 2)
