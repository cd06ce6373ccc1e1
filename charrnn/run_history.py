"""Reading finished or running training runs back from their folders: what a run is (RunSummary),
its loss curves (LossCurves), and where the runs under a folder are (find_runs). A run folder is
what the Trainer writes: log.jsonl, and best.pt / last.pt once it has evaluated. torch is imported
only where a checkpoint is read, so that listing the commands stays fast."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path

from .errors import CharrnnError

LOG_NAME = "log.jsonl"
CHECKPOINT_NAMES = ("best.pt", "last.pt")
RUN_FILES = (LOG_NAME, *CHECKPOINT_NAMES)
# The figure every task's best.pt is chosen by (TrainingTask.evaluate: lower is better). The
# task's other figures (bpc, accuracy) are in RunSummary.best_metrics, described by its task.
BEST_METRIC = "val_loss"


class RunStatus(str, Enum):
    """How a run stands, from the last session in its log (a resumed run appends a session). A
    str, so JSON and tables show the plain word."""

    FINISHED = "finished"  # reached its stop condition: steps, epochs, time budget or early stopping
    INTERRUPTED = "interrupted"  # Ctrl-C: last.pt saved, resumable
    DIVERGED = "diverged"  # the loss became NaN or infinite
    RUNNING_OR_KILLED = "running-or-killed"  # the last session has no end event (yet)
    NO_LOG = "no-log"  # checkpoints only (copied without their log, or from an older charrnn)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class CurvePoint:
    step: int
    elapsed: float  # seconds of training when the step was reached, summed over resumed sessions
    loss: float


@dataclass
class LossCurves:
    """A run's losses from its log: train, one point per optimiser step; val, one point per
    evaluated step."""

    folder: Path
    train: list[CurvePoint]
    val: list[CurvePoint]


@dataclass
class RunSummary:
    """A run folder in figures. Fields are None where neither the log nor a checkpoint says (a
    run killed before its first evaluation has no checkpoint, so no task)."""

    folder: Path
    task: str | None  # the checkpoint's task name (charrnn.tasks.TASKS)
    parameters: int | None
    steps: int | None  # optimiser steps done
    best_value: float | None  # BEST_METRIC at the best step
    best_step: int | None
    best_metrics: dict | None  # the whole evaluation record of the best step (all the task's figures)
    training_seconds: float | None  # wall-clock seconds of training, evaluations included, over all sessions
    status: RunStatus
    stop_reason: str | None  # the last session's end event's reason (a train.StopReason), if it ended
    modified: float  # the newest of the run's files, seconds since the epoch

    def describe_best(self) -> str:
        """The best evaluation in its task's words ("1.1867 nats/token, 1.7121 bpc, ...")."""
        from .tasks import describe_metrics

        return describe_metrics(self.task, self.best_metrics or {})

    def to_json(self) -> dict:
        """The summary as one JSON object (`charrnn runs --json`), with these keys, always all:
        run (the folder), task, parameters, steps, best_metric ("val_loss"), best_value, best_step,
        best_metrics (the best evaluation's record: step, elapsed, tokens and the task's
        figures), training_seconds, status (finished, interrupted, diverged, running-or-killed,
        no-log), stop_reason (max_steps, epochs, time_budget, early_stopping, interrupted,
        diverged, or null without an end event) and modified (ISO 8601, local time with offset).
        Unknown values are null."""
        return {
            "run": str(self.folder), "task": self.task, "parameters": self.parameters, "steps": self.steps,
            "best_metric": BEST_METRIC, "best_value": self.best_value, "best_step": self.best_step,
            "best_metrics": self.best_metrics, "training_seconds": self.training_seconds, "status": str(self.status),
            "stop_reason": self.stop_reason,
            "modified": datetime.fromtimestamp(self.modified).astimezone().isoformat(timespec="seconds"),
        }


# -- finding and checking run folders ----------------------------------------------------------


def find_runs(root: str | Path) -> list[Path]:
    """Every run folder under root (root included), recursively, sorted: a folder holding
    log.jsonl, best.pt or last.pt. A classifier's run holds its pretraining run (pretrain/), and a
    cross-validation's folder one run per fold; each is listed."""
    root = Path(root)
    if not root.is_dir():
        raise CharrnnError(f"folder {root} does not exist" if not root.exists() else f"{root} is a file, not a folder")
    found = []
    for folder, _, files in os.walk(root):
        if any(name in files for name in RUN_FILES):
            found.append(Path(folder))
    return sorted(found)


def _check_run_folder(folder: Path) -> None:
    if not folder.exists():
        raise CharrnnError(f"run folder {folder} does not exist")
    if not folder.is_dir():
        raise CharrnnError(f"{folder} is a file, not a run folder; give the folder it is in ({folder.parent})")
    if not any((folder / name).is_file() for name in RUN_FILES):
        raise CharrnnError(f"{folder} is not a run folder: it holds no log.jsonl, best.pt or last.pt")


# -- the log -----------------------------------------------------------------------------------


def read_log(folder: str | Path) -> list[dict]:
    """The events of a run's log.jsonl, in order ([] without a log). A last line cut short (the
    process killed while writing it) is left out; any other line that is not a JSON event is a
    one-line error."""
    path = Path(folder) / LOG_NAME
    if not path.is_file():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CharrnnError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    events = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break  # cut short by a kill: the events before it stand
            event = None
        if not isinstance(event, dict) or "event" not in event:
            raise CharrnnError(f"{path} line {number} is not a training event; is this a charrnn run log?")
        events.append(event)
    return events


