"""The character (or subword) language model: embedding, one of the shared sequence layers (a
recurrent stack from cells.py, or the WaveNet stack from wavenet.py read as a stream), a linear
head over the vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..cells import CELL_TYPES, MAX_HIDDEN_SIZE, Recurrent, RecurrentConfig, State, check_recurrent_options
from ..errors import UsageError
from ..wavenet import WaveNet, WaveNetConfig, check_wavenet_options

CELLS = (*CELL_TYPES, "wavenet")
RECURRENT_LAYERS = 2
# Dilations 1, 2, ..., 128: each prediction reads the last 256 tokens, some nine lines of tinyshakespeare.
# The recurrent default of 2 would give a WaveNet 4 characters, less than a word.
WAVENET_LAYERS = 8


@dataclass
class LanguageModelConfig:
    vocab_size: int
    cell: str = "lstm"  # a recurrent cell (cells.CELL_TYPES) or "wavenet"
    hidden_size: int = 256  # a recurrent layer's units, or the WaveNet's channels
    num_layers: int | None = None  # recurrent layers, or the WaveNet's dilated layers; None: the cell's default
    embedding_size: int | None = None  # None: the same as hidden_size
    dropout: float = 0.0

    def __post_init__(self):
        if self.cell not in CELLS:
            raise UsageError(f"unknown --cell {self.cell!r}; choose one of {', '.join(CELLS)}")
        if self.num_layers is None:  # settled here, so a checkpoint stores the number
            self.num_layers = WAVENET_LAYERS if self.cell == "wavenet" else RECURRENT_LAYERS
        if self.cell != "wavenet":
            check_recurrent_options(self.cell, self.hidden_size, self.num_layers, self.dropout, self.embedding_size)
            return
        check_wavenet_options(self.hidden_size, self.num_layers, 1, self.dropout)
        if self.embedding_size is not None and not 1 <= self.embedding_size <= MAX_HIDDEN_SIZE:
            raise UsageError(f"--embedding-size must be between 1 and {MAX_HIDDEN_SIZE:,}, not {self.embedding_size:,}")

    @classmethod
    def check_options(cls, options: dict) -> None:
        """Check model options before the corpus is read (the vocabulary sets the one size left;
        dropout may still be None, to be chosen)."""
        cls(**{"vocab_size": 1, **options, "dropout": options.get("dropout") or 0.0})

    def wavenet_config(self) -> WaveNetConfig:
        # One stack of kernel-2 layers, so --num-layers alone sets the receptive field. A second
        # stack (dilations 1..128 twice) doubles a step's cost for a receptive field of 511, which
        # 9 layers reach for 1/8 more; whether its extra depth pays for itself was not measured.
        return WaveNetConfig(input_size=self.embedding_size or self.hidden_size, channels=self.hidden_size,
                             layers_per_stack=self.num_layers, stacks=1, dropout=self.dropout)

    @property
    def receptive_field(self) -> int | None:
        """The tokens one prediction reads, itself included: a WaveNet's receptive field; None
        for a recurrent cell, whose state carries everything before it in the stream."""
        return self.wavenet_config().receptive_field if self.cell == "wavenet" else None


class LanguageModel(nn.Module):
    """Predicts the next token at every position. forward(x, state, targets) returns
    (logits, state, loss); loss is None without targets."""

    task = "language_model"

    def __init__(self, config: LanguageModelConfig):
        super().__init__()
        self.config = config
        embedding_size = config.embedding_size or config.hidden_size
        self.embedding = nn.Embedding(config.vocab_size, embedding_size)
        # One of the two attributes, by the cell: their names are the checkpoints' weight names.
        if config.cell == "wavenet":
            self.wavenet = WaveNet(config.wavenet_config())
        else:
            self.recurrent = Recurrent(
                RecurrentConfig(
                    cell=config.cell,
                    input_size=embedding_size,
                    hidden_size=config.hidden_size,
                    num_layers=config.num_layers,
                    dropout=config.dropout,
                )
            )
        # Dropout on the embedding output and before the head as well as between layers
        # (Zaremba et al. 2014): with only between-layer dropout a 2-layer model overfits
        # tinyshakespeare within a few epochs.
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    @property
    def body(self) -> Recurrent | WaveNet:
        """The sequence layer; both have init_state(batch, device) and forward(x, state) -> (out, state)."""
        return self.wavenet if self.config.cell == "wavenet" else self.recurrent

    def init_state(self, batch_size: int, device: torch.device | None = None) -> State:
        return self.body.init_state(batch_size, device)

    def forward(
        self, x: torch.Tensor, state: State | None = None, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State, torch.Tensor | None]:
        emb = self.dropout(self.embedding(x))  # (B, T, E)
        out, state = self.body(emb, state)  # (B, T, H)
        logits = self.head(self.dropout(out))  # (B, T, V)
        loss = None
        if targets is not None:
            # The loss in fp32 even under autocast: a bf16 log-softmax loses the small
            # differences between good models.
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))
        return logits, state, loss

    def stepper(self) -> LanguageModelStepper:
        """A fast one-token-at-a-time runner for generation over a snapshot of the weights."""
        return LanguageModelStepper(self)


class LanguageModelStepper:
    """step(token (B,), layer_states) -> (next-token logits (B, V), layer_states), for generation.
    Built from a snapshot of the model's weights (see cells.Stepper and wavenet.WaveNetStepper for why);
    convert a State to layer_states with split_state and back with join_state."""

    def __init__(self, model: LanguageModel):
        with torch.no_grad():
            self.body = model.body.stepper(input_table=model.embedding.weight)
            self.head_weight = model.head.weight.detach().clone()  # (V, H)
            self.head_bias = model.head.bias.detach().clone()
        self.split_state = self.body.split_state
        self.join_state = self.body.join_state

    def step(self, token: torch.Tensor, layer_states: list) -> tuple[torch.Tensor, list]:
        h, layer_states = self.body.step(token, layer_states)
        return F.linear(h, self.head_weight, self.head_bias), layer_states
