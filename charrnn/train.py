"""The one task-agnostic training loop: AdamW, warm-up then cosine decay, gradient clipping,
mixed precision, periodic evaluation, early stopping, atomic checkpoints (best.pt, last.pt), a
JSONL log, stopping by steps, epochs or wall-clock budget, Ctrl-C, and exact resume. Also the run
folder's fault tolerance: checked writable before training, cleared of what a kill -9 left behind,
and its log made to agree with the checkpoint a run resumes from.

A task supplies the model, its own batches and an evaluation; the loop reports through events,
and only the CLI draws progress. Under torchrun (see distributed.py) the same loop runs on every
rank: DDP keeps the gradients in step, rank 0 writes, and the ranks agree after each step."""

from __future__ import annotations

import inspect
import json
import math
import os
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
from torch.nn.parallel import DistributedDataParallel

from .allocator import keep_freed_memory
from .checkpoint import (Checkpoint, leftover_temporaries, load_checkpoint, save_checkpoint, temporary_path,
                         write_atomically)
from .devices import autocast
from .distributed import Ranks, launch_id
from .errors import CharrnnError, UsageError
from .events import EndEvent, EvalEvent, StartEvent, StepEvent, TrainingEvent, WarningEvent
from .numbers import check_finite, check_range, check_seed


# The settings a task may leave unset (None) for its own default, which the language model
# chooses from the measured speed of this machine (see language/adaptive.py).
TASK_DEFAULTS = ("learning_rate", "min_lr_ratio", "warmup_steps", "eval_every")
MAX_EPOCHS = 1_000_000
MAX_TIME_BUDGET = 10**9  # seconds: some 30 years


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
        for value, option in ((self.learning_rate, "--lr"), (self.min_lr_ratio, "--min-lr-ratio"),
                              (self.weight_decay, "--weight-decay"), (self.grad_clip, "--grad-clip"),
                              (self.epochs, "--epochs"), (self.time_budget, "--time-budget")):
            check_finite(value, option)
        check_seed(self.seed)
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
        # Beyond these no run ends in this lifetime, and the step count they imply overflows.
        check_range(self.epochs, "--epochs", high=MAX_EPOCHS)
        check_range(self.time_budget, "--time-budget", high=MAX_TIME_BUDGET)

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
    # Why the run ended (a StopReason's value), kept in its closing checkpoints so that a resume
    # knows it has ended; None while it can go on (also after Ctrl-C).
    stop_reason: str | None = None

    def check(self) -> None:
        """Raise ValueError for a state no run writes (read from a damaged checkpoint): counts
        that are not whole numbers of 0 or more, a time that is not, an evaluation record without
        its step, time and loss."""
        for name in ("step", "tokens_seen", "best_step", "evals_without_improvement"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"its training state has {name} {value!r}")
        if not isinstance(self.elapsed, (int, float)) or not 0 <= self.elapsed < math.inf:
            raise ValueError(f"its training state has elapsed {self.elapsed!r}")
        if not isinstance(self.history, list):
            raise ValueError("its training history is not a list")
        for record in self.history:
            if not (isinstance(record, dict) and type(record.get("step")) is int
                    and all(isinstance(record.get(key), (int, float)) for key in ("elapsed", "val_loss"))):
                raise ValueError(f"its training history has a record without a step, time and loss: {record!r:.80}")


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


