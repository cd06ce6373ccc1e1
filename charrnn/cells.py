"""The shared recurrent layers (vanilla RNN, LSTM, GRU; stacked; bidirectional) that every task
builds on, running on torch's fused kernels, plus readable reference cells that spell out the gate
equations so tests can check the fused kernels against them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .errors import UsageError

CELL_TYPES = ("rnn", "lstm", "gru")

# State is always a tuple of tensors, each (num_layers * num_directions, B, H): (h,) for the
# RNN and GRU, (h, c) for the LSTM. One shape for every cell keeps callers free of isinstance.
State = tuple[torch.Tensor, ...]


@dataclass
class RecurrentConfig:
    cell: str = "lstm"
    input_size: int = 256
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.0  # between stacked layers, as in nn.LSTM
    bidirectional: bool = False

    def __post_init__(self):
        check_recurrent_options(self.cell, self.hidden_size, self.num_layers, self.dropout, self.input_size)


# Far beyond a small model, and refused before torch is asked for the memory: one LSTM layer of
# this width has 2 G parameters (8 GB in fp32, before gradients and optimiser state).
MAX_HIDDEN_SIZE = 16384
MAX_LAYERS = 64


def check_recurrent_options(cell: str, hidden_size: int, num_layers: int, dropout: float | None,
                            embedding_size: int | None = None) -> None:
    """The options every recurrent model has, checked by each model's config, so that a bad one
    is the same one-line UsageError from the CLI and from Python. dropout None: chosen later;
    embedding_size None: the model has none of its own (or takes the hidden size)."""
    if cell not in CELL_TYPES:
        raise UsageError(f"unknown --cell {cell!r}; choose one of {', '.join(CELL_TYPES)}")
    if hidden_size < 1 or num_layers < 1:
        raise UsageError(f"--hidden-size and the number of layers must be at least 1, not {hidden_size} and {num_layers}")
    if hidden_size > MAX_HIDDEN_SIZE or num_layers > MAX_LAYERS:
        raise UsageError(f"--hidden-size goes up to {MAX_HIDDEN_SIZE:,} and the number of layers up to {MAX_LAYERS}, "
                         f"not {hidden_size:,} and {num_layers}")
    if embedding_size is not None and not 1 <= embedding_size <= MAX_HIDDEN_SIZE:
        raise UsageError(f"--embedding-size must be between 1 and {MAX_HIDDEN_SIZE:,}, not {embedding_size:,}")
    if dropout is not None and not 0.0 <= dropout < 1.0:
        raise UsageError(f"--dropout must be in [0, 1), not {dropout}")


def _fused_class(cell: str) -> type[nn.RNNBase]:
    return {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]


class Recurrent(nn.Module):
    """A stack of recurrent layers on the fused kernel (cuDNN on CUDA, oneDNN on the CPU).

    Input is batch-first (B, T, input_size); output is (B, T, hidden_size * num_directions).
    State goes in and comes out explicitly, so callers carry it across truncated-BPTT windows
    or decoder steps themselves.
    """

    def __init__(self, config: RecurrentConfig):
        super().__init__()
        self.config = config
        kwargs = dict(
            input_size=config.input_size,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=config.bidirectional,
            batch_first=True,
        )
        if config.cell == "rnn":
            kwargs["nonlinearity"] = "tanh"
        self.rnn = _fused_class(config.cell)(**kwargs)

    @property
    def num_directions(self) -> int:
        return 2 if self.config.bidirectional else 1

    @property
    def output_size(self) -> int:
        return self.config.hidden_size * self.num_directions

    def init_state(self, batch_size: int, device: torch.device | None = None) -> State:
        """Zeros for every layer and direction: the state at the start of a sequence."""
        device = device or self.rnn.weight_hh_l0.device
        shape = (self.config.num_layers * self.num_directions, batch_size, self.config.hidden_size)
        parts = 2 if self.config.cell == "lstm" else 1
        return tuple(torch.zeros(shape, device=device) for _ in range(parts))

    def flatten_parameters(self) -> None:
        """Re-pack the weights into cuDNN's contiguous buffer. Needed after loading weights or
        moving the module; without it cuDNN warns and copies the weights on every call."""
        self.rnn.flatten_parameters()

    def forward(
        self,
        x: torch.Tensor,
        state: State | None = None,
        lengths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, State]:
        """Run the whole sequence through the fused kernel.

        lengths (B,), when given, marks the real length of each padded row: the rows are packed so
        that padding never reaches the recurrence, the state returned is the one after each row's
        last real token, and output positions past a row's length are zero.
        """
        hx = None
        if state is not None:
            # The kernels want the state in the input's dtype: a state carried from a bf16 run
            # (autocast returns bf16 states) into an fp32 one, as when a run is resumed with another
            # --precision, would make them fail. Under autocast the kernel casts it back, so the
            # values are the same. cuDNN also refuses a strided state (a slice of the streams).
            # Both are free where the state already is so.
            state = tuple(part.to(x.dtype).contiguous() for part in state)
            hx = state if self.config.cell == "lstm" else state[0]
        if lengths is None:
            out, hx = self.rnn(x, hx)  # (B, T, H * D)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, hx = self.rnn(packed, hx)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        new_state = hx if isinstance(hx, tuple) else (hx,)
        return out, new_state

    def stepper(self, input_table: torch.Tensor | None = None) -> Stepper:
        """A single-step runner over a snapshot of the current weights (see Stepper)."""
        return Stepper(self, input_table)


# torch's single-step cells: one call runs a layer's two products and all of its gate arithmetic
# in C++, where a dozen separate tensor calls from Python each pay the interpreter's cost.
_CELL_STEPS = {"rnn": torch.rnn_tanh_cell, "lstm": torch.lstm_cell, "gru": torch.gru_cell}


class Stepper:
    """Advances a unidirectional Recurrent one time step at a time, for generation.

    At batch 1 a step's arithmetic is small and its cost is mostly the price of each call:
    calling the fused sequence kernel for one step spends far more on set-up than on the
    products. So each layer's step is one call of torch's cell function (torch.lstm_cell and its
    siblings) over a snapshot of the weights. When input_table (V, input_size) is given (an
    embedding matrix), step takes token ids. On the CPU, layer 0's input projection is then
    precomputed for every token, bias included: its cell gets a zero-width input and the token's
    row of that table as its input bias, so a step reads one row instead of multiplying by the
    input weights. CUDA's fused cell kernels take only a 1-D bias, so there a step looks the
    token's embedding up and the cell multiplies as usual (the product is cheap on a GPU). The
    snapshot goes stale if the weights change: make a new stepper after training.
    """

    def __init__(self, layer: Recurrent, input_table: torch.Tensor | None = None):
        cfg = layer.config
        if cfg.bidirectional:
            raise ValueError("a bidirectional layer cannot be run one step at a time")
        self.cell = cfg.cell
        self._cell_step = _CELL_STEPS[cfg.cell]
        self.input_table = None  # (V, gates) when layer 0 reads its input projection from a table
        self.embedding = None  # (V, input_size) when step looks token ids up and projects them
        self.layers = []  # per layer: [w_ih, w_hh, b_ih, b_hh], torch's gate order
        with torch.no_grad():
            for k in range(cfg.num_layers):
                weights = [getattr(layer.rnn, f"{name}_l{k}").detach().clone()
                           for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                if k == 0 and input_table is not None and input_table.device.type == "cpu":
                    self.input_table = F.linear(input_table, weights[0], weights[2])  # (V, gates)
                    weights[0] = weights[0].new_empty(weights[0].shape[0], 0)  # (gates, 0)
                elif k == 0 and input_table is not None:
                    self.embedding = input_table.detach().clone()
                self.layers.append(weights)
        self._no_input: dict[int, torch.Tensor] = {}  # zero-width inputs by batch size

    @staticmethod
    def split_state(state: State) -> list:
        """State (parts stacked over layers) -> the per-layer form step uses: (h, c) for an LSTM
        layer, h for the others. Indexing and re-stacking every step would cost more than a
        layer's arithmetic."""
        if len(state) == 2:
            return [(state[0][k], state[1][k]) for k in range(state[0].shape[0])]
        return [state[0][k] for k in range(state[0].shape[0])]

    @staticmethod
    def join_state(layer_states: list) -> State:
        if isinstance(layer_states[0], tuple):
            return tuple(torch.stack(parts) for parts in zip(*layer_states))
        return (torch.stack(layer_states),)

    def step(self, x: torch.Tensor, layer_states: list) -> tuple[torch.Tensor, list]:
        """One step: x is (B, input_size), or token ids (B,) when built with an input_table;
        layer_states comes from split_state. Returns the top layer's output (B, H) and the new
        layer states."""
        new_states = []
        if self.embedding is not None:
            x = self.embedding[x]  # (B, input_size)
        for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(self.layers):
            if k == 0 and self.input_table is not None:
                b_ih = self.input_table[x]  # (B, gates): the token's input projection
                x = self._no_input.get(b_ih.shape[0])
                if x is None:
                    x = self._no_input[b_ih.shape[0]] = b_ih.new_empty(b_ih.shape[0], 0)
            state = self._cell_step(x, layer_states[k], w_ih, w_hh, b_ih, b_hh)
            new_states.append(state)
            x = state[0] if isinstance(state, tuple) else state  # dropout between layers is for training only
        return x, new_states