def _current_history(events: list[dict]) -> tuple[list[dict], list[dict]]:
    """The step and eval events of the run as it stands. A resumed session starts again from its
    checkpoint's step, so what an earlier session logged after that step was thrown away with it."""
    steps, evals = [], []
    for event in events:
        kind = event["event"]
        if kind == "start":
            resumed_at = event.get("step", 0)
            steps = [e for e in steps if e["step"] <= resumed_at]
            evals = [e for e in evals if e["step"] <= resumed_at]
        elif kind == "step":
            steps.append(event)
        elif kind == "eval":
            evals.append(event)
    return steps, evals


def _eval_record(event: dict) -> dict:
    """An eval event as the evaluation record the Trainer keeps in its history."""
    return {k: v for k, v in event.items() if k not in ("event", "best_val_loss", "improved")}


def _val_points(evals: list[dict]) -> list[CurvePoint]:
    """One point per evaluated step, sorted by step: its whole-split figure where there is one
    (as the training summary reports it; a run's closing evaluations score the whole split after a
    partial one, and may re-score the best step), at the time the step was first evaluated."""
    first_elapsed: dict[int, float] = {}
    figure: dict[int, tuple[bool, float]] = {}  # step -> (whole split, val_loss)
    for event in evals:
        step = event["step"]
        first_elapsed.setdefault(step, event.get("elapsed", math.nan))
        whole = not event.get("partial", False)
        if step not in figure or whole or not figure[step][0]:
            figure[step] = (whole, event[BEST_METRIC])
    return [CurvePoint(step, first_elapsed[step], figure[step][1]) for step in sorted(figure)]


def read_loss_curves(folder: str | Path) -> LossCurves:
    """The train and validation losses in a run's log.jsonl, with their steps and times."""
    folder = Path(folder)
    _check_run_folder(folder)
    if not (folder / LOG_NAME).is_file():
        raise CharrnnError(f"{folder} has no {LOG_NAME}, so no loss curves (it holds checkpoints only)")
    steps, evals = _current_history(read_log(folder))
    train = [CurvePoint(e["step"], e["elapsed"], e["loss"]) for e in steps]
    return LossCurves(folder, train, _val_points(evals))


# -- the summary -------------------------------------------------------------------------------


def read_run(folder: str | Path) -> RunSummary:
    """What a run folder holds, in figures: from its log, and from its checkpoint (last.pt, else
    best.pt) for the task and for what the log lacks (a run without a log). A folder that is not
    a run is a one-line error."""
    from .train import StopReason, best_record

    folder = Path(folder)
    _check_run_folder(folder)
    events = read_log(folder)
    saved = _checkpoint_summary(folder)
    steps, evals = _current_history(events)

    last_start = max((i for i, e in enumerate(events) if e["event"] == "start"), default=None)
    start = events[last_start] if last_start is not None else None
    ends = [e for e in events[last_start or 0:] if e["event"] == "end"]
    end = ends[-1] if ends else None
    if not (folder / LOG_NAME).is_file():
        status = RunStatus.NO_LOG
    elif end is None:
        status = RunStatus.RUNNING_OR_KILLED
    elif end.get("reason") == StopReason.INTERRUPTED:
        status = RunStatus.INTERRUPTED
    elif end.get("reason") == StopReason.DIVERGED:
        status = RunStatus.DIVERGED
    else:
        status = RunStatus.FINISHED

    # Where the run stands: its last step or end event, or a resumed session's start before its
    # first step (which has no time: the checkpoint it resumed from has).
    progress = [e for e in events if e["event"] in ("start", "step", "end")]
    latest = progress[-1] if progress else {}
    records = [_eval_record(e) for e in evals]
    if end is not None and math.isfinite(end.get("best_val_loss", math.inf)):
        best_step = end.get("best_step")
    else:
        improved = [e["step"] for e in evals if e.get("improved")]
        best_step = improved[-1] if improved else None
    best = best_record(records, best_step) if best_step is not None else None
    if best is None and saved is not None:
        best = saved["best_validation"]

    return RunSummary(
        folder=folder,
        task=saved["task"] if saved else None,
        parameters=start.get("parameters") if start else _get(saved, "parameters"),
        steps=latest.get("step", _get(saved, "steps")),
        best_value=_finite(best.get(BEST_METRIC)) if best else None,
        best_step=best.get("step") if best else None,
        best_metrics=best,
        training_seconds=latest.get("elapsed", _get(saved, "training_seconds")),
        status=status,
        stop_reason=end.get("reason") if end else None,
        modified=max((folder / name).stat().st_mtime for name in RUN_FILES if (folder / name).is_file()),
    )


def _checkpoint_summary(folder: Path) -> dict | None:
    """checkpoint_summary (what `charrnn info` shows) of the run's newest checkpoint: last.pt,
    else best.pt; None without either."""
    from .checkpoint import load_checkpoint
    from .console import checkpoint_summary

    for name in reversed(CHECKPOINT_NAMES):
        path = folder / name
        if path.is_file():
            return checkpoint_summary(str(path), load_checkpoint(path))
    return None


def _get(summary: dict | None, key: str):
    return summary.get(key) if summary else None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
