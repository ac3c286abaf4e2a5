"""Winograd convolution on the CPU: fewer multiplications for stride-1 3x3 and 5x5 kernels.

A 2-D convolution of an m x m output tile with an r x r kernel needs m*m*r*r
multiply-adds done directly. Winograd's minimal filtering algorithm
F(m x m, r x r) needs (m + r - 1)**2: 64 instead of 400 for F(4x4, 5x5),
36 instead of 144 for F(4x4, 3x3). Over a layer, the products become
(m + r - 1)**2 matrix products, one per point of the transformed tile,
with the channels as the inner dimension, so BLAS still does most of the
arithmetic. Reference: A. Lavin and S. Gray, "Fast Algorithms for
Convolutional Neural Networks", CVPR 2016.

Each tile is transformed by small matrices built here from interpolation
points (Toom-Cook), so nothing about them is typed in by hand:

    output tile = AT [ (G w G^T) * (BT d BT^T) ] AT^T

for the forward pass (``d`` an (m + r - 1)-square input tile), and, by the
same construction with the roles of kernel and output swapped, the weight
gradient of each tile (see :func:`transforms`). The input gradient is the
forward pass of the output gradient with the kernels flipped.

The transforms are the costly part here (the products run at BLAS speed).
Their kernels work on a block of samples gathered side by side in the last
axis, with the columns of each image row split by phase, so that every step
of a transform is one long contiguous loop over every tile of a row of
every sample in the block, which LLVM vectorises.

On the beautiful-MNIST CNN's 5x5 layer (32 -> 32 channels, 24 x 24) the
forward pass and both gradients run at 0.96-1.10x PyTorch's speed on 2
threads and 1.16x on one, where im2col ran at 0.75-0.77x; on its 8 x 8 and
10 x 10 layers im2col is faster, so :func:`applies` leaves small images to
it (benchmarks/RESULTS.md).
"""
from __future__ import annotations

import functools
from fractions import Fraction
from typing import NamedTuple, Sequence

import numpy as np
from numba import njit

# Interpolation points for each tile size alpha = m + r - 1 (infinity is the
# last point, implied). Small integers keep the transforms' coefficients
# small, which is what keeps float32 rounding error near the direct method's.
POINTS = {
    4: (0, 1, -1),
    6: (0, 1, -1, 2, -2),
    8: (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2)),
}


class Transforms(NamedTuple):
    """Matrices of F(m x m, r x r), float64, with alpha = m + r - 1.

    ``input`` (alpha x alpha) transforms an input tile, ``kernel`` (alpha x r)
    a kernel, ``output`` (m x alpha) takes a product back to an output tile.
    For the weight gradient, ``gradient`` (alpha x m) transforms an output
    gradient tile and ``kernel_output`` (r x alpha) takes a summed product
    back to an r x r kernel.
    """
    m: int
    r: int
    input: np.ndarray
    kernel: np.ndarray
    output: np.ndarray
    gradient: np.ndarray
    kernel_output: np.ndarray


def _evaluation(points: Sequence[int], columns: int) -> list:
    """Rows: a polynomial's value at each point (its leading coefficient at infinity)."""
    rows = [[Fraction(p) ** k for k in range(columns)] for p in points]
    rows.append([Fraction(0)] * (columns - 1) + [Fraction(1)])
    return rows


def _inverse(matrix: list) -> list:
    """Exact inverse by Gauss-Jordan elimination over fractions."""
    size = len(matrix)
    augmented = [list(row) + [Fraction(int(i == j)) for j in range(size)] for i, row in enumerate(matrix)]
    for column in range(size):
        pivot = next(row for row in range(column, size) if augmented[row][column] != 0)
        augmented[column], augmented[pivot] = augmented[pivot], augmented[column]
        scale = augmented[column][column]
        augmented[column] = [value / scale for value in augmented[column]]
        for row in range(size):
            if row != column and augmented[row][column] != 0:
                factor = augmented[row][column]
                augmented[row] = [a - factor * b for a, b in zip(augmented[row], augmented[column])]
    return [row[size:] for row in augmented]


