"""The text classifier: token embedding, a bidirectional recurrent encoder from the shared layers,
pooling over the real (unpadded) positions, and a linear head over the classes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..cells import Recurrent, RecurrentConfig

POOLING_TYPES = ("max", "mean", "attention")


@dataclass
class ClassifierConfig:
    vocab_size: int
    num_classes: int
    cell: str = "lstm"
    embedding_size: int = 128
    hidden_size: int = 128  # per direction
    num_layers: int = 1
    pooling: str = "max"
    dropout: float = 0.5
    pad_id: int = 0

    def __post_init__(self):
        if self.pooling not in POOLING_TYPES:
            raise ValueError(f"pooling must be one of {POOLING_TYPES}, not {self.pooling!r}")
        if self.num_classes < 2:
            raise ValueError("a classifier needs at least two classes")


class Classifier(nn.Module):
    """forward(tokens, lengths, targets=None) -> (logits (B, C), loss or None).

    The encoder runs on packed sequences and the pooling sees only real positions, so padding
    never changes a prediction: a sentence gets the same probabilities alone or in any batch."""

    task = "classifier"

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_id)
        self.encoder = Recurrent(RecurrentConfig(cell=config.cell, input_size=config.embedding_size,
                                                 hidden_size=config.hidden_size, num_layers=config.num_layers,
                                                 dropout=config.dropout, bidirectional=True))
        width = self.encoder.output_size
        if config.pooling == "attention":
            # A learned query scores every position: softmax(v . tanh(W h_t)) weights the sum.
            self.attention_hidden = nn.Linear(width, width)
            self.attention_score = nn.Linear(width, 1, bias=False)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(width, config.num_classes)

    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """tokens (B, T) padded ids, lengths (B,) real lengths (at least 1) -> pooled (B, 2H)."""
        out, _ = self.encoder(self.dropout(self.embedding(tokens)), lengths=lengths)  # (B, T, 2H)
        mask = torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0) < lengths.to(tokens.device).unsqueeze(1)
        mask = mask.unsqueeze(-1)  # (B, T, 1)
        pooling = self.config.pooling
        if pooling == "max":
            return out.masked_fill(~mask, float("-inf")).amax(dim=1)
        if pooling == "mean":
            return out.masked_fill(~mask, 0.0).sum(dim=1) / mask.sum(dim=1).to(out.dtype)
        scores = self.attention_score(torch.tanh(self.attention_hidden(out)))  # (B, T, 1)
        weights = torch.softmax(scores.float().masked_fill(~mask, float("-inf")), dim=1).to(out.dtype)
        return (weights * out).sum(dim=1)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor | None = None):
        logits = self.head(self.dropout(self.encode(tokens, lengths)))  # (B, C)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float(), targets)
        return logits, loss


class EncoderLanguageModel(nn.Module):
    """A classifier's embedding and bidirectional layer trained as two language models at once
    (as ELMo does): the forward direction predicts each next token, the backward direction each
    previous one, through one shared output layer. Pretraining a classifier's encoder this way on
    its own training texts teaches it the language before it learns the labels from few examples.

    Only a single layer can be trained so: a second bidirectional layer reads both directions of
    the first, so each direction would already have seen the token it is asked to predict."""

    def __init__(self, classifier: Classifier):
        super().__init__()
        if classifier.config.num_layers != 1:
            raise ValueError("language-model pretraining needs a classifier with one recurrent layer")
        self.classifier = classifier
        self.head = nn.Linear(classifier.config.hidden_size, classifier.config.vocab_size)

    def predictions(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (B, T), lengths (B,) -> (next_logits, previous_logits), each (B, T - 1, V):
        next_logits[:, t] predicts token t + 1 from the forward state after tokens 0..t, and
        previous_logits[:, t] predicts token t from the backward state after tokens t+1..end."""
        classifier = self.classifier
        H = classifier.config.hidden_size
        out, _ = classifier.encoder(classifier.dropout(classifier.embedding(tokens)), lengths=lengths)  # (B, T, 2H)
        out = classifier.dropout(out)
        return self.head(out[:, :-1, :H]), self.head(out[:, 1:, H:])

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of predicting every token from each side of it."""
        next_logits, previous_logits = self.predictions(tokens, lengths)
        pad = self.classifier.config.pad_id
        real = torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0) < lengths.to(tokens.device).unsqueeze(1)
        # Targets at padded positions become pad, which the loss ignores.
        next_tokens = tokens[:, 1:].masked_fill(~real[:, 1:], pad)
        previous_tokens = tokens[:, :-1].masked_fill(~real[:, 1:], pad)
        logits = torch.cat([next_logits, previous_logits], dim=1)  # (B, 2(T-1), V)
        targets = torch.cat([next_tokens, previous_tokens], dim=1)
        total = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=pad,
                                reduction="sum")
        # Divided by the count, at least 1: a batch of one-token texts has nothing to predict.
        return total / (targets != pad).sum().clamp(min=1)
