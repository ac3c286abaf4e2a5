"""The CPU backend: numpy arrays, a numpy random generator, numba kernels."""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import numpy as np

from backends.backend import Backend, RandomStream
from backends.cpu import kernels, winograd
from backends.cpu.block_pool import BlockPool, in_block_worker


class NumpyRandomStream(RandomStream):
    """Random stream over numpy's PCG64 generator; its state is a plain dict."""

    def __init__(self, seed: int = 0):
        self.seed(seed)

    def seed(self, seed: int) -> None:
        self._generator = np.random.Generator(np.random.PCG64(int(seed)))

    def get_state(self) -> dict:
        return self._generator.bit_generator.state

    def set_state(self, state: dict) -> None:
        if state.get("bit_generator") != "PCG64":
            raise ValueError(f"cpu random stream: expected a PCG64 state, got {state.get('bit_generator')!r}")
        self._generator.bit_generator.state = state

    def uniform(self, shape: Sequence[int], low: float = 0.0, high: float = 1.0, dtype: Any = np.float32):
        dtype = np.dtype(dtype)
        if dtype in (np.float32, np.float64):
            out = self._generator.random(tuple(shape), dtype=dtype)
        else:
            out = self._generator.random(tuple(shape)).astype(dtype)
        if low != 0.0 or high != 1.0:
            out *= (high - low)
            out += low
        return out

    def normal(self, shape: Sequence[int], mean: float = 0.0, std: float = 1.0, dtype: Any = np.float32):
        dtype = np.dtype(dtype)
        out = self._generator.standard_normal(tuple(shape), dtype=dtype if dtype in (np.float32, np.float64) else np.float64)
        out = out.astype(dtype, copy=False)
        if std != 1.0:
            out *= std
        if mean != 0.0:
            out += mean
        return out

    def integers(self, low: int, high: int, shape: Sequence[int]):
        return self._generator.integers(low, high, size=tuple(shape), dtype=np.int64)

    def permutation(self, n: int):
        return self._generator.permutation(n)


def _kernel_dtype(array, kernel: str) -> None:
    """numba compiles these kernels for float32, float64 and integers only (float16 arithmetic it lacks): say
    so, rather than numba's bare "NotImplementedError: float16"."""
    if array.dtype not in _KERNEL_FLOATS and array.dtype.kind not in "iu":
        raise TypeError(f"{kernel}: the cpu backend's kernel runs on float32, float64 or integers, got "
                        f"{array.dtype}; cast first, e.g. x.astype('float32')")


