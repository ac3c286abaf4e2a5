"""Shape and data movement: reshape, transpose, permute, expand, concat, stack,
split, pad, squeeze, unsqueeze, flatten; slicing and fancy indexing, index_add,
gather."""
import numpy as np
import pytest

import sigma
from ops_oracle import check, torch

SHAPE_CASES = {
    "reshape": (lambda x: x.reshape(4, 6), lambda x: x.reshape(4, 6)),
    "reshape tuple with -1": (lambda x: sigma.reshape(x, (-1, 3)), lambda x: x.reshape(-1, 3)),
    "transpose last two": (lambda x: x.transpose(), lambda x: x.transpose(-2, -1)),
    "transpose negative axes": (lambda x: x.transpose(0, -1), lambda x: x.transpose(0, -1)),
    "permute": (lambda x: x.permute(2, 0, 1), lambda x: x.permute(2, 0, 1)),
    "permute negative axes": (lambda x: sigma.permute(x, -1, -3, -2), lambda x: x.permute(-1, -3, -2)),
    ".T": (lambda x: x.T, lambda x: x.permute(2, 1, 0)),
    "expand new axes": (lambda x: x.reshape(2, 1, 3, 4).expand(5, 2, 2, 3, 4),
                        lambda x: x.reshape(2, 1, 3, 4).expand(5, 2, 2, 3, 4)),
    "squeeze all": (lambda x: x.reshape(2, 1, 12, 1).squeeze(), lambda x: x.reshape(2, 1, 12, 1).squeeze()),
    "squeeze axis": (lambda x: x.reshape(2, 1, 12, 1).squeeze(1), lambda x: x.reshape(2, 1, 12, 1).squeeze(1)),
    "squeeze negative axis": (lambda x: x.reshape(2, 1, 12, 1).squeeze(-1),
                              lambda x: x.reshape(2, 1, 12, 1).squeeze(-1)),
    "unsqueeze 0": (lambda x: x.unsqueeze(0), lambda x: x.unsqueeze(0)),
    "unsqueeze -1": (lambda x: sigma.unsqueeze(x, -1), lambda x: x.unsqueeze(-1)),
    "unsqueeze middle": (lambda x: x.unsqueeze(2), lambda x: x.unsqueeze(2)),
    "flatten": (lambda x: x.flatten(), lambda x: x.flatten()),
    "flatten from 1": (lambda x: sigma.flatten(x, 1), lambda x: x.flatten(1)),
    "flatten 0..1": (lambda x: x.flatten(0, 1), lambda x: x.flatten(0, 1)),
    "flatten negative": (lambda x: x.flatten(-2, -1), lambda x: x.flatten(-2, -1)),
    "pad": (lambda x: sigma.pad(x, [(1, 0), (0, 2), (3, 1)]), lambda x: torch.nn.functional.pad(x, (3, 1, 0, 2, 1, 0))),
    "pad with value": (lambda x: sigma.pad(x, [(0, 0), (2, 2), (0, 1)], value=-1.5),
                       lambda x: torch.nn.functional.pad(x, (0, 1, 2, 2, 0, 0), value=-1.5)),
}


@pytest.mark.parametrize("name", list(SHAPE_CASES))
def test_shape_ops(device, rng, name):
    check(*SHAPE_CASES[name], rng.standard_normal((2, 3, 4)), device=device)


def test_expand_size_one_axes(device, rng):
    check(lambda x: x.expand(3, 4, 5), lambda x: x.expand(3, 4, 5), rng.standard_normal((3, 1, 5)), device=device)
    check(lambda x: sigma.broadcast_to(x, (2, 3, 4)), lambda x: x.expand(2, 3, 4), rng.standard_normal((4,)),
          device=device)


@pytest.mark.parametrize("axis", [0, 1, -1, -3])
def test_concat(device, rng, axis):
    shapes = [[2, 3, 4], [2, 3, 4], [2, 3, 4]]
    for shape, size in zip(shapes, (1, 3, 2)):
        shape[axis] = size
    arrays = [rng.standard_normal(shape) for shape in shapes]
    check(lambda *xs: sigma.concat(xs, axis=axis), lambda *xs: torch.cat(xs, dim=axis), *arrays, device=device)
    check(lambda a, *rest: a.concat(rest, axis=axis), lambda *xs: torch.cat(xs, dim=axis), *arrays, device=device)


def test_concat_with_a_constant_input(device, rng):
    a = rng.standard_normal((2, 3))
    constant = rng.standard_normal((1, 3))
    check(lambda x: sigma.concat([x, sigma.tensor(constant.astype(x.dtype), device=device), x], axis=0),
          lambda x: torch.cat([x, torch.tensor(constant).to(x.dtype), x], dim=0), a, device=device)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_stack(device, rng, axis):
    arrays = [rng.standard_normal((2, 3)) for _ in range(3)]
    check(lambda *xs: sigma.stack(xs, axis=axis), lambda *xs: torch.stack(xs, dim=axis), *arrays, device=device)


