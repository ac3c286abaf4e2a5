"""Bad input gets a clear error that names the op and the values involved."""
import re

import numpy as np
import pytest

import sigma
from sigma.testing import GradcheckError, gradcheck


def raises(error, message):
    return pytest.raises(error, match=re.escape(message))


def test_matmul_names_the_shapes_and_the_inner_dimensions(device):
    x, w = sigma.randn(32, 784, device=device), sigma.randn(128, 10, device=device)
    with raises(ValueError, "matmul: (32, 784) @ (128, 10): inner dimensions 784 and 128 differ"):
        x @ w
    with raises(ValueError, "matmul: batch shapes of (2, 3, 4) and (5, 4, 2) cannot be broadcast"):
        sigma.randn(2, 3, 4, device=device) @ sigma.randn(5, 4, 2, device=device)
    with raises(ValueError, "matmul: both operands need at least one dimension, got () @ (2, 3)"):
        sigma.tensor(2.0, device=device) @ sigma.randn(2, 3, device=device)
    with raises(ValueError, "inner dimensions 3 and 4 differ"):
        sigma.randn(3, device=device) @ sigma.randn(4, device=device)


def test_matmul_of_mixed_dtypes_is_refused(device):
    a = sigma.randn(2, 3, device=device)
    b = sigma.randn(3, 4, dtype="float64", device=device)
    with raises(TypeError, "matmul: (2, 3) @ (3, 4): dtypes float32 and float64 differ"):
        a @ b


@pytest.mark.parametrize("name,function", [
    ("add", lambda a, b: a + b), ("sub", lambda a, b: a - b), ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b), ("pow", lambda a, b: a ** b), ("maximum", sigma.maximum),
])
def test_broadcasting_errors_name_the_op_and_shapes(device, name, function):
    a, b = sigma.randn(2, 3, device=device), sigma.randn(4, device=device)
    with raises(ValueError, f"{name}: shapes (2, 3) and (4,) cannot be broadcast together"):
        function(a, b)


def test_comparison_and_where_broadcasting_errors(device):
    a, b = sigma.randn(2, 3, device=device), sigma.randn(4, device=device)
    with raises(ValueError, "lt: shapes (2, 3) and (4,) cannot be broadcast together"):
        a < b
    with raises(ValueError, "where: condition (4,), a (2, 3) and b () cannot be broadcast together"):
        sigma.where(b > 0, a, 0.0)


@pytest.mark.parametrize("call,error,message", [
    (lambda x, w: sigma.conv2d(x, sigma.randn(4, 2, 3, 3)), ValueError,
     "conv2d: input (2, 3, 5, 5) has 3 channels but weight (4, 2, 3, 3) expects 2"),
    (lambda x, w: sigma.conv2d(x, w, groups=2), ValueError,
     "conv2d: groups=2 must divide input channels 3 and output channels 4"),
    (lambda x, w: sigma.conv2d(x, sigma.randn(4, 3, 7, 7)), ValueError,
     "conv2d: input (2, 3, 5, 5) is smaller than the dilated kernel (7, 7)"),
    (lambda x, w: sigma.conv2d(x, w, stride=0), ValueError, "conv2d: stride must be an int >= 1"),
    (lambda x, w: sigma.conv2d(x, w, stride=1.5), ValueError, "conv2d: stride must be an int >= 1"),
    (lambda x, w: sigma.conv2d(x, w, padding=-1), ValueError, "conv2d: padding must be an int >= 0"),
    (lambda x, w: sigma.conv2d(x.reshape(6, 5, 5), w), ValueError,
     "conv2d: input must be (N, C, H, W), got shape (6, 5, 5)"),
    (lambda x, w: sigma.conv2d(x, w.reshape(4, 27)), ValueError, "conv2d: weight must be"),
    (lambda x, w: sigma.conv2d(x, w, sigma.randn(3)), ValueError, "conv2d: bias must have shape (4,), got (3,)"),
    (lambda x, w: sigma.conv2d(x, w.double()), TypeError,
     "conv2d: input dtype float32 and weight dtype float64 differ"),
    (lambda x, w: sigma.conv1d(x.reshape(2, 3, 25), w[:, :, 0], stride=(1, 2)), ValueError,
     "conv1d: stride must be an int, got (1, 2)"),
    (lambda x, w: sigma.conv1d(x.reshape(2, 3, 25), sigma.randn(4, 3, 30)), ValueError,
     "conv1d: input (2, 3, 25) is shorter than the dilated kernel (30)"),
    (lambda x, w: sigma.max_pool2d(x, 6), ValueError,
     "max_pool2d: input (2, 3, 5, 5) is smaller than the kernel (6, 6)"),
    (lambda x, w: sigma.max_pool2d(x, 2, padding=2), ValueError,
     "max_pool2d: padding (2, 2) must be at most half the kernel (2, 2)"),
    (lambda x, w: sigma.max_pool2d(x, 2, stride=0), ValueError, "max_pool2d: stride must be an int >= 1"),
    (lambda x, w: sigma.avg_pool2d(x.reshape(6, 5, 5), 2), ValueError, "avg_pool2d: input must be (N, C, H, W)"),
    (lambda x, w: sigma.avg_pool2d(x, (2, 2, 2)), ValueError, "avg_pool2d: kernel_size must be an int >= 1"),
    (lambda x, w: sigma.global_avg_pool2d(x.reshape(6, 25)), ValueError,
     "global_avg_pool2d: input must be (N, C, H, W)"),
])
def test_bad_convolution_and_pooling_geometry(call, error, message):
    x, w = sigma.randn(2, 3, 5, 5), sigma.randn(4, 3, 3, 3)
    with raises(error, message):
        call(x, w)