@functools.lru_cache(maxsize=None)
def transforms(m: int, r: int) -> Transforms:
    """The matrices of F(m x m, r x r), exact up to float64 rounding.

    Linear convolution of a kernel polynomial (r coefficients) with an
    output polynomial (m coefficients) is: evaluate both at alpha points,
    multiply, interpolate. Transposing that bilinear map gives correlation,
    which is what a convolution layer computes: out = A^T [(G w) * (C^T d)],
    with G, A the evaluation matrices and C the interpolation matrix. Rows of
    C^T are scaled to integers and G's rows by the inverse, which changes
    nothing exactly and keeps the per-input work to small integer weights.

    The weight gradient of one output tile is the correlation of the input
    tile with the m x m gradient tile, an F(r, m): the same interpolation
    matrix, with the two evaluation matrices' roles swapped.

    Example:
        >>> t = transforms(2, 3)
        >>> d, w = np.arange(4.0), np.array([1.0, 2.0, 3.0])
        >>> (t.output @ ((t.kernel @ w) * (t.input @ d))).round(9).tolist()
        [8.0, 14.0]
    """
    alpha = m + r - 1
    if alpha not in POINTS:
        raise ValueError(f"winograd: no interpolation points for tiles of {alpha} (m={m}, r={r})")
    points = POINTS[alpha]
    interpolation = _inverse(_evaluation(points, alpha))                # C: values -> coefficients
    input_rows = [list(column) for column in zip(*interpolation)]       # C^T
    kernel_rows = _evaluation(points, r)                                # G
    gradient_rows = _evaluation(points, m)                              # the weight gradient's G
    for i, row in enumerate(input_rows):
        denominators = [value.denominator for value in row]
        scale = Fraction(int(np.lcm.reduce(denominators)))
        input_rows[i] = [value * scale for value in row]
        kernel_rows[i] = [value / scale for value in kernel_rows[i]]
        gradient_rows[i] = [value / scale for value in gradient_rows[i]]

    def matrix(rows):
        return np.array([[float(value) for value in row] for row in rows])

    return Transforms(m, r, input=matrix(input_rows), kernel=matrix(kernel_rows),
                      output=matrix(_evaluation(points, m)).T.copy(), gradient=matrix(gradient_rows),
                      kernel_output=matrix(_evaluation(points, r)).T.copy())


# ---------------------------------------------------------------------------------------------------------------
# Kernels. A block holds ``lanes`` samples side by side in its last axis.

# The kernels index flat arrays with unsigned offsets: numba then adds no negative-index wraparound, and
# LLVM vectorises the long inner loops (about 2x faster than slicing views, 8x faster than signed indices).
_U = np.uint64


