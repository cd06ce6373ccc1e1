"""The character (or subword) language model: embedding, one of the shared sequence layers (a
recurrent stack from cells.py, or the WaveNet stack from wavenet.py read as a stream), a linear
head over the vocabulary; optionally conditioned on a label or a vector of numbers (vector to
sequence)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from ..cells import CELL_TYPES, MAX_HIDDEN_SIZE, Recurrent, RecurrentConfig, State, check_recurrent_options
from ..errors import UsageError
from ..wavenet import WaveNet, WaveNetConfig, check_wavenet_options
from .conditions import parse_vector

CELLS = (*CELL_TYPES, "wavenet")
CONDITION_AT = ("every", "start")
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
    # A conditional model: the labels it is conditioned on, or the size of the vectors it is (one
    # of the two; neither: an unconditioned model, with no condition weights), and where a
    # condition is read: at "every" token, or only at the "start" of each text, the
    # condition_token that begins one (a newline), from where the recurrence must carry it.
    conditions: list[str] = field(default_factory=list)
    condition_at: str = "every"
    condition_token: int | None = None
    condition_size: int = 0
    # A vector is read standardised: (vector - mean) / scale, the training vectors' mean and
    # standard deviation, so numbers of any range (ratings, counts, embeddings) start alike.
    condition_mean: list[float] = field(default_factory=list)
    condition_scale: list[float] = field(default_factory=list)

    def __post_init__(self):
        if self.cell not in CELLS:
            raise UsageError(f"unknown --cell {self.cell!r}; choose one of {', '.join(CELLS)}")
        if self.condition_at not in CONDITION_AT:
            raise UsageError(f"unknown --condition-at {self.condition_at!r}; choose one of {', '.join(CONDITION_AT)}")
        if self.conditions and self.condition_size:
            raise ValueError("a model is conditioned on labels or on vectors, not both")
        if self.condition_size and not len(self.condition_mean) == len(self.condition_scale) == self.condition_size:
            raise ValueError("a vector-conditioned model needs the mean and scale of each of its numbers")
        if self.conditional and self.condition_at == "start" and self.condition_token is None:
            raise ValueError("a model conditioned at the start of texts needs the token that starts one")
        if self.num_layers is None:  # settled here, so a checkpoint stores the number
            self.num_layers = WAVENET_LAYERS if self.cell == "wavenet" else RECURRENT_LAYERS
        if self.cell != "wavenet":
            check_recurrent_options(self.cell, self.hidden_size, self.num_layers, self.dropout, self.embedding_size)
            return
        check_wavenet_options(self.hidden_size, self.num_layers, 1, self.dropout)
        if self.embedding_size is not None and not 1 <= self.embedding_size <= MAX_HIDDEN_SIZE:
            raise UsageError(f"--embedding-size must be between 1 and {MAX_HIDDEN_SIZE:,}, not {self.embedding_size:,}")

    @property
    def conditional(self) -> bool:
        return bool(self.conditions or self.condition_size)

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
    """Predicts the next token at every position. forward(x, state, targets, condition) returns
    (logits, state, loss); loss is None without targets.

    A model conditioned on labels (config.conditions) also takes condition (B, T): each token's
    label id, 1 + the label's index in config.conditions (0: none); one conditioned on vectors
    (config.condition_size D) takes condition (B, T, D), each token's vector as given (it is
    standardised here). A label's learned vector, or a learned linear map of the vector, is added
    to the token's embedding, at every token or only at the tokens that start a text
    (config.condition_at); so the recurrent layers, their kernels and the generation stepper are
    the same as an unconditioned model's."""

    task = "language_model"

    def __init__(self, config: LanguageModelConfig):
        super().__init__()
        self.config = config
        embedding_size = config.embedding_size or config.hidden_size
        self.embedding = nn.Embedding(config.vocab_size, embedding_size)
        if config.conditions:
            # Row 0 is "no label": kept at zero, so where no label is read the input is the token's alone.
            self.condition_embedding = nn.Embedding(len(config.conditions) + 1, embedding_size, padding_idx=0)
            # Every label starts at zero too, so the model starts as an unconditioned one and a label
            # moves the input only as far as it helps. Drawn like the token embeddings (N(0, 1)),
            # the labels shifted every input by a random vector as long as a token's: on
            # rt-polarity that cost 0.04 nats/char after 4 minutes, and the samples ignored the label.
            nn.init.zeros_(self.condition_embedding.weight)
        if config.condition_size:
            # No bias, so the mean vector (standardised: zero) is "no condition", as label 0 is;
            # zero at the start for the reason the labels are.
            self.condition_projection = nn.Linear(config.condition_size, embedding_size, bias=False)
            nn.init.zeros_(self.condition_projection.weight)
            # Buffers rebuilt from the config, not saved: checkpoints keep the weights they had.
            self.register_buffer("condition_mean", torch.tensor(config.condition_mean), persistent=False)
            self.register_buffer("condition_scale", torch.tensor(config.condition_scale), persistent=False)
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
        self, x: torch.Tensor, state: State | None = None, targets: torch.Tensor | None = None,
        condition: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, State, torch.Tensor | None]:
        emb = self.embedding(x)  # (B, T, E)
        if condition is not None:  # the unconditioned path pays this test and nothing more
            emb = emb + self._condition_input(x, condition)
        emb = self.dropout(emb)
        out, state = self.body(emb, state)  # (B, T, H)
        logits = self.head(self.dropout(out))  # (B, T, V)
        loss = None
        if targets is not None:
            # The loss in fp32 even under autocast: a bf16 log-softmax loses the small
            # differences between good models.
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))
        return logits, state, loss

    def _condition_input(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """(B, T, E): what the conditions add to the tokens' inputs: at every token, or
        (condition_at start) only at the tokens that start a text, elsewhere zero."""
        every = self.config.condition_at == "every"
        if not self.config.condition_size:
            return self.condition_embedding(condition if every else condition.masked_fill(x != self.config.condition_token, 0))
        shift = self.condition_shift(condition)
        return shift if every else shift * (x == self.config.condition_token).unsqueeze(-1)

    def condition_shift(self, condition: int | torch.Tensor) -> torch.Tensor:
        """(..., E): the input shift of a label id, or of vectors (..., D) as given."""
        if not self.config.condition_size:
            return self.condition_embedding.weight[condition]
        standard = (condition - self.condition_mean) / self.condition_scale
        return self.condition_projection(standard.to(self.condition_projection.weight.dtype))

    def input_table(self, condition: int | torch.Tensor | None = None) -> torch.Tensor:
        """(V, E): the input each token gives the sequence layers under a fixed condition, a label id
        or a vector (None: the plain embedding). The condition's shift is added to every row, or at
        the start only to the row of the token that starts a text."""
        table = self.embedding.weight
        if condition is None:
            return table
        vector = self.condition_shift(condition)  # (E,)
        if self.config.condition_at == "every":
            return table + vector
        table = table.clone()
        table[self.config.condition_token] += vector
        return table

    def stepper(self, condition: int | torch.Tensor | None = None) -> LanguageModelStepper:
        """A fast one-token-at-a-time runner for generation over a snapshot of the weights; for a
        conditional model, under a fixed condition (a label id or a vector)."""
        return LanguageModelStepper(self, condition)

    def with_condition(self, condition: str | Sequence[float],
                       guidance: float = 0.0) -> ConditionedLanguageModel | GuidedLanguageModel:
        """This conditional model with its condition fixed, to generate from (see
        ConditionedLanguageModel): a label's name, or a vector, as numbers or as text ("0.5 -1",
        "[0.5, -1]"). With guidance > 0 the model is pushed away from its other labels, or for a
        vector, from no condition (the mean vector: the average text); see GuidedLanguageModel.
        A label the model does not know, or a vector of another size, is a one-line error."""
        config = self.config
        if not config.conditional:
            raise UsageError("this model was trained without --condition; it takes no condition")
        if config.condition_size:
            vector = parse_vector(condition) if isinstance(condition, str) else [float(v) for v in condition]
            if vector is None or len(vector) != config.condition_size:
                raise UsageError(f"this model takes a vector of {config.condition_size} number(s) as --condition "
                                 f"(separated by spaces or commas), not {condition!r}")
            own = ConditionedLanguageModel(self, torch.tensor(vector, device=self.embedding.weight.device))
            others = [ConditionedLanguageModel(self, None)]
        else:
            labels = config.conditions
            if condition not in labels:
                raise UsageError(f"unknown --condition {condition!r}; the model knows {', '.join(map(repr, labels))}")
            label = labels.index(condition) + 1
            own = ConditionedLanguageModel(self, label)
            others = [ConditionedLanguageModel(self, other) for other in range(1, len(labels) + 1) if other != label]
        return GuidedLanguageModel(own, others, guidance) if guidance else own


class ConditionedLanguageModel:
    """A conditional model under one condition (a label id or a vector; None: no condition), read
    the way generation reads a model (forward(x, state), init_state, parameters, stepper): the
    condition goes with every token it is given."""

    def __init__(self, model: LanguageModel, condition: int | torch.Tensor | None):
        self.model = model
        self.condition = condition

    def __call__(self, x: torch.Tensor, state: State | None = None, targets: torch.Tensor | None = None):
        if self.condition is None:
            condition = None
        elif isinstance(self.condition, int):
            condition = torch.full_like(x, self.condition)
        else:
            condition = self.condition.to(x.device).expand(*x.shape, -1)
        return self.model(x, state, targets, condition=condition)

    def init_state(self, batch_size: int, device: torch.device | None = None) -> State:
        return self.model.init_state(batch_size, device)

    def parameters(self):
        return self.model.parameters()

    def stepper(self) -> LanguageModelStepper:
        return self.model.stepper(self.condition)


class GuidedLanguageModel:
    """A conditional model under one condition, its next-token logits pushed away from other
    conditions': own + guidance * (own - the others' mean), a "negative prompt" of the other
    labels (for a vector, of no condition).

    A label's effect on each character is small (on rt-polarity, knowing a review's label saves
    0.002 nats a character), so samples under one label read much like samples under another:
    the bundled classifier gave 51% of them the label asked for. Guidance multiplies what tells
    the labels apart. Each condition's stream is stepped side by side, so a step costs one step per
    label (two for a vector); it is read the way generation reads a model, like
    ConditionedLanguageModel."""

    def __init__(self, own: ConditionedLanguageModel, others: list[ConditionedLanguageModel], guidance: float):
        self.streams = [own, *others]
        self.guidance = guidance

    def _combine(self, logits: list[torch.Tensor]) -> torch.Tensor:
        own, others = logits[0], torch.stack(logits[1:]).mean(dim=0)
        return own + self.guidance * (own - others)

    def __call__(self, x: torch.Tensor, state: list[State] | None = None, targets: torch.Tensor | None = None):
        results = [stream(x, part) for stream, part in zip(self.streams, state or [None] * len(self.streams))]
        return self._combine([logits for logits, _, _ in results]), [part for _, part, _ in results], None

    def init_state(self, batch_size: int, device: torch.device | None = None) -> list[State]:
        return [stream.init_state(batch_size, device) for stream in self.streams]

    def parameters(self):
        return self.streams[0].parameters()

    def stepper(self) -> GuidedStepper:
        return GuidedStepper([stream.stepper() for stream in self.streams], self._combine)


class GuidedStepper:
    """Steps every condition's stream on the same token and combines their logits."""

    def __init__(self, steppers: list[LanguageModelStepper], combine):
        self.steppers = steppers
        self.combine = combine

    def split_state(self, states: list[State]) -> list:
        return [stepper.split_state(state) for stepper, state in zip(self.steppers, states)]

    def step(self, token: torch.Tensor, layer_states: list) -> tuple[torch.Tensor, list]:
        results = [stepper.step(token, states) for stepper, states in zip(self.steppers, layer_states)]
        return self.combine([logits for logits, _ in results]), [states for _, states in results]


class LanguageModelStepper:
    """step(token (B,), layer_states) -> (next-token logits (B, V), layer_states), for generation.
    Built from a snapshot of the model's weights (see cells.Stepper and wavenet.WaveNetStepper for why);
    convert a State to layer_states with split_state and back with join_state."""

    def __init__(self, model: LanguageModel, condition: int | torch.Tensor | None = None):
        with torch.no_grad():
            # A condition is folded into the input table once, so a conditioned step costs what a plain one does.
            self.body = model.body.stepper(input_table=model.input_table(condition))
            self.head_weight = model.head.weight.detach().clone()  # (V, H)
            self.head_bias = model.head.bias.detach().clone()
        self.split_state = self.body.split_state
        self.join_state = self.body.join_state

    def step(self, token: torch.Tensor, layer_states: list) -> tuple[torch.Tensor, list]:
        h, layer_states = self.body.step(token, layer_states)
        return F.linear(h, self.head_weight, self.head_bias), layer_states
