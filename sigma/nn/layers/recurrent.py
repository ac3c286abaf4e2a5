"""Recurrent layers with real recurrence: RNN, LSTM, GRU, and their single-step cells.

The layers loop over time in ``forward``, so the graph is the unrolled
network and backpropagation through time is ordinary ``backward``. Gate
layout and parameter names are PyTorch's (``weight_ih_l0`` is
``[W_ii | W_if | W_ig | W_io]`` for an LSTM, ``[W_ir | W_iz | W_in]`` for a
GRU), so weights move between the two unchanged.

Equations (``*`` elementwise, ``s`` the logistic sigmoid):

* RNN: ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``, act = tanh or relu.
* LSTM (Hochreiter & Schmidhuber 1997, with forget gate): ``i, f, g, o`` =
  ``s, s, tanh, s`` of the four slices of ``x W_ih^T + b_ih + h W_hh^T + b_hh``;
  ``c' = f * c + i * g``, ``h' = o * tanh(c')``.
* GRU (Cho et al. 2014): ``r, z = s(...)``, ``n = tanh(x W_in^T + b_in + r *
  (h W_hn^T + b_hn))``, ``h' = (1 - z) * n + z * h``.
"""
from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Tuple, Union

from sigma.nn import init
from sigma.nn.layers._parameters import check_positive_int, new_parameter
from sigma.nn.module import Module
from sigma.ops import concat, dropout, relu, sigmoid, stack, tanh
from sigma.tensor import Tensor

State = Union[Tensor, Tuple[Tensor, Tensor]]


class _Weights:
    """One layer-direction's weights, transposed once per forward rather than once per step."""

    __slots__ = ("w_ih_t", "w_hh_t", "b_ih", "b_hh", "bias")

    def __init__(self, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor],
                 combine_biases: bool):
        self.w_ih_t, self.w_hh_t = w_ih.T, w_hh.T
        self.b_ih, self.b_hh = b_ih, b_hh
        self.bias = (b_ih + b_hh) if combine_biases and b_ih is not None else None


def _rnn_step(x: Tensor, state: tuple, w: _Weights, nonlinearity: str) -> tuple:
    h, = state
    pre = x @ w.w_ih_t + h @ w.w_hh_t
    if w.bias is not None:
        pre = pre + w.bias
    return (tanh(pre) if nonlinearity == "tanh" else relu(pre),)


def _lstm_step(x: Tensor, state: tuple, w: _Weights) -> tuple:
    h, c = state
    hidden = h.shape[-1]
    gates = x @ w.w_ih_t + h @ w.w_hh_t
    if w.bias is not None:
        gates = gates + w.bias
    squashed = sigmoid(gates)
    i = squashed[..., :hidden]
    f = squashed[..., hidden:2 * hidden]
    o = squashed[..., 3 * hidden:]
    g = tanh(gates[..., 2 * hidden:3 * hidden])
    c = f * c + i * g
    return o * tanh(c), c


def _gru_step(x: Tensor, state: tuple, w: _Weights) -> tuple:
    h, = state
    hidden = h.shape[-1]
    from_input = x @ w.w_ih_t
    from_hidden = h @ w.w_hh_t
    if w.b_ih is not None:
        from_input = from_input + w.b_ih
        from_hidden = from_hidden + w.b_hh
    reset_update = sigmoid(from_input[..., :2 * hidden] + from_hidden[..., :2 * hidden])
    r = reset_update[..., :hidden]
    z = reset_update[..., hidden:]
    n = tanh(from_input[..., 2 * hidden:] + r * from_hidden[..., 2 * hidden:])
    return (n + z * (h - n),)


