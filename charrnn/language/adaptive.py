"""Training settings that fit the machine: the batch shape, learning rate, warm-up, evaluation
cadence, dropout and weight decay a language-model run uses when the user leaves them unset,
chosen from the measured cost of a training step here (this device, this precision, this model),
never from a fixed guess.

Timing is `probe_step_costs`, which the task drives with its own step; the choice is the pure
function `choose_settings`, so it can be tested by feeding it step costs.

The constants below were fitted on the 2x256 LSTM. A WaveNet run (--cell wavenet) uses them as
they are: the timing is of its own steps, so the batch shape, warm-up and cadence fit it; the
learning rate, critical batch and regularisation were not measured again for it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import UsageError

# The window of truncated back-propagation through time. Measured on the dev split at equal
# characters: 64 as good as 32 at the same characters a step and better than 128 (a shorter window
# lets a larger batch use the hardware better, but learns less of longer context).
SEQ_LEN = 64
# Batch sizes are tried from the smallest up, doubling, while the larger batch teaches more per
# second: on a CPU a step's cost grows nearly with the batch, on a GPU hardly at all at first.
PROBE_BATCH_SIZES = (8, 16, 32, 64, 128, 256, 512)
PROBE_STEPS = 3  # timed steps per batch size, after one untimed step (kernel set-up)
PROBE_SHARE = 0.03  # of a time budget, at most, spent timing (one more batch size may overrun it)
# The critical batch (McCandlish et al. 2018) in tokens, and how it grows as training goes on.
# Below it, a token teaches nearly all it can, so small batches and many updates pay; above it,
# the number of updates limits learning and a token teaches less, in the ratio 1 / (1 + B / B_crit).
# Fitted on the dev split of tinyshakespeare (2x256 LSTM; 13 runs of 2 to 8 M tokens, batches of
# 512 to 8,192 tokens; the README has them): B_crit = 1,000 tokens x sqrt(tokens trained / 1 M).
CRITICAL_BATCH_TOKENS = 1000
CRITICAL_BATCH_AT_TOKENS = 1_000_000
# Peak learning rate of AdamW at a batch of REFERENCE_BATCH_TOKENS, scaled by the square root of
# the batch's tokens (measured best from 512 to 8,192 tokens a step) and capped where the
# measurements end.
REFERENCE_LEARNING_RATE = 8e-3
REFERENCE_BATCH_TOKENS = 1024
MAX_LEARNING_RATE = 1.6e-2
WARMUP_FRACTION = 0.05  # of the run's steps
# The cosine decays to zero: on the dev split, 3.2 M characters (what 100 s buys in fp32) ended at
# 1.419 (8 x 64) and 1.432 (16 x 64) nats/char, against 1.435 and 1.441 decaying to a tenth.
MIN_LR_RATIO = 0.0
# Dropout by the passes the run will make over its training tokens: none for a short run, more as
# a long one starts to learn its corpus by heart (measured on the dev split; the README has the
# figures). Dropout is not free: drawing its masks made a step of the 2x256 model on the CPU 1.3x
# as long in fp32 (16 x 64: 31 ms) and 1.8x in bf16 (64 x 64: 57 ms), so the epochs that decide it
# are counted at the measured cost of a step with dropout, and less than MIN_DROPOUT is none: at 9
# epochs dropout 0.1 gained only 0.008 nats/char at equal tokens, less than its cost takes away.
DROPOUT_FREE_EPOCHS = 8
DROPOUT_PER_DOUBLING = 0.1  # added for each doubling of the epochs past DROPOUT_FREE_EPOCHS
MIN_DROPOUT = 0.05
MAX_DROPOUT = 0.3
# Weight decay (AdamW, on the weight matrices) regularises a run that is long enough to need it
# but gets no dropout (at its length the masks cost more than they give). On the dev split, 11
# epochs without dropout (32 x 64, bf16): 0.3 ended at 1.371 nats/char against 1.384 for 0.1 (0:
# 1.439, 1.0: 1.422); 4.5 epochs (16 x 64, fp32): 1.417 against 1.415, no gain. Runs with dropout
# keep 0.1, the value their 30-minute figures were measured with (at 17 epochs with dropout 0.2,
# 0.3 also gained: 1.367 against 1.388; the README has the table).
WEIGHT_DECAY = 0.1
UNDROPPED_WEIGHT_DECAY = 0.3
UNDROPPED_DECAY_EPOCHS = 6
EVALUATIONS_PER_RUN = 10  # periodic evaluations a run is planned to make
# Periodic evaluations score this many validation tokens (the same ones every time), a few
# percent of a short budget on a CPU; the last evaluation scores the whole split.
EVAL_TOKENS = 16_384


@dataclass(frozen=True)
class StepCost:
    """Measured seconds of one training step (forward, backward, update) at one batch shape."""

    batch_size: int
    seq_len: int
    seconds: float

    @property
    def tokens(self) -> int:
        return self.batch_size * self.seq_len

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds


@dataclass(frozen=True)
class RunLength:
    """What ends a run: any of a time budget (seconds), a step limit, and epochs of train_tokens."""

    time_budget: float | None = None
    max_steps: int | None = None
    epochs: float | None = None
    train_tokens: int | None = None

    def steps(self, cost: StepCost) -> int:
        """The steps the run will take at this step cost (the first limit it meets)."""
        limits = []
        if self.time_budget is not None:
            limits.append(max(1, int(self.time_budget / cost.seconds)))
        if self.max_steps is not None:
            limits.append(self.max_steps)
        if self.epochs is not None and self.train_tokens is not None:
            limits.append(max(1, math.ceil(self.epochs * self.train_tokens / cost.tokens)))
        if not limits:
            raise UsageError("give a stop condition: --max-steps, --epochs or --time-budget")
        return min(limits)


def learning_per_second(cost: StepCost, length: RunLength) -> float:
    """How much a second of training at this step cost teaches, in a run of this length: tokens
    per second, each counted 1 / (1 + B / B_crit), where the critical batch B_crit grows with the
    square root of the tokens the run will train on."""
    trained = length.steps(cost) * cost.tokens
    critical = CRITICAL_BATCH_TOKENS * math.sqrt(trained / CRITICAL_BATCH_AT_TOKENS)
    return cost.tokens_per_second / (1.0 + cost.tokens / critical)


@dataclass(frozen=True)
class Settings:
    """The settings of a run, each either the user's or chosen here, and the reason in words."""

    batch_size: int
    seq_len: int
    learning_rate: float
    warmup_steps: int
    eval_every: int
    dropout: float
    weight_decay: float
    planned_steps: int  # the steps the run is expected to take
    planned_epochs: float | None  # passes over the training tokens, when their number is known
    chosen: tuple[str, ...]  # the names of the settings chosen here rather than given
    reason: str

    def note(self) -> dict:
        """What goes into the start event of log.jsonl."""
        return {"batch_size": self.batch_size, "seq_len": self.seq_len, "learning_rate": self.learning_rate,
                "warmup_steps": self.warmup_steps, "eval_every": self.eval_every, "dropout": self.dropout,
                "weight_decay": self.weight_decay, "planned_steps": self.planned_steps,
                "planned_epochs": self.planned_epochs, "chosen": list(self.chosen), "reason": self.reason}


