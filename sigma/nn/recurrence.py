"""The time loop of RNN, LSTM and GRU layers as one primitive per layer and direction.

Unrolled into tensor operations, an LSTM step is about fifteen recorded
operations forward and as many backward, so a 50-step sequence costs
thousands of Python-level calls. ``Recurrence`` runs the loop on raw arrays
instead: the input projection of all steps is one matrix product, each step
is a handful of array calls, and backpropagation through time is written
out (the gate derivatives below), finishing with one matrix product per
weight over all steps.

Its output packs every step's state, shape (T, B, S*H): ``h_t`` in the first
``H`` columns and, for the LSTM, ``c_t`` in the next ``H``; the layer slices
outputs and final states from it.

When a graph of the gradient is requested (``create_graph=True``), backward
re-runs the same recurrence as tensor operations (the ``*_step`` functions
below, also used by the cells) and differentiates that, so higher
derivatives are exact.

Step equations (``s`` the logistic sigmoid, ``*`` elementwise), with PyTorch's
gate order:

* RNN: ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``.
* LSTM: ``[i, f, g, o] = [s, s, tanh, s](x W_ih^T + b_ih + h W_hh^T + b_hh)``,
  ``c' = f * c + i * g``, ``h' = o * tanh(c')``.
* GRU: ``[r, z] = s(x W_i[rz]^T + b_i[rz] + h W_h[rz]^T + b_h[rz])``,
  ``n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))``, ``h' = n + z * (h - n)``.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

from sigma.autograd.engine import grad as autograd_grad
from sigma.autograd.function import Function
from sigma.autograd.grad_mode import grad_mode
from sigma.ops import concat, relu, sigmoid, stack, tanh
from sigma.tensor import Tensor

GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
STATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 2, "gru": 1}


# -- one step as tensor operations (cells, and the differentiable backward) ---------------

def rnn_step(x: Tensor, state: tuple, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor],
             nonlinearity: str = "tanh") -> tuple:
    h, = state
    pre = x @ w_ih.T + h @ w_hh.T
    if b_ih is not None:
        pre = pre + (b_ih + b_hh)
    return (tanh(pre) if nonlinearity == "tanh" else relu(pre),)


def lstm_step(x: Tensor, state: tuple, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor],
              b_hh: Optional[Tensor]) -> tuple:
    h, c = state
    hidden = h.shape[-1]
    gates = x @ w_ih.T + h @ w_hh.T
    if b_ih is not None:
        gates = gates + (b_ih + b_hh)
    squashed = sigmoid(gates)
    i = squashed[..., :hidden]
    f = squashed[..., hidden:2 * hidden]
    o = squashed[..., 3 * hidden:]
    g = tanh(gates[..., 2 * hidden:3 * hidden])
    c = f * c + i * g
    return o * tanh(c), c


def gru_step(x: Tensor, state: tuple, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor],
             b_hh: Optional[Tensor]) -> tuple:
    h, = state
    hidden = h.shape[-1]
    from_input = x @ w_ih.T
    from_hidden = h @ w_hh.T
    if b_ih is not None:
        from_input = from_input + b_ih
        from_hidden = from_hidden + b_hh
    reset_update = sigmoid(from_input[..., :2 * hidden] + from_hidden[..., :2 * hidden])
    r = reset_update[..., :hidden]
    z = reset_update[..., hidden:]
    n = tanh(from_input[..., 2 * hidden:] + r * from_hidden[..., 2 * hidden:])
    return (n + z * (h - n),)


def step_function(kind: str):
    if kind == "lstm":
        return lstm_step
    if kind == "gru":
        return gru_step
    nonlinearity = "tanh" if kind == "rnn_tanh" else "relu"
    return lambda x, state, w_ih, w_hh, b_ih, b_hh: rnn_step(x, state, w_ih, w_hh, b_ih, b_hh, nonlinearity)


def _sigmoid(xp, x):
    # 1/(1+exp(-x)) written with tanh: no overflow for large |x|
    out = xp.tanh(x * 0.5)
    out += 1.0
    out *= 0.5
    return out


# -- the primitive ----------------------------------------------------------------------

class Recurrence(Function):
    """Inputs ``(x, h0[, c0], w_ih, w_hh[, b_ih, b_hh])``; ``x`` is (T, B, I). Output (T, B, S*H)."""

    __slots__ = ("kind", "reverse", "has_bias", "activations", "extra", "out")

    def forward(self, x, *rest, kind: str, reverse: bool, has_bias: bool):
        self.kind, self.reverse, self.has_bias = kind, reverse, has_bias
        xp = _xp(x)
        states = STATES[kind]
        initial = rest[:states]
        w_ih, w_hh = rest[states], rest[states + 1]
        b_ih, b_hh = (rest[states + 2], rest[states + 3]) if has_bias else (None, None)
        steps, batch, _ = x.shape
        hidden = w_hh.shape[1]
        rows = w_ih.shape[0]
        # the input half of every step's pre-activation, in one product
        projected = (x.reshape(steps * batch, -1) @ w_ih.T).reshape(steps, batch, rows)
        if has_bias:
            projected += b_ih if kind == "gru" else (b_ih + b_hh)
        out = xp.empty((steps, batch, states * hidden), dtype=x.dtype)
        activations = xp.empty((steps, batch, rows), dtype=x.dtype)
        extra = xp.empty((steps, batch, hidden), dtype=x.dtype) if kind == "gru" else None
        w_hh_t = w_hh.T
        h = initial[0]
        c = initial[1] if kind == "lstm" else None
        for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
            pre = projected[t]
            if kind == "lstm":
                pre += h @ w_hh_t
                act = activations[t]
                act[...] = _sigmoid(xp, pre)
                act[:, 2 * hidden:3 * hidden] = xp.tanh(pre[:, 2 * hidden:3 * hidden])
                i, f, g, o = (act[:, k * hidden:(k + 1) * hidden] for k in range(4))
                c = f * c + i * g
                h = o * xp.tanh(c)
                out[t, :, hidden:] = c
            elif kind == "gru":
                from_hidden = h @ w_hh_t
                if has_bias:
                    from_hidden += b_hh
                act = activations[t]
                act[:, :2 * hidden] = _sigmoid(xp, pre[:, :2 * hidden] + from_hidden[:, :2 * hidden])
                r, z = act[:, :hidden], act[:, hidden:2 * hidden]
                extra[t] = from_hidden[:, 2 * hidden:]
                n = act[:, 2 * hidden:]
                n[...] = xp.tanh(pre[:, 2 * hidden:] + r * extra[t])
                h = n + z * (h - n)
            else:
                pre += h @ w_hh_t
                h = xp.tanh(pre) if kind == "rnn_tanh" else xp.maximum(pre, 0)
            out[t, :, :hidden] = h
        self.activations, self.extra, self.out = activations, extra, out
        return out

    def backward(self, grad):
        if grad_mode.enabled:
            return self._backward_differentiable(grad)
        kind, states = self.kind, STATES[self.kind]
        inputs = self.inputs
        x = inputs[0].data
        xp = _xp(x)
        initial = [t.data for t in inputs[1:1 + states]]
        w_ih, w_hh = inputs[1 + states].data, inputs[2 + states].data
        g = grad.data
        steps, batch, _ = x.shape
        hidden = w_hh.shape[1]
        out, activations, extra = self.out, self.activations, self.extra
        d_projected = xp.empty_like(activations)              # gradient of the input half, every step
        d_hidden_part = xp.empty_like(activations) if kind == "gru" else d_projected
        previous_h = xp.empty((steps, batch, hidden), dtype=x.dtype)
        dh_next = xp.zeros((batch, hidden), dtype=x.dtype)
        dc_next = xp.zeros((batch, hidden), dtype=x.dtype) if kind == "lstm" else None
        order = range(steps) if self.reverse else range(steps - 1, -1, -1)  # reversed processing order
        for t in order:
            before = t + 1 if self.reverse else t - 1
            first = before < 0 or before >= steps
            h_prev = initial[0] if first else out[before, :, :hidden]
            previous_h[t] = h_prev
            dh = g[t, :, :hidden] + dh_next
            if kind == "lstm":
                c_prev = initial[1] if first else out[before, :, hidden:]
                act = activations[t]
                i, f, gg, o = (act[:, k * hidden:(k + 1) * hidden] for k in range(4))
                tanh_c = xp.tanh(out[t, :, hidden:])
                dc = g[t, :, hidden:] + dc_next + dh * o * (1.0 - tanh_c * tanh_c)
                d = d_projected[t]
                d[:, :hidden] = dc * gg * i * (1.0 - i)
                d[:, hidden:2 * hidden] = dc * c_prev * f * (1.0 - f)
                d[:, 2 * hidden:3 * hidden] = dc * i * (1.0 - gg * gg)
                d[:, 3 * hidden:] = dh * tanh_c * o * (1.0 - o)
                dc_next = dc * f
                dh_next = d @ w_hh
            elif kind == "gru":
                act = activations[t]
                r, z, n = act[:, :hidden], act[:, hidden:2 * hidden], act[:, 2 * hidden:]
                d_pre_n = dh * (1.0 - z) * (1.0 - n * n)
                d_r = d_pre_n * extra[t]
                d = d_projected[t]
                d[:, :hidden] = d_r * r * (1.0 - r)
                d[:, hidden:2 * hidden] = dh * (h_prev - n) * z * (1.0 - z)
                d[:, 2 * hidden:] = d_pre_n
                dhid = d_hidden_part[t]
                dhid[:, :2 * hidden] = d[:, :2 * hidden]
                dhid[:, 2 * hidden:] = d_pre_n * r
                dh_next = dh * z + dhid @ w_hh
            else:
                h = out[t, :, :hidden]
                d = d_projected[t]
                d[...] = dh * (1.0 - h * h) if kind == "rnn_tanh" else dh * (h > 0)
                dh_next = d @ w_hh
        flat_d = d_projected.reshape(steps * batch, -1)
        flat_hidden = d_hidden_part.reshape(steps * batch, -1)
        gradients: List[Optional[Tensor]] = []
        like = inputs[0]
        gradients.append(_wrap((flat_d @ w_ih).reshape(x.shape), like) if inputs[0].requires_grad else None)
        gradients.append(_wrap(dh_next, like) if inputs[1].requires_grad else None)
        if kind == "lstm":
            gradients.append(_wrap(dc_next, like) if inputs[2].requires_grad else None)
        w_ih_t, w_hh_t = inputs[1 + states], inputs[2 + states]
        gradients.append(_wrap(flat_d.T @ x.reshape(steps * batch, -1), like) if w_ih_t.requires_grad else None)
        gradients.append(_wrap(flat_hidden.T @ previous_h.reshape(steps * batch, hidden), like)
                         if w_hh_t.requires_grad else None)
        if self.has_bias:
            b_ih, b_hh = inputs[3 + states], inputs[4 + states]
            gradients.append(_wrap(flat_d.sum(axis=0), like) if b_ih.requires_grad else None)
            gradients.append(_wrap(flat_hidden.sum(axis=0), like) if b_hh.requires_grad else None)
        return tuple(gradients)

    def _backward_differentiable(self, grad):
        """Differentiate the same recurrence written with tensor operations (for create_graph).

        The inputs are made leaves for the duration of the inner gradient
        call, so it stops at them instead of walking (and differentiating)
        everything upstream; the gradient graph it records still refers to
        the input tensors themselves, so it stays connected once their
        creators are restored.
        """
        inputs = self.inputs
        wanted = [t for t in inputs if t.requires_grad]
        creators = {id(t): (t, t._node) for t in inputs if t._node is not None}
        for t, _ in creators.values():
            t._node = None
        try:
            packed = unrolled(inputs, self.kind, self.reverse, self.has_bias)
            found = autograd_grad([packed], wanted, [grad], create_graph=True, allow_unused=True)
        finally:
            for t, node in creators.values():
                t._node = node
        by_id = {id(t): g for t, g in zip(wanted, found)}
        return tuple(by_id.get(id(t)) for t in inputs)


def unrolled(inputs, kind: str, reverse: bool, has_bias: bool) -> Tensor:
    """The recurrence as a graph of tensor operations; the same packed (T, B, S*H) result."""
    states = STATES[kind]
    x = inputs[0]
    state = tuple(inputs[1:1 + states])
    w_ih, w_hh = inputs[1 + states], inputs[2 + states]
    b_ih, b_hh = (inputs[3 + states], inputs[4 + states]) if has_bias else (None, None)
    step = step_function(kind)
    steps = x.shape[0]
    packed = [None] * steps
    for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
        state = step(x[t], state, w_ih, w_hh, b_ih, b_hh)
        packed[t] = concat(list(state), axis=-1) if states == 2 else state[0]
    return stack(packed, axis=0)


def run(kind: str, x: Tensor, initial: Tuple[Tensor, ...], w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor],
        b_hh: Optional[Tensor], reverse: bool) -> Tensor:
    """Apply :class:`Recurrence`; ``x`` (T, B, I), each initial state (B, H); returns (T, B, S*H)."""
    inputs = [x, *initial, w_ih, w_hh] + ([b_ih, b_hh] if b_ih is not None else [])
    dtypes = {t.dtype for t in inputs}
    if len(dtypes) != 1:
        raise TypeError(f"{kind}: the input ({x.dtype}), initial state ({initial[0].dtype}) and weights "
                        f"({w_ih.dtype}) must share one dtype; convert the input or call .to(dtype=...) on the layer")
    return Recurrence.apply(*inputs, kind=kind, reverse=reverse, has_bias=b_ih is not None)


def _xp(array):
    import backends
    return backends.for_array(array).xp


def _wrap(array, like: Tensor) -> Tensor:
    return Tensor._make(array, like.backend, False, None)
