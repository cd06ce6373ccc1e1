"""The character (or subword) language model: embedding, the shared recurrent stack, a linear
head over the vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..cells import Recurrent, RecurrentConfig, State


@dataclass
class LanguageModelConfig:
    vocab_size: int
    cell: str = "lstm"
    hidden_size: int = 256
    num_layers: int = 2
    embedding_size: int | None = None  # None: the same as hidden_size
    dropout: float = 0.0


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

    @torch.no_grad()
    def step(self, token: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One generation step: token ids (B,) -> next-token logits (B, V) and the new state."""
        h, state = self.recurrent.step(self.embedding(token), state)
        return self.head(h), state
