"""Recurrent layers with real recurrence: RNN, LSTM, GRU, and their single-step cells.

Each layer and direction runs its time loop as one primitive
(:mod:`sigma.nn.recurrence`), with backpropagation through time written out;
the cells are the same step as tensor operations. Gate layout and parameter
names are PyTorch's (``weight_ih_l0`` is ``[W_ii | W_if | W_ig | W_io]`` for
an LSTM, ``[W_ir | W_iz | W_in]`` for a GRU), so weights move between the
two unchanged.

The equations are in :mod:`sigma.nn.recurrence`.
"""
from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Tuple, Union

from sigma.nn import init
from sigma.nn import recurrence
from sigma.nn.layers._parameters import check_positive_int, new_parameter
from sigma.nn.module import Module
from sigma.ops import concat, dropout, stack
from sigma.tensor import Tensor

State = Union[Tensor, Tuple[Tensor, Tensor]]


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

    def _kind(self) -> str:
        raise NotImplementedError

    def _weights(self, k: int, suffix: str) -> tuple:
        d = self.__dict__
        return (d[f"weight_ih_l{k}{suffix}"], d[f"weight_hh_l{k}{suffix}"], d.get(f"bias_ih_l{k}{suffix}"),
                d.get(f"bias_hh_l{k}{suffix}"))

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
        if not batched:
            sequence = input.unsqueeze(1)
            initial = [tuple(part.unsqueeze(0) for part in parts) for parts in initial]
        elif self.batch_first:
            sequence = input.transpose(0, 1)
        else:
            sequence = input

        kind, hidden, directions = self._kind(), self.hidden_size, len(self._suffixes())
        finals = []
        for k in range(self.num_layers):
            outputs = []
            for d, suffix in enumerate(self._suffixes()):
                packed = recurrence.run(kind, sequence, initial[k * directions + d], *self._weights(k, suffix),
                                        reverse=d == 1)
                outputs.append(packed[..., :hidden] if self.state_count == 2 else packed)
                last = packed[0] if d == 1 else packed[steps - 1]
                finals.append((last[:, :hidden], last[:, hidden:]) if self.state_count == 2 else (last,))
            sequence = concat(outputs, axis=-1) if directions == 2 else outputs[0]
            if self.dropout > 0.0 and self.training and k < self.num_layers - 1:
                sequence = dropout(sequence, self.dropout, True)

        final = tuple(stack([f[i] for f in finals], axis=0) for i in range(self.state_count))
        if not batched:
            sequence = sequence.squeeze(1)
            final = tuple(f.squeeze(1) for f in final)
        elif self.batch_first:
            sequence = sequence.transpose(0, 1)
        return sequence, (final[0] if self.state_count == 1 else final)

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

    def _kind(self) -> str:
        return f"rnn_{self.nonlinearity}"

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

    def _kind(self) -> str:
        return "lstm"


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

    def _kind(self) -> str:
        return "gru"


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

    def _step(self, x, state, w_ih, w_hh, b_ih, b_hh) -> tuple:
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
        out = self._step(input, parts, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
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

    def _step(self, x, state, w_ih, w_hh, b_ih, b_hh):
        return recurrence.rnn_step(x, state, w_ih, w_hh, b_ih, b_hh, self.nonlinearity)


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

    def _step(self, x, state, w_ih, w_hh, b_ih, b_hh):
        return recurrence.lstm_step(x, state, w_ih, w_hh, b_ih, b_hh)


class GRUCell(_Cell):
    """One step of :class:`GRU`: ``h' = cell(x, h)``.

    Example:
        >>> import sigma
        >>> from sigma import nn
        >>> nn.GRUCell(3, 5)(sigma.zeros(4, 3)).shape
        (4, 5)
    """

    gate_count = 3

    def _step(self, x, state, w_ih, w_hh, b_ih, b_hh):
        return recurrence.gru_step(x, state, w_ih, w_hh, b_ih, b_hh)
