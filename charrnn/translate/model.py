"""The sequence-to-sequence translator: a bidirectional recurrent encoder and a recurrent decoder
with attention (Luong-style: attention over the encoder states after the decoder's recurrence),
on the shared layers."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..cells import Recurrent, RecurrentConfig, State, check_recurrent_options
from ..errors import UsageError

ATTENTION_TYPES = ("multiplicative", "additive", "none")


@dataclass
class TranslatorConfig:
    source_vocab_size: int
    target_vocab_size: int
    cell: str = "gru"
    embedding_size: int = 256
    hidden_size: int = 256  # the decoder's; each encoder direction has half, so the two halves join to it
    encoder_layers: int = 2
    decoder_layers: int = 2
    attention: str = "additive"  # measured against multiplicative by BLEU on dev (README)
    dropout: float = 0.2
    # The output layer reuses the target embedding matrix (Press and Wolf, 2017): fewer
    # parameters to learn and to update every step. Needs embedding_size == hidden_size.
    tie_embeddings: bool = False
    label_smoothing: float = 0.1  # of the training loss only; evaluation scores plain cross-entropy
    pad_id: int = 0  # the same id pads source and target sequences

    def __post_init__(self):
        for layers in (self.encoder_layers, self.decoder_layers):
            check_recurrent_options(self.cell, self.hidden_size, layers, self.dropout, self.embedding_size)
        if self.attention not in ATTENTION_TYPES:
            raise UsageError(f"unknown --attention {self.attention!r}; choose one of {', '.join(ATTENTION_TYPES)}")
        if self.hidden_size % 2:
            raise UsageError(f"--hidden-size must be even (the encoder's two directions share it), not {self.hidden_size}")
        if self.tie_embeddings and self.embedding_size != self.hidden_size:
            raise UsageError("--tie-embeddings needs --embedding-size equal to --hidden-size "
                             f"({self.embedding_size} != {self.hidden_size})")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UsageError(f"--label-smoothing must be in [0, 1), not {self.label_smoothing}")

    @classmethod
    def check_options(cls, options: dict) -> None:
        """Check model options before the pairs are read (the vocabularies set the sizes left)."""
        cls(**{"source_vocab_size": 1, "target_vocab_size": 1, **options})


@dataclass
class EncoderOutput:
    memory: torch.Tensor  # (B, S, H): the encoder's state at every source position
    mask: torch.Tensor  # (B, S): True at real source tokens, False at padding
    state: State  # the decoder's initial state, (decoder_layers, B, H) per part


class Attention(nn.Module):
    """Scores every source position for every decoder position, masked so padding gets no weight.

    multiplicative: score(q, k) = q . W k (Luong's "general"); additive: v . tanh(W_q q + W_k k)
    (Bahdanau's form). The keys' projection is computed once per sentence (project_memory)."""

    def __init__(self, kind: str, hidden_size: int):
        super().__init__()
        self.kind = kind
        if kind == "multiplicative":
            self.key = nn.Linear(hidden_size, hidden_size, bias=False)
        else:
            self.key = nn.Linear(hidden_size, hidden_size, bias=False)
            self.query = nn.Linear(hidden_size, hidden_size, bias=True)
            self.score = nn.Linear(hidden_size, 1, bias=False)

    def project_memory(self, memory: torch.Tensor) -> torch.Tensor:
        return self.key(memory)  # (B, S, H)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor):
        """query (B, T, H), keys/memory (B, S, H), mask (B, S) -> context (B, T, H), weights (B, T, S)."""
        if self.kind == "multiplicative":
            scores = torch.bmm(query, keys.transpose(1, 2))  # (B, T, S)
        else:
            hidden = torch.tanh(self.query(query).unsqueeze(2) + keys.unsqueeze(1))  # (B, T, S, H)
            scores = self.score(hidden).squeeze(-1)  # (B, T, S)
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores.float(), dim=-1).to(memory.dtype)
        return torch.bmm(weights, memory), weights


class Translator(nn.Module):
    """encode(source, lengths) once, then decode(target_inputs, encoded, state) over any number of
    target positions: all of them at once in training (teacher forcing, one fused recurrent
    call), one at a time in greedy and beam search. forward(...) is the training path."""

    task = "translator"

    def __init__(self, config: TranslatorConfig):
        super().__init__()
        self.config = config
        H = config.hidden_size
        self.source_embedding = nn.Embedding(config.source_vocab_size, config.embedding_size, padding_idx=config.pad_id)
        self.target_embedding = nn.Embedding(config.target_vocab_size, config.embedding_size, padding_idx=config.pad_id)
        self.encoder = Recurrent(RecurrentConfig(cell=config.cell, input_size=config.embedding_size, hidden_size=H // 2,
                                                 num_layers=config.encoder_layers, dropout=config.dropout, bidirectional=True))
        self.decoder = Recurrent(RecurrentConfig(cell=config.cell, input_size=config.embedding_size, hidden_size=H,
                                                 num_layers=config.decoder_layers, dropout=config.dropout))
        # The decoder starts from the encoder's final states (both directions joined), projected.
        self.bridge = nn.Linear(H, H)
        self.attention = Attention(config.attention, H) if config.attention != "none" else None
        combined = 2 * H if self.attention is not None else H
        self.combine = nn.Linear(combined, H)  # Luong's attentional hidden state: tanh(W [context; h])
        self.head = nn.Linear(H, config.target_vocab_size)
        if config.tie_embeddings:
            self.head.weight = self.target_embedding.weight
        self.dropout = nn.Dropout(config.dropout)

    def encode(self, source: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        """source (B, S) padded token ids, lengths (B,) real lengths (at least 1)."""
        cfg = self.config
        memory, final = self.encoder(self.dropout(self.source_embedding(source)), lengths=lengths)  # (B, S, H)
        mask = torch.arange(source.shape[1], device=source.device).unsqueeze(0) < lengths.to(source.device).unsqueeze(1)
        # final parts are (encoder_layers * 2, B, H/2): join the directions of the top layers.
        state = []
        for part in final:
            B = part.shape[1]
            by_layer = part.view(cfg.encoder_layers, 2, B, -1)
            top = torch.cat([by_layer[-1, 0], by_layer[-1, 1]], dim=-1)  # (B, H)
            start = torch.tanh(self.bridge(top))
            state.append(start.unsqueeze(0).expand(cfg.decoder_layers, -1, -1).contiguous())
        return EncoderOutput(memory=memory, mask=mask, state=tuple(state))

    def keys(self, encoded: EncoderOutput) -> torch.Tensor | None:
        """The attention keys for the encoded sentences, computed once per batch."""
        return self.attention.project_memory(encoded.memory) if self.attention is not None else None

    def decode(self, target_inputs: torch.Tensor, encoded: EncoderOutput, state: State, keys: torch.Tensor | None):
        """target_inputs (B, T) -> logits (B, T, V), new state, attention weights (B, T, S) or None.

        Teacher forcing passes the whole shifted target (T > 1); greedy and beam search pass the
        last chosen token (T = 1) and carry the state: the same computation either way."""
        out, state = self.decoder(self.dropout(self.target_embedding(target_inputs)), state)  # (B, T, H)
        weights = None
        if self.attention is not None:
            context, weights = self.attention(out, keys, encoded.memory, encoded.mask)  # (B, T, H)
            out = torch.cat([context, out], dim=-1)
        hidden = torch.tanh(self.combine(self.dropout(out)))
        return self.head(self.dropout(hidden)), state, weights

    def forward(self, source, lengths, target_inputs, targets=None):
        """Teacher-forced training pass: (logits (B, T, V), loss or None); padding targets
        (pad_id) do not count in the loss."""
        encoded = self.encode(source, lengths)
        logits, _, _ = self.decode(target_inputs, encoded, encoded.state, self.keys(encoded))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                   ignore_index=self.config.pad_id, label_smoothing=self.config.label_smoothing)
        return logits, loss
