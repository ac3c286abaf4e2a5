"""Reverse-mode differentiation over the recorded graph.

The graph is implicit: every non-leaf tensor points at the :class:`Function`
that made it, and that function at its input tensors. ``backward`` sorts the
tensors reachable from the outputs topologically, then walks them in reverse,
calling each function's ``backward`` once with the sum of its output's
gradients.
"""
from __future__ import annotations

import functools
from typing import Iterable, List, Optional, Sequence

from sigma.autograd.grad_mode import grad_mode

_FREED = ("backward: the graph was already freed by an earlier backward(); "
          "call backward(retain_graph=True) the first time if you need to go through it twice")


def _key(tensor) -> int:
    """Who a gradient belongs to: a non-leaf tensor's creator (a graph may hold several tensor objects for one
    result, see :meth:`Function.link`), a leaf itself."""
    node = tensor._node
    return id(tensor) if node is None else id(node)


def _topological_order(roots: Sequence) -> List:
    """Tensors with a creator, each after all tensors that consume it."""
    order = []
    seen = set()
    for root in roots:
        if root._node is None or _key(root) in seen:
            continue
        if root._node.inputs is None:
            raise RuntimeError(_FREED)
        seen.add(_key(root))
        stack = [(root, iter(root._node.inputs))]
        while stack:
            tensor, parents = stack[-1]
            for parent in parents:
                node = parent._node
                if node is not None and parent.requires_grad and id(node) not in seen:
                    if node.inputs is None:
                        raise RuntimeError(_FREED)
                    seen.add(id(node))
                    stack.append((parent, iter(node.inputs)))
                    break
            else:
                stack.pop()
                order.append(tensor)
    return order


def _seed_gradient(output, grad):
    Tensor = _tensor_class()
    if grad is None:
        if output.data.size != 1:
            raise RuntimeError(
                f"backward: the output has shape {output.shape}, not a single value; "
                "pass a gradient of that shape, e.g. y.backward(sigma.ones_like(y)), or reduce it first (y.sum())")
        return Tensor._make(output.backend.xp.ones(output.data.shape, dtype=output.data.dtype),
                            output.backend, False, None)
    if not isinstance(grad, Tensor):
        grad = Tensor(grad, dtype=output.dtype, device=output.backend)
    if grad.shape != output.shape:
        raise ValueError(f"backward: gradient of shape {grad.shape} given for an output of shape {output.shape}")
    return grad


@functools.lru_cache(maxsize=None)
def _tensor_class():
    # sigma.tensor imports this module, so the class is fetched on first use.
    from sigma.tensor import Tensor
    return Tensor


def run_backward(outputs: Sequence, grads: Sequence, retain_graph: bool = False,
                 create_graph: bool = False, inputs: Optional[Sequence] = None,
                 allow_unused: bool = False):
    """Propagate gradients from ``outputs``.

    With ``inputs=None`` gradients accumulate into the ``.grad`` of leaf
    tensors. Otherwise the gradients of ``inputs`` are returned and no
    ``.grad`` is touched (this is ``sigma.autograd.grad``).
    """
    for output in outputs:
        if not output.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph "
                               "(was it made under no_grad, or from tensors without requires_grad=True?)")
    seeds = [_seed_gradient(o, g) for o, g in zip(outputs, grads)]
    order = _topological_order(outputs)

    grad_of = {}
    for output, seed in zip(outputs, seeds):
        key = _key(output)
        grad_of[key] = grad_of[key] + seed if key in grad_of else seed
    # Keys are taken now: backward frees the nodes they are made from.
    input_keys = None if inputs is None else [_key(t) for t in inputs]
    wanted = None if inputs is None else set(input_keys)
    captured = {}
    given_to_leaves = {_owner(g.data) for g, given in zip(seeds, grads) if given is not None}

    previous_mode = grad_mode.enabled
    grad_mode.enabled = create_graph
    try:
        # Leaves that are themselves outputs (y = x; y.backward()) get the seed.
        for output in outputs:
            if output._node is None and id(output) in grad_of:
                _deliver(output, grad_of.pop(id(output)), wanted, captured, given_to_leaves)
        for tensor in reversed(order):
            key = _key(tensor)
            grad = grad_of.pop(key, None)
            if grad is None:
                continue
            if wanted is not None and key in wanted:
                captured[key] = grad
            node = tensor._node
            input_grads = node.backward(grad)
            if type(input_grads) is not tuple:
                input_grads = (input_grads,)
            for parent, parent_grad in zip(node.inputs, input_grads):
                if parent_grad is None or not parent.requires_grad:
                    continue
                if parent._node is None:
                    _deliver(parent, parent_grad, wanted, captured, given_to_leaves)
                else:
                    parent_key = id(parent._node)
                    if parent_key in grad_of:
                        grad_of[parent_key] = grad_of[parent_key] + parent_grad
                    else:
                        grad_of[parent_key] = parent_grad
            if not retain_graph:
                node.inputs = None
                tensor._node = _FreedNode
    finally:
        grad_mode.enabled = previous_mode

    if inputs is None:
        return None
    results = []
    for key in input_keys:
        g = captured.get(key)
        if g is None and not allow_unused:
            raise RuntimeError("grad: one of the inputs was not used to compute the outputs "
                               "(pass allow_unused=True to get None for it)")
        results.append(g)
    return tuple(results)


