"""The CUDA backend: cupy arrays on one device, cupy elementwise kernels.

Importing this module does not import cupy; the backend is created only when
``backends.get("cuda:N")`` is called, and says clearly why if it cannot be.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from backends.backend import Backend, RandomStream


def _import_cupy():
    try:
        import cupy
    except ImportError as error:  # pragma: no cover - depends on the machine
        raise RuntimeError("the cuda backend needs cupy: pip install 'sigma[cuda]'") from error
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # pragma: no cover - depends on the machine
        raise RuntimeError(f"the cuda backend found no usable GPU: {error}") from error
    if count == 0:  # pragma: no cover
        raise RuntimeError("the cuda backend found no GPU")
    return cupy


class CupyRandomStream(RandomStream):
    """Random stream on the device.

    cupy's generators cannot export their state, so the stream keeps
    ``(seed, draws)`` and derives each draw's generator from both: restoring
    those two numbers restores the stream exactly.
    """

    def __init__(self, cupy, device_id: int, seed: int = 0):
        self._cupy = cupy
        self._device_id = device_id
        self.seed(seed)

    def seed(self, seed: int) -> None:
        self._seed = int(seed)
        self._draws = 0

    def get_state(self) -> dict:
        return {"bit_generator": "cupy-seed-counter", "seed": self._seed, "draws": self._draws}

    def set_state(self, state: dict) -> None:
        if state.get("bit_generator") != "cupy-seed-counter":
            raise ValueError(f"cuda random stream: unexpected state kind {state.get('bit_generator')!r}")
        self._seed = int(state["seed"])
        self._draws = int(state["draws"])

    def _next_generator(self):
        key = np.random.SeedSequence([self._seed, self._draws]).generate_state(1)[0]
        self._draws += 1
        with self._cupy.cuda.Device(self._device_id):
            return self._cupy.random.default_rng(int(key))

    def uniform(self, shape: Sequence[int], low: float = 0.0, high: float = 1.0, dtype: Any = np.float32):
        out = self._next_generator().random(tuple(shape), dtype=np.dtype(dtype))
        if low != 0.0 or high != 1.0:
            out = out * (high - low) + low
        return out.astype(dtype, copy=False)

    def normal(self, shape: Sequence[int], mean: float = 0.0, std: float = 1.0, dtype: Any = np.float32):
        out = self._next_generator().standard_normal(tuple(shape), dtype=np.dtype(dtype))
        return (out * std + mean).astype(dtype, copy=False)

    def integers(self, low: int, high: int, shape: Sequence[int]):
        return self._next_generator().integers(low, high, size=tuple(shape), dtype=np.int64)

    def permutation(self, n: int):
        return self._next_generator().permutation(n)


_IM2COL = r"""
    // i indexes out (C*KH*KW, N, OH*OW)
    int p = oh * ow;
    int pos = i % p; int t = i / p; int b = t % n; int col = t / n;
    int j = pos % ow; int r = pos / ow;
    int kj = col % kw; t = col / kw; int ki = t % kh; int ch = t / kh;
    int y = r * sh - ph + ki * dh;
    int x = j * sw - pw + kj * dw;
    out = (y >= 0 && y < h && x >= 0 && x < w) ? img[((b * c + ch) * h + y) * w + x] : (T)0;
"""

_COL2IM = r"""
    // i indexes out (N, C, H, W); gather every patch entry that covers it
    int x = i % w; int t = i / w; int y = t % h; t /= h; int ch = t % c; int b = t / c;
    T acc = 0;
    for (int ki = 0; ki < kh; ++ki) {
        int ry = y + ph - ki * dh;
        if (ry < 0 || ry % sh != 0) continue;
        int r = ry / sh; if (r >= oh) continue;
        for (int kj = 0; kj < kw; ++kj) {
            int rx = x + pw - kj * dw;
            if (rx < 0 || rx % sw != 0) continue;
            int j = rx / sw; if (j >= ow) continue;
            acc += cols[(((long long)(ch * kh + ki) * kw + kj) * n + b) * (oh * ow) + r * ow + j];
        }
    }
    out = acc;
"""

_MAX_POOL = r"""
    int j = i % ow; int t = i / ow; int r = t % oh; int bc = t / oh;
    T best = 0; long long best_index = -1;
    for (int ki = 0; ki < kh; ++ki) {
        int y = r * sh - ph + ki; if (y < 0 || y >= h) continue;
        for (int kj = 0; kj < kw; ++kj) {
            int x = j * sw - pw + kj; if (x < 0 || x >= w) continue;
            T v = img[(bc * h + y) * w + x];
            if (best_index < 0 || v > best || isnan(v)) { best = v; best_index = y * w + x; }
        }
    }
    out = best; argmax = best_index;