def _check_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Raise ValueError for AdamW moments no run writes (read from a damaged checkpoint):
    load_state_dict takes them as they are, and the first step would fail on a missing or misshapen
    moment, or train on a negative step count, after the run had begun writing its log."""
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            state = optimizer.state.get(parameter)
            if not state:
                continue  # a parameter no step has updated yet
            for name in ("exp_avg", "exp_avg_sq"):
                moment = state.get(name)
                if not isinstance(moment, torch.Tensor) or moment.shape != parameter.shape:
                    raise ValueError(f"its optimiser state has a bad {name} for a weight of shape {tuple(parameter.shape)}")
            step = state.get("step")
            if not isinstance(step, torch.Tensor) or step.numel() != 1 or not math.isfinite(float(step)) or float(step) < 0:
                raise ValueError(f"its optimiser state has the step count {step!r:.40}")


# DDP's switch for not copying rank 0's buffers before each forward: renamed in torch 2.13, where
# the old name warns on every start; older releases know only the old one.
_NO_BUFFER_SYNC = ({"forward_sync_buffers": False}
                   if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
                   else {"broadcast_buffers": False})


class _TrainingStep(nn.Module):
    """A task's training loss as a module, for DistributedDataParallel to wrap: DDP's forward is
    what readies its all-reduce of the gradients, and a task computes its loss through its model's
    own methods (the classifier's recurrent_logits), not only through the model's forward."""

    def __init__(self, task: TrainingTask, model: nn.Module, device: torch.device):
        super().__init__()
        self.task = task
        self.model = model  # a submodule: its parameters are the ones DDP keeps in step
        self.device = device

    def forward(self) -> tuple[torch.Tensor, int]:
        return self.task.training_loss(self.model, self.device)


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
        # Under torchrun, each rank computes the loss on its share of the global batch, and DDP
        # averages the gradients (so they are the global batch's) while backward runs. Buffers are
        # not broadcast: every rank fits them alike from the same data (the forecaster's interval,
        # the classifier's n-gram counts), and copying the counts at every step would cost a lot.
        self.ranks = Ranks.current()
        self._parallel_step = None
        if self.ranks.parallel:
            self._parallel_step = DistributedDataParallel(
                _TrainingStep(task, self.model, device), device_ids=[device.index] if device.type == "cuda" else None,
                static_graph=True, **_NO_BUFFER_SYNC)
        self.state = TrainState()
        self._pending_rng: dict | None = None  # RNG states to restore when a resumed run starts
        self._log_handle = None
        self._clock: tuple[float, float] | None = None  # (perf_counter, elapsed) when this session began
        self._full_eval_seconds = 0.0  # measured cost of scoring the whole validation split
        self._save_seconds = 0.0  # measured cost of writing a checkpoint
        self._saved_config: TrainConfig | None = None  # a resumed run's settings as its checkpoint has them

    # -- resume --------------------------------------------------------------------------------

    def load_resume_state(self, checkpoint: Checkpoint) -> None:
        """Restore weights, optimiser, schedule, data position, RNG and history from a checkpoint
        written by this loop, so training continues exactly where it stopped."""
        if not checkpoint.resumable:
            raise UsageError("this checkpoint holds weights only (it was exported); it cannot resume training")
        self.model.load_state_dict(checkpoint.model_state)
        self.optimizer.load_state_dict(checkpoint.resume["optimizer"])
        _check_optimizer_state(self.optimizer)
        self.state = TrainState(**checkpoint.train_state)
        self.state.check()
        self.task.load_data_state(checkpoint.resume["data"])
        # Each rank draws its own dropout masks: it resumes its own random state when the run was
        # saved by as many ranks (else rank 0's, as a plain process resumes).
        by_rank = checkpoint.resume.get("rng_ranks")
        same_ranks = isinstance(by_rank, list) and len(by_rank) == self.ranks.world_size
        self._pending_rng = by_rank[self.ranks.rank] if same_ranks else checkpoint.resume["rng"]
        self._saved_config = TrainConfig(**checkpoint.training["config"])

    def _ended(self) -> StopReason | None:
        """How a resumed run ended, if it did: the reason its closing checkpoint recorded, or, for
        a checkpoint from before that was recorded, early stopping read from its patience count."""
        if self.state.stop_reason is not None:
            return StopReason(self.state.stop_reason)
        if self.config.patience is not None and self.state.evals_without_improvement >= self.config.patience:
            return StopReason.EARLY_STOPPING
        return None

    def _finished(self) -> tuple[StopReason, str] | None:
        """Why a resumed run has nothing left to train, as (the reason it ended, what to say), or
        None. A step, epoch or time limit already reached ends it (a --max-steps at or below the
        step it is at too); a run that ended by its time budget or by early stopping stays ended
        unless the resume raises its time budget (or, after early stopping, any of its limits)."""
        state, cfg, saved = self.state, self.config, self._saved_config
        limit = self._stop_steps()
        if limit is not None and state.step >= limit:
            reason, given = ((StopReason.MAX_STEPS, f"--max-steps is {limit}") if cfg.max_steps == limit else
                             (StopReason.EPOCHS, f"--epochs {cfg.epochs:g} ends at step {limit}"))
            return reason, (f"it is at step {state.step} and {given}; to train on, give a --max-steps or --epochs "
                            f"beyond step {state.step}")
        if cfg.time_budget is not None and state.elapsed >= cfg.time_budget:
            return StopReason.TIME_BUDGET, (f"it has trained {state.elapsed:.1f}s and --time-budget is "
                                            f"{cfg.time_budget:g}s; to train on, give a higher --time-budget")
        ended = self._ended()
        budget_raised = _higher(cfg.time_budget, saved.time_budget)
        if ended is StopReason.TIME_BUDGET and not budget_raised:
            return ended, (f"it used its --time-budget of {saved.time_budget:g}s; "
                           "to train on, give a higher --time-budget")
        if ended is StopReason.EARLY_STOPPING and not (budget_raised or _higher(limit, self._stop_steps(saved))):
            return ended, (f"it stopped early at step {state.step}, the validation loss no longer improving; to train "
                           "on, give a higher --max-steps, --epochs or --time-budget than its own (patience then "
                           "counts afresh)")
        return None

    def _nothing_left(self, reason: StopReason, why: str) -> TrainResult:
        """The result of resuming a finished run: the run as it is, said in one warning."""
        self.on_event(WarningEvent(f"{self.run_dir} has already finished, so nothing was trained or written: {why}"))
        return TrainResult(self.state, reason, self.run_dir, _last_complete(self.state.history), self.task.name)

    def _go_on(self) -> None:
        """Ready a resumed run that has steps left: an ended run given higher limits is no longer
        ended, and its patience counts afresh (else an early-stopped run would stop again at its
        next evaluation); a new time budget sets the schedule's length from the pace so far."""
        if self._ended() is StopReason.EARLY_STOPPING:
            self.state.evals_without_improvement = 0
        self.state.stop_reason = None
        budget = self.config.time_budget
        if budget is not None and budget != self._saved_config.time_budget and self.state.step > 0:
            # The saved length was estimated for the old budget: kept, it would end the run at once
            # (a raised budget) or late (a lowered one) until the speed is measured again.
            self.state.total_steps = max(self.state.step, self._estimate_total(self.state.elapsed / self.state.step))

    # -- the loop ------------------------------------------------------------------------------

    def _stop_steps(self, config: TrainConfig | None = None) -> int | None:
        """The step count a step or epoch limit implies, if any (of this run's settings, or of the
        config given)."""
        config = config or self.config
        limits = []
        if config.max_steps is not None:
            limits.append(config.max_steps)
        if config.epochs is not None:
            limits.append(max(1, math.ceil(config.epochs * self.task.steps_per_epoch)))
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
        measured = self._full_eval_seconds * closing_evaluations + 5 * self._save_seconds
        # The closing work was timed once, earlier; on a busy machine it can take longer at the
        # end (a CI run went 4 ms over a 3 s budget), so keep a quarter more, and 1% of the budget
        # for the steps' own jitter.
        return 1.25 * measured + 0.01 * self.config.time_budget

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
        """Train to a stop condition, and say how the run ended.

        Before any step, the run folder is checked writable and cleared of what a kill -9 left
        (prepare_run_dir), and a resumed run's log loses what was logged after its checkpoint
        (trim_log). A resumed run that has already finished (see _finished: its step, epoch or time
        limit reached, a --max-steps at or below its step, or ended by its time budget or early
        stopping without higher limits) trains nothing and writes nothing: it says so in one
        WarningEvent (one line on stderr) and returns the run as it is, with the reason it ended,
        so the command exits normally, as a rerun of `make` with nothing to do does; a script may
        resume a run whatever state it is in.

        Raises a one-line CharrnnError when the run folder cannot be written, and when a save or
        the log fails mid-run (a full disk, changed permissions): the checkpoints saved before are
        intact, and the run stops rather than train steps it cannot save."""
        cfg = self.config
        device = self.device
        step_limit = self._stop_steps()
        if cfg.time_budget is None and step_limit is None:
            raise UsageError("give a stop condition: --max-steps, --epochs or --time-budget")
        if self.ranks.is_writer:
            prepare_run_dir(self.run_dir)
        if self._saved_config is not None:
            finished = self._finished()
            if finished is not None:
                return self._nothing_left(*finished)
            self._go_on()
            if self.ranks.is_writer:
                trim_log(self.run_dir / "log.jsonl", self.state.step)
        self.ranks.barrier()  # the folder is ready before any rank goes on
        if self.state.step == 0:
            # One seed per rank, so that ranks draw different dropout masks (rank 0: the run's seed).
            torch.manual_seed(cfg.seed + self.ranks.rank)
            random.seed(cfg.seed + self.ranks.rank)
        elif self._pending_rng is not None:
            _restore_rng(self._pending_rng, device)
        if self.state.total_steps is None or cfg.time_budget is None:
            # Without a time budget the schedule length is known now; with one, it is set
            # provisionally and re-estimated from the measured speed below.
            self.state.total_steps = step_limit if step_limit is not None else UNKNOWN_TOTAL
        log_path = self.run_dir / "log.jsonl"
        if self.ranks.is_writer:
            try:
                self._log_handle = open(log_path, "a", encoding="utf-8")
            except OSError as exc:
                raise CharrnnError(f"cannot write {log_path}: {_reason(exc)}") from None
        try:
            return self._train_to_stop()
        finally:
            try:
                if self._log_handle is not None:
                    self._log_handle.close()
            except OSError:
                pass  # a full disk: what failed was reported as it happened (see _emit)
            self._log_handle = None

    def _train_to_stop(self) -> TrainResult:
        cfg = self.config
        device = self.device
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
                stop_reason = self._agree(stop_reason, interrupted=stop.requested)
        if stop_reason is StopReason.INTERRUPTED:
            self._save("last.pt")  # at once: whoever pressed Ctrl-C is waiting
        elif stop_reason is not StopReason.DIVERGED:  # a diverged model must not overwrite good checkpoints
            self.state.stop_reason = stop_reason.value  # in the closing checkpoints: a resume knows the run ended
            self._final_evaluations()
        self._tick()
        final_metrics = _last_complete(self.state.history) if stop_reason is not StopReason.DIVERGED else {}
        best = best_record(self.state.history, self.state.best_step)
        self._emit(EndEvent(step=self.state.step, reason=stop_reason, elapsed=self.state.elapsed,
                            best_val_loss=best["val_loss"] if best else self.state.best_val_loss,
                            best_step=self.state.best_step))
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
            loss, tokens = (self._parallel_step() if self._parallel_step is not None
                            else self.task.training_loss(self.model, self.device))
        # Every rank logs and judges the global batch's loss and counts its tokens, so that all of
        # them stop together should it diverge.
        loss_sum, tokens = self.ranks.sum([loss.item(), tokens])
        loss_value, tokens = loss_sum / self.ranks.world_size, int(tokens)
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

    def _agree(self, stop_reason: StopReason | None, *, interrupted: bool) -> StopReason | None:
        """Make the ranks of a parallel run take the same decisions after each step: rank 0's clock,
        its schedule's length (which sets the learning rate) and its reason to stop, else any
        rank's Ctrl-C (torchrun passes it on to each worker, not at the same step). A plain process
        decides alone."""
        if not self.ranks.parallel:
            return stop_reason
        mine = self.ranks.is_writer
        code = list(StopReason).index(stop_reason) + 1 if mine and stop_reason is not None else 0
        total, elapsed, reason, asked = self.ranks.sum([self.state.total_steps if mine else 0,
                                                        self.state.elapsed if mine else 0.0, code, float(interrupted)])
        self.state.total_steps, self.state.elapsed = int(total), elapsed
        if reason:
            return list(StopReason)[int(reason) - 1]
        return StopReason.INTERRUPTED if asked else None

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
        # best.pt before last.pt: a kill between the two leaves last.pt at the evaluation before,
        # whose resume does this one again and writes best.pt again. The other order would leave a
        # last.pt whose best_step names a model best.pt never received.
        if improved:
            self._save("best.pt")
        self._save("last.pt")
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
        elif not history[-1].get("partial"):
            # The loop evaluated this step and saved last.pt before the run knew it was ending:
            # save it again, so that it records how the run ended (TrainState.stop_reason).
            self._save("last.pt")
            return
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
            elif self.ranks.is_writer:
                best.train_state["history"].append(earlier)
                self._write(best, "best.pt")
            self._emit(EvalEvent(earlier, self.state.best_val_loss, improved=False))
        if self.state.best_step == self.state.step:
            self._save("best.pt")  # before last.pt, as in _evaluate_and_save
        self._save("last.pt")

    def _save(self, name: str) -> None:
        """Save the run as it is now. Every rank takes part (a language model's data position
        gathers each rank's hidden state; each rank's random state is kept), rank 0 alone writes,
        and no rank goes on until the file is written (the ranks may read it back, see
        _final_evaluations)."""
        data = self.task.data_state()
        rng = self.ranks.gather(_rng_state(self.device))
        if self.ranks.is_writer:
            fields = self.task.checkpoint_fields()
            resume = {"optimizer": self.optimizer.state_dict(), "data": data, "rng": rng[0]}
            if self.ranks.parallel:
                resume["rng_ranks"] = rng
            checkpoint = Checkpoint(
                task=fields["task"],
                metadata={k: v for k, v in fields.items() if k != "task"},
                model_state=self.model.state_dict(),
                # launch: the torchrun launch that wrote it, which a restarted worker resumes (runs.py)
                training={"config": asdict(self.config), "state": asdict(self.state), "launch": launch_id()},
                resume=resume,
            )
            started = time.perf_counter()
            self._write(checkpoint, name)
            self._save_seconds = time.perf_counter() - started
        self.ranks.barrier()

    def _write(self, checkpoint: Checkpoint, name: str) -> None:
        """Save a checkpoint into the run folder; a failed save (atomic: the file it would replace
        is intact) stops the run with a one-line error rather than train on unsaved."""
        path = self.run_dir / name
        try:
            save_checkpoint(checkpoint, path)
        except OSError as exc:
            raise CharrnnError(f"cannot save {path}: {_reason(exc)}; training stopped at step {self.state.step}, and "
                               f"the checkpoints saved before are intact: free space or fix permissions, then "
                               f"--resume {self.run_dir}") from None

    def _known_total(self) -> int | None:
        """The schedule's length for an event: None while a time-budget run has not measured it."""
        total = self.state.total_steps
        return total if total is not None and total < UNKNOWN_TOTAL else None

    def _emit(self, event: TrainingEvent) -> None:
        if self._log_handle is not None:
            try:
                self._log_handle.write(json.dumps(event.to_log()) + "\n")
                self._log_handle.flush()
            except OSError as exc:
                # A line cut short here is dropped when the run resumes (trim_log).
                raise CharrnnError(f"cannot write {self.run_dir / 'log.jsonl'}: {_reason(exc)}; training stopped at "
                                   f"step {self.state.step}: free space or fix permissions, then "
                                   f"--resume {self.run_dir}") from None
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


def _higher(new: float | None, old: float | None) -> bool:
    """Whether a limit is higher than another (None: no limit)."""
    return (math.inf if new is None else new) > (math.inf if old is None else old)


def _reason(exc: OSError) -> str:
    """An OS error in a few words ('Permission denied', 'No space left on device')."""
    return exc.strerror or str(exc)


# -- run folders -------------------------------------------------------------------------------


RUN_FILES = ("best.pt", "last.pt", "log.jsonl")  # what a run writes into its folder
_PROBE = "write-probe"  # the name the probe file of _writable_folder is made from (temporary_path)


def check_run_dir(run_dir: Path) -> None:
    """Refuse a run folder that cannot be created or written, with a one-line CharrnnError naming
    it, before a run reads its data: a folder that cannot be written would otherwise fail at the
    first save, losing every step trained before it. Folders it creates to check are removed
    again, so that a run which then fails on its data leaves none behind."""
    run_dir = Path(run_dir)
    missing = [folder for folder in (run_dir, *run_dir.parents) if not folder.exists()]  # the deepest first
    _writable_folder(run_dir)
    for folder in missing:
        try:
            folder.rmdir()
        except OSError:
            break  # not empty after all: someone else is using it


def prepare_run_dir(run_dir: Path) -> None:
    """Make a run folder ready for a run to start or resume in: create it, check that it can be
    written (see check_run_dir), and remove the temporary files of atomic writes that a kill -9
    left there. Only those: files matching temporary_path's exact pattern for the run's own files
    (RUN_FILES), in the folder itself, not its subfolders; never anything else. One run writes to
    a folder at a time: another starting there would remove the temporary file it is writing (a
    new run is refused by claim_run_dir before it gets here)."""
    run_dir = Path(run_dir)
    _writable_folder(run_dir)
    for leftover in leftover_temporaries(run_dir, (*RUN_FILES, _PROBE)):
        leftover.unlink(missing_ok=True)


def _writable_folder(run_dir: Path) -> None:
    """Create run_dir, and write and remove a probe file in it; a one-line CharrnnError if either fails."""
    if run_dir.exists() and not run_dir.is_dir():
        raise CharrnnError(f"the run folder {run_dir} is a file, not a folder; choose another --run-dir")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CharrnnError(f"cannot create the run folder {run_dir}: {_reason(exc)}; "
                           "choose another --run-dir") from None
    probe = temporary_path(run_dir / _PROBE)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # as write_atomically creates files
        try:
            os.write(fd, b"charrnn")
        finally:
            os.close(fd)
        probe.unlink()
    except OSError as exc:
        raise CharrnnError(f"cannot write to the run folder {run_dir}: {_reason(exc)}; "
                           "fix its permissions or choose another --run-dir") from None


def trim_log(path: Path, step: int) -> None:
    """Make a resumed run's log.jsonl agree with the checkpoint it resumes from, at `step`: keep
    the lines up to the first of a later step (what a killed or failed session logged after its
    last save, which the resumed run trains again) and drop a last line cut short by a kill, so
    that no step is logged twice. Lines it cannot read are kept. Rewritten atomically, and only
    when something is dropped."""
    if not path.is_file():
        return
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CharrnnError(f"cannot read {path}: {_reason(exc)}") from None
    *complete, cut_short = data.split(b"\n")  # cut_short: b"" when the last line is whole
    kept = []
    for line in complete:
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if isinstance(event, dict) and isinstance(event.get("step"), int) and event["step"] > step:
            break
        kept.append(line)
    if len(kept) == len(complete) and not cut_short:
        return
    try:
        write_atomically(path, lambda handle: handle.write(b"".join(line + b"\n" for line in kept)))
    except OSError as exc:
        raise CharrnnError(f"cannot rewrite {path}: {_reason(exc)}") from None


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
