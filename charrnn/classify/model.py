"""The text classifier: token embedding, a bidirectional recurrent encoder from the shared layers,
pooling over the real (unpadded) positions, and a linear head over the classes; optionally a
second, linear channel of naive Bayes over the text's word n-grams added to the head's logits."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..cells import Recurrent, RecurrentConfig, check_recurrent_options
from ..errors import UsageError
from ..numbers import check_finite, check_range
from .ngrams import NgramCounts

POOLING_TYPES = ("max", "mean", "attention")
MAX_NGRAM_BUCKETS = 2**32  # the range of the CRC-32 hash (ngrams.ngram_ids)
# Each word starts this many n-grams; beyond a few words an n-gram is almost never seen twice,
# and a huge order made training hang.
MAX_NGRAM_ORDER = 8


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
    # The naive Bayes channel: word n-grams up to ngram_order hashed into ngram_buckets (0: none;
    # the default keeps all 32 bits of the hash, so n-grams hardly ever share a bucket), class
    # likelihoods with add-ngram_smoothing (Laplace) smoothing.
    ngram_buckets: int = MAX_NGRAM_BUCKETS
    ngram_order: int = 2
    ngram_smoothing: float = 1.0

    def __post_init__(self):
        check_recurrent_options(self.cell, self.hidden_size, self.num_layers, self.dropout, self.embedding_size)
        if self.pooling not in POOLING_TYPES:
            raise UsageError(f"unknown --pooling {self.pooling!r}; choose one of {', '.join(POOLING_TYPES)}")
        if self.num_classes < 2:
            raise UsageError("a classifier needs at least two classes")
        check_range(self.ngram_buckets, "--ngram-buckets", 0, MAX_NGRAM_BUCKETS)
        check_range(self.ngram_order, "--ngram-order", 1, MAX_NGRAM_ORDER)
        check_finite(self.ngram_smoothing, "the n-gram smoothing")
        if self.ngram_smoothing <= 0:
            raise UsageError(f"the n-gram smoothing must be positive, not {self.ngram_smoothing}")

    @classmethod
    def check_options(cls, options: dict) -> None:
        """Check model options before the data is read (the data sets the sizes left)."""
        cls(**{"vocab_size": 1, "num_classes": 2, **options})


class Classifier(nn.Module):
    """forward(tokens, lengths, targets=None, ngrams=None, counted_labels=None) -> (logits (B, C), loss or None).

    The encoder runs on packed sequences and the pooling sees only real positions, so padding
    never changes a prediction: a sentence gets the same probabilities alone or in any batch.

    With ngram_buckets, the logits also get the naive Bayes log-likelihood of the text's word
    n-grams under each class, times a mixing weight: multinomial naive Bayes over word uni- and
    bigrams alone is a strong sentiment classifier (about 79% on rt-polarity, Wang and Manning
    2012), and it errs on other texts than the recurrent part does. The recurrent part trains on
    its own (the loss ignores the channel); the weight is then fitted on held-out texts
    (fit_mixing_weights). Fitting it on the training texts instead, or training both parts as one,
    was measured to be worse: the recurrent part soon fits its training texts almost perfectly,
    which teaches the mix to ignore naive Bayes exactly where it helps on unseen texts."""

    task = "classifier"

    # Candidate mixing weights: 0, and 0.01 to 10 in steps of 6%. Only relative precision
    # matters, and the fitted weights are often near 0.2, where a grid of even steps is coarse.
    WEIGHT_GRID = torch.cat([torch.zeros(1), torch.logspace(-2, 1, 121)])

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
        if config.ngram_buckets:
            # Counts of the labelled texts, not weights, saved with them: only the buckets that
            # occur, sorted (set_ngram_counts; until then there are none), int64 ids (a 32-bit
            # hash overflows int32) and int32 counts, which a half-precision export leaves exact.
            # Their length is the number of n-grams seen (see _load_from_state_dict).
            self.register_buffer("counted_buckets", torch.zeros(0, dtype=torch.long))
            self.register_buffer("ngram_counts", torch.zeros(0, config.num_classes, dtype=torch.int32))
            self.register_buffer("ngram_totals", torch.zeros(config.num_classes), persistent=False)  # per class
            # The mixing weights are fitted, not trained; they are saved with the weights.
            self.register_buffer("recurrent_weight", torch.ones(()))
            self.register_buffer("ngram_weight", torch.ones(()))

    def set_ngram_counts(self, counts: NgramCounts) -> None:
        """The labelled texts' n-gram counts (see ngrams.NgramCounts), kept on the model's device."""
        device = self.ngram_totals.device
        self.counted_buckets = counts.buckets.to(device)
        self.ngram_counts = counts.counts.to(device, torch.int32)
        self.ngram_totals = self.ngram_counts.sum(dim=0).float()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The counts are as long as the n-grams seen: take the stored length before loading them.
        if self.config.ngram_buckets:
            for name in ("counted_buckets", "ngram_counts"):
                stored = state_dict.get(prefix + name)
                if stored is not None:
                    setattr(self, name, torch.empty_like(stored, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if self.config.ngram_buckets:
            buckets, counts = self.counted_buckets, self.ngram_counts
            # What counts_of relies on, which a stored file (damaged or edited) need not hold.
            if not (buckets.dtype == torch.long and buckets.dim() == 1 and not counts.is_floating_point()
                    and counts.shape == (len(buckets), self.config.num_classes)):
                raise ValueError(f"the n-gram counts {tuple(counts.shape)} do not match their buckets {tuple(buckets.shape)} "
                                 f"and {self.config.num_classes} classes")
            self.ngram_totals = counts.sum(dim=0).float()

    def counts_of(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (...) bucket ids -> (..., C) their counts; a bucket never counted has none."""
        if self.counted_buckets.numel() == 0:
            raise ValueError("this classifier's n-gram channel has no counts yet (set_ngram_counts)")
        position = torch.searchsorted(self.counted_buckets, ids).clamp(max=len(self.counted_buckets) - 1)
        found = (self.counted_buckets[position] == ids).unsqueeze(-1)
        return self.ngram_counts[position].float() * found

    def ngram_scores(self, ngrams: tuple[torch.Tensor, torch.Tensor], counted_labels: torch.Tensor | None = None) -> torch.Tensor:
        """ngrams: (ids (B, F) padded bucket ids, lengths (B,)) -> (B, C) naive Bayes
        log-likelihood of each text under each class, centred over the classes.

        counted_labels, for texts whose own n-grams are in the counts, takes each text's own
        counts out first (leave-one-out), so that the channel is no more certain about them than
        about unseen texts: fitting the mixing weight on such texts then fits it for unseen ones.
        In float32 whatever the autocast: the scores are sums of many log-likelihoods."""
        with torch.autocast(self.ngram_counts.device.type, enabled=False):
            return self._ngram_scores(ngrams, counted_labels)

    def _ngram_scores(self, ngrams, counted_labels):
        ids, lengths = ngrams
        real = (torch.arange(ids.shape[1], device=ids.device).unsqueeze(0) < lengths.to(ids.device).unsqueeze(1))
        real = real.unsqueeze(-1).float()  # (B, F, 1)
        counts = self.counts_of(ids)  # (B, F, C)
        totals = self.ngram_totals.expand(ids.shape[0], -1)  # (B, C)
        if counted_labels is not None:
            own = F.one_hot(counted_labels, self.config.num_classes).float()  # (B, C)
            counts = counts - own.unsqueeze(1) * real
            totals = totals - own * lengths.to(ids.device).unsqueeze(1)
        alpha = self.config.ngram_smoothing
        vocab = len(self.counted_buckets)  # the buckets seen at all
        log_likelihood = torch.log(counts + alpha) - torch.log(totals + alpha * vocab).unsqueeze(1)
        scores = (log_likelihood * real).sum(dim=1)
        return scores - scores.mean(dim=-1, keepdim=True)

    @torch.no_grad()
    def fit_mixing_weights(self, recurrent_logits: torch.Tensor, scores: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
        """Set the weights of recurrent_logits and of the n-gram scores (all (N, C), for held-out
        texts) to the pair of WEIGHT_GRID x WEIGHT_GRID that minimises the cross-entropy of
        their weighted sum on targets, and return them. Weighting the recurrent part too lets the
        mix temper it once it grows over-confident."""
        grid = self.WEIGHT_GRID.to(scores.device)
        G = len(grid)
        ngram_part = grid.view(-1, 1, 1) * scores.float()  # (G, N, C)
        losses = []  # (G, G), one recurrent weight at a time to bound the memory
        for weight in grid:
            mixed = weight * recurrent_logits.float() + ngram_part
            loss = F.cross_entropy(mixed.reshape(-1, mixed.shape[-1]), targets.repeat(G), reduction="none")
            losses.append(loss.view(G, -1).mean(dim=1))
        best = int(torch.stack(losses).argmin())
        recurrent_weight, ngram_weight = float(grid[best // G]), float(grid[best % G])
        self.recurrent_weight.fill_(recurrent_weight)
        self.ngram_weight.fill_(ngram_weight)
        return recurrent_weight, ngram_weight

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

    def recurrent_logits(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.encode(tokens, lengths))).float()  # (B, C)

    def mix(self, recurrent_logits: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """The model's logits from its two parts, with the fitted mixing weights."""
        return self.recurrent_weight * recurrent_logits + self.ngram_weight * scores

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor | None = None,
                ngrams: tuple[torch.Tensor, torch.Tensor] | None = None, counted_labels: torch.Tensor | None = None):
        """The loss is that of the recurrent part alone (see the class's note). The logits add
        the n-gram channel when the model has one, and then need the texts' ngrams;
        counted_labels as in ngram_scores, for texts whose n-grams were counted."""
        logits = self.recurrent_logits(tokens, lengths)
        loss = F.cross_entropy(logits, targets) if targets is not None else None
        if self.config.ngram_buckets:
            if ngrams is None:
                raise ValueError("this classifier has an n-gram channel: give the texts' n-grams")
            logits = self.mix(logits, self.ngram_scores(ngrams, counted_labels))
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