def _deliver(leaf, grad, wanted, captured, given_to_leaves) -> None:
    if wanted is not None:
        if id(leaf) in wanted:
            key = id(leaf)
            captured[key] = captured[key] + grad if key in captured else grad
        return
    if grad.data.dtype != leaf.data.dtype:
        grad = grad.astype(leaf.data.dtype)  # a float32 leaf keeps float32 gradients
    if leaf.grad is None:
        # Several leaves may receive one buffer (both sides of an add, views of
        # it through reshape or expand, the caller's own gradient), and numpy's
        # broadcast views are read-only: copy so that an optimiser may update
        # each .grad in place without touching anything else.
        owner = _owner(grad.data)
        if owner in given_to_leaves or not getattr(getattr(grad.data, "flags", None), "writeable", True):
            grad = grad.clone()
            owner = _owner(grad.data)
        given_to_leaves.add(owner)
        leaf.grad = grad if grad_mode.enabled else grad.detach()
    else:
        leaf.grad = leaf.grad + grad


def _owner(array) -> int:
    """Identity of the buffer behind an array (views share their base's)."""
    base = getattr(array, "base", None)
    while base is not None:
        array, base = base, getattr(base, "base", None)
    return id(array)


class _FreedNodeType:
    """Stands in for a creator whose graph was freed, so a second backward
    fails with a plain message instead of silently doing nothing."""

    __slots__ = ()
    inputs = None

    def backward(self, grad):  # pragma: no cover - never reached, order checks first
        raise RuntimeError(_FREED)

    def __repr__(self) -> str:
        return "<freed>"


_FreedNode = _FreedNodeType()


def grad(outputs, inputs, grad_outputs=None, retain_graph: Optional[bool] = None,
         create_graph: bool = False, allow_unused: bool = False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned as a tuple.

    Like ``torch.autograd.grad``: ``.grad`` attributes are left alone, and
    ``create_graph=True`` records the gradient computation so that it can be
    differentiated again.

    Example:
        >>> import sigma
        >>> x = sigma.tensor(3.0, requires_grad=True)
        >>> (dy,) = sigma.autograd.grad(x ** 3, [x], create_graph=True)
        >>> (d2y,) = sigma.autograd.grad(dy, [x])
        >>> dy.item(), d2y.item()
        (27.0, 18.0)
    """
    single_output = not isinstance(outputs, (list, tuple))
    outputs = [outputs] if single_output else list(outputs)
    if not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs]
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError("grad: an input does not require grad; create it with requires_grad=True")
    if retain_graph is None:
        retain_graph = create_graph
    return run_backward(outputs, grad_outputs, retain_graph=retain_graph, create_graph=create_graph,
                        inputs=list(inputs), allow_unused=allow_unused)
