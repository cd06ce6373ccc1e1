"""What the CLI shows on stderr: the training progress bar, summaries and tables. Nothing here
writes to stdout, which carries results only."""

from __future__ import annotations

import math
import sys

from rich.console import Console
from rich.table import Table

from .checkpoint import Checkpoint
from .events import EndEvent, EvalEvent, PreparingEvent, StartEvent, StepEvent, TrainingEvent, WarningEvent
from .tasks import describe_metrics
from .train import StopReason, best_record

# soft_wrap: a line longer than the console (a path in a summary) stays one line, as a log file or
# a terminal narrower than Rich's 80-column default for non-terminals wants it.
stderr_console = Console(stderr=True, highlight=False, soft_wrap=True)
LOG_EVERY = 30.0  # seconds between progress lines when stderr is not a terminal


class TrainingProgress:
    """Consumes the trainer's events and shows progress on stderr: step, train loss, val bpc,
    characters per second, ETA. On a terminal, a tqdm bar; elsewhere (a log file, CI, nohup), one
    plain line at each evaluation and at least every LOG_EVERY seconds, never carriage returns.
    quiet=True shows nothing."""

    def __init__(self, *, quiet: bool = False, unit: str = "char", terminal: bool | None = None):
        self.quiet = quiet
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.total: int | None = None
        self._last_line = 0.0  # training seconds at the last plain progress line
        self.unit = unit  # what the rate counts: "char" for a char model, "tok" for tokens
        self.bar = None
        self.last_val: tuple[str, float] | None = None
        self._rate_mark = None  # (tokens, elapsed) at the last rate update
        self.rate = 0.0
        self.loss = None

    def __call__(self, event: TrainingEvent) -> None:
        print_warnings(event)  # even when quiet: a warning is not progress
        if self.quiet:
            return
        if isinstance(event, PreparingEvent):
            stderr_console.print(f"{event.message} ...", markup=False)
        elif isinstance(event, StartEvent):
            from tqdm import tqdm

            stderr_console.print(
                f"training: {event.parameters:,} parameters on {event.device} ({event.precision})"
                + (f", time budget {event.time_budget:g}s" if event.time_budget else "")
            )
            if event.settings:
                stderr_console.print(f"settings: {describe_settings(event.settings)}", markup=False, soft_wrap=True)
            self.total = event.total_steps
            if self.terminal:
                self.bar = tqdm(total=event.total_steps, initial=event.step, file=sys.stderr, unit="step",
                                dynamic_ncols=True, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")
        elif isinstance(event, StepEvent):
            if event.total_steps is not None:
                self.total = event.total_steps
                if self.bar is not None and self.bar.total != event.total_steps:
                    self.bar.total = event.total_steps
            self.loss = event.loss if self.loss is None else 0.9 * self.loss + 0.1 * event.loss
            # Characters per second over the last second or more (over the run before that).
            if self._rate_mark is None:
                self._rate_mark = (event.tokens, event.elapsed)
            seconds = event.elapsed - self._rate_mark[1]
            if seconds > 0 and (seconds >= 1.0 or self.rate == 0.0):
                self.rate = (event.tokens - self._rate_mark[0]) / seconds
                if seconds >= 1.0:
                    self._rate_mark = (event.tokens, event.elapsed)
            if self.bar is not None:
                self.bar.update(event.step - self.bar.n)
                self.bar.set_postfix_str(self._figures(), refresh=False)
            elif event.elapsed - self._last_line >= LOG_EVERY:
                self._line(event.step, event.elapsed)
        elif isinstance(event, EvalEvent):
            # Bits per character where the task reports them (language models), else the loss.
            record = event.record
            self.last_val = ("bpc", record["val_bpc"]) if "val_bpc" in record else ("loss", record["val_loss"])
            if self.bar is not None:
                self.bar.set_postfix_str(self._figures(), refresh=False)
            else:
                self._line(record["step"], record["elapsed"])
        elif isinstance(event, EndEvent) and self.bar is not None:
            self.bar.close()

    def _figures(self) -> str:
        parts = [f"loss {self.loss:.3f}" if self.loss is not None else "loss -"]
        parts.append(f"val {self.last_val[0]} {self.last_val[1]:.3f}" if self.last_val is not None else "val -")
        parts.append(f"{self.rate:,.0f} {self.unit}/s")
        return ", ".join(parts)

    def _line(self, step: int, elapsed: float) -> None:
        """One plain progress line, for a stderr that is not a terminal."""
        of = f"/{self.total:,}" if self.total else ""
        stderr_console.print(f"step {step:,}{of}, {elapsed:.0f}s: {self._figures()}", markup=False)
        self._last_line = elapsed


def describe_settings(note: dict) -> str:
    """One line from a start event's settings note: what the run uses and why."""
    return (f"batch {note['batch_size']} x {note['seq_len']}, lr {note['learning_rate']:.2g}, "
            f"warm-up {note['warmup_steps']} steps, evaluate every {note['eval_every']} steps, "
            f"dropout {note['dropout']:g}, weight decay {note['weight_decay']:g} ({note['reason']})")


def print_warnings(event: TrainingEvent) -> None:
    """Show a task's warning event (such as strongly imbalanced classes) as one line on stderr."""
    if isinstance(event, WarningEvent):
        stderr_console.print(f"charrnn: warning: {event.message}", markup=False)


def print_training_summary(result, command: str = "charrnn train") -> None:
    """How the run ended, its final and best validation, where its files are; after Ctrl-C, the
    command (`charrnn train`, `charrnn translate train`, ...) that resumes it."""
    state = result.state
    best = best_record(state.history, state.best_step)
    stderr_console.print(f"stopped at step {state.step} after {state.elapsed:.1f}s: {result.stop_reason.description}")
    if result.final_metrics:
        stderr_console.print(f"final validation: {describe_metrics(result.task, result.final_metrics)}")
    if best is not None:
        stderr_console.print(f"best validation:  {describe_metrics(result.task, best)} at step {state.best_step}")
    saved = saved_checkpoints(result)
    stderr_console.print(f"checkpoints: {', '.join(saved) or 'none'}; log: {result.run_dir}/log.jsonl")
    if result.stop_reason is StopReason.INTERRUPTED:
        stderr_console.print(f"resume with: {command} --resume {result.run_dir}")


def training_outcome(result) -> dict:
    """How a run ended, as plain values (the training commands' --json): run_dir, task,
    stop_reason, steps, elapsed (seconds), final and best (validation records: step, elapsed,
    tokens and the task's figures; null without an evaluation), best_step, checkpoints."""
    state = result.state
    return {
        "run_dir": str(result.run_dir), "task": result.task, "stop_reason": str(result.stop_reason), "steps": state.step,
        "elapsed": state.elapsed, "final": result.final_metrics or None, "best": best_record(state.history, state.best_step),
        "best_step": state.best_step,
        "checkpoints": saved_checkpoints(result),
    }


def saved_checkpoints(result) -> list[str]:
    """The checkpoint files a run left: only those there are (a run stopped before its first
    evaluation has no best.pt)."""
    return [str(result.run_dir / name) for name in ("best.pt", "last.pt") if (result.run_dir / name).exists()]


def checkpoint_summary(path: str, checkpoint: Checkpoint) -> dict:
    """What a checkpoint holds and how it was made, as plain values (`charrnn info --json`); a
    field of the wrong type is a one-line error naming the file."""
    from .checkpoint import rebuilding_from

    with rebuilding_from(checkpoint.path):
        return _summary(path, checkpoint)


def _summary(path: str, checkpoint: Checkpoint) -> dict:
    metadata = checkpoint.metadata
    # Floating tensors only: integer buffers (the classifier's n-gram counts) are not parameters.
    parameters = sum(t.numel() for t in checkpoint.model_state.values() if t.is_floating_point())
    state = checkpoint.train_state
    best = best_record(state.get("history", []), state.get("best_step")) if state else None
    vocabularies = {field: metadata[field].get("kind") for field in ("vocab", "source_vocab", "target_vocab")
                    if field in metadata}
    return {
        "path": path, "task": checkpoint.task, "format_version": checkpoint.format_version,
        "model_config": metadata.get("model_config", {}), "parameters": parameters, "vocabularies": vocabularies,
        "corpus": metadata.get("corpus"), "steps": state.get("step"), "tokens_seen": state.get("tokens_seen"),
        "training_seconds": state.get("elapsed"), "best_validation": best, "resumable": checkpoint.resumable,
        "notes": metadata.get("notes") or {},
    }


SHOWN_ITEMS = 4  # of a long list in a config: a vector model's 256 means would bury the table


def _shown(value) -> str:
    """A config value as text; a list longer than 2 x SHOWN_ITEMS as its first items and its length
    (--json gives it whole)."""
    if isinstance(value, list) and len(value) > 2 * SHOWN_ITEMS:
        first = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in value[:SHOWN_ITEMS])
        return f"[{first}, ... {len(value):,} in all]"
    return str(value)