@pytest.mark.parametrize("sections,axis", [(2, 0), (3, 1), (2, -1), ([1, 3], 1), ([3, 1, 0], -2), ([4], 1)])
def test_split(device, rng, sections, axis):
    x = rng.standard_normal((5, 4, 3))
    check(lambda t: sigma.split(t, sections, axis=axis), lambda t: torch.split(t, sections, dim=axis), x,
          device=device)
    pieces = sigma.split(sigma.tensor(x, device=device), sections, axis=axis)
    np.testing.assert_array_equal(np.concatenate([p.numpy() for p in pieces], axis=axis), x)


def test_split_pieces_used_twice_accumulate(device, rng):
    x = rng.standard_normal((6, 2))
    check(lambda t: [piece * (i + 1.0) for i, piece in enumerate(t.split(2))] + [t.split(3)[1]],
          lambda t: [piece * (i + 1.0) for i, piece in enumerate(t.split(2))] + [t.split(3)[1]], x, device=device)


def _torch_index(index):
    if isinstance(index, tuple):
        return tuple(_torch_index(i) for i in index)
    if isinstance(index, np.ndarray):
        return torch.tensor(index)
    return index


INDICES = {
    "int": 1,
    "negative int": -1,
    "slice": slice(1, 3),
    "strided slices": (slice(None), slice(None, None, 2)),
    "ellipsis": (Ellipsis, 1),
    "new axis": (None, 0),
    "mixed basic": (-1, None, slice(0, 3)),
    "int array with repeats": np.array([0, 2, 0, 0]),
    "negative int array": np.array([-1, 0, -1]),
    "2-d int array": np.array([[0, 1], [1, 1]]),
    "list with repeats": [2, 2, 1],
    "array on axis 1": (slice(None), np.array([1, 1, 0, 3])),
    "paired arrays": (np.array([0, 2, 2]), np.array([3, 3, 1])),
    "array, slice, array": (np.array([1, 1]), slice(None), np.array([0, 0])),
    "bool mask": np.array([True, False, True]),
}


@pytest.mark.parametrize("name", list(INDICES))
def test_indexing_forward_and_scatter_add_backward(device, rng, name):
    index = INDICES[name]
    x = rng.standard_normal((3, 4, 2)) if name == "array, slice, array" else rng.standard_normal((3, 4))
    check(lambda t: t[index], lambda t: t[_torch_index(index)], x, device=device)


def test_negative_steps_flip(device, rng):
    x = rng.standard_normal((3, 4))
    # torch has no negative steps; flipping both axes and taking every other column is the same selection
    check(lambda t: t[::-1, ::-2], lambda t: torch.flip(t, (0, 1))[:, ::2], x, device=device)


def test_indexing_with_a_boolean_tensor_mask(device, rng):
    x = rng.standard_normal((3, 4))
    check(lambda t: t[t > 0], lambda t: t[t > 0], x, device=device)


def test_indexing_with_an_integer_tensor(device, rng):
    x = rng.standard_normal((4, 3))
    index = np.array([3, 0, 3])
    check(lambda t: t[sigma.tensor(index, device=device)], lambda t: t[torch.tensor(index)], x, device=device)


def test_repeated_indices_accumulate(device):
    x = sigma.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    assert x.grad.tolist() == [3.0, 0.0, 1.0]
    w = sigma.tensor(np.ones((3, 2)), device=device, requires_grad=True)
    w[np.array([[1, 1], [1, 2]])].sum().backward()
    assert w.grad.tolist() == [[0.0, 0.0], [3.0, 3.0], [1.0, 1.0]]


@pytest.mark.parametrize("index", [np.array([0, 2, 0, 1, 0]), (np.array([0, 0]), np.array([1, 1])),
                                   (slice(None), np.array([2, 2]))], ids=["rows", "pairs", "columns"])
def test_index_add(device, rng, index):
    shape = (3, 4)
    values_shape = np.zeros(shape)[index].shape
    values = rng.standard_normal(values_shape)

    def theirs(v):
        torch_index = _torch_index(index if isinstance(index, tuple) else (index,))
        if isinstance(index, tuple) and isinstance(index[0], slice):
            torch_index = (torch.arange(3).reshape(3, 1), torch.tensor(index[1]).reshape(1, 2))
        return torch.zeros(shape, dtype=v.dtype).index_put(torch_index, v, accumulate=True)

    check(lambda v: sigma.index_add(shape, index, v), theirs, values, device=device)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_with_repeated_indices(device, rng, axis):
    x = rng.standard_normal((3, 4))
    index_shape = (5, 4) if axis == 0 else (3, 6)
    index = rng.integers(0, x.shape[axis], size=index_shape)
    index[0, 0] = index[1, 0] = index[0, 1] = 0  # make repeats certain
    check(lambda t: sigma.gather(t, sigma.tensor(index, device=device), axis=axis),
          lambda t: torch.gather(t, axis, torch.tensor(index)), x, device=device)
    check(lambda t: t.gather(index, axis), lambda t: torch.gather(t, axis, torch.tensor(index)), x, device=device)


def test_gather_in_three_dimensions(device, rng):
    x = rng.standard_normal((2, 3, 4))
    index = rng.integers(0, 3, size=(2, 5, 4))
    check(lambda t: sigma.gather(t, index, axis=1), lambda t: torch.gather(t, 1, torch.tensor(index)), x,
          device=device)
