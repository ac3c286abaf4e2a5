"""Numba kernels for the CPU backend: the data movement numpy alone does slowly.

Each kernel writes into a preallocated output so the caller controls dtype
and memory. ``cache=True`` keeps compiled code on disk between processes.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


# Sums may be reordered, so that LLVM vectorises them (it keeps the order of
# floating-point additions otherwise); NaN and infinity keep their meaning.
_REASSOCIATE = {"reassoc", "contract"}


@njit(cache=True, inline="always")
def _valid_columns(ow, w, sw, offset):
    """Output columns j whose input column j*sw + offset lies inside [0, w)."""
    first = 0
    if offset < 0:
        first = (-offset + sw - 1) // sw
    last = ow
    if (ow - 1) * sw + offset >= w:
        last = max(0, (w - 1 - offset) // sw + 1) if w - 1 - offset >= 0 else 0
    if last < first:
        last = first
    return first, last


@njit(cache=True, nogil=True)
def _padded_plane(x, b, ch, ph, pw, scratch):
    """Channel ``ch`` of sample ``b``, zero-padded into ``scratch`` when there is padding."""
    if ph == 0 and pw == 0:
        return x[b, ch]
    h, w = x.shape[2], x.shape[3]
    for y in range(scratch.shape[0]):
        for j in range(scratch.shape[1]):
            scratch[y, j] = 0
    for y in range(h):
        for j in range(w):
            scratch[y + ph, j + pw] = x[b, ch, y, j]
    return scratch


@njit(cache=True, nogil=True)
def _im2col_unit_stride(image, b, ch, kh, kw, dh, dw, oh, ow, out):
    # Stride 1 over an already padded plane, so every window lies inside it:
    # each output row is a plain shifted copy with no bounds or padding tests.
    # Unsigned indices let LLVM drop numba's negative-index wraparound and
    # vectorise the copy (2-3x faster than the general loop below).
    for ki in range(kh):
        for kj in range(kw):
            row = out[(ch * kh + ki) * kw + kj, b]
            shift = np.uint64(kj * dw)
            for i in range(oh):
                source = image[i + ki * dh]
                base = np.uint64(i * ow)
                for j in range(np.uint64(ow)):
                    row[base + j] = source[shift + j]


@njit(cache=True, nogil=True)
def _im2col_plane(x, b, ch, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out, scratch):
    if sh == 1 and sw == 1:
        _im2col_unit_stride(_padded_plane(x, b, ch, ph, pw, scratch), b, ch, kh, kw, dh, dw, oh, ow, out)
        return
    # The kh*kw rows of ``out`` that channel ``ch`` of sample ``b`` fills. The
    # valid column range of each row is found first, so the copy loop has no
    # branch. Element loops rather than slice assignments: numba sets up a
    # generic strided copy for every slice, which cost more than copying an
    # output row of ~20 values (3x slower in all). Unsigned indices tell numba
    # an index is never negative, so it adds no wraparound test and the copy
    # vectorises.
    h, w = x.shape[2], x.shape[3]
    image = x[b, ch]
    for ki in range(kh):
        for kj in range(kw):
            offset = kj * dw - pw
            first, last = _valid_columns(ow, w, sw, offset)
            target = out[(ch * kh + ki) * kw + kj, b].reshape((oh, ow))
            for i in range(oh):
                y = i * sh - ph + ki * dh
                if y < 0 or y >= h:
                    for j in range(ow):
                        target[i, j] = 0
                    continue
                for j in range(first):
                    target[i, j] = 0
                if sw == 1:
                    source_start = np.uint64(first + offset)
                    target_start = np.uint64(first)
                    for j in range(np.uint64(last - first)):
                        target[i, target_start + j] = image[y, source_start + j]
                else:
                    for j in range(first, last):
                        target[i, j] = image[y, j * sw + offset]
                for j in range(last, ow):
                    target[i, j] = 0


# Output rows at most this wide go through the "small" kernels below: one loop over a whole window
# through precomputed offsets, instead of a loop per output row of a few values (im2col 1.8-2.5x,
# col2im 1.5-2.2x faster for 6-wide outputs; slower from 8 on).
SMALL_WIDTH = 6
SMALL_PARTS = 64   # parallel tasks of the small kernels: each a run of planes, so scratch is allocated once a run


@njit(cache=True, nogil=True)
def _window_offsets(oh, ow, sh, sw, width):
    """Offset of each output position's window in a plane ``width`` wide (padded)."""
    offsets = np.empty(oh * ow, np.uint64)
    for i in range(oh):
        for j in range(ow):
            offsets[i * ow + j] = np.uint64(i * sh * width + j * sw)
    return offsets


