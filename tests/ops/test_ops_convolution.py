"""Convolution (conv1d/conv2d with stride, padding, dilation, groups, bias) and
pooling (max/avg with stride != kernel and padding) against
torch.nn.functional."""
import numpy as np
import pytest

import sigma
from ops_oracle import check, torch

F = torch.nn.functional

CONV2D_CASES = {
    # name: (input shape, weight shape, options)
    # Small shapes: the finite-difference check runs one convolution per input element.
    "plain": ((2, 2, 4, 4), (3, 2, 3, 3), {}),
    "stride 2 padding 1": ((1, 2, 6, 5), (3, 2, 3, 3), {"stride": 2, "padding": 1}),
    "pairs": ((1, 2, 6, 7), (3, 2, 2, 3), {"stride": (2, 1), "padding": (0, 2), "dilation": (1, 2)}),
    "dilation 2": ((1, 2, 7, 6), (3, 2, 3, 2), {"dilation": 2, "padding": 2}),
    "groups 2": ((1, 4, 4, 4), (4, 2, 3, 3), {"groups": 2, "padding": 1}),
    "depthwise": ((1, 3, 5, 4), (6, 1, 3, 3), {"groups": 3, "stride": 2}),
    "1x1 kernel": ((2, 3, 3, 4), (5, 3, 1, 1), {}),
    "stride leaves a remainder": ((1, 2, 8, 7), (2, 2, 3, 3), {"stride": 3}),
    "padding wider than the kernel": ((1, 1, 3, 3), (2, 1, 2, 2), {"padding": 3}),
}


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("name", list(CONV2D_CASES))
def test_conv2d(device, rng, name, bias):
    input_shape, weight_shape, options = CONV2D_CASES[name]
    x = rng.standard_normal(input_shape)
    w = rng.standard_normal(weight_shape)
    arrays = [x, w] + ([rng.standard_normal(weight_shape[0])] if bias else [])
    check(lambda *t: sigma.conv2d(*t, **options), lambda *t: F.conv2d(*t, **options), *arrays, device=device)


def test_conv2d_batch_larger_than_one_chunk(device, rng):
    # Enough samples that the CPU path splits the batch into several im2col chunks.
    from sigma.ops import convolution
    x = rng.standard_normal((5, 1, 5, 5))
    w = rng.standard_normal((2, 1, 3, 3))
    chunk_bytes = convolution.CHUNK_BYTES
    convolution.CHUNK_BYTES = 2 * 25 * 1 * 9 * 4  # two samples' patches per chunk: chunks of 2, 2 and 1
    try:
        check(lambda a, b: sigma.conv2d(a, b, padding=1), lambda a, b: F.conv2d(a, b, padding=1), x, w,
              device=device)
    finally:
        convolution.CHUNK_BYTES = chunk_bytes


@pytest.mark.parametrize("name", ["stride 2 padding 1", "groups 2", "pairs"])
def test_conv2d_in_blocks_of_one_sample_reusing_buffers(rng, name):
    # One sample per block: every reused buffer (patches, products, the
    # transposed gradient) is overwritten block after block, in the forward
    # pass and both gradients.
    from sigma.ops import convolution
    input_shape, weight_shape, options = CONV2D_CASES[name]
    x = rng.standard_normal((3,) + input_shape[1:])
    w = rng.standard_normal(weight_shape)
    chunk_bytes = convolution.CHUNK_BYTES
    convolution.CHUNK_BYTES = 1
    try:
        check(lambda a, b: sigma.conv2d(a, b, **options), lambda a, b: F.conv2d(a, b, **options), x, w,
              device="cpu")
    finally:
        convolution.CHUNK_BYTES = chunk_bytes


def test_conv2d_with_a_constant_weight(device, rng):
    x = rng.standard_normal((2, 2, 4, 4))
    w = rng.standard_normal((3, 2, 2, 2))
    check(lambda t: sigma.conv2d(t, sigma.tensor(w.astype(t.dtype), device=device), stride=2),
          lambda t: F.conv2d(t, torch.tensor(w).to(t.dtype), stride=2), x, device=device)


CONV1D_CASES = {
    "plain": ((2, 3, 6), (4, 3, 3), {}),
    "stride padding dilation": ((2, 2, 9), (3, 2, 3), {"stride": 2, "padding": 2, "dilation": 2}),
    "groups": ((1, 4, 6), (2, 2, 2), {"groups": 2, "padding": 1}),
}


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("name", list(CONV1D_CASES))
def test_conv1d(device, rng, name, bias):
    input_shape, weight_shape, options = CONV1D_CASES[name]
    arrays = [rng.standard_normal(input_shape), rng.standard_normal(weight_shape)]
    if bias:
        arrays.append(rng.standard_normal(weight_shape[0]))
    check(lambda *t: sigma.conv1d(*t, **options), lambda *t: F.conv1d(*t, **options), *arrays, device=device)


POOL_CASES = {
    "kernel 2": (2, None, 0),
    "kernel 3 stride 2 padding 1 (overlapping)": (3, 2, 1),
    "kernel (2, 3) stride (1, 2) padding (1, 1)": ((2, 3), (1, 2), (1, 1)),
    "kernel 3 stride 1": (3, 1, 0),
    "stride larger than kernel": (2, 3, 0),
}


@pytest.mark.parametrize("name", list(POOL_CASES))
@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
def test_pooling(device, rng, op, name):
    kernel, stride, padding = POOL_CASES[name]
    x = rng.standard_normal((2, 2, 5, 6))
    check(lambda t: getattr(sigma, op)(t, kernel, stride, padding),
          lambda t: getattr(F, op)(t, kernel, stride, padding), x, device=device)


def test_max_pool2d_ties_go_to_the_first_maximum_like_torch(device):
    x = np.zeros((1, 2, 4, 4))
    x[0, 1, 1:3, 1:3] = 5.0
    for kernel, stride in ((2, 2), (3, 1)):
        check(lambda t: sigma.max_pool2d(t, kernel, stride), lambda t: F.max_pool2d(t, kernel, stride), x,
              device=device, finite_differences=False)


def test_max_pool2d_of_negative_values_ignores_the_padding(device, rng):
    x = -rng.uniform(1.0, 2.0, size=(1, 1, 4, 4))
    check(lambda t: sigma.max_pool2d(t, 3, 2, 1), lambda t: F.max_pool2d(t, 3, 2, 1), x, device=device)


def test_global_avg_pool2d(device, rng):
    x = rng.standard_normal((2, 3, 3, 4))
    check(sigma.global_avg_pool2d, lambda t: t.mean(dim=(2, 3)), x, device=device)
