"""The character (or subword) language model: embedding, the shared recurrent stack, a linear
head over the vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..cells import Recurrent, RecurrentConfig, State, check_recurrent_options


@dataclass
class LanguageModelConfig:
    vocab_size: int
    cell: str = "lstm"
    hidden_size: int = 256
    num_layers: int = 2
    embedding_size: int | None = None  # None: the same as hidden_size
    dropout: float = 0.0

    def __post_init__(self):
        check_recurrent_options(self.cell, self.hidden_size, self.num_layers, self.dropout, self.embedding_size)

    @classmethod
    def check_options(cls, options: dict) -> None:
        """Check model options before the corpus is read (the vocabulary sets the one size left;
        dropout may still be None, to be chosen)."""
        cls(**{"vocab_size": 1, **options, "dropout": options.get("dropout") or 0.0})


class LanguageModel(nn.Module):
    """Predicts the next token at every position. forward(x, state, targets) returns
    (logits, state, loss); loss is None without targets."""

    task = "language_model"

    def __init__(self, config: LanguageModelConfig):
        super().__init__()
        self.config = config
        embedding_size = config.embedding_size or config.hidden_size
        self.embedding = nn.Embedding(config.vocab_size, embedding_size)
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

    def init_state(self, batch_size: int, device: torch.device | None = None) -> State:
        return self.recurrent.init_state(batch_size, device)

    def forward(
        self, x: torch.Tensor, state: State | None = None, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State, torch.Tensor | None]:
        emb = self.dropout(self.embedding(x))  # (B, T, E)
        out, state = self.recurrent(emb, state)  # (B, T, H)
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
    Built from a snapshot of the model's weights (see cells.Stepper for why); convert a State to
    layer_states with split_state and back with join_state."""

    def __init__(self, model: LanguageModel):
        with torch.no_grad():
            self.recurrent = model.recurrent.stepper(input_table=model.embedding.weight)
            self.head_weight = model.head.weight.detach().clone()  # (V, H)
            self.head_bias = model.head.bias.detach().clone()
        self.split_state = self.recurrent.split_state
        self.join_state = self.recurrent.join_state

    def step(self, token: torch.Tensor, layer_states: list) -> tuple[torch.Tensor, list]:
        h, layer_states = self.recurrent.step(token, layer_states)
        return F.linear(h, self.head_weight, self.head_bias), layer_states
