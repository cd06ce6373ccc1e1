"""The shared WaveNet stack (van den Oord et al., 2016): causal dilated 1-D convolutions with gated
activations and residual and skip connections, the convolutional family beside cells.py's
recurrent one, with its state explicit like theirs, and a fast one-step runner for generation.
The forecaster and the language model both build on it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .cells import State
from .errors import UsageError

MAX_CHANNELS = 4096
MAX_DILATION_LAYERS = 16  # a stack's dilations go up to 2**15: a receptive field of 32,768 steps


@dataclass
class WaveNetConfig:
    input_size: int
    channels: int = 64
    kernel_size: int = 2
    layers_per_stack: int = 6  # dilations 1, 2, 4, ... 2**(layers_per_stack - 1)
    stacks: int = 1  # the dilation cycle repeated this many times
    dropout: float = 0.0

    def __post_init__(self):
        check_wavenet_options(self.channels, self.layers_per_stack, self.stacks, self.dropout, self.kernel_size)

    @property
    def dilations(self) -> list[int]:
        return [2**i for i in range(self.layers_per_stack)] * self.stacks

    @property
    def receptive_field(self) -> int:
        """How many steps of input one output sees: itself and (kernel_size - 1) * dilation more
        for each layer."""
        return 1 + (self.kernel_size - 1) * sum(self.dilations)


def check_wavenet_options(channels: int, layers_per_stack: int, stacks: int, dropout: float | None,
                          kernel_size: int = 2) -> None:
    """A WaveNet's options, checked the same way from the CLI and from Python (see
    cells.check_recurrent_options)."""
    if not 1 <= channels <= MAX_CHANNELS:
        raise UsageError(f"--hidden-size (a WaveNet's channels) must be between 1 and {MAX_CHANNELS:,}, not {channels:,}")
    if not 1 <= layers_per_stack <= MAX_DILATION_LAYERS:
        raise UsageError(f"a WaveNet stack has 1 to {MAX_DILATION_LAYERS} dilated layers, not {layers_per_stack}")
    if not 1 <= stacks <= 8:
        raise UsageError(f"a WaveNet has 1 to 8 stacks, not {stacks}")
    if not 2 <= kernel_size <= 8:
        raise UsageError(f"a WaveNet's kernel size is 2 to 8, not {kernel_size}")
    if dropout is not None and not 0.0 <= dropout < 1.0:
        raise UsageError(f"--dropout must be in [0, 1), not {dropout}")


class GatedResidualLayer(nn.Module):
    """One dilated layer: a causal convolution whose two halves gate each other (tanh x sigmoid),
    then 1x1 convolutions to the residual path (added to the input) and to the skip path.

    Written as matrix products over (B, T, C), not nn.Conv1d: a kernel-2 dilated convolution is
    one product of the taps side by side, [W_0 W_1] @ [x_(t-d); x_t], and the residual and skip
    1x1 convolutions are one product of their stacked weights. On the CPU in fp32 Conv1d's
    backward pass took half of a language model's step (oneDNN's convolution path, for inputs
    this small); the same arithmetic as GEMMs runs at the speed of a linear layer."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        self.kernel_size, self.dilation = kernel_size, dilation
        self.left_pad = (kernel_size - 1) * dilation  # the steps before t that output t reads
        self.dilated = nn.Linear(kernel_size * channels, 2 * channels)  # taps oldest first
        self.residual_skip = nn.Linear(channels, 2 * channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, before: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, T, C) and the layer's inputs before it, before (left_pad, B, C): the residual
        output (B, T, C), the skip output (B, T, C) and the inputs the next window needs."""
        T = x.shape[1]
        # A state carried from a bf16 run into an fp32 one (a resume with another --precision) takes
        # the dtype of this run's activations, as Recurrent's does.
        seen = torch.cat([before.to(x.dtype).transpose(0, 1), x], dim=1)  # (B, left_pad + T, C)
        taps = torch.cat([seen[:, i * self.dilation : i * self.dilation + T] for i in range(self.kernel_size)], dim=-1)
        filter_part, gate_part = self.dilated(taps).chunk(2, dim=-1)  # (B, T, C) each
        z = self.dropout(torch.tanh(filter_part) * torch.sigmoid(gate_part))
        residual, skip = self.residual_skip(z).chunk(2, dim=-1)
        # A copy, not a view: a view would keep the whole window alive (and save it in a checkpoint).
        after = seen[:, seen.shape[1] - self.left_pad :].transpose(0, 1).contiguous()
        return x + residual, skip, after


class WaveNet(nn.Module):
    """(B, T, input_size) -> (B, T, channels), with its state explicit like cells.Recurrent's:
    forward(x, state) -> (output, state), so that a stream read window by window (truncated
    backpropagation, long primes, generation a token at a time) gives the outputs of one pass over
    all of it. Causal: output t depends on inputs t - R + 1 .. t only, R being
    config.receptive_field.

    The state is, for each layer, its last inputs: the (kernel_size - 1) * dilation steps its
    convolution reaches back to, (steps, B, C), time first so that batch is dim 1 as in every
    State. Carrying each layer's own inputs, rather than the last R - 1 inputs to run the stack
    over again, costs nothing: a window of 64 tokens would otherwise run the stack over 319
    positions (R = 256), five times the work. None (the start of a stream) is zeros: the steps
    before a sequence count as zeros."""

    def __init__(self, config: WaveNetConfig):
        super().__init__()
        self.config = config
        self.input = nn.Linear(config.input_size, config.channels)  # the paper's input 1x1 convolution
        self.layers = nn.ModuleList(GatedResidualLayer(config.channels, config.kernel_size, d, config.dropout)
                                    for d in config.dilations)
        self.output = nn.Linear(config.channels, config.channels)

    @property
    def output_size(self) -> int:
        return self.config.channels

    def init_state(self, batch_size: int, device: torch.device | None = None) -> State:
        device = device or self.input.weight.device
        return tuple(torch.zeros(layer.left_pad, batch_size, self.config.channels, device=device) for layer in self.layers)

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        if state is None:
            state = self.init_state(x.shape[0], x.device)
        h = self.input(x)  # (B, T, C)
        skips = 0
        new_state = []
        for layer, before in zip(self.layers, state):
            h, skip, after = layer(h, before)
            skips = skips + skip
            new_state.append(after)
        # The skips' sum is what the output reads (each layer contributes its own scale of detail);
        # the ReLUs are the paper's.
        return self.output(F.relu(skips)).relu(), tuple(new_state)  # (B, T, C)

    def stepper(self, input_table: torch.Tensor | None = None) -> WaveNetStepper:
        """A single-step runner over a snapshot of the current weights (see WaveNetStepper)."""
        return WaveNetStepper(self, input_table)


class WaveNetStepper:
    """Advances a WaveNet one step at a time, for generation, with cells.Stepper's interface:
    step(x, layer_states) -> (output (B, C), layer_states), where layer_states is the State itself
    (split_state and join_state return it as it is).

    The fast-WaveNet cache (Paine et al., 2016): a step computes one position per layer, not the
    whole receptive field, reading the older taps from the layer's state (its last inputs; see
    WaveNet), over a snapshot of the weights (a copy outside autograd, as cells.Stepper's). When
    input_table (V, input_size) is given (an embedding matrix), step takes token ids, and the input
    layer is precomputed for every token: a step reads one row. The snapshot goes stale if the
    weights change: make a new stepper after training."""

    def __init__(self, net: WaveNet, input_table: torch.Tensor | None = None):
        with torch.no_grad():
            w_in, b_in = net.input.weight.detach().clone(), net.input.bias.detach().clone()  # (C, E)
            self.input_table = None if input_table is None else F.linear(input_table, w_in, b_in)  # (V, C)
            self.input_weight, self.input_bias = w_in, b_in
            # per layer: dilation, taps weight (2C, k * C) and bias, residual+skip weight (2C, C) and bias
            self.layers = [(layer.dilation, layer.dilated.weight.detach().clone(), layer.dilated.bias.detach().clone(),
                            layer.residual_skip.weight.detach().clone(), layer.residual_skip.bias.detach().clone())
                           for layer in net.layers]
            self.output_weight = net.output.weight.detach().clone()
            self.output_bias = net.output.bias.detach().clone()

    @staticmethod
    def split_state(state: State) -> State:
        return state

    @staticmethod
    def join_state(state: State) -> State:
        return state

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """x: (B, input_size), or token ids (B,) when built with an input_table."""
        h = self.input_table[x] if self.input_table is not None else F.linear(x, self.input_weight, self.input_bias)  # (B, C)
        B = h.shape[0]
        skips = 0
        new_state = []
        for (dilation, taps, bias, out_weight, out_bias), before in zip(self.layers, state):
            # before holds steps t - (k-1)d .. t - 1: the taps are every d-th of them, then x_t.
            seen = torch.cat([before[::dilation], h[None]]).transpose(0, 1).reshape(B, -1)  # (B, k * C)
            filter_part, gate_part = F.linear(seen, taps, bias).chunk(2, dim=-1)
            residual, skip = F.linear(torch.tanh(filter_part) * torch.sigmoid(gate_part), out_weight, out_bias).chunk(2, dim=-1)
            new_state.append(torch.cat([before[1:], h[None]]))  # the layer's input, one step on
            h = h + residual
            skips = skips + skip
        return F.linear(F.relu(skips), self.output_weight, self.output_bias).relu(), tuple(new_state)