def test_out_of_range_labels_and_indices():
    logits = sigma.randn(2, 3)
    with raises(ValueError, "softmax_cross_entropy: labels must lie in [0, 3), got values from 0 to 3"):
        sigma.softmax_cross_entropy(logits, [0, 3])
    with raises(ValueError, "labels must lie in [0, 3), got values from -1 to 0"):
        sigma.softmax_cross_entropy(logits, [0, -1])
    with raises(TypeError, "softmax_cross_entropy: labels must be integers, got float64"):
        sigma.softmax_cross_entropy(logits, [0.0, 1.0])
    with raises(ValueError, "softmax_cross_entropy: 2 logits rows but labels of shape (1,)"):
        sigma.softmax_cross_entropy(logits, [0])
    with raises(ValueError, "softmax_cross_entropy: logits must be (N, classes), got shape (6,)"):
        sigma.softmax_cross_entropy(logits.reshape(6), [0])
    with raises(ValueError, "reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        sigma.softmax_cross_entropy(logits, [0, 1], reduction="avg")
    with raises(IndexError, "embedding: indices must lie in [0, 2), got values from 0 to 9"):
        sigma.embedding(np.array([0, 9]), sigma.randn(2, 4))
    with raises(TypeError, "embedding: indices must be integers, got float64"):
        sigma.embedding(np.array([0.0]), sigma.randn(2, 4))
    with raises(IndexError, "gather: index out of range for axis 1 of size 3"):
        sigma.gather(logits, np.array([[0, 3]]), 1)
    with raises(ValueError, "gather: index has 1 dimensions, the tensor 2"):
        sigma.gather(logits, np.array([0]), 1)
    with raises(IndexError, "getitem: index 5 is out of bounds for axis 0 with size 2 (tensor shape (2, 3))"):
        logits[5]
    with raises(IndexError, "index 7 is out of bounds for axis 1 with size 3"):
        logits[:, [0, 7]]
    with raises(IndexError, "index_add: index 5 is out of range for axis 0 of size 3"):
        sigma.index_add((3, 2), np.array([0, 5]), sigma.ones(2, 2))
    with raises(IndexError, "index_add: index -4 is out of range for axis 0 of size 3"):
        sigma.index_add((3,), np.array([-4]), sigma.ones(1))


@pytest.mark.parametrize("call,message", [
    (lambda x: x.sum(axis=2), "sum: axis 2 is out of range for a tensor with 2 dimensions"),
    (lambda x: x.sum(axis=(0, 0)), "sum: repeated axis in (0, 0)"),
    (lambda x: x.mean(axis=-3), "mean: axis -3 is out of range for a tensor with 2 dimensions"),
    (lambda x: x.max(axis=(0, 5)), "max: axis 5 is out of range"),
    (lambda x: x.min(axis=2), "axis 2 is out of range"),
    (lambda x: x.var(axis=3), "var: axis 3 is out of range"),
    (lambda x: x.var(axis=0, correction=2), "var: 2 elements with correction 2 leaves no degrees of freedom"),
    (lambda x: sigma.logsumexp(x, axis=2), "logsumexp: axis 2 is out of range"),
    (lambda x: x.argmax(axis=2), "argmax: axis 2 is out of range"),
    (lambda x: sigma.softmax(x, axis=3), "softmax: axis 3 is out of range"),
    (lambda x: sigma.log_softmax(x, axis=-3), "log_softmax: axis -3 is out of range"),
    (lambda x: sigma.concat([x], axis=2), "concat: axis 2 out of range for 2-d tensors"),
    (lambda x: sigma.stack([x, x], axis=3), "stack: axis 3 out of range for the 3-d result"),
    (lambda x: x.unsqueeze(4), "unsqueeze: axis 4 out of range for the 3-d result"),
    (lambda x: x.squeeze(0), "squeeze: axis 0 has size 2, not 1"),
    (lambda x: x.squeeze(2), "squeeze: axis 2 is out of range for a tensor with 2 dimensions"),
    (lambda x: x.permute(0, 1, 2), "permute: (0, 1, 2) is not a permutation of the 2 axes of (2, 3)"),
    (lambda x: x.permute(0, 5), "permute: (0, 5) is not a permutation of the 2 axes of (2, 3)"),
    (lambda x: x.transpose(0, 3), "transpose: axis 3 is out of range for a tensor with 2 dimensions"),
    (lambda x: x.flatten(0, 5), "flatten: axis 5 is out of range for a tensor with 2 dimensions"),
    (lambda x: sigma.split(x, 2, axis=3), "split: axis 3 is out of range for a tensor with 2 dimensions"),
])
def test_bad_axes(call, message):
    with raises(ValueError, message):
        call(sigma.randn(2, 3))


@pytest.mark.parametrize("call,message", [
    (lambda x: x.reshape(4, 2), "reshape: cannot reshape a tensor of shape (2, 3) (6 values) into (4, 2)"),
    (lambda x: x.expand(3, 3), "expand: cannot broadcast shape (2, 3) to (3, 3)"),
    (lambda x: sigma.split(x, [1, 1], axis=1), "split: sizes [1, 1] add up to 2, not the axis length 3"),
    (lambda x: sigma.split(x, 0), "split: piece size must be positive, got 0"),
    (lambda x: sigma.pad(x, [(1, -1), (0, 0)]), "pad: negative widths ((1, -1), (0, 0))"),
    (lambda x: sigma.pad(x, [(1, 1)]), "pad: 1 (before, after) pairs for a tensor with 2 axes"),
    (lambda x: sigma.stack([x, x.T]), "stack: all tensors need one shape, got [(2, 3), (3, 2)]"),
    (lambda x: sigma.concat([x, x[:, :2]], axis=0), "concat: shapes (2, 3), (2, 2) differ outside axis 0"),
    (lambda x: sigma.clip(x), "clip: give low, high or both"),
    (lambda x: sigma.gelu(x, approximate="fast"), "gelu: approximate must be 'none' or 'tanh', got 'fast'"),
    (lambda x: sigma.dropout(x, 1.5), "dropout: p must be in [0, 1], got 1.5"),
    (lambda x: x.backward(), "backward: the output has shape (2, 3), not a single value"),
])
def test_bad_shapes_and_arguments(call, message):
    with pytest.raises((ValueError, RuntimeError), match=re.escape(message)):
        call(sigma.randn(2, 3, requires_grad=True))


def test_gradcheck_refuses_float32_and_inputs_without_grad():
    with raises(TypeError, "gradcheck: input 0 is float32; finite differences need float64"):
        gradcheck(lambda t: t * 2, [sigma.randn(3, requires_grad=True)])
    with raises(ValueError, "gradcheck: no input has requires_grad=True"):
        gradcheck(lambda t: t * 2, [sigma.randn(3, dtype="float64")])


def test_gradcheck_catches_a_wrong_backward():
    class Square(sigma.autograd.Function):
        def forward(self, x):
            return x * x

        def backward(self, grad):
            return grad * self.inputs[0] * 2.01  # off by 0.5 %

    x = sigma.randn(2, 3, dtype="float64", requires_grad=True)
    with pytest.raises(GradcheckError, match=r"input 0 \(shape \(2, 3\)\): 6 of 6 elements differ"):
        gradcheck(Square.apply, [x])
    assert gradcheck(Square.apply, [x], rtol=1e-2)


def test_gradcheck_leaves_the_inputs_unchanged():
    x = sigma.randn(4, dtype="float64", requires_grad=True)
    before = x.numpy().copy()
    gradcheck(lambda t: t.sin(), [x])
    np.testing.assert_array_equal(x.numpy(), before)
    assert x.grad is None