@njit(cache=True, nogil=True)
def _im2col_small(x, first, stop, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out):
    # Planes (sample, channel) numbered first..stop-1: for each kernel offset, one loop over the
    # whole window through precomputed offsets. Flat indices into the whole arrays, raveled once:
    # raveling each plane's view made the kernel twice as slow.
    n, c, h, w = x.shape
    offsets = _window_offsets(oh, ow, sh, sw, w + 2 * pw)
    source, target = x.ravel(), out.ravel()
    scratch = np.empty((h + 2 * ph, w + 2 * pw) if ph or pw else (0, 0), dtype=x.dtype)
    padded = scratch.ravel()
    positions = np.uint64(oh * ow)
    for task in range(first, stop):
        b, ch = task // c, task % c
        if ph or pw:
            _padded_plane(x, b, ch, ph, pw, scratch)
            plane, width, values = np.uint64(0), w + 2 * pw, padded
        else:
            plane, width, values = np.uint64(task * h * w), w, source
        for ki in range(kh):
            for kj in range(kw):
                base = plane + np.uint64(ki * dh * width + kj * dw)
                to = np.uint64(((ch * kh + ki) * kw + kj) * n + b) * positions
                for q in range(positions):
                    target[to + q] = values[base + offsets[q]]


@njit(parallel=True, cache=True, nogil=True)
def im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out):
    # out: (C*kh*kw, N, OH*OW), so that a convolution over the whole batch is
    # one matrix product. Each (sample, channel) pair is one parallel task.
    n, c, h, w = x.shape
    if ow <= SMALL_WIDTH:
        parts = min(n * c, SMALL_PARTS)
        for part in prange(parts):
            _im2col_small(x, part * n * c // parts, (part + 1) * n * c // parts, kh, kw, sh, sw, ph, pw, dh, dw,
                          oh, ow, out)
        return out
    for task in prange(n * c):
        scratch = np.empty((h + 2 * ph, w + 2 * pw), dtype=x.dtype)
        _im2col_plane(x, task // c, task % c, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out, scratch)
    return out


@njit(cache=True, nogil=True)
def im2col_serial(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out):
    # im2col in the calling thread alone: for block workers, which already
    # have a core each.
    n, c, h, w = x.shape
    if ow <= SMALL_WIDTH:
        _im2col_small(x, 0, n * c, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out)
        return out
    scratch = np.empty((h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    for task in range(n * c):
        _im2col_plane(x, task // c, task % c, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out, scratch)
    return out


@njit(cache=True, nogil=True)
def _col2im_plane(cols, b, ch, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out):
    # Adjoint of _im2col_plane: channel ``ch`` of sample ``b``, which only
    # this call writes, so parallel callers never add into the same pixel.
    h, w = out.shape[2], out.shape[3]
    image = out[b, ch]
    for y in range(h):
        for x in range(w):
            image[y, x] = 0
    for ki in range(kh):
        for kj in range(kw):
            offset = kj * dw - pw
            first, last = _valid_columns(ow, w, sw, offset)
            source = cols[(ch * kh + ki) * kw + kj, b].reshape((oh, ow))
            for i in range(oh):
                y = i * sh - ph + ki * dh
                if y < 0 or y >= h:
                    continue
                if sw == 1:
                    source_start = np.uint64(first)
                    target_start = np.uint64(first + offset)
                    for j in range(np.uint64(last - first)):
                        image[y, target_start + j] += source[i, source_start + j]
                else:
                    for j in range(first, last):
                        image[y, j * sw + offset] += source[i, j]


@njit(cache=True, nogil=True)
def _col2im_small(cols, first, stop, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out):
    # Adjoint of _im2col_small for planes first..stop-1: the windows are added into the zeroed
    # channel, or with padding into a zeroed padded plane whose interior is then copied out.
    # Within one kernel offset (ki, kj) the windows' positions are distinct, so adds never collide.
    n, c, h, w = out.shape
    offsets = _window_offsets(oh, ow, sh, sw, w + 2 * pw)
    source, image = cols.ravel(), out.ravel()
    scratch = np.empty((h + 2 * ph, w + 2 * pw) if ph or pw else (0, 0), dtype=out.dtype)
    padded = scratch.ravel()
    positions = np.uint64(oh * ow)
    for task in range(first, stop):
        b, ch = task // c, task % c
        if ph or pw:
            plane, width, target = np.uint64(0), w + 2 * pw, padded
        else:
            plane, width, target = np.uint64(task * h * w), w, image
        for i in range(np.uint64((h + 2 * ph) * width)):
            target[plane + i] = 0
        for ki in range(kh):
            for kj in range(kw):
                base = plane + np.uint64(ki * dh * width + kj * dw)
                start = np.uint64(((ch * kh + ki) * kw + kj) * n + b) * positions
                for q in range(positions):
                    target[base + offsets[q]] += source[start + q]
        if ph or pw:
            channel = out[b, ch]
            for y in range(h):
                for x in range(w):
                    channel[y, x] = scratch[y + ph, x + pw]


@njit(parallel=True, cache=True, nogil=True)
def col2im(cols, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out):
    n, c, h, w = out.shape
    if ow <= SMALL_WIDTH:
        parts = min(n * c, SMALL_PARTS)
        for part in prange(parts):
            _col2im_small(cols, part * n * c // parts, (part + 1) * n * c // parts, kh, kw, sh, sw, ph, pw, dh,
                          dw, oh, ow, out)
        return out
    for task in prange(n * c):
        _col2im_plane(cols, task // c, task % c, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out)
    return out


@njit(cache=True, nogil=True)
def col2im_serial(cols, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out):
    n, c, h, w = out.shape
    if ow <= SMALL_WIDTH:
        _col2im_small(cols, 0, n * c, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out)
        return out
    for task in range(n * c):
        _col2im_plane(cols, task // c, task % c, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out)
    return out


@njit(cache=True, nogil=True)
def _max_pool_2x2(image, out, argmax, oh, ow, w):
    # The common 2x2, stride 2 window written out: four values in the general
    # scan's order (row by row), ties keeping the first, a NaN winning.
    for i in range(oh):
        top = image[2 * i]
        bottom = image[2 * i + 1]
        for j in range(ow):
            x0 = 2 * j
            best = top[x0]
            which = 0
            if best == best:
                value = top[x0 + 1]
                if value > best or value != value:
                    best, which = value, 1
                if best == best:
                    value = bottom[x0]
                    if value > best or value != value:
                        best, which = value, 2
                    if best == best:
                        value = bottom[x0 + 1]
                        if value > best or value != value:
                            best, which = value, 3
            out[i, j] = best
            argmax[i, j] = (2 * i + which // 2) * w + x0 + which % 2


@njit(parallel=True, cache=True, nogil=True)
def max_pool2d(x, kh, kw, sh, sw, ph, pw, oh, ow, out, argmax):
    # Each window is clipped to the image first (padding is at most half the
    # kernel, so no window is empty), so the scan has no bounds tests. Ties
    # keep the first position; a NaN wins and ends the scan, as in numpy's max.
    n, c, h, w = x.shape
    pairs = kh == 2 and kw == 2 and sh == 2 and sw == 2 and ph == 0 and pw == 0
    for bc in prange(n * c):
        b = bc // c
        ch = bc % c
        image = x[b, ch]
        if pairs:
            _max_pool_2x2(image, out[b, ch], argmax[b, ch], oh, ow, w)
            continue
        for i in range(oh):
            y_first = max(i * sh - ph, 0)
            y_stop = min(i * sh - ph + kh, h)
            for j in range(ow):
                x_first = max(j * sw - pw, 0)
                x_stop = min(j * sw - pw + kw, w)
                best = image[y_first, x_first]
                best_index = y_first * w + x_first
                if best == best:
                    for y in range(y_first, y_stop):
                        for xx in range(x_first, x_stop):
                            v = image[y, xx]
                            if v > best or v != v:
                                best = v
                                best_index = y * w + xx
                                if v != v:
                                    break
                        if best != best:
                            break
                out[b, ch, i, j] = best
                argmax[b, ch, i, j] = best_index
    return out, argmax


@njit(parallel=True, cache=True)
def pool_scatter(grad, argmax, out):
    n, c, oh, ow = grad.shape
    h, w = out.shape[2], out.shape[3]
    for bc in prange(n * c):
        b = bc // c
        ch = bc % c
        for y in range(h):
            for xx in range(w):
                out[b, ch, y, xx] = 0
        for i in range(oh):
            for j in range(ow):
                k = argmax[b, ch, i, j]
                out[b, ch, k // w, k % w] += grad[b, ch, i, j]
    return out


@njit(cache=True)
def scatter_add_rows(index, values, out):
    # Sequential on purpose: two rows may share an index.
    for i in range(index.shape[0]):
        r = index[i]
        for j in range(values.shape[1]):
            out[r, j] += values[i, j]
    return out


@njit(cache=True)
def softmax_cross_entropy(logits, labels, loss, probs):
    # Serial: rows are short, and a parallel launch costs more than the work.
    n, k = logits.shape
    for i in range(n):
        m = logits[i, 0]
        for j in range(1, k):
            if logits[i, j] > m:
                m = logits[i, j]
        total = 0.0
        for j in range(k):
            e = math.exp(logits[i, j] - m)
            probs[i, j] = e
            total += e
        inv = 1.0 / total
        for j in range(k):
            probs[i, j] *= inv
        loss[i] = math.log(total) + m - logits[i, labels[i]]
    return loss, probs


@njit(parallel=True, cache=True, nogil=True, fastmath=_REASSOCIATE)
def normalise_channels(x, weight, bias, eps, out, mean, var, inverse_std):
    # x, out: (N, C, S). Per channel, in float64: the mean, then the biased
    # variance about it (two passes, so no cancellation), then the output.
    # One channel is one task; its N*S values stay in cache between passes.
    n, c, s = x.shape
    count = n * s
    for ch in prange(c):
        total = 0.0
        for b in range(n):
            for i in range(s):
                total += x[b, ch, i]
        m = total / count
        squares = 0.0
        for b in range(n):
            for i in range(s):
                d = x[b, ch, i] - m
                squares += d * d
        inv = 1.0 / math.sqrt(squares / count + eps)
        mean[ch] = m
        var[ch] = squares / count
        inverse_std[ch] = inv
        scale = inv * weight[ch]
        shift = bias[ch] - m * scale
        for b in range(n):
            for i in range(s):
                out[b, ch, i] = x[b, ch, i] * scale + shift
    return out


@njit(parallel=True, cache=True, nogil=True, fastmath=_REASSOCIATE)
def normalise_channels_backward(grad, x, mean, inverse_std, weight, dx, dweight, dbias, need_dx):
    # With x_hat = (x - mean) * inverse_std and M = N*S values per channel:
    # dbias = sum(g), dweight = sum(g * x_hat), and
    # dx = weight * inverse_std * (g - dbias / M - x_hat * dweight / M).
    n, c, s = x.shape
    count = n * s
    for ch in prange(c):
        m = mean[ch]
        inv = inverse_std[ch]
        sum_g = 0.0
        sum_g_x_hat = 0.0
        for b in range(n):
            for i in range(s):
                g = grad[b, ch, i]
                sum_g += g
                sum_g_x_hat += g * ((x[b, ch, i] - m) * inv)
        dbias[ch] = sum_g
        dweight[ch] = sum_g_x_hat
        if need_dx:
            scale = weight[ch] * inv
            mean_g = sum_g / count
            mean_g_x_hat = sum_g_x_hat / count
            for b in range(n):
                for i in range(s):
                    x_hat = (x[b, ch, i] - m) * inv
                    dx[b, ch, i] = scale * (grad[b, ch, i] - mean_g - x_hat * mean_g_x_hat)
    return dx


@njit(parallel=True, cache=True, nogil=True)
def relu(x, out):
    # max(x, 0), NaN kept (as numpy's maximum), over all cores.
    flat_x = x.reshape(-1)
    flat_out = out.reshape(-1)
    for i in prange(flat_out.size):
        v = flat_x[i]
        flat_out[i] = 0 if v <= 0 else v
    return out


@njit(parallel=True, cache=True, nogil=True)
def relu_backward(grad, output, out):
    # grad where the ReLU passed its input (output > 0), else 0: one pass
    # instead of a mask, its cast and a product.
    flat_grad = grad.reshape(-1)
    flat_output = output.reshape(-1)
    flat_out = out.reshape(-1)
    for i in prange(flat_out.size):
        flat_out[i] = flat_grad[i] if flat_output[i] > 0 else 0
    return out


@njit(parallel=True, cache=True, nogil=True, fastmath=_REASSOCIATE)
def channel_sums(x, out):
    # x: (N, C, S) -> out: (C,) sums in float64, one channel per task.
    n, c, s = x.shape
    for ch in prange(c):
        total = 0.0
        for b in range(n):
            for i in range(s):
                total += x[b, ch, i]
        out[ch] = total
    return out
