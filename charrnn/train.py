"""The one task-agnostic training loop: AdamW, warm-up then cosine decay, gradient clipping,
mixed precision, periodic evaluation, early stopping, atomic checkpoints (best.pt, last.pt), a
JSONL log, stopping by steps, epochs or wall-clock budget, Ctrl-C, and exact resume.

A task supplies the model, its own batches and an evaluation; the loop reports through events,
and only the CLI draws progress."""

from __future__ import annotations

import json
import math
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from .allocator import keep_freed_memory
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .devices import autocast
from .errors import CharrnnError, UsageError
from .events import EndEvent, EvalEvent, StartEvent, StepEvent, TrainingEvent


# The settings a task may leave unset (None) for its own default, which the language model
# chooses from the measured speed of this machine (see language/adaptive.py).
TASK_DEFAULTS = ("learning_rate", "min_lr_ratio", "warmup_steps", "eval_every")


@dataclass
class TrainConfig:
    learning_rate: float | None = None  # None: the task's default
    min_lr_ratio: float | None = None  # the cosine decays to learning_rate * min_lr_ratio; None: the task's default
    warmup_steps: int | None = None  # None: the task's default
    weight_decay: float | None = None  # AdamW's, on weight matrices; None: the task's default
    grad_clip: float = 1.0
    max_steps: int | None = None
    epochs: float | None = None
    time_budget: float | None = None  # wall-clock seconds of training, evaluations included
    eval_every: int | None = None  # None: the task's default
    # Periodic evaluations score about this many validation tokens, the same ones every time, so
    # that they cost little of a short budget; None: all of them. The last evaluation scores all.
    eval_tokens: int | None = None
    patience: int | None = 10  # evaluations without improvement before stopping; None: never
    seed: int = 1337

    def validate(self) -> None:
        checks = [
            (self.learning_rate is None or self.learning_rate > 0, f"--lr must be positive, not {self.learning_rate}"),
            (self.min_lr_ratio is None or 0 <= self.min_lr_ratio <= 1,
             f"--min-lr-ratio must be in [0, 1], not {self.min_lr_ratio}"),
            (self.warmup_steps is None or self.warmup_steps >= 0, f"--warmup-steps must be 0 or more, not {self.warmup_steps}"),
            (self.weight_decay is None or self.weight_decay >= 0, f"--weight-decay must be 0 or more, not {self.weight_decay}"),
            (self.grad_clip > 0, f"--grad-clip must be positive, not {self.grad_clip}"),
            (self.max_steps is None or self.max_steps > 0, f"--max-steps must be positive, not {self.max_steps}"),
            (self.epochs is None or self.epochs > 0, f"--epochs must be positive, not {self.epochs}"),
            (self.time_budget is None or self.time_budget > 0, f"--time-budget must be positive, not {self.time_budget}"),
            (self.eval_every is None or self.eval_every > 0, f"--eval-every must be positive, not {self.eval_every}"),
            (self.eval_tokens is None or self.eval_tokens > 0, f"eval_tokens must be positive, not {self.eval_tokens}"),
            (self.patience is None or self.patience > 0, f"--patience must be positive, not {self.patience}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)

    def with_defaults(self, **defaults) -> TrainConfig:
        """A copy with each setting left unset (None) replaced by the given default."""
        return replace(self, **{name: value for name, value in defaults.items() if getattr(self, name) is None})


class TrainingTask(Protocol):
    """What a task gives the loop. The task owns its batches (and any state carried between
    them, such as the hidden state of truncated BPTT)."""

    name: str  # the task its checkpoints name (charrnn.tasks.TASKS)
    model: nn.Module
    steps_per_epoch: int

    @staticmethod
    def describe_metrics(metrics: dict) -> str:
        """An evaluation record in words, for the summary and `charrnn info`."""

    def training_loss(self, model: nn.Module, device: torch.device) -> tuple[torch.Tensor, int]:
        """Loss on the next training batch, and the number of tokens it covered."""

    def evaluate(self, model: nn.Module, device: torch.device, max_tokens: int | None = None) -> dict[str, float]:
        """Metrics on the validation data; must include 'val_loss' (lower is better). With
        max_tokens, a task may score only about that many validation tokens, the same ones every
        time, and then says which share of the data it scored as 'val_fraction'."""

    def data_state(self) -> dict:
        """Where the batches are, so a resumed run reads exactly the same data."""

    def load_data_state(self, state: dict) -> None: ...

    def checkpoint_fields(self) -> dict:
        """What the task needs in every checkpoint to rebuild the model (task, config, vocab)."""

    # A task may also have calibrate(model, device): fit what is fitted on held-out data rather
    # than trained (the classifier's mixing weights). The loop calls it before each evaluation,
    # as a step of its own, so that evaluate only measures.


@dataclass
class TrainState:
    """Everything that changes during training besides weights and optimiser moments."""

    step: int = 0
    tokens_seen: int = 0
    elapsed: float = 0.0  # seconds of training so far, across resumed sessions
    total_steps: int | None = None  # the step the schedule reaches its end at
    best_val_loss: float = math.inf
    best_step: int = 0
    evals_without_improvement: int = 0
    history: list[dict] = field(default_factory=list)  # every evaluation


class StopReason(str, Enum):
    """Why a run ended. A str, so log.jsonl and older code read it as the plain word."""

    MAX_STEPS = "max_steps"
    EPOCHS = "epochs"
    TIME_BUDGET = "time_budget"
    EARLY_STOPPING = "early_stopping"
    INTERRUPTED = "interrupted"  # Ctrl-C: last.pt saved, resumable
    DIVERGED = "diverged"  # the loss became NaN or infinite: nothing saved over good checkpoints

    def __str__(self) -> str:
        return self.value

    @property
    def description(self) -> str:
        """The reason as the training summary says it."""
        return _STOP_DESCRIPTIONS[self]


_STOP_DESCRIPTIONS = {
    StopReason.MAX_STEPS: "reached --max-steps",
    StopReason.EPOCHS: "reached --epochs",
    StopReason.TIME_BUDGET: "used the --time-budget",
    StopReason.EARLY_STOPPING: "early stopping (validation loss stopped improving)",
    StopReason.INTERRUPTED: "interrupted",
    StopReason.DIVERGED: "the loss became NaN or infinite (try a lower --lr)",
}


@dataclass
class TrainResult:
    state: TrainState
    stop_reason: StopReason
    run_dir: Path
    final_metrics: dict
    task: str  # the task's name, which says how to describe its metrics


def learning_rate_at(step: int, config: TrainConfig, total_steps: int) -> float:
    """Linear warm-up to the peak, then cosine decay to peak * min_lr_ratio at total_steps."""
    peak = config.learning_rate
    if step < config.warmup_steps:
        return peak * (step + 1) / config.warmup_steps
    span = max(1, total_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    floor = peak * config.min_lr_ratio
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only: decaying biases, embeddings and norms only
    hurts small models."""
    if config.weight_decay is None or config.learning_rate is None:
        raise ValueError("make_optimizer needs the learning rate and weight decay set (TrainConfig.with_defaults)")
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_matrix = param.dim() >= 2 and "embedding" not in name
        (decay if is_matrix else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # The fused kernel updates all parameters in one pass instead of a dozen ops per tensor:
    # 13% of a translator training step on the CPU (measured); it exists for CPU and CUDA only.
    device_type = next(model.parameters()).device.type
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(0.9, 0.99), fused=device_type in ("cpu", "cuda"))


class _StopRequest:
    """Turns the first Ctrl-C into a request the loop honours between steps (so the checkpoint it
    then writes is consistent); a second Ctrl-C interrupts at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _restore_rng(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_python_random_state(state["python"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _as_python_random_state(state):
    # random.setstate wants tuples; a checkpoint round-trip may give lists.
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


class Trainer:
    """Runs a TrainingTask to a stop condition, writing best.pt, last.pt and log.jsonl to run_dir.

    settings_note, when given, says how settings the user left unset were chosen; it goes into
    the start event (so into log.jsonl and onto the console)."""

    def __init__(
        self,
        task: TrainingTask,
        config: TrainConfig,
        run_dir: Path,
        *,
        device: torch.device,
        amp_dtype: torch.dtype | None = None,
        on_event: Callable[[TrainingEvent], None] | None = None,
        settings_note: dict | None = None,
    ):
        unset = [name for name in TASK_DEFAULTS if getattr(config, name) is None]
        if unset:
            raise ValueError(f"TrainConfig leaves {', '.join(unset)} unset; fill them with with_defaults() first")
        config.validate()
        self.task = task
        self.config = config
        self.run_dir = Path(run_dir)
        self.device = device
        self.amp_dtype = amp_dtype
        if device.type == "cpu":
            keep_freed_memory()  # see allocator.py: up to 40% faster steps at larger batches
        self.on_event = on_event or (lambda event: None)
        self.settings_note = settings_note
        self.model = task.model.to(device)
        self.optimizer = make_optimizer(self.model, config)
        self.state = TrainState()
        self._pending_rng: dict | None = None  # RNG states to restore when a resumed run starts
        self._log_handle = None
        self._clock: tuple[float, float] | None = None  # (perf_counter, elapsed) when this session began
        self._full_eval_seconds = 0.0  # measured cost of scoring the whole validation split
        self._save_seconds = 0.0  # measured cost of writing a checkpoint

    # -- resume --------------------------------------------------------------------------------

    def load_resume_state(self, checkpoint: Checkpoint) -> None:
        """Restore weights, optimiser, schedule, data position, RNG and history from a checkpoint
        written by this loop, so training continues exactly where it stopped."""
        if not checkpoint.resumable:
            raise UsageError("this checkpoint holds weights only (it was exported); it cannot resume training")
        self.model.load_state_dict(checkpoint.model_state)
        self.optimizer.load_state_dict(checkpoint.resume["optimizer"])
        self.state = TrainState(**checkpoint.train_state)
        self.task.load_data_state(checkpoint.resume["data"])
        self._pending_rng = checkpoint.resume["rng"]

    # -- the loop ------------------------------------------------------------------------------

    def _stop_steps(self) -> int | None:
        """The step count a step or epoch limit implies, if any."""
        limits = []
        if self.config.max_steps is not None:
            limits.append(self.config.max_steps)
        if self.config.epochs is not None:
            limits.append(max(1, math.ceil(self.config.epochs * self.task.steps_per_epoch)))
        return min(limits) if limits else None

    def _reserve(self) -> float:
        """Seconds of the budget kept for what closes a run, as measured so far: scoring the whole
        validation split (with partial periodic evaluations: the part they score, then the whole
        split for the final model and an earlier best) and writing the checkpoints."""
        partial = self._eval_fraction
        closing_evaluations = 2.0 + partial if partial else 1.0  # the final model, an earlier best, the part
        # Writing best.pt after the last periodic evaluation, reading an earlier best.pt back,
        # then rewriting it with its whole-split figure or writing the final model as best.pt,
        # and last.pt: four checkpoint reads and writes, and one more for a disk that slows down.
        return self._full_eval_seconds * closing_evaluations + 5 * self._save_seconds

    def _estimate_total(self, seconds_per_step: float) -> int:
        """Under a time budget, the schedule's length is the number of steps the remaining time
        allows at the measured speed (capped by any step or epoch limit)."""
        remaining = max(0.0, self.config.time_budget - self._reserve() - self.state.elapsed)
        total = self.state.step + int(remaining / max(seconds_per_step, 1e-9))
        limit = self._stop_steps()
        return min(total, limit) if limit is not None else total

    def _tick(self) -> None:
        """Bring state.elapsed up to now: training time, evaluations included, across sessions."""
        started, elapsed_then = self._clock
        self.state.elapsed = elapsed_then + (time.perf_counter() - started)

    def run(self) -> TrainResult:
        cfg = self.config
        device = self.device
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.state.step == 0:
            torch.manual_seed(cfg.seed)
            random.seed(cfg.seed)
        elif self._pending_rng is not None:
            _restore_rng(self._pending_rng, device)
        step_limit = self._stop_steps()
        if cfg.time_budget is None and step_limit is None:
            raise UsageError("give a stop condition: --max-steps, --epochs or --time-budget")
        if self.state.total_steps is None or cfg.time_budget is None:
            # Without a time budget the schedule length is known now; with one, it is set
            # provisionally and re-estimated from the measured speed below.
            self.state.total_steps = step_limit if step_limit is not None else UNKNOWN_TOTAL
        self._log_handle = open(self.run_dir / "log.jsonl", "a", encoding="utf-8")
        num_params = sum(p.numel() for p in self.model.parameters())
        self._emit(StartEvent(step=self.state.step, total_steps=self._known_total(), parameters=num_params,
                              device=str(device),
                              precision=str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "fp32",
                              time_budget=cfg.time_budget, settings=self.settings_note or None))
        stop_reason = None
        self._clock = (time.perf_counter(), self.state.elapsed)
        calibration_start: tuple[int, float] | None = None
        self.model.train()
        with _StopRequest() as stop:
            while stop_reason is None:
                stop_reason = self._train_step()
                if cfg.time_budget is not None:
                    # Measure the speed over 10 steps after the first few (kernel warm-up).
                    if calibration_start is None and self.state.step >= 3:
                        calibration_start = (self.state.step, self.state.elapsed)
                    elif calibration_start is not None and self.state.step == calibration_start[0] + 10:
                        per_step = (self.state.elapsed - calibration_start[1]) / 10
                        self.state.total_steps = self._estimate_total(per_step)
                if stop_reason is None and self.state.step % cfg.eval_every == 0:
                    improved = self._evaluate_and_save(partial=cfg.eval_tokens is not None)
                    if cfg.time_budget is not None:
                        # Evaluations take time too: re-estimate with the average step so far.
                        per_step = self.state.elapsed / max(1, self.state.step)
                        self.state.total_steps = max(self.state.step, self._estimate_total(per_step))
                    if not improved and cfg.patience is not None and self.state.evals_without_improvement >= cfg.patience:
                        stop_reason = StopReason.EARLY_STOPPING
                if stop_reason is None:
                    stop_reason = self._stop_reason(stop.requested)
        if stop_reason is StopReason.INTERRUPTED:
            self._save("last.pt")  # at once: whoever pressed Ctrl-C is waiting
        elif stop_reason is not StopReason.DIVERGED:  # a diverged model must not overwrite good checkpoints
            self._final_evaluations()
        self._tick()
        final_metrics = _last_complete(self.state.history) if stop_reason is not StopReason.DIVERGED else {}
        best = best_record(self.state.history, self.state.best_step)
        self._emit(EndEvent(step=self.state.step, reason=stop_reason, elapsed=self.state.elapsed,
                            best_val_loss=best["val_loss"] if best else self.state.best_val_loss,
                            best_step=self.state.best_step))
        self._log_handle.close()
        return TrainResult(self.state, stop_reason, self.run_dir, final_metrics, self.task.name)

    def _train_step(self) -> StopReason | None:
        """One optimiser step on the task's next batch; returns DIVERGED if the loss is not
        finite (the update is then not applied)."""
        cfg = self.config
        step = self.state.step
        lr = learning_rate_at(step, cfg, self.state.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with autocast(self.device, self.amp_dtype):
            loss, tokens = self.task.training_loss(self.model, self.device)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            return StopReason.DIVERGED
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # Clipping keeps the rare exploding gradient of a recurrent net from undoing many steps
        # of progress in one update.
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.state.step += 1
        self.state.tokens_seen += tokens
        self._tick()
        self._emit(StepEvent(step=self.state.step, loss=loss_value, lr=lr, grad_norm=float(grad_norm),
                             tokens=self.state.tokens_seen, elapsed=self.state.elapsed, total_steps=self._known_total()))
        return None

    def _stop_reason(self, interrupted: bool) -> StopReason | None:
        if interrupted:
            return StopReason.INTERRUPTED
        limit = self._stop_steps()
        if limit is not None and self.state.step >= limit:
            return StopReason.MAX_STEPS if self.config.max_steps == limit else StopReason.EPOCHS
        if self.config.time_budget is not None:
            # Stop when one more step (at the average pace so far) would leave too little of the
            # budget for the closing evaluations, so the run ends within its budget.
            next_step = self.state.elapsed / max(1, self.state.step)
            if self.state.elapsed + next_step + self._reserve() > self.config.time_budget:
                return StopReason.TIME_BUDGET
            if self.state.step >= (self.state.total_steps or 0):
                return StopReason.TIME_BUDGET
        return None

    @property
    def _eval_fraction(self) -> float:
        """The share of the validation data a partial evaluation scored (0 if none was partial)."""
        partial = [h for h in self.state.history if h.get("partial")]
        return partial[-1]["val_fraction"] if partial else 0.0

    def _score(self, *, partial: bool) -> dict:
        """Evaluate the model as it is now, on part (partial) or all of the validation data, and
        time it: the time of a whole-split evaluation is what the budget keeps for the end."""
        started = time.perf_counter()
        self.model.eval()
        with torch.no_grad(), autocast(self.device, self.amp_dtype):
            calibrate = getattr(self.task, "calibrate", None)
            if calibrate is not None:
                calibrate(self.model, self.device)
            metrics = self.task.evaluate(self.model, self.device, self.config.eval_tokens if partial else None)
        self.model.train()
        seconds = time.perf_counter() - started
        self._full_eval_seconds = seconds / max(metrics.get("val_fraction", 1.0), 1e-6)
        self._tick()
        return metrics

    def _record(self, metrics: dict, *, partial: bool, step: int | None = None) -> dict:
        record = {"step": self.state.step if step is None else step, "elapsed": round(self.state.elapsed, 3),
                  "tokens": self.state.tokens_seen, **metrics}
        if partial:
            record["partial"] = True
        self.state.history.append(record)
        return record

    def _evaluate_and_save(self, *, partial: bool = False) -> bool:
        """An evaluation that may choose best.pt: its figure is compared with the best so far
        (always figures of the same kind: all partial, or all on the whole split)."""
        metrics = self._score(partial=partial)
        partial = metrics.get("val_fraction", 1.0) < 1.0  # a split smaller than the part is scored whole
        val_loss = metrics["val_loss"]
        improved = val_loss < self.state.best_val_loss
        if improved:
            self.state.best_val_loss = val_loss
            self.state.best_step = self.state.step
            self.state.evals_without_improvement = 0
        else:
            self.state.evals_without_improvement += 1
        record = self._record(metrics, partial=partial)
        self._emit(EvalEvent(record, self.state.best_val_loss, improved))
        self._save("last.pt")
        if improved:
            self._save("best.pt")
        return improved

    def _final_evaluations(self) -> None:
        """The evaluations that close a run. The finished model competes for best.pt on the same
        kind of figure as every earlier evaluation, then is scored on the whole validation split,
        so the final figure reported is always a whole-split one. With partial evaluations, an
        earlier best.pt is scored on the whole split too, and the two whole-split figures decide
        which model best.pt keeps (a part of the split may rank two close models wrongly)."""
        history = self.state.history
        if not (history and history[-1]["step"] == self.state.step):
            self._evaluate_and_save(partial=self.config.eval_tokens is not None)
        if not history[-1].get("partial"):
            return
        partial_figure = history[-1]["val_loss"]
        final = self._record(self._score(partial=False), partial=False)
        self._emit(EvalEvent(final, self.state.best_val_loss, improved=False))
        best_path = self.run_dir / "best.pt"
        if self.state.best_step != self.state.step and best_path.exists():
            best = load_checkpoint(best_path)
            final_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.model.load_state_dict(best.model_state)
            earlier = self._record(self._score(partial=False), partial=False, step=self.state.best_step)
            self.model.load_state_dict(final_weights)
            if final["val_loss"] < earlier["val_loss"]:
                self.state.best_step, self.state.best_val_loss = self.state.step, partial_figure
            else:
                best.train_state["history"].append(earlier)
                save_checkpoint(best, best_path)
            self._emit(EvalEvent(earlier, self.state.best_val_loss, improved=False))
        self._save("last.pt")
        if self.state.best_step == self.state.step:
            self._save("best.pt")

    def _save(self, name: str) -> None:
        fields = self.task.checkpoint_fields()
        checkpoint = Checkpoint(
            task=fields["task"],
            metadata={k: v for k, v in fields.items() if k != "task"},
            model_state=self.model.state_dict(),
            training={"config": asdict(self.config), "state": asdict(self.state)},
            resume={"optimizer": self.optimizer.state_dict(), "data": self.task.data_state(), "rng": _rng_state(self.device)},
        )
        started = time.perf_counter()
        save_checkpoint(checkpoint, self.run_dir / name)
        self._save_seconds = time.perf_counter() - started

    def _known_total(self) -> int | None:
        """The schedule's length for an event: None while a time-budget run has not measured it."""
        total = self.state.total_steps
        return total if total is not None and total < UNKNOWN_TOTAL else None

    def _emit(self, event: TrainingEvent) -> None:
        if self._log_handle is not None:
            self._log_handle.write(json.dumps(event.to_log()) + "\n")
            self._log_handle.flush()
        self.on_event(event)


UNKNOWN_TOTAL = 10**9  # the schedule length of a time-budget run until its speed is measured


def best_record(history: list[dict], best_step: int) -> dict | None:
    """The evaluation record of the best step: its whole-split one where there is one."""
    records = [h for h in history if h["step"] == best_step]
    complete = [h for h in records if not h.get("partial")]
    return (complete or records or [None])[-1]


def _last_complete(history: list[dict]) -> dict:
    """The latest evaluation record, preferring a whole-split one of the same step."""
    if not history:
        return {}
    return best_record(history, max(h["step"] for h in history)) or {}


# -- run folders -------------------------------------------------------------------------------


def claim_run_dir(run_dir: Path, *, overwrite: bool) -> None:
    """Refuse to start a new run over an earlier one (its best.pt would be replaced at the first
    evaluation) unless overwrite is asked for; then the old checkpoints and log go first."""
    earlier = [run_dir / name for name in ("best.pt", "last.pt", "log.jsonl") if (run_dir / name).exists()]
    if earlier and not overwrite:
        raise CharrnnError(
            f"{run_dir} already holds a run; continue it with --resume {run_dir}, "
            f"or choose another --run-dir, or pass --overwrite to replace it"
        )
    for path in earlier:
        path.unlink()


def resume_checkpoint_path(resume: str | Path) -> Path:
    """--resume takes a run folder (uses its last.pt) or a checkpoint file."""
    path = Path(resume)
    if path.is_dir():
        path = path / "last.pt"
    return path


def resumed_train_config(checkpoint: Checkpoint, given: TrainConfig | None) -> TrainConfig:
    """The training settings of a resumed run: the checkpoint's, except the stop conditions the
    caller gives (max_steps, epochs, time_budget), which replace the saved ones."""
    saved = TrainConfig(**checkpoint.training["config"])
    if given is not None:
        for name in ("max_steps", "epochs", "time_budget"):
            if getattr(given, name) is not None:
                setattr(saved, name, getattr(given, name))
    return saved
