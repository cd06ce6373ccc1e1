"""The options every training command shares, declared once. `charrnn train`, `translate train`,
`classify train` and `classify cv` take them with the same names and meanings; each command gives
the defaults its task measured best and declares only the options its task alone has. No torch
here: `charrnn --help` must start fast."""

from __future__ import annotations

import functools
import inspect
from copy import copy
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

# name: (type, default, the option). A default of None means "the task's own" (or, for the
# language model, chosen from the measured speed of this machine).
TRAINING_OPTIONS: dict[str, tuple[Any, Any, typer.models.OptionInfo]] = {
    "resume": (Optional[str], None, typer.Option(rich_help_panel="Run", help="Continue a run exactly: its folder (uses last.pt) or a checkpoint.")),
    "run_dir": (Optional[Path], None, typer.Option("--run-dir", "-o", rich_help_panel="Run", help="Where best.pt, last.pt and log.jsonl go \\[default: checkpoints/<name of the data>/].")),
    "overwrite": (bool, False, typer.Option("--overwrite", rich_help_panel="Run", help="Replace an earlier run in the run folder instead of refusing.")),
    "quiet": (bool, False, typer.Option("--quiet", "-q", rich_help_panel="Run", help="No progress output.")),
    "as_json": (bool, False, typer.Option("--json", rich_help_panel="Run", help="When the run ends, its outcome as one JSON object on stdout: run_dir, task, stop_reason, steps, elapsed, final, best, best_step, checkpoints.")),
    "max_steps": (Optional[int], None, typer.Option(rich_help_panel="Stopping", help="Stop after this many optimiser steps.")),
    "epochs": (Optional[float], None, typer.Option(rich_help_panel="Stopping", help="Stop after this many passes over the training data \\[default: the task's, when no other stop is given].")),
    "time_budget": (Optional[float], None, typer.Option(rich_help_panel="Stopping", help="Stop after this many seconds of training, evaluations included.")),
    "patience": (int, 10, typer.Option(rich_help_panel="Stopping", help="Stop after this many evaluations without improvement (0: never).")),
    "cell": (str, "lstm", typer.Option(rich_help_panel="Model", help="Recurrent cell: lstm, gru or rnn.")),
    "hidden_size": (int, 256, typer.Option(rich_help_panel="Model", help="Width of each recurrent layer's output; a bidirectional layer gives each direction half.")),
    "num_layers": (int, 2, typer.Option(rich_help_panel="Model", help="Stacked recurrent layers.")),
    "embedding_size": (Optional[int], None, typer.Option(rich_help_panel="Model", help="Token embedding width.")),
    "dropout": (Optional[float], None, typer.Option(rich_help_panel="Model", help="Dropout on embeddings, between layers and before the output.")),
    "tokenizer": (str, "char", typer.Option(rich_help_panel="Data", help="char (Unicode code points) or bpe (byte-level BPE subwords).")),
    "vocab_size": (int, 8000, typer.Option(rich_help_panel="Data", help="BPE vocabulary size (with --tokenizer bpe).")),
    "batch_size": (Optional[int], None, typer.Option("--batch-size", "-b", rich_help_panel="Optimisation", help="Sequences per batch.")),
    "lr": (Optional[float], None, typer.Option(rich_help_panel="Optimisation", help="Peak learning rate (AdamW).")),
    "min_lr_ratio": (Optional[float], None, typer.Option(rich_help_panel="Optimisation", help="Final learning rate as a fraction of the peak (cosine decay).")),
    "warmup_steps": (Optional[int], None, typer.Option(rich_help_panel="Optimisation", help="Linear warm-up steps.")),
    "weight_decay": (Optional[float], None, typer.Option(rich_help_panel="Optimisation", help="AdamW weight decay on weight matrices.")),
    "grad_clip": (float, 1.0, typer.Option(rich_help_panel="Optimisation", help="Clip the gradient norm to this.")),
    "eval_every": (Optional[int], None, typer.Option(rich_help_panel="Optimisation", help="Evaluate on the validation data every N steps.")),
    "seed": (int, 1337, typer.Option(rich_help_panel="Optimisation", help="Random seed (weights, dropout, batches).")),
    "device": (str, "auto", typer.Option(rich_help_panel="Hardware", help="auto, cpu, cuda or mps.")),
    "precision": (str, "auto", typer.Option(rich_help_panel="Hardware", help="auto (bf16 where the hardware runs it fast), fp32 or bf16.")),
}