def probe_step_costs(time_step: Callable[[int, int], float], length: RunLength, *, batch_size: int | None,
                     seq_len: int | None, largest: int | None = None, time_limit: float | None = None) -> list[StepCost]:
    """Time training steps at the batch shapes the choice needs: only the user's batch size when
    given, else batch sizes from the smallest up, doubling while the larger one teaches more per
    second (see learning_per_second; past that point larger batches cannot pay for themselves),
    up to largest. time_step(B, T) runs one untimed and PROBE_STEPS timed steps and returns the
    median seconds of a step. Probing stops once it has spent time_limit seconds."""
    seq_len = seq_len or SEQ_LEN
    if batch_size is not None:
        sizes = [batch_size]
    else:
        sizes = [b for b in PROBE_BATCH_SIZES if largest is None or b <= largest] or [PROBE_BATCH_SIZES[0]]
    costs: list[StepCost] = []
    spent = 0.0
    for size in sizes:
        # The wall time, not the step time times the steps: a shape's untimed first step sets its
        # kernels up, which on a GPU costs far more than the timed steps (a cold H100 spent a 5 s
        # budget on probing when this counted only the timed steps).
        started = time.perf_counter()
        costs.append(StepCost(size, seq_len, time_step(size, seq_len)))
        spent += time.perf_counter() - started
        if len(costs) >= 2 and learning_per_second(costs[-1], length) <= learning_per_second(costs[-2], length):
            break
        if time_limit is not None and spent > time_limit:
            break
    return costs


