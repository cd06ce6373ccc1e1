"""What a training run reports as it goes, to its on_event callback and (as JSON lines) to the run's
log.jsonl: typed events, so that a consumer reads named fields and an unknown schedule length is
None rather than a magic number."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class TrainingEvent:
    kind: ClassVar[str]

    def to_log(self) -> dict[str, Any]:
        """The event as a line of log.jsonl: {"event": kind, field: value, ...}."""
        return {"event": self.kind, **asdict(self)}


@dataclass(frozen=True)
class StartEvent(TrainingEvent):
    kind: ClassVar[str] = "start"
    step: int  # where the run starts (after a resume, where it stopped)
    total_steps: int | None  # the schedule's length; None until a time-budget run has measured its speed
    parameters: int
    device: str
    precision: str
    time_budget: float | None
    settings: dict | None = None  # how settings left unset were chosen (adaptive.Settings.note)

    def to_log(self) -> dict[str, Any]:
        logged = super().to_log()
        if self.settings is None:
            del logged["settings"]  # nothing was chosen
        return logged


@dataclass(frozen=True)
class StepEvent(TrainingEvent):
    kind: ClassVar[str] = "step"
    step: int
    loss: float
    lr: float
    grad_norm: float
    tokens: int  # seen so far
    elapsed: float  # seconds of training so far
    total_steps: int | None


@dataclass(frozen=True)
class EvalEvent(TrainingEvent):
    """One evaluation: the record kept in the run's history (step, elapsed, tokens and the
    task's metrics, val_loss among them) and how it compares with the best so far."""

    kind: ClassVar[str] = "eval"
    record: dict = field(default_factory=dict)
    best_val_loss: float = float("inf")
    improved: bool = False

    def to_log(self) -> dict[str, Any]:
        return {"event": self.kind, **self.record, "best_val_loss": self.best_val_loss, "improved": self.improved}


@dataclass(frozen=True)
class EndEvent(TrainingEvent):
    kind: ClassVar[str] = "end"
    step: int
    reason: str  # a train.StopReason
    elapsed: float
    best_val_loss: float
    best_step: int

    def to_log(self) -> dict[str, Any]:
        return {**super().to_log(), "reason": str(self.reason)}


@dataclass(frozen=True)
class PreparingEvent(TrainingEvent):
    """What a run is doing before its first step, once its data has been read and checked
    (building the vocabulary, encoding, timing this machine), so that a slow start is not a
    silent one; not written to the log."""

    kind: ClassVar[str] = "preparing"
    message: str


@dataclass(frozen=True)
class WarningEvent(TrainingEvent):
    """Something the user should know before the run's results (such as strongly imbalanced
    classes); not written to the log."""

    kind: ClassVar[str] = "warning"
    message: str