class _Recurrent(Module):
    gate_count = 1
    state_count = 1  # tensors in the state: 1 (h), or 2 for the LSTM (h, c)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Any = None, dtype: Any = None):
        super().__init__()
        layer = type(self).__name__
        self.input_size = check_positive_int(layer, "input_size", input_size)
        self.hidden_size = check_positive_int(layer, "hidden_size", hidden_size)
        self.num_layers = check_positive_int(layer, "num_layers", num_layers)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{layer}: dropout must be a probability in [0, 1], got {dropout!r}")
        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), float(dropout)
        self.bidirectional = bool(bidirectional)
        directions = 2 if bidirectional else 1
        rows = self.gate_count * hidden_size
        for k in range(num_layers):
            layer_input = input_size if k == 0 else hidden_size * directions
            for suffix in self._suffixes():
                setattr(self, f"weight_ih_l{k}{suffix}", new_parameter((rows, layer_input), dtype, device))
                setattr(self, f"weight_hh_l{k}{suffix}", new_parameter((rows, hidden_size), dtype, device))
                if bias:
                    setattr(self, f"bias_ih_l{k}{suffix}", new_parameter((rows,), dtype, device))
                    setattr(self, f"bias_hh_l{k}{suffix}", new_parameter((rows,), dtype, device))
        self.reset_parameters()

    def _suffixes(self) -> Sequence[str]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def reset_parameters(self) -> None:
        """PyTorch's default: every weight and bias uniform in +-1/sqrt(hidden_size)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        fill = init.uniform(-bound, bound)
        for parameter in self.parameters():
            fill(parameter)

    def _step(self, x: Tensor, state: tuple, weights: _Weights) -> tuple:
        raise NotImplementedError

    def _weights(self, k: int, suffix: str) -> _Weights:
        d = self.__dict__
        return _Weights(d[f"weight_ih_l{k}{suffix}"], d[f"weight_hh_l{k}{suffix}"],
                        d.get(f"bias_ih_l{k}{suffix}"), d.get(f"bias_hh_l{k}{suffix}"),
                        combine_biases=self.gate_count != 3)

    def _initial_states(self, state: Optional[State], batch: Optional[int], like: Tensor) -> List[tuple]:
        """The initial state of every layer-direction, as a list of tuples of (B, H) tensors."""
        layer = type(self).__name__
        count = self.num_layers * (2 if self.bidirectional else 1)
        expected = (count, batch, self.hidden_size) if batch is not None else (count, self.hidden_size)
        if state is None:
            shape = expected[1:]
            zero = Tensor._make(like.backend.xp.zeros(shape, dtype=like.dtype), like.backend, False, None)
            return [(zero,) * self.state_count] * count
        parts = (state,) if self.state_count == 1 else state
        if self.state_count == 2 and (not isinstance(state, (tuple, list)) or len(state) != 2):
            raise TypeError(f"{layer}: the initial state must be a pair (h0, c0), got {type(state).__name__}")
        for name, part in zip(("h0", "c0"), parts):
            if not isinstance(part, Tensor):
                raise TypeError(f"{layer}: {name} must be a Tensor, got {type(part).__name__}")
            if part.shape != expected:
                raise ValueError(f"{layer}: {name} must have shape {expected} (layers*directions, batch, hidden), "
                                 f"got {part.shape}")
        return [tuple(part[i] for part in parts) for i in range(count)]

    def forward(self, input: Tensor, state: Optional[State] = None) -> Tuple[Tensor, State]:
        """Run the whole sequence; returns ``(outputs, final_state)``.

        ``input`` is (T, B, input_size), or (B, T, input_size) with
        ``batch_first``, or unbatched (T, input_size). ``outputs`` holds the
        last layer's hidden state at every step, (T, B, directions*hidden)
        (batch-first if the input was); ``final_state`` is ``h_n`` (or
        ``(h_n, c_n)`` for the LSTM), each (layers*directions, B, hidden).
        """
        layer = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{layer}: input must be a Tensor, got {type(input).__name__}")
        if input.ndim not in (2, 3) or input.shape[-1] != self.input_size:
            raise ValueError(f"{layer}: input must be (T, B, {self.input_size}) (or (B, T, {self.input_size}) with "
                             f"batch_first, or (T, {self.input_size}) unbatched), got shape {input.shape}")
        batched = input.ndim == 3
        time_axis = 1 if batched and self.batch_first else 0
        steps = input.shape[time_axis]
        if steps == 0:
            raise ValueError(f"{layer}: the input sequence is empty (shape {input.shape})")
        batch = input.shape[1 - time_axis] if batched else None
        initial = self._initial_states(state, batch, input)
        if time_axis == 0:
            sequence = [input[t] for t in range(steps)]
        else:
            sequence = [input[:, t] for t in range(steps)]

        finals = []
        for k in range(self.num_layers):
            per_direction = []
            for d, suffix in enumerate(self._suffixes()):
                weights = self._weights(k, suffix)
                state_now = initial[k * len(self._suffixes()) + d]
                order = range(steps) if d == 0 else range(steps - 1, -1, -1)
                outputs = [None] * steps
                for t in order:
                    state_now = self._step(sequence[t], state_now, weights)
                    outputs[t] = state_now[0]
                per_direction.append(outputs)
                finals.append(state_now)
            if len(per_direction) == 2:
                sequence = [concat([a, b], axis=-1) for a, b in zip(*per_direction)]
            else:
                sequence = per_direction[0]
            if self.dropout > 0.0 and self.training and k < self.num_layers - 1:
                sequence = [dropout(s, self.dropout, True) for s in sequence]

        output = stack(sequence, axis=time_axis)
        final = tuple(stack([f[i] for f in finals], axis=0) for i in range(self.state_count))
        return output, (final[0] if self.state_count == 1 else final)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if not self.bias:
            text += ", bias=False"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        return text


class RNN(_Recurrent):
    """Elman recurrent network, ``nonlinearity`` ``"tanh"`` (default) or ``"relu"``.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> rnn = nn.RNN(3, 5, num_layers=2, batch_first=True)
        >>> outputs, h_n = rnn(sigma.zeros(4, 7, 3))     # batch 4, 7 steps
        >>> outputs.shape, h_n.shape
        ((4, 7, 5), (2, 4, 5))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Any = None, dtype: Any = None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device, dtype)

    def _step(self, x, state, weights):
        return _rnn_step(x, state, weights, self.nonlinearity)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")