def choose_settings(
    costs: list[StepCost],
    length: RunLength,
    *,
    batch_size: int | None = None,
    seq_len: int | None = None,
    learning_rate: float | None = None,
    warmup_steps: int | None = None,
    eval_every: int | None = None,
    dropout: float | None = None,
    dropout_slowdown: float = 1.0,
    weight_decay: float | None = None,
    precision: str = "fp32",
) -> Settings:
    """The run's settings from measured step costs: each setting given (not None) is kept as it
    is; the others follow from the costs and the run's length.

    - The batch shape is the measured one that teaches most per second (learning_per_second):
      where large batches cost little more than small ones (a GPU) it is large; where the cost
      grows with the batch (a CPU, above all without fast bf16) it is small, so that a budget
      buys the many updates a short run needs.
    - The learning rate grows with the square root of the batch's tokens.
    - The steps the run will take set the warm-up (a fixed share of them) and the cadence of
      evaluations; the passes over the training tokens they come to set the dropout, counted at
      dropout_slowdown times the step cost (the measured cost of drawing dropout masks, when the
      costs were measured without them), which a run with dropout then plans with; a run of
      more than UNDROPPED_DECAY_EPOCHS passes without dropout gets the stronger weight decay.
    """
    if not costs:
        raise ValueError("choose_settings needs at least one measured step cost")
    chosen = [name for name, value in (("batch_size", batch_size), ("seq_len", seq_len), ("learning_rate", learning_rate),
                                       ("warmup_steps", warmup_steps), ("eval_every", eval_every),
                                       ("dropout", dropout), ("weight_decay", weight_decay)) if value is None]
    fitting = [c for c in costs if batch_size in (None, c.batch_size) and seq_len in (None, c.seq_len)]
    best = max(fitting or costs, key=lambda cost: learning_per_second(cost, length))
    B = batch_size if batch_size is not None else best.batch_size
    T = seq_len if seq_len is not None else best.seq_len
    # A shape the user fixed but that was not timed costs in proportion to its tokens.
    cost = StepCost(B, T, best.seconds * (B * T) / best.tokens)
    if dropout is None:
        with_masks = StepCost(B, T, cost.seconds * dropout_slowdown)
        dropout = dropout_for(length.steps(with_masks) * B * T / length.train_tokens if length.train_tokens else None)
        if dropout > 0:
            cost = with_masks
    planned = length.steps(cost)
    if learning_rate is None:
        learning_rate = min(MAX_LEARNING_RATE, REFERENCE_LEARNING_RATE * math.sqrt(B * T / REFERENCE_BATCH_TOKENS))
    if warmup_steps is None:
        warmup_steps = max(1, round(WARMUP_FRACTION * planned))
    if eval_every is None:
        eval_every = max(1, math.ceil(planned / EVALUATIONS_PER_RUN))
    epochs = planned * B * T / length.train_tokens if length.train_tokens else None
    if weight_decay is None:
        weight_decay = weight_decay_for(epochs, dropout)

    reason = f"{B}x{T} trains at {cost.tokens_per_second:,.0f} tokens/s here ({precision}), so the run is about {planned:,} updates"
    if epochs is not None:
        reason += f" ({epochs:.1f} epochs)"
    if "batch_size" in chosen and len(costs) > 1:
        reason += f"; of batches {', '.join(str(c.batch_size) for c in costs)} it teaches most per second"
    return Settings(batch_size=B, seq_len=T, learning_rate=learning_rate, warmup_steps=warmup_steps,
                    eval_every=eval_every, dropout=dropout, weight_decay=weight_decay, planned_steps=planned,
                    planned_epochs=epochs, chosen=tuple(chosen), reason=reason)


def weight_decay_for(epochs: float | None, dropout: float) -> float:
    """UNDROPPED_WEIGHT_DECAY for a run of more than UNDROPPED_DECAY_EPOCHS passes over the
    training tokens without dropout, else WEIGHT_DECAY."""
    if dropout == 0 and epochs is not None and epochs > UNDROPPED_DECAY_EPOCHS:
        return UNDROPPED_WEIGHT_DECAY
    return WEIGHT_DECAY


def dropout_for(epochs: float | None) -> float:
    """No dropout up to DROPOUT_FREE_EPOCHS passes over the training tokens, then
    DROPOUT_PER_DOUBLING more for each doubling, none below MIN_DROPOUT, at most MAX_DROPOUT (none
    when the epochs are unknown)."""
    if epochs is None or epochs <= DROPOUT_FREE_EPOCHS:
        return 0.0
    dropout = round(min(MAX_DROPOUT, DROPOUT_PER_DOUBLING * math.log2(epochs / DROPOUT_FREE_EPOCHS)), 2)
    return dropout if dropout >= MIN_DROPOUT else 0.0
