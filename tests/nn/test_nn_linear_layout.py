"""Linear's weight gradient comes out in the weight's own (row-major) layout, for 2-d and batched inputs, so
the optimisers' fused kernels never copy it; its values match PyTorch's, higher orders included."""
import numpy as np
import pytest

import sigma
from sigma import nn

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4)])
def test_weight_gradient_is_row_major_and_matches_torch(shape):
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=shape), rng.normal(size=(3, 4)), rng.normal(size=3)
    xs, ws, bs = (sigma.tensor(v, dtype="float64", requires_grad=True) for v in (x, w, b))
    nn.functional.linear(xs, ws, bs).tanh().sum().backward()
    xt, wt, bt = (torch.tensor(v, requires_grad=True) for v in (x, w, b))
    torch.nn.functional.linear(xt, wt, bt).tanh().sum().backward()
    assert ws.grad.data.flags.c_contiguous
    for mine, theirs in ((xs, xt), (ws, wt), (bs, bt)):
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_second_order_through_linear_matches_torch():
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(3, 4)), rng.normal(size=(2, 4))
    xs, ws = (sigma.tensor(v, dtype="float64", requires_grad=True) for v in (x, w))
    grad_w, = sigma.autograd.grad(nn.functional.linear(xs, ws).tanh().sum(), [ws], create_graph=True)
    (grad_w * grad_w).sum().backward()
    xt, wt = (torch.tensor(v, requires_grad=True) for v in (x, w))
    grad_wt, = torch.autograd.grad(torch.nn.functional.linear(xt, wt).tanh().sum(), [wt], create_graph=True)
    (grad_wt * grad_wt).sum().backward()
    np.testing.assert_allclose(xs.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ws.grad.numpy(), wt.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert np.abs(xs.grad.numpy()).max() > 1e-3


def test_a_vector_input_and_mismatched_dtypes():
    layer = nn.Linear(4, 3)
    assert layer(sigma.ones(4)).shape == (3,)
    with pytest.raises(TypeError, match="linear: input dtype float64 and weight dtype float32 differ"):
        layer(sigma.ones(2, 4, dtype="float64"))