# ----------------------------------------------------------------------------------------------
# Reference cells: the gate equations written out, one time step at a time. They are slow on
# purpose (a Python loop over time) and exist only to show what the fused kernels compute.


def reference_rnn_cell(x, h, w_ih, w_hh, b_ih, b_hh):
    """h' = tanh(W_ih x + b_ih + W_hh h + b_hh)"""
    return (torch.tanh(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh),)


def reference_lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """Gates in torch's order (input, forget, cell, output):
    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)
    f = sigmoid(W_if x + b_if + W_hf h + b_hf)
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)
    o = sigmoid(W_io x + b_io + W_ho h + b_ho)
    c' = f * c + i * g
    h' = o * tanh(c')
    """
    gates = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    i, f, g, o = gates.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c_new = f * c + i * g
    h_new = o * torch.tanh(c_new)
    return h_new, c_new


def reference_gru_cell(x, h, w_ih, w_hh, b_ih, b_hh):
    """Gates in torch's order (reset, update, new):
    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h
    """
    x_r, x_z, x_n = (x @ w_ih.T + b_ih).chunk(3, dim=-1)
    h_r, h_z, h_n = (h @ w_hh.T + b_hh).chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return ((1 - z) * n + z * h,)


_REFERENCE_CELLS = {"rnn": reference_rnn_cell, "lstm": reference_lstm_cell, "gru": reference_gru_cell}