def _output(out, shape, dtype, kernel):
    """A fresh output array, or the caller's after checking that the kernel can write into it."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"{kernel}: out must be a C-contiguous {np.dtype(dtype)} array of shape {shape}, "
                         f"got {out.dtype} {out.shape} (C-contiguous: {out.flags.c_contiguous})")
    return out


# The dtypes the fused numba kernels are compiled for; others (float16, integers) take the base class's numpy
# formulas.
_KERNEL_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

# Products of this many multiply-adds run with BLAS held to one thread (see CPUBackend.matmul). Below the first,
# OpenBLAS runs a product on one thread by itself.
MATMUL_ONE_THREAD_MACS = (2 ** 18, 2 ** 23)


class CPUBackend(Backend):
    """numpy on the host, with numba kernels for convolution and pooling.

    Example:
        >>> import backends
        >>> cpu = backends.get("cpu")
        >>> cpu.xp.__name__
        'numpy'
    """

    kind = "cpu"
    xp = np
    #: Compute stride-1 3x3 and 5x5 convolutions by Winograd's algorithm where they have enough channels
    #: (:meth:`winograd_applies`). False: im2col + matrix products everywhere, whose float32 rounding is
    #: a little smaller (Winograd's stays within about 1e-5 of the result's scale).
    winograd = True

    def __init__(self, name: str = "cpu", seed: int = 0):
        self.name = name
        self.random = NumpyRandomStream(seed)
        self.block_pool = BlockPool()

    def asarray(self, data: Any, dtype: Any = None):
        if hasattr(data, "__cuda_array_interface__") and hasattr(data, "get"):
            data = data.get()
        return np.asarray(data, dtype=dtype)

    def to_host(self, array: Any) -> np.ndarray:
        return np.asarray(array)

    def is_array(self, obj: Any) -> bool:
        return isinstance(obj, (np.ndarray, np.generic))

    @contextlib.contextmanager
    def share_threads(self, workers: int) -> Iterator[None]:
        """numba's parallel kernels in this thread use ``1/workers`` of numba's threads: otherwise each of
        several worker threads starts a full team, and the machine's cores are oversubscribed.

        Example:
            >>> import backends, numba
            >>> with backends.get("cpu").share_threads(numba.config.NUMBA_NUM_THREADS):
            ...     numba.get_num_threads()
            1
        """
        import numba
        previous = numba.get_num_threads()
        numba.set_num_threads(max(1, numba.config.NUMBA_NUM_THREADS // max(1, int(workers))))
        try:
            yield
        finally:
            numba.set_num_threads(previous)

    def block_workers(self, blocks: int) -> int:
        return self.block_pool.workers(blocks)

    def run_blocks(self, work, blocks: int) -> None:
        """Spread the blocks over numba's threads (this thread's share of them); BLAS runs one thread in
        each meanwhile, and kernels called from a block run serially: see :mod:`backends.cpu.block_pool`."""
        self.block_pool.run(work, blocks)

    def matmul(self, a, b):
        """``a @ b``; mid-sized 2-d products run with BLAS held to one thread.

        After a multi-threaded product OpenBLAS's worker threads spin for a while waiting for more, and the
        convolution's block threads that run next (BLAS held to one thread, see block_pool.py) then share the
        cores with them: the beautiful-MNIST CNN, whose only such products are its last linear layer's
        (about 740,000 multiply-adds each), took 206-209 ms a step that way and 141-173 ms with OpenBLAS at
        one thread. A product that small gains little from a second thread, so products between
        2**18 multiply-adds (below which OpenBLAS runs on one thread anyway) and 2**23 run on one; larger
        ones keep OpenBLAS's threads, which beat cutting the product into blocks on the block pool (the
        large MLP's products took 1.5x as long that way).
        """
        if a.ndim == 2 and b.ndim == 2 and a.shape[1] == b.shape[0]:
            multiply_adds = a.shape[0] * a.shape[1] * b.shape[1]
            if MATMUL_ONE_THREAD_MACS[0] <= multiply_adds < MATMUL_ONE_THREAD_MACS[1] \
                    and not in_block_worker():
                with self.block_pool.single_threaded_blas():
                    return a @ b
        return a @ b

    def erf(self, x):
        from backends.cpu.special import erf
        return erf(x)

    def winograd_applies(self, dtype, weight_shape, output_size, stride, padding, dilation, groups) -> bool:
        """True for stride-1, undilated, ungrouped 3x3 and 5x5 kernels with at least 16 input and output
        channels and outputs of at least 16 x 16, float32 or float64, when :attr:`winograd` is on (see
        ``backends/cpu/winograd.py``)."""
        return self.winograd and winograd.applies(weight_shape[2:], stride, dilation, groups, padding,
                                                  weight_shape[1], weight_shape[0], output_size, dtype)

    def winograd_convolution(self, pass_, a, b, padding, shape):
        if pass_ == "forward":
            return winograd.forward(self, a, b, padding)
        if pass_ == "input_grad":
            return winograd.input_gradient(self, a, b, padding)
        if pass_ == "weight_grad":
            return winograd.weight_gradient(self, a, b, padding, shape[2])
        raise ValueError(f"winograd_convolution: unknown pass {pass_!r} (forward, input_grad or weight_grad)")

    def im2col(self, x, kernel, stride, padding, dilation, out=None):
        """Every patch of every image as the columns of a (C*kh*kw, N, OH*OW) array.

        ``out``, when given, must be a C-contiguous array of that shape and
        ``x``'s dtype; it is filled and returned (convolution reuses one).

        Example:
            >>> import backends, numpy as np
            >>> cpu = backends.get("cpu")
            >>> x = np.arange(8.0).reshape(2, 1, 2, 2)
            >>> cpu.im2col(x, (1, 2), (1, 1), (0, 0), (1, 1))[:, 1].tolist()
            [[4.0, 6.0], [5.0, 7.0]]
        """
        _kernel_dtype(x, "im2col")
        n, c, h, w = x.shape
        kh, kw = kernel
        oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
        ow = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
        out = _output(out, (c * kh * kw, n, oh * ow), x.dtype, "im2col")
        kernel_function = kernels.im2col_serial if in_block_worker() else kernels.im2col
        return kernel_function(np.ascontiguousarray(x), kh, kw, stride[0], stride[1], padding[0], padding[1],
                              dilation[0], dilation[1], oh, ow, out)

    def col2im(self, cols, input_shape, kernel, stride, padding, dilation, out=None):
        """Adjoint of :meth:`im2col`: add every patch back into its image, (N, C, H, W).

        ``out``, when given, must be a C-contiguous array of ``input_shape``."""
        _kernel_dtype(cols, "col2im")
        n, c, h, w = input_shape
        kh, kw = kernel
        oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
        ow = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
        out = _output(out, tuple(input_shape), cols.dtype, "col2im")
        kernel_function = kernels.col2im_serial if in_block_worker() else kernels.col2im
        return kernel_function(np.ascontiguousarray(cols), kh, kw, stride[0], stride[1], padding[0], padding[1],
                              dilation[0], dilation[1], oh, ow, out)

    def max_pool2d(self, x, kernel, stride, padding):
        _kernel_dtype(x, "max_pool2d")
        n, c, h, w = x.shape
        oh = (h + 2 * padding[0] - kernel[0]) // stride[0] + 1
        ow = (w + 2 * padding[1] - kernel[1]) // stride[1] + 1
        out = np.empty((n, c, oh, ow), dtype=x.dtype)
        # A position in one (H, W) plane: int32 holds it for any image below 2**31 pixels, at half int64's memory.
        argmax = np.empty((n, c, oh, ow), dtype=np.int32 if h * w < 2 ** 31 else np.int64)
        return kernels.max_pool2d(np.ascontiguousarray(x), kernel[0], kernel[1], stride[0], stride[1],
                                  padding[0], padding[1], oh, ow, out, argmax)

    def pool_scatter(self, grad, argmax, input_shape):
        _kernel_dtype(grad, "pool_scatter")
        out = np.empty(input_shape, dtype=grad.dtype)
        return kernels.pool_scatter(np.ascontiguousarray(grad), argmax, out)

    def normalise_channels(self, x, weight, bias, eps):
        if x.dtype not in _KERNEL_FLOATS:
            return super().normalise_channels(x, weight, bias, eps)
        x = np.ascontiguousarray(x)
        n, c = x.shape[:2]
        dtype = x.dtype
        out = np.empty_like(x)
        mean, var, inverse_std = (np.empty(c, dtype=dtype) for _ in range(3))
        kernels.normalise_channels(x.reshape(n, c, -1), np.ascontiguousarray(weight, dtype=dtype),
                                   np.ascontiguousarray(bias, dtype=dtype), float(eps), out.reshape(n, c, -1),
                                   mean, var, inverse_std)
        return out, mean, var, inverse_std

    def normalise_channels_backward(self, grad, x, mean, inverse_std, weight, need_input_grad=True):
        if x.dtype not in _KERNEL_FLOATS:
            return super().normalise_channels_backward(grad, x, mean, inverse_std, weight, need_input_grad)
        x = np.ascontiguousarray(x)
        n, c = x.shape[:2]
        grad_x = np.empty_like(x) if need_input_grad else np.empty((1, c, 1), dtype=x.dtype)
        grad_weight, grad_bias = np.empty(c, dtype=x.dtype), np.empty(c, dtype=x.dtype)
        kernels.normalise_channels_backward(np.ascontiguousarray(grad, dtype=x.dtype).reshape(n, c, -1),
                                            x.reshape(n, c, -1), mean, inverse_std,
                                            np.ascontiguousarray(weight, dtype=x.dtype),
                                            grad_x.reshape(grad_x.shape[0], c, -1), grad_weight, grad_bias,
                                            need_input_grad)
        return (grad_x if need_input_grad else None), grad_weight, grad_bias

    def channel_sums(self, x):
        if x.dtype not in _KERNEL_FLOATS:
            return super().channel_sums(x)
        n, c = x.shape[:2]
        out = np.empty(c, dtype=np.float64)
        kernels.channel_sums(np.ascontiguousarray(x).reshape(n, c, -1), out)
        return out.astype(x.dtype)

    def relu(self, x):
        if x.ndim == 0 or x.dtype not in _KERNEL_FLOATS:
            return super().relu(x)
        return kernels.relu(np.ascontiguousarray(x), np.empty(x.shape, dtype=x.dtype))

    def relu_backward(self, grad, output):
        if grad.shape != output.shape or grad.dtype != output.dtype or grad.ndim == 0 \
                or grad.dtype not in _KERNEL_FLOATS:
            return super().relu_backward(grad, output)
        return kernels.relu_backward(np.ascontiguousarray(grad), np.ascontiguousarray(output),
                                     np.empty(grad.shape, dtype=grad.dtype))

    def scatter_add(self, shape, index, values):
        out = np.zeros(shape, dtype=values.dtype)
        flat_index = np.ascontiguousarray(index.reshape(-1))
        kernels.scatter_add_rows(flat_index, np.ascontiguousarray(values.reshape(flat_index.size, -1)),
                                 out.reshape(shape[0], -1))
        return out

    def softmax_cross_entropy(self, logits, labels):
        n = logits.shape[0]
        loss = np.empty(n, dtype=logits.dtype)
        probs = np.empty_like(logits)
        return kernels.softmax_cross_entropy(np.ascontiguousarray(logits), np.ascontiguousarray(labels, dtype=np.int64),
                                             loss, probs)