"""


class CUDABackend(Backend):
    """cupy on one GPU; convolution by im2col + cuBLAS.

    Example (needs a GPU):
        >>> import backends
        >>> gpu = backends.get("cuda:0")  # doctest: +SKIP
    """

    kind = "cuda"

    def __init__(self, name: str = "cuda:0", seed: int = 0):
        cupy = _import_cupy()
        self.name = name
        self.device_id = int(name.split(":")[1]) if ":" in name else 0
        if not 0 <= self.device_id < cupy.cuda.runtime.getDeviceCount():
            raise RuntimeError(f"{name}: no such GPU (found {cupy.cuda.runtime.getDeviceCount()})")
        self.xp = cupy
        self.device = cupy.cuda.Device(self.device_id)
        self.random = CupyRandomStream(cupy, self.device_id, seed)
        ek = cupy.ElementwiseKernel
        self._im2col = ek("raw T img, int32 n, int32 c, int32 h, int32 w, int32 kh, int32 kw, int32 sh, int32 sw, "
                          "int32 ph, int32 pw, int32 dh, int32 dw, int32 oh, int32 ow", "T out",
                          _IM2COL, "sigma_im2col")
        self._col2im = ek("raw T cols, int32 n, int32 c, int32 h, int32 w, int32 kh, int32 kw, int32 sh, int32 sw, "
                          "int32 ph, int32 pw, int32 dh, int32 dw, int32 oh, int32 ow", "T out",
                          _COL2IM, "sigma_col2im")
        self._max_pool = ek("raw T img, int32 h, int32 w, int32 kh, int32 kw, int32 sh, int32 sw, "
                            "int32 ph, int32 pw, int32 oh, int32 ow", "T out, int64 argmax",
                            _MAX_POOL, "sigma_max_pool")

    def asarray(self, data: Any, dtype: Any = None):
        with self.device:
            return self.xp.asarray(data, dtype=dtype)

    def to_host(self, array: Any) -> np.ndarray:
        return self.xp.asnumpy(array)

    def is_array(self, obj: Any) -> bool:
        return isinstance(obj, self.xp.ndarray) and obj.device.id == self.device_id

    def synchronize(self) -> None:
        self.device.synchronize()

    def erf(self, x):
        from cupyx.scipy.special import erf
        with self.device:
            return erf(x)

    @staticmethod
    def _out_size(size, kernel, stride, padding, dilation=1):
        return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1

    def im2col(self, x, kernel, stride, padding, dilation):
        n, c, h, w = x.shape
        oh = self._out_size(h, kernel[0], stride[0], padding[0], dilation[0])
        ow = self._out_size(w, kernel[1], stride[1], padding[1], dilation[1])
        with self.device:
            out = self.xp.empty((c * kernel[0] * kernel[1], n, oh * ow), dtype=x.dtype)
            self._im2col(self.xp.ascontiguousarray(x), n, c, h, w, kernel[0], kernel[1], stride[0], stride[1],
                         padding[0], padding[1], dilation[0], dilation[1], oh, ow, out)
        return out

    def col2im(self, cols, input_shape, kernel, stride, padding, dilation):
        n, c, h, w = input_shape
        oh = self._out_size(h, kernel[0], stride[0], padding[0], dilation[0])
        ow = self._out_size(w, kernel[1], stride[1], padding[1], dilation[1])
        with self.device:
            out = self.xp.empty(input_shape, dtype=cols.dtype)
            self._col2im(self.xp.ascontiguousarray(cols), n, c, h, w, kernel[0], kernel[1], stride[0], stride[1],
                         padding[0], padding[1], dilation[0], dilation[1], oh, ow, out)
        return out

    def max_pool2d(self, x, kernel, stride, padding):
        n, c, h, w = x.shape
        oh = self._out_size(h, kernel[0], stride[0], padding[0])
        ow = self._out_size(w, kernel[1], stride[1], padding[1])
        with self.device:
            out = self.xp.empty((n, c, oh, ow), dtype=x.dtype)
            argmax = self.xp.empty((n, c, oh, ow), dtype=self.xp.int64)
            self._max_pool(self.xp.ascontiguousarray(x), h, w, kernel[0], kernel[1], stride[0], stride[1],
                           padding[0], padding[1], oh, ow, out, argmax)
        return out, argmax

    def pool_scatter(self, grad, argmax, input_shape):
        n, c = input_shape[:2]
        with self.device:
            out = self.xp.zeros((n, c, input_shape[2] * input_shape[3]), dtype=grad.dtype)
            rows = self.xp.arange(n * c).reshape(n, c, 1) * out.shape[2]
            flat_index = (argmax.reshape(n, c, -1) + rows).ravel()
            self.xp.add.at(out.reshape(-1), flat_index, grad.ravel())
        return out.reshape(input_shape)

    def scatter_add(self, shape, index, values):
        with self.device:
            out = self.xp.zeros(shape, dtype=values.dtype)
            self.xp.add.at(out, index.reshape(-1), values.reshape((-1,) + tuple(shape[1:])))
        return out

    def softmax_cross_entropy(self, logits, labels):
        xp = self.xp
        with self.device:
            shifted = logits - logits.max(axis=1, keepdims=True)
            exp = xp.exp(shifted)
            total = exp.sum(axis=1, keepdims=True)
            probs = exp / total
            picked = xp.take_along_axis(shifted, labels.reshape(-1, 1).astype(xp.int64), axis=1)[:, 0]
            loss = xp.log(total[:, 0]) - picked
        return loss, probs