def with_options(*groups: dict, defaults: dict | None = None, omit: tuple[str, ...] = (), helps: dict | None = None):
    """Give a command the options of groups (like TRAINING_OPTIONS) after its own parameters:
    the signature Typer reads gets one option each, with the command's defaults (else the
    group's), its own help where helps says, and none of those in omit. The command receives them
    as keyword arguments, like its own."""

    def decorate(command):
        # The command's own parameters, without the **values that receives the groups' options.
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.kind is not p.VAR_KEYWORD]
        added = []
        for group in groups:
            for name, (kind, default, option) in group.items():
                if name in omit:
                    continue
                option = copy(option)
                if helps and name in helps:
                    option.help = helps[name]
                default = (defaults or {}).get(name, default)
                added.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                               annotation=Annotated[kind, option]))

        # Arguments first, then the shared options, then the command's own: help panels are
        # listed in the order their first option comes, the same for every command.
        arguments = [p for p in own if _is_argument(p)]
        own_options = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own if not _is_argument(p)]

        @functools.wraps(command)
        def run(**values):
            return command(**values)

        del run.__wrapped__  # Typer must read the signature below, not the command's own
        run.__signature__ = inspect.Signature(arguments + added + own_options)
        # Evaluated annotations: the command's own are strings that name its module's globals.
        run.__annotations__ = {p.name: p.annotation for p in run.__signature__.parameters.values()}
        return run

    return decorate


def _is_argument(parameter: inspect.Parameter) -> bool:
    return any(isinstance(meta, typer.models.ArgumentInfo) for meta in getattr(parameter.annotation, "__metadata__", ()))


@dataclass
class TrainingOptions:
    """The shared options' values, as a command received them (see TRAINING_OPTIONS)."""

    resume: str | None
    run_dir: Path | None
    overwrite: bool
    quiet: bool
    as_json: bool
    max_steps: int | None
    epochs: float | None
    time_budget: float | None
    patience: int
    cell: str
    hidden_size: int
    num_layers: int
    embedding_size: int | None
    dropout: float | None
    tokenizer: str
    vocab_size: int
    batch_size: int | None
    lr: float | None
    min_lr_ratio: float | None
    warmup_steps: int | None
    weight_decay: float | None
    grad_clip: float
    eval_every: int | None
    seed: int
    device: str
    precision: str

    @classmethod
    def take(cls, values: dict) -> TrainingOptions:
        """The shared options out of a command's keyword arguments (removed from values, which
        keeps the command's own); one the command omitted takes its group default."""
        return cls(**{f.name: values.pop(f.name, TRAINING_OPTIONS[f.name][1]) for f in fields(cls)})

    def train_config(self, default_epochs: float):
        """The TrainConfig these options ask for: default_epochs when no stop is given (and no
        run is resumed, which keeps its own); settings left unset stay None for the task to fill."""
        from .train import TrainConfig

        epochs = self.epochs
        if self.max_steps is None and epochs is None and self.time_budget is None and self.resume is None:
            epochs = default_epochs
        return TrainConfig(learning_rate=self.lr, min_lr_ratio=self.min_lr_ratio, warmup_steps=self.warmup_steps,
                           weight_decay=self.weight_decay, grad_clip=self.grad_clip, max_steps=self.max_steps,
                           epochs=epochs, time_budget=self.time_budget, eval_every=self.eval_every,
                           patience=self.patience or None, seed=self.seed)

    def model_options(self) -> dict:
        """The model options every task has; an unset one is left out (the task's default)."""
        options = dict(cell=self.cell, hidden_size=self.hidden_size, num_layers=self.num_layers,
                       embedding_size=self.embedding_size, dropout=self.dropout)
        return {name: value for name, value in options.items() if value is not None}
