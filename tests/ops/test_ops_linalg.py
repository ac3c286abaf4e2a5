"""Matrix multiplication: 1-d, 2-d, batched and broadcast batch dimensions."""
import numpy as np
import pytest

import sigma
from ops_oracle import check, torch

MATMUL_SHAPES = [
    ((3,), (3,)),               # dot product
    ((3,), (3, 4)),             # vector @ matrix
    ((2, 3), (3,)),             # matrix @ vector
    ((2, 3), (3, 4)),
    ((5, 2, 3), (5, 3, 4)),     # batched
    ((5, 2, 3), (3, 4)),        # batch on the left only
    ((2, 3), (5, 3, 4)),        # batch on the right only
    ((2, 1, 2, 3), (4, 3, 2)),  # batch dimensions broadcast
    ((3,), (5, 3, 4)),          # vector @ batch
    ((5, 2, 3), (3,)),          # batch @ vector
]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul(device, rng, shapes):
    a = rng.standard_normal(shapes[0])
    b = rng.standard_normal(shapes[1])
    check(lambda x, y: x @ y, lambda x, y: x @ y, a, b, device=device)
    check(sigma.matmul, torch.matmul, a, b, device=device)


def test_matmul_with_a_constant_side(device, rng):
    a = rng.standard_normal((4, 3))
    w = rng.standard_normal((3, 2))
    check(lambda x: x @ sigma.tensor(w.astype(x.dtype), device=device),
          lambda x: x @ torch.tensor(w).to(x.dtype), a, device=device)


def test_matmul_with_a_raw_array_on_either_side(device, rng):
    x = sigma.tensor(rng.standard_normal((2, 3)), device=device, requires_grad=True)
    w = rng.standard_normal((3, 2)).astype(np.float32)
    np.testing.assert_allclose((x @ w).numpy(), x.numpy() @ w, rtol=1e-6)
    v = rng.standard_normal((4, 2)).astype(np.float32)
    np.testing.assert_allclose((v @ x).numpy(), v @ x.numpy(), rtol=1e-6)
    (v @ x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), v.T @ np.ones((4, 3), np.float32), rtol=1e-6)