@njit(cache=True, nogil=True)
def gather_block(x, first, stop, pad_h, pad_w, out):
    """Samples [first, stop) of x (N, C, H, W) into out (C, Hp, m, Wp/m, lanes), zero-padded.

    Padded column j*m + phase goes to ``out[:, :, phase, j]``, so that the columns m apart that a
    transform combines lie side by side: each step of it is one contiguous loop over every tile of a row.
    """
    channels, block_h, m, width, lanes = out.shape
    height, columns = x.shape[2], x.shape[3]
    target, source = out.ravel(), x.ravel()
    covered = pad_h == 0 and pad_w == 0 and block_h == height and m * width == columns and stop - first == lanes
    if not covered:   # padding, or lanes without a sample (they must hold zeros, not stale values or NaN)
        for i in range(_U(target.size)):
            target[i] = 0
    offsets = np.empty(columns, np.uint64)   # where each input column lands within a block row
    for j in range(columns):
        column = j + pad_w
        offsets[j] = _U(((column % m) * width + column // m) * lanes)
    sample = _U(channels * height * columns)
    if pad_h or pad_w:
        # Sample by sample, each input row to its place (one lane of each block position).
        for lane in range(stop - first):
            for c in range(channels):
                for y in range(height):
                    start = _U((((first + lane) * channels + c) * height + y) * columns)
                    row = _U((c * block_h + y + pad_h) * m * width * lanes + lane)
                    for j in range(_U(columns)):
                        target[row + offsets[j]] = source[start + j]
        return out
    # Without padding (measured 2x faster this way; with it, slower): an image row of 8 samples at a
    # time is copied into ``rows``, then written out 8 lanes at a time, so that each block row is
    # finished while it is in cache. (8 rows and not all the lanes at once: rows a power of two
    # apart in memory share a cache set, and a set holds 8.)
    rows = np.empty((8, columns), x.dtype)
    count = stop - first
    for c in range(channels):
        for y in range(height):
            start = _U(((first * channels + c) * height + y) * columns)
            row = _U((c * block_h + y) * m * width * lanes)
            for group in range(0, count, 8):
                size = min(8, count - group)
                for lane in range(size):
                    origin = start + _U(group + lane) * sample
                    for j in range(_U(columns)):
                        rows[lane, j] = source[origin + j]
                for j in range(columns):
                    to = row + offsets[j] + _U(group)
                    for lane in range(_U(size)):
                        target[to + lane] = rows[lane, j]
    return out


class Terms(NamedTuple):
    """A transform matrix as its nonzero entries, row by row, for the kernels: row ``i`` is
    ``sum(weights[i, k] * x[columns[i, k]] for k < counts[i])``."""
    columns: np.ndarray
    weights: np.ndarray
    counts: np.ndarray


def terms(matrix: np.ndarray, dtype) -> Terms:
    """The nonzero entries of ``matrix`` (most transform entries are 0 or +-1), in ``dtype``.

    Example:
        >>> t = terms(np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]]), np.float32)
        >>> t.columns[0, :t.counts[0]].tolist(), t.weights[0, :t.counts[0]].tolist()
        ([0, 2], [1.0, -1.0])
    """
    rows, width = matrix.shape
    columns = np.zeros((rows, width), dtype=np.int64)
    weights = np.zeros((rows, width), dtype=dtype)
    counts = np.zeros(rows, dtype=np.int64)
    for i in range(rows):
        nonzero = np.flatnonzero(matrix[i])
        counts[i] = len(nonzero)
        columns[i, :len(nonzero)] = nonzero
        weights[i, :len(nonzero)] = matrix[i, nonzero]
    return Terms(columns, weights, counts)


class PairedTerms(NamedTuple):
    """A transform matrix with its rows for the points p and -p taken together.

    Such rows agree on the even columns and differ only in sign on the odd ones (or the other way
    round): with E and O the sums of their even and odd terms, one row is E + O and the other
    ``even_sign * E + odd_sign * O``. Computing E and O once saves a third of the multiplications and
    half the passes over memory. ``pairs`` holds (row, partner row, even_sign, odd_sign); each pair's
    even terms are in ``columns``/``weights`` [:width] and its odd ones in [width:], padded with zero
    weights. Rows without a partner are left to ``single`` (a :class:`Terms` whose ``counts`` are 0 for
    the paired rows).
    """
    pairs: np.ndarray
    columns: np.ndarray
    weights: np.ndarray
    width: int
    single: Terms


def paired_terms(matrix: np.ndarray, dtype) -> PairedTerms:
    """:class:`PairedTerms` of ``matrix``.

    Example:
        >>> t = paired_terms(np.array([[1.0, 2.0, 3.0], [1.0, -2.0, 3.0], [0.0, 0.0, 5.0]]), np.float64)
        >>> t.pairs.tolist(), t.single.counts.tolist()
        ([[0, 1, 1, -1]], [0, 0, 1])
    """
    rows, size = matrix.shape
    even, odd = np.arange(0, size, 2), np.arange(1, size, 2)
    found, partnered = [], set()
    for i in range(rows):
        if i in partnered:
            continue
        for j in range(i + 1, rows):
            if j in partnered:
                continue
            signs = [next((s for s in (1, -1) if np.array_equal(matrix[j, half], s * matrix[i, half])), None)
                     for half in (even, odd)]
            if None not in signs and np.count_nonzero(matrix[i, even]) and np.count_nonzero(matrix[i, odd]):
                found.append((i, j, signs[0], signs[1]))
                partnered.update((i, j))
                break
    width = max([np.count_nonzero(matrix[i, half]) for i, _, _, _ in found for half in (even, odd)], default=1)
    columns = np.zeros((len(found), 2 * width), dtype=np.int64)
    weights = np.zeros((len(found), 2 * width), dtype=dtype)
    for p, (i, _, _, _) in enumerate(found):
        for h, half in enumerate((even, odd)):
            nonzero = half[matrix[i, half] != 0]
            columns[p, h * width:h * width + len(nonzero)] = nonzero
            columns[p, h * width + len(nonzero):(h + 1) * width] = nonzero[0]   # zero weight, a valid address
            weights[p, h * width:h * width + len(nonzero)] = matrix[i, nonzero]
    remaining = matrix.copy()
    remaining[sorted(partnered)] = 0
    return PairedTerms(np.array(found, dtype=np.int64).reshape(-1, 4), columns, weights, width,
                       terms(remaining, dtype))


@njit(cache=True, nogil=True, inline="always")
def _combine_pair(target, to_first, to_second, source, starts, weights, width, even_sign, odd_sign, stretch):
    """E and O (the even and odd halves of ``width`` terms each) into target: E + O at ``to_first``,
    even_sign * E + odd_sign * O at ``to_second``."""
    if width == 1:
        e0, o0, a0, b0 = starts[0], starts[1], weights[0], weights[1]
        for q in range(stretch):
            e = a0 * source[e0 + q]
            o = b0 * source[o0 + q]
            target[to_first + q] = e + o
            target[to_second + q] = even_sign * e + odd_sign * o
    elif width == 2:
        e0, e1, o0, o1 = starts[0], starts[1], starts[2], starts[3]
        a0, a1, b0, b1 = weights[0], weights[1], weights[2], weights[3]
        for q in range(stretch):
            e = a0 * source[e0 + q] + a1 * source[e1 + q]
            o = b0 * source[o0 + q] + b1 * source[o1 + q]
            target[to_first + q] = e + o
            target[to_second + q] = even_sign * e + odd_sign * o
    elif width == 3:
        e0, e1, e2, o0, o1, o2 = starts[0], starts[1], starts[2], starts[3], starts[4], starts[5]
        a0, a1, a2, b0, b1, b2 = weights[0], weights[1], weights[2], weights[3], weights[4], weights[5]
        for q in range(stretch):
            e = a0 * source[e0 + q] + a1 * source[e1 + q] + a2 * source[e2 + q]
            o = b0 * source[o0 + q] + b1 * source[o1 + q] + b2 * source[o2 + q]
            target[to_first + q] = e + o
            target[to_second + q] = even_sign * e + odd_sign * o
    elif width == 4:
        e0, e1, e2, e3 = starts[0], starts[1], starts[2], starts[3]
        o0, o1, o2, o3 = starts[4], starts[5], starts[6], starts[7]
        a0, a1, a2, a3 = weights[0], weights[1], weights[2], weights[3]
        b0, b1, b2, b3 = weights[4], weights[5], weights[6], weights[7]
        for q in range(stretch):
            e = a0 * source[e0 + q] + a1 * source[e1 + q] + a2 * source[e2 + q] + a3 * source[e3 + q]
            o = b0 * source[o0 + q] + b1 * source[o1 + q] + b2 * source[o2 + q] + b3 * source[o3 + q]
            target[to_first + q] = e + o
            target[to_second + q] = even_sign * e + odd_sign * o
    else:
        for q in range(stretch):
            e = 0.0 * source[starts[0] + q]
            o = 0.0 * source[starts[0] + q]
            for k in range(width):
                e += weights[k] * source[starts[k] + q]
                o += weights[width + k] * source[starts[width + k] + q]
            target[to_first + q] = e + o
            target[to_second + q] = even_sign * e + odd_sign * o


@njit(cache=True, nogil=True, inline="always")
def _combine(target, to, source, starts, weights, count, stretch):
    """target[to:to + stretch] = sum over k < count of weights[k] * source[starts[k]:starts[k] + stretch].

    Four terms at a time, so each output is stored once per four terms: a pass per term (load, add,
    store each time) was twice as slow.
    """
    _combine_some(target, to, source, starts, weights, 0, count, stretch, False)
    for k in range(4, count, 4):
        _combine_some(target, to, source, starts, weights, k, count, stretch, True)


@njit(cache=True, nogil=True, inline="always")
def _combine_some(target, to, source, starts, weights, k, count, stretch, add):
    """Terms k to k + 3 (those below ``count``) into target: stored, or added to what is there."""
    n = min(count - k, 4)
    if n == 4:
        s0, s1, s2, s3 = starts[k], starts[k + 1], starts[k + 2], starts[k + 3]
        w0, w1, w2, w3 = weights[k], weights[k + 1], weights[k + 2], weights[k + 3]
        if add:
            for q in range(stretch):
                target[to + q] += w0 * source[s0 + q] + w1 * source[s1 + q] + w2 * source[s2 + q] \
                    + w3 * source[s3 + q]
        else:
            for q in range(stretch):
                target[to + q] = w0 * source[s0 + q] + w1 * source[s1 + q] + w2 * source[s2 + q] \
                    + w3 * source[s3 + q]
    elif n == 3:
        s0, s1, s2 = starts[k], starts[k + 1], starts[k + 2]
        w0, w1, w2 = weights[k], weights[k + 1], weights[k + 2]
        if add:
            for q in range(stretch):
                target[to + q] += w0 * source[s0 + q] + w1 * source[s1 + q] + w2 * source[s2 + q]
        else:
            for q in range(stretch):
                target[to + q] = w0 * source[s0 + q] + w1 * source[s1 + q] + w2 * source[s2 + q]
    elif n == 2:
        s0, s1 = starts[k], starts[k + 1]
        w0, w1 = weights[k], weights[k + 1]
        if add:
            for q in range(stretch):
                target[to + q] += w0 * source[s0 + q] + w1 * source[s1 + q]
        else:
            for q in range(stretch):
                target[to + q] = w0 * source[s0 + q] + w1 * source[s1 + q]
    elif n == 1:
        s0, w0 = starts[k], weights[k]
        if add:
            for q in range(stretch):
                target[to + q] += w0 * source[s0 + q]
        else:
            for q in range(stretch):
                target[to + q] = w0 * source[s0 + q]
    elif not add:
        for q in range(stretch):
            target[to + q] = 0


@njit(cache=True, nogil=True, inline="always")
def _transform_block_row(scratch, to_row, source, row, m, block_w, lanes, pairs, pair_columns, pair_weights,
                         width, columns, weights, counts, starts, stretch):
    """The transform along the width of one gathered block row (``row``: its index among the block's
    rows times m): scratch row ``to_row * alpha + nu`` gets output nu for every tile of the row."""
    alpha = counts.shape[0]
    for p in range(pairs.shape[0]):
        for k in range(2 * width):
            b = pair_columns[p, k]
            starts[k] = _U(((row + b % m) * block_w + b // m) * lanes)
        _combine_pair(scratch, _U(to_row * alpha + pairs[p, 0]) * stretch, _U(to_row * alpha + pairs[p, 1]) * stretch,
                      source, starts, pair_weights[p], width, pairs[p, 2], pairs[p, 3], stretch)
    for nu in range(alpha):
        if counts[nu] == 0:
            continue
        for k in range(counts[nu]):
            b = columns[nu, k]
            starts[k] = _U(((row + b % m) * block_w + b // m) * lanes)
        _combine(scratch, _U(to_row * alpha + nu) * stretch, source, starts, weights[nu], counts[nu], stretch)


@njit(cache=True, nogil=True, inline="always")
def _transform_columns(target, channel, channels, out_columns, offset, scratch, first_row, pairs, pair_columns,
                       pair_weights, width, columns, weights, counts, starts, stretch):
    """The transform down the rows ``first_row`` onwards of ``scratch`` (as :func:`_transform_block_row`
    left them): target[xi * alpha + nu, channel, offset:offset + stretch] for every (xi, nu)."""
    alpha = counts.shape[0]
    for nu in range(alpha):
        for p in range(pairs.shape[0]):
            for k in range(2 * width):
                starts[k] = _U((first_row + pair_columns[p, k]) * alpha + nu) * stretch
            first = (_U(pairs[p, 0] * alpha + nu) * _U(channels) + _U(channel)) * out_columns + offset
            second = (_U(pairs[p, 1] * alpha + nu) * _U(channels) + _U(channel)) * out_columns + offset
            _combine_pair(target, first, second, scratch, starts, pair_weights[p], width, pairs[p, 2], pairs[p, 3],
                          stretch)
        for xi in range(alpha):
            if counts[xi] == 0:
                continue
            for k in range(counts[xi]):
                starts[k] = _U((first_row + columns[xi, k]) * alpha + nu) * stretch
            to = (_U(xi * alpha + nu) * _U(channels) + _U(channel)) * out_columns + offset
            _combine(target, to, scratch, starts, weights[xi], counts[xi], stretch)


@njit(cache=True, nogil=True)
def input_transform(block, row_first, row_stop, tiles_w, pairs, pair_columns, pair_weights, width,
                    columns, weights, counts, rows, out):
    """Input tiles of tile rows [row_first, row_stop) of a gathered block -> out (alpha^2, C, tiles*lanes).

    (pairs, pair_columns, pair_weights, width, (columns, weights, counts)) is the :class:`PairedTerms`
    of the input transform. ``rows`` is scratch (input rows, alpha, tiles_w*lanes): the transform along
    the width is done once per input row, not once per tile that reads the row.
    """
    channels, height, m, block_w, lanes = block.shape
    alpha = counts.shape[0]
    stretch = _U(tiles_w * lanes)
    out_columns = _U(out.shape[2])
    source, scratch, target = block.ravel(), rows.ravel(), out.ravel()
    starts = np.empty(max(alpha, 2 * width), np.uint64)
    top = row_first * m
    for c in range(channels):
        for y in range((row_stop - 1 - row_first) * m + alpha):
            _transform_block_row(scratch, y, source, (c * height + top + y) * m, m, block_w, lanes, pairs,
                                 pair_columns, pair_weights, width, columns, weights, counts, starts, stretch)
        for ti in range(row_stop - row_first):
            _transform_columns(target, c, channels, out_columns, _U(ti) * stretch, scratch, ti * m, pairs,
                               pair_columns, pair_weights, width, columns, weights, counts, starts, stretch)
    return out


@njit(cache=True, nogil=True)
def output_transform(products, row_first, row_stop, tiles_w, m, columns, weights, counts, first, stop,
                     scratch, out):
    """Products (alpha^2, OC, tiles*lanes) of tile rows [row_first, row_stop) -> out (N, OC, OH, OW),
    samples [first, stop). (columns, weights, counts): the :class:`Terms` of the output transform;
    ``scratch`` is (alpha + m, m, tiles_w*lanes)."""
    alpha = columns.shape[1]
    channels = products.shape[1]
    lanes = scratch.shape[2] // tiles_w
    stretch = _U(tiles_w * lanes)
    product_columns = _U(products.shape[2])
    source, work, target = products.ravel(), scratch.ravel(), out.ravel()
    starts = np.empty(alpha, np.uint64)
    out_h, out_w = out.shape[2], out.shape[3]
    offsets = np.empty(out_w, np.uint64)   # where output column x lies in a row of ``work``
    for x in range(out_w):
        offsets[x] = _U((x % m) * stretch + (x // m) * lanes)
    for oc in range(channels):
        for ti in range(row_stop - row_first):
            for xi in range(alpha):
                for j in range(m):
                    for k in range(counts[j]):
                        starts[k] = (_U(xi * alpha + columns[j, k]) * _U(channels) + _U(oc)) * product_columns \
                            + _U(ti) * stretch
                    _combine(work, _U(xi * m + j) * stretch, source, starts, weights[j], counts[j], stretch)
            for i in range(m):
                for j in range(m):
                    for k in range(counts[i]):
                        starts[k] = _U(columns[i, k] * m + j) * stretch
                    _combine(work, _U((alpha + i) * m + j) * stretch, work, starts, weights[i], counts[i], stretch)
            # Row by row of each sample's output, so that the stores are contiguous.
            rows = min(m, out_h - (row_first + ti) * m)
            for lane in range(stop - first):
                for i in range(rows):
                    to = _U((((first + lane) * channels + oc) * out_h + (row_first + ti) * m + i) * out_w)
                    base = _U((alpha + i) * m) * stretch + _U(lane)
                    for x in range(_U(out_w)):
                        target[to + x] = work[base + offsets[x]]
    return out


@njit(cache=True, nogil=True)
def gradient_transform(block, row_first, row_stop, tiles_w, pairs, pair_columns, pair_weights, width,
                       columns, weights, counts, scratch, out):
    """Output-gradient tiles (m x m) of tile rows [row_first, row_stop) of a gathered block
    (OC, th*m, m, tiles_w, lanes) -> out (alpha^2, OC, tiles*lanes). (pairs, pair_columns, pair_weights,
    width, (columns, weights, counts)): the :class:`PairedTerms` of the gradient transform; ``scratch``
    is (m, alpha, tiles_w*lanes)."""
    channels, height, m, block_w, lanes = block.shape
    alpha = counts.shape[0]
    stretch = _U(tiles_w * lanes)
    out_columns = _U(out.shape[2])
    source, work, target = block.ravel(), scratch.ravel(), out.ravel()
    starts = np.empty(max(alpha, 2 * width), np.uint64)
    for oc in range(channels):
        for ti in range(row_stop - row_first):
            for u in range(m):
                row = (oc * height + (row_first + ti) * m + u) * m
                _transform_block_row(work, u, source, row, m, block_w, lanes, pairs, pair_columns, pair_weights,
                                     width, columns, weights, counts, starts, stretch)
            _transform_columns(target, oc, channels, out_columns, _U(ti) * stretch, work, 0, pairs, pair_columns,
                               pair_weights, width, columns, weights, counts, starts, stretch)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Drivers: a layer's forward pass and both gradients, block by block on the backend's block pool.

TILES = (2, 4)            # m, the output tile's side, chosen per layer (see tile_size)
KERNEL_SIZES = (3, 5)
MIN_CHANNELS = 16         # the products' inner dimension; below it BLAS is inefficient and im2col wins
MIN_OUTPUT = 16 * 16      # output pixels per channel; on smaller images the transforms cost more than they save
STRETCH = 128             # values per transform loop (tiles of a row x samples), at least
CHUNK_COLUMNS = 128       # columns (tiles x lanes) of one block's products at a time, so they stay in cache


def applies(kernel, stride, dilation, groups, padding, in_channels: int, out_channels: int, output_size,
            dtype) -> bool:
    """Whether these functions can compute this convolution, and should: enough channels and pixels to gain
    (the beautiful-MNIST CNN's 8 x 8 and 10 x 10 layers ran 1.2-1.3x slower this way than by im2col)."""
    return (kernel[0] == kernel[1] and kernel[0] in KERNEL_SIZES and tuple(stride) == (1, 1)
            and tuple(dilation) == (1, 1) and groups == 1 and max(padding) <= kernel[0] - 1
            and min(in_channels, out_channels) >= MIN_CHANNELS and output_size[0] * output_size[1] >= MIN_OUTPUT
            and np.dtype(dtype) in (np.float32, np.float64))


def tile_size(out_h: int, out_w: int, r: int) -> int:
    """The output tile side m with the fewest multiplications for this output size, ties to the smaller.

    Larger tiles need fewer multiplications per output ((m + r - 1)^2 / m^2) but waste more on the
    partial tiles at the edges.

    Example:
        >>> tile_size(20, 20, 5), tile_size(6, 6, 3)
        (4, 2)
    """
    def cost(m):
        return (-(-out_h // m)) * (-(-out_w // m)) * (m + r - 1) ** 2
    return min((m for m in TILES if m + r - 1 in POINTS), key=lambda m: (cost(m), m))


class _Plan:
    """Tile counts and per-thread buffers of one convolution over one input size."""

    def __init__(self, batch: int, channels: int, products_channels: int, height: int, width: int, r: int,
                 padding, dtype, workers: int = 1):
        self.out_h = height + 2 * padding[0] - r + 1
        self.out_w = width + 2 * padding[1] - r + 1
        self.m = m = tile_size(self.out_h, self.out_w, r)
        self.t = transforms(m, r)
        self.alpha = m + r - 1
        self.tiles_h = -(-self.out_h // m)
        self.tiles_w = -(-self.out_w // m)
        self.block_h = self.tiles_h * m + r - 1
        self.block_w = self.tiles_w * m + r - 1
        # Samples side by side: enough that each transform loop is long (a row of tiles of every sample
        # is STRETCH values), a multiple of 8 (an AVX register of float32), no more than the batch needs,
        # and, of those up to twice the least, the count that gives the busiest thread the fewest lanes
        # (the threads take whole blocks: 128 samples as 24 + 24 + 24 | 24 + 24 + 8 keep one waiting).
        least = max(8, min(-(-(-(-STRETCH // self.tiles_w)) // 8) * 8, -(-batch // 8) * 8))
        self.lanes = min(range(least, 2 * least + 1, 8),
                         key=lambda lanes: (-(-(-(-batch // lanes)) // workers) * lanes, lanes))
        self.blocks = -(-batch // self.lanes)
        self.rows_per_chunk = max(1, min(self.tiles_h, CHUNK_COLUMNS // (self.tiles_w * self.lanes)))
        self.channels, self.products_channels, self.dtype = channels, products_channels, dtype
        self.input = _kernel_terms(m, r, "input", np.dtype(dtype).str)

    def buffers(self) -> dict:
        """One thread's arrays, reused for each of its blocks."""
        columns = self.rows_per_chunk * self.tiles_w * self.lanes
        chunk_rows = (self.rows_per_chunk - 1) * self.m + self.alpha
        return {
            "block": np.empty((self.channels, self.block_h, self.m, -(-self.block_w // self.m), self.lanes),
                              self.dtype),
            "rows": np.empty((chunk_rows, self.alpha, self.tiles_w * self.lanes), self.dtype),
            "transformed": np.empty(self.alpha ** 2 * self.channels * columns, self.dtype),
            "products": np.empty(self.alpha ** 2 * self.products_channels * columns, self.dtype),
        }

    def chunks(self):
        for row_first in range(0, self.tiles_h, self.rows_per_chunk):
            row_stop = min(row_first + self.rows_per_chunk, self.tiles_h)
            yield row_first, row_stop, (row_stop - row_first) * self.tiles_w * self.lanes

    def transformed_input(self, mine, row_first, row_stop, columns):
        out = mine["transformed"][:self.alpha ** 2 * self.channels * columns].reshape(
            self.alpha ** 2, self.channels, columns)
        pairs = self.input
        return input_transform(mine["block"], row_first, row_stop, self.tiles_w, pairs.pairs, pairs.columns,
                               pairs.weights, pairs.width, *pairs.single, mine["rows"], out)


@functools.lru_cache(maxsize=None)
def _kernel_terms(m: int, r: int, which: str, dtype: str):
    """The kernels' form of one of F(m, r)'s transforms: the input and gradient transforms paired, the
    output transform as plain terms. Cached: finding the pairs takes a few hundred microseconds."""
    matrix = getattr(transforms(m, r), which)
    return terms(matrix, np.dtype(dtype)) if which == "output" else paired_terms(matrix, np.dtype(dtype))


def _kernel_transform(w, t: Transforms, dtype):
    """(OC, C, r, r) -> (alpha^2, OC, C): G w G^T for every kernel, computed in float64."""
    alpha = t.input.shape[0]
    u = np.einsum("xk,ockl,yl->xyoc", t.kernel, w.astype(np.float64), t.kernel, optimize=True)
    return np.ascontiguousarray(u.reshape(alpha * alpha, w.shape[0], w.shape[1]), dtype=dtype)


def forward(backend, x, w, padding):
    """Correlation of x (N, C, H, W) with w (OC, C, r, r), stride 1, zero padding ``padding``."""
    n, channels, height, width = x.shape
    out_channels, r = w.shape[0], w.shape[2]
    x = np.ascontiguousarray(x)
    plan = _Plan(n, channels, out_channels, height, width, r, padding, x.dtype, backend.block_workers(n))
    kernels = _kernel_transform(w, plan.t, x.dtype)
    output = _kernel_terms(plan.m, r, "output", x.dtype.str)
    out = np.empty((n, out_channels, plan.out_h, plan.out_w), dtype=x.dtype)
    blocks = plan.blocks
    buffers = [plan.buffers() for _ in range(backend.block_workers(blocks))]

    def block_forward(worker, index):
        mine = buffers[worker]
        first, stop = index * plan.lanes, min((index + 1) * plan.lanes, n)
        gather_block(x, first, stop, padding[0], padding[1], mine["block"])
        scratch = np.empty((plan.alpha + plan.m, plan.m, plan.tiles_w * plan.lanes), x.dtype)
        for row_first, row_stop, columns in plan.chunks():
            transformed = plan.transformed_input(mine, row_first, row_stop, columns)
            products = mine["products"][:plan.alpha ** 2 * out_channels * columns].reshape(
                plan.alpha ** 2, out_channels, columns)
            np.matmul(kernels, transformed, out=products)
            output_transform(products, row_first, row_stop, plan.tiles_w, plan.m, *output, first, stop, scratch, out)

    backend.run_blocks(block_forward, blocks)
    return out


def input_gradient(backend, g, w, padding):
    """Adjoint of :func:`forward` in x: a full correlation of g with the flipped, transposed kernels."""
    r = w.shape[2]
    flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    return forward(backend, g, flipped, (r - 1 - padding[0], r - 1 - padding[1]))


def weight_gradient(backend, x, g, padding, r: int):
    """Adjoint of :func:`forward` in w: (OC, C, r, r), summed over the batch."""
    n, channels, height, width = x.shape
    out_channels = g.shape[1]
    x, g = np.ascontiguousarray(x), np.ascontiguousarray(g)
    plan = _Plan(n, channels, out_channels, height, width, r, padding, x.dtype, backend.block_workers(n))
    if g.shape[2:] != (plan.out_h, plan.out_w):
        raise ValueError(f"winograd: gradient of shape {g.shape} does not match the output {plan.out_h}x{plan.out_w}")
    gradient = _kernel_terms(plan.m, r, "gradient", x.dtype.str)
    blocks = plan.blocks
    workers = backend.block_workers(blocks)
    buffers = [plan.buffers() for _ in range(workers)]
    for mine in buffers:
        mine["gradient_block"] = np.empty((out_channels, plan.tiles_h * plan.m, plan.m, plan.tiles_w, plan.lanes),
                                          x.dtype)
    # Each thread sums its own blocks (a fixed split: the same sum in every run); the sums are added at the end.
    sums = [np.zeros((plan.alpha ** 2, out_channels, channels), dtype=x.dtype) for _ in range(workers)]

    def block_weight_grad(worker, index):
        mine = buffers[worker]
        first, stop = index * plan.lanes, min((index + 1) * plan.lanes, n)
        gather_block(x, first, stop, padding[0], padding[1], mine["block"])
        gather_block(g, first, stop, 0, 0, mine["gradient_block"])
        scratch = np.empty((plan.m, plan.alpha, plan.tiles_w * plan.lanes), x.dtype)
        for row_first, row_stop, columns in plan.chunks():
            transformed = plan.transformed_input(mine, row_first, row_stop, columns)
            gradients = mine["products"][:plan.alpha ** 2 * out_channels * columns].reshape(
                plan.alpha ** 2, out_channels, columns)
            gradient_transform(mine["gradient_block"], row_first, row_stop, plan.tiles_w, gradient.pairs,
                               gradient.columns, gradient.weights, gradient.width, *gradient.single, scratch, gradients)
            sums[worker] += np.matmul(gradients, transformed.transpose(0, 2, 1))

    backend.run_blocks(block_weight_grad, blocks)
    total = sums[0].astype(np.float64)
    for partial in sums[1:]:
        total += partial
    back = plan.t.kernel_output
    dw = np.einsum("kx,xyoc,ly->ockl", back, total.reshape(plan.alpha, plan.alpha, out_channels, channels), back,
                   optimize=True)
    return dw.astype(x.dtype)
