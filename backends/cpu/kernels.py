"""Numba kernels for the CPU backend: the data movement numpy alone does slowly.

Each kernel writes into a preallocated output so the caller controls dtype
and memory. ``cache=True`` keeps compiled code on disk between processes.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


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


@njit(parallel=True, cache=True, nogil=True)
def im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out):
    # out: (C*kh*kw, N, OH*OW), so that a convolution over the whole batch is
    # one matrix product. Each (sample, channel) pair is one parallel task
    # writing its own kh*kw rows. The valid column range of each row is found
    # first, so the copy loop has no branch. Element loops rather than slice
    # assignments: numba sets up a generic strided copy for every slice, which
    # cost more than copying an output row of ~20 values (3x slower in all).
    # Unsigned indices tell numba an index is never negative, so it adds no
    # wraparound test and the copy vectorises.
    n, c, h, w = x.shape
    for task in prange(n * c):
        b = task // c
        ch = task % c
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
    return out


@njit(parallel=True, cache=True, nogil=True)
def col2im(cols, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, out):
    # Adjoint of im2col. Task (b, ch) owns out[b, ch]: no two threads add into
    # the same pixel.
    n, c, h, w = out.shape
    for task in prange(n * c):
        b = task // c
        ch = task % c
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
    return out


@njit(parallel=True, cache=True)
def max_pool2d(x, kh, kw, sh, sw, ph, pw, oh, ow, out, argmax):
    n, c, h, w = x.shape
    for bc in prange(n * c):
        b = bc // c
        ch = bc % c
        for i in range(oh):
            for j in range(ow):
                best = -np.inf
                best_index = -1
                for ki in range(kh):
                    y = i * sh - ph + ki
                    if y < 0 or y >= h:
                        continue
                    for kj in range(kw):
                        xx = j * sw - pw + kj
                        if xx < 0 or xx >= w:
                            continue
                        v = x[b, ch, y, xx]
                        # NaN wins so that it propagates like in numpy's max
                        if v > best or best_index == -1 or math.isnan(v):
                            best = v
                            best_index = y * w + xx
                            if math.isnan(v):
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