def reference_forward(layer: Recurrent, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
    """What Recurrent.forward computes (in eval mode), written as explicit loops over layers,
    directions and time steps using the reference cells and the layer's own weights."""
    cfg = layer.config
    cell = _REFERENCE_CELLS[cfg.cell]
    B, T, _ = x.shape
    if state is None:
        state = layer.init_state(B, x.device)
    directions = layer.num_directions
    final_parts: list[list[torch.Tensor]] = [[] for _ in state]
    layer_input = x
    for k in range(cfg.num_layers):
        direction_outputs = []
        for d in range(directions):
            suffix = f"l{k}" + ("_reverse" if d == 1 else "")
            weights = [getattr(layer.rnn, f"{name}_{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            index = k * directions + d
            carried = tuple(part[index] for part in state)
            steps = range(T - 1, -1, -1) if d == 1 else range(T)
            outputs = [None] * T
            for t in steps:
                carried = cell(layer_input[:, t], *carried, *weights)
                outputs[t] = carried[0]
            direction_outputs.append(torch.stack(outputs, dim=1))  # (B, T, H)
            for parts, value in zip(final_parts, carried):
                parts.append(value)
        layer_input = torch.cat(direction_outputs, dim=-1)  # (B, T, H * D)
    return layer_input, tuple(torch.stack(parts) for parts in final_parts)
