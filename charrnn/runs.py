"""The one way every task trains, a new run or a resumed one. train_task owns what runs share: the
device and precision, the training settings of a resumed run, the run folder, the seed of the
model's first weights, and the Trainer (which owns the loop, Ctrl-C and the checkpoints). A task
brings only what is its own, as a TaskRecipe: how to check its options, where its runs go, and how
to build its TrainingTask (data, vocabularies, model) for a new run or from a checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch

from .checkpoint import Checkpoint, load_checkpoint, rebuilding_from
from .devices import resolve_device, resolve_precision, start_device
from .distributed import Ranks, launch_id, process_group, restart_count
from .errors import CharrnnError, Interrupted, UsageError
from .events import PreparingEvent, TrainingEvent
from .train import (Trainer, TrainConfig, TrainingTask, TrainResult, check_run_dir, claim_run_dir,
                    resume_checkpoint_path, resumed_train_config)


@dataclass
class RunPlace:
    """Where and on what a run trains, as train_task resolved it."""

    run_dir: Path
    device: torch.device
    amp_dtype: torch.dtype | None
    on_event: Callable[[TrainingEvent], None] | None

    def preparing(self, message: str) -> None:
        """Say what the run is doing before its first step (see PreparingEvent)."""
        if self.on_event is not None:
            self.on_event(PreparingEvent(message))


@dataclass
class PreparedRun:
    """What a task builds for a run: its TrainingTask, the training settings with the task's
    defaults filled in, how settings left unset were chosen (for the log), and the seconds of a
    time budget already spent choosing them. ended: a run that ended while being prepared (Ctrl-C
    during a classifier's pretraining), returned as it is."""

    task: TrainingTask | None
    train: TrainConfig
    settings_note: dict | None = None
    seconds_spent: float = 0.0
    ended: TrainResult | None = None


class TaskRecipe(Protocol):
    """What a task gives train_task. It holds the task's own inputs (data paths, model and data
    settings) from its construction."""

    name: str  # the task a checkpoint names (load_checkpoint checks it on resume)
    data: Any  # the task's data settings, with validate()

    def check(self) -> None:
        """Refuse a new run without data, or with bad model options, with a UsageError, before
        any data is read."""

    @property
    def data_file(self) -> str | None:
        """The data file that names the run's default folder (see default_run_dir); None: none given."""

    def new_run(self, train: TrainConfig, place: RunPlace) -> PreparedRun: ...

    def resumed_run(self, checkpoint: Checkpoint, train: TrainConfig, place: RunPlace) -> PreparedRun:
        """The run a checkpoint was saved from, rebuilt from it (its model, vocabularies and data
        settings); train: its training settings, with the stop conditions the caller gave."""


@dataclass
class OneFileRecipe:
    """What the recipe of a task trained from one data file holds (the language model's corpus,
    the translator's pairs): the file (None: not given; with a resume, the run's own), the model
    options and the data settings."""

    data_file: str | None
    model_config: dict
    data: Any
    # Each task's: its model config class (whose check_options checks model_config), and the error
    # for a new run given no data file.
    config_type: ClassVar[type]
    missing_data: ClassVar[str]

    def check(self) -> None:
        if self.data_file is None:
            raise UsageError(self.missing_data)
        self.config_type.check_options(self.model_config)


def default_run_dir(data_file: str) -> Path:
    """checkpoints/<data name>/, the name being the file's up to its first dot: tinyshakespeare.txt
    trains into checkpoints/tinyshakespeare/, rt-polarity.pos into checkpoints/rt-polarity/, and
    stdin ('-') into checkpoints/stdin/."""
    name = "stdin" if data_file == "-" else Path(data_file).name.split(".")[0] or "run"
    return Path("checkpoints") / name


def train_task(recipe: TaskRecipe, *, train: TrainConfig | None = None, run_dir: Path | None = None,
               resume: str | Path | None = None, device: str = "auto", precision: str = "auto",
               overwrite: bool = False, on_event: Callable[[TrainingEvent], None] | None = None) -> TrainResult:
    """Train a new run of the recipe's task, or resume one (resume: a run folder, which resumes
    from its last.pt, or a checkpoint). A new run refuses a run folder that already holds a run
    unless overwrite; a resumed one continues in the checkpoint's folder unless run_dir is given.

    The run folder is checked writable before any data is read (see train.check_run_dir). A
    resumed run that has already finished trains nothing and writes nothing (see Trainer.run).
    Ctrl-C before the first training step raises a one-line Interrupted error (exit code 130), as
    Ctrl-C during training exits 130 (the Trainer turns that one into a saved, resumable stop).

    Launched by torchrun, the run joins the launcher's process group for its length (see
    distributed.process_group), and a worker that torchrun restarted resumes its launch's run."""
    torch_device = resolve_device(device)
    with process_group(torch_device) as torch_device:
        ranks = Ranks.current()
        if ranks.parallel and recipe.data_file == "-":
            raise UsageError("torchrun's processes cannot share stdin; give the data as a file")
        if not ranks.is_writer:
            on_event = None  # rank 0 shows the progress; the others are quiet unless they fail
        try:
            started = _start(recipe, train=train, run_dir=run_dir, resume=resume, device=torch_device,
                             precision=precision, overwrite=overwrite, on_event=on_event)
        except KeyboardInterrupt:
            kept = "the run's checkpoints are as they were" if resume is not None else "nothing was saved"
            raise Interrupted(f"interrupted before the first training step; {kept}") from None
        return started.run() if isinstance(started, Trainer) else started


def _start(recipe: TaskRecipe, *, train: TrainConfig | None, run_dir: Path | None, resume: str | Path | None,
           device: torch.device, precision: str, overwrite: bool,
           on_event: Callable[[TrainingEvent], None] | None) -> Trainer | TrainResult:
    """Everything train_task does before the first step: the Trainer ready to run, or the result
    of a run that ended while being prepared (Ctrl-C during a classifier's pretraining)."""
    torch_device = device
    amp_dtype = resolve_precision(precision, torch_device)
    start_device(torch_device, amp_dtype)  # before any clock starts, and before the seeding below
    if resume is None and restart_count() > 0 and (run_dir is not None or recipe.data_file is not None):
        resume = _restarted_run(run_dir if run_dir is not None else default_run_dir(recipe.data_file))
    checkpoint = None
    # Rank 0 alone checks and clears the run folder (the check creates and removes folders, which
    # would pull the folder from under another rank's check), and the others wait for it.
    ranks = Ranks.current()
    if resume is not None:
        path = resume_checkpoint_path(resume)
        checkpoint = load_checkpoint(path, task=recipe.name)
        place = RunPlace(Path(run_dir) if run_dir is not None else path.parent, torch_device, amp_dtype, on_event)
        if ranks.is_writer:
            check_run_dir(place.run_dir)  # before the data is read: an unwritable folder fails at once
        ranks.barrier()
        with rebuilding_from(path, with_user_options=True):
            prepared = recipe.resumed_run(checkpoint, resumed_train_config(checkpoint, train), place)
    else:
        train = train or TrainConfig()
        train.validate()
        recipe.check()
        recipe.data.validate()
        place = RunPlace(Path(run_dir) if run_dir is not None else default_run_dir(recipe.data_file), torch_device,
                         amp_dtype, on_event)
        if ranks.is_writer:
            check_run_dir(place.run_dir)
            claim_run_dir(place.run_dir, overwrite=overwrite)
        ranks.barrier()
        # The model's first weights come from the seed (the Trainer seeds its loop again at step 0).
        torch.manual_seed(train.seed)
        prepared = recipe.new_run(train, place)
    if prepared.ended is not None:
        return prepared.ended

    def make_trainer() -> Trainer:
        return Trainer(prepared.task, prepared.train, place.run_dir, device=torch_device, amp_dtype=amp_dtype,
                       on_event=on_event, settings_note=prepared.settings_note)

    if checkpoint is None:
        trainer = make_trainer()
        trainer.state.elapsed = prepared.seconds_spent  # choosing the settings was part of the budget
        return trainer
    # The stored training settings and state are read here: a damaged record is one line naming
    # the file (and resuming an export stays the user's mistake).
    with rebuilding_from(path, with_user_options=True):
        trainer = make_trainer()
        trainer.load_resume_state(checkpoint)
    return trainer


def _restarted_run(run_dir: Path) -> Path | None:
    """The run folder to resume when torchrun has restarted this launch's workers (after one of
    them failed) and the launch had saved a checkpoint there: the restarted command starts the run
    anew otherwise, which would refuse the folder or lose the steps trained. Only a checkpoint of
    this same launch counts; a run another launch left in the folder is never taken over."""
    last = run_dir / "last.pt"
    if not last.is_file():
        return None
    try:
        saved_launch = load_checkpoint(last).training.get("launch")
    except CharrnnError:
        return None  # not this launch's to resume: the new run refuses the folder as usual
    return run_dir if saved_launch is not None and saved_launch == launch_id() else None