def print_checkpoint_info(summary: dict) -> None:
    """checkpoint_summary on stdout, the result `charrnn info` was asked for: a table on a
    terminal, else one `field<TAB>value` line a field (a drawn table would wrap and box a pipe)."""
    rows = [("task", str(summary["task"])), ("format version", str(summary["format_version"]))]
    rows += [(f"model.{key}", _shown(value)) for key, value in summary["model_config"].items()]
    rows.append(("parameters", f"{summary['parameters']:,}"))
    for field, kind in summary["vocabularies"].items():
        rows.append(("vocabulary" if field == "vocab" else field.replace("_vocab", " vocabulary"), str(kind)))
    if summary["corpus"]:
        rows.append(("corpus", str(summary["corpus"])))
    if summary["steps"] is not None:
        rows += [("steps", f"{summary['steps']:,}"), ("tokens seen", f"{summary['tokens_seen'] or 0:,}"),
                 ("training time", f"{summary['training_seconds'] or 0.0:.1f}s")]
    best = summary["best_validation"]
    if best is not None:
        rows.append(("best validation", f"{describe_metrics(summary['task'], best)} (step {best['step']})"))
    rows.append(("resumable", "yes" if summary["resumable"] else "no (weights only)"))
    rows += [(key, str(value)) for key, value in summary["notes"].items()]
    if not sys.stdout.isatty():
        print(f"path\t{summary['path']}")
        for field, value in rows:
            print(f"{field}\t{value}")
        return
    table = Table(title=summary["path"], show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    for field, value in rows:
        table.add_row(field, value)
    Console(highlight=False).print(table)


def print_confusion_matrix(confusion: list[list[int]], label_names: list[str], *, title: str) -> None:
    """The confusion matrix as a table on stderr: rows are the true labels, columns the predicted."""
    stderr_console.print(title, soft_wrap=True, markup=False)  # a title inside the table would wrap at its width
    table = Table()
    table.add_column("true \\ predicted", style="bold")
    for name in label_names:
        table.add_column(name, justify="right")
    for name, row in zip(label_names, confusion):
        table.add_row(name, *(f"{count:,}" for count in row))
    stderr_console.print(table)


def format_bytes(n: float) -> str:
    if n <= 0:
        return "0 B"
    units = ["B", "KB", "MB", "GB"]
    i = min(len(units) - 1, int(math.log(n, 1024)))
    return f"{n / 1024**i:.1f} {units[i]}"