class LSTM(_Recurrent):
    """Long short-term memory; the state is ``(h, c)``.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> lstm = nn.LSTM(3, 5)
        >>> outputs, (h_n, c_n) = lstm(sigma.zeros(7, 4, 3))   # 7 steps, batch 4
        >>> outputs.shape, h_n.shape, c_n.shape, lstm.weight_ih_l0.shape
        ((7, 4, 5), (1, 4, 5), (1, 4, 5), (20, 3))
    """

    gate_count = 4
    state_count = 2

    def _step(self, x, state, weights):
        return _lstm_step(x, state, weights)


class GRU(_Recurrent):
    """Gated recurrent unit.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> gru = nn.GRU(3, 5, bidirectional=True)
        >>> outputs, h_n = gru(sigma.zeros(7, 4, 3))
        >>> outputs.shape, h_n.shape
        ((7, 4, 10), (2, 4, 5))
    """

    gate_count = 3

    def _step(self, x, state, weights):
        return _gru_step(x, state, weights)


# -- single steps ----------------------------------------------------------------------

class _Cell(Module):
    gate_count = 1
    state_count = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None, dtype: Any = None):
        super().__init__()
        layer = type(self).__name__
        self.input_size = check_positive_int(layer, "input_size", input_size)
        self.hidden_size = check_positive_int(layer, "hidden_size", hidden_size)
        rows = self.gate_count * hidden_size
        self.weight_ih = new_parameter((rows, input_size), dtype, device)
        self.weight_hh = new_parameter((rows, hidden_size), dtype, device)
        self.bias_ih = new_parameter((rows,), dtype, device) if bias else None
        self.bias_hh = new_parameter((rows,), dtype, device) if bias else None
        bound = 1.0 / math.sqrt(hidden_size)
        fill = init.uniform(-bound, bound)
        for parameter in self.parameters():
            fill(parameter)

    def _step(self, x, state, weights):
        raise NotImplementedError

    def forward(self, input: Tensor, state: Optional[State] = None) -> State:
        layer = type(self).__name__
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(f"{layer}: input must be (B, {self.input_size}) or ({self.input_size},), "
                             f"got shape {input.shape}")
        expected = input.shape[:-1] + (self.hidden_size,)
        if state is None:
            zero = Tensor._make(input.backend.xp.zeros(expected, dtype=input.dtype), input.backend, False, None)
            parts = (zero,) * self.state_count
        else:
            parts = (state,) if self.state_count == 1 else tuple(state)
            if len(parts) != self.state_count:
                raise TypeError(f"{layer}: the state must be a pair (h, c), got {len(parts)} tensors")
            for part in parts:
                if part.shape != expected:
                    raise ValueError(f"{layer}: state tensors must have shape {expected}, got {part.shape}")
        weights = _Weights(self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh,
                           combine_biases=self.gate_count != 3)
        out = self._step(input, parts, weights)
        return out[0] if self.state_count == 1 else out

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias_ih is not None else ", bias=False")


class RNNCell(_Cell):
    """One step of :class:`RNN`: ``h' = cell(x, h)`` (``h`` defaults to zeros).

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> nn.RNNCell(3, 5)(sigma.zeros(4, 3)).shape
        (4, 5)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device: Any = None, dtype: Any = None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def _step(self, x, state, weights):
        return _rnn_step(x, state, weights, self.nonlinearity)


class LSTMCell(_Cell):
    """One step of :class:`LSTM`: ``(h', c') = cell(x, (h, c))``.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> h, c = nn.LSTMCell(3, 5)(sigma.zeros(4, 3))
        >>> h.shape, c.shape
        ((4, 5), (4, 5))
    """

    gate_count = 4
    state_count = 2

    def _step(self, x, state, weights):
        return _lstm_step(x, state, weights)


class GRUCell(_Cell):
    """One step of :class:`GRU`: ``h' = cell(x, h)``.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> nn.GRUCell(3, 5)(sigma.zeros(4, 3)).shape
        (4, 5)
    """

    gate_count = 3

    def _step(self, x, state, weights):
        return _gru_step(x, state, weights)
