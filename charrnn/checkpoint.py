"""One self-contained, versioned checkpoint file per model, in named parts (Checkpoint): the task's
metadata (what rebuilds and describes the model: configuration, vocabularies, data settings,
corpus, notes), the model's weights and buffers, how it was trained (training settings, state and
history), and what resuming needs (optimiser, data position, random-number states). Plain types,
so it loads with torch.load(weights_only=True). Written atomically."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import torch

from .errors import CharrnnError, UsageError

FORMAT = "charrnn"
# Version 3 stores the named parts of Checkpoint. Version 2 was one flat dict; version 1 also kept
# the classifier's n-gram counts apart from its state dict. Both are read (Checkpoint.from_stored).
FORMAT_VERSION = 3
# The bundled models: package data beside this module (see models/README.md for how each was made).
BUNDLED_DIR = Path(__file__).resolve().parent / "models"
# The keys of a flat (version 1 or 2) checkpoint that were not the task's metadata.
_FLAT_PARTS = ("format", "format_version", "task", "model_state", "train_config", "train_state", "optimizer_state",
               "data_state", "rng_state", "resumable", "ngram_counts")


@dataclass
class Checkpoint:
    """A checkpoint's named parts.

    metadata: the task's record of how to rebuild and describe its model (TrainingTask.
    checkpoint_fields). training: {"config": TrainConfig, "state": TrainState} as dicts, kept by an
    export (they say how the model was made). resume: {"optimizer", "data", "rng"} states, None in
    an export, which then cannot resume."""

    task: str
    metadata: dict
    model_state: dict
    training: dict | None = None
    resume: dict | None = None
    format_version: int = FORMAT_VERSION
    # The file it was loaded from (not stored): what an error about its contents names.
    path: Path | None = field(default=None, compare=False, repr=False)

    @property
    def resumable(self) -> bool:
        return self.resume is not None

    @property
    def train_state(self) -> dict:
        """The training state (step, time, history), or {} for a model with none recorded."""
        return (self.training or {}).get("state") or {}

    def for_inference(self, *, half: bool = False) -> Checkpoint:
        """A copy without the resume part; half=True stores floating weights in fp16 to halve the
        file (loading converts them back to fp32; integer buffers stay exact)."""
        weights = self.model_state
        if half:
            weights = {k: (v.half() if v.is_floating_point() else v) for k, v in weights.items()}
        return replace(self, model_state=weights, resume=None, format_version=FORMAT_VERSION)

    def stored(self) -> dict:
        """The dict written to the file."""
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "task": self.task, "metadata": self.metadata,
                "model_state": self.model_state, "training": self.training, "resume": self.resume}

    @classmethod
    def from_stored(cls, stored: dict) -> Checkpoint:
        """A checkpoint from the dict read from a file of any version this charrnn reads."""
        version = stored["format_version"]
        if version >= 3:
            return cls(stored["task"], stored["metadata"], stored["model_state"], stored.get("training"),
                       stored.get("resume"), version)
        model_state = stored["model_state"]
        counts = stored.get("ngram_counts")  # version 1 kept the classifier's counts apart
        if counts is not None:
            model_state = {**model_state, "counted_buckets": counts["buckets"], "ngram_counts": counts["counts"]}
        training = None
        if "train_state" in stored:
            training = {"config": stored.get("train_config"), "state": stored["train_state"]}
        resume = None
        if stored.get("resumable"):
            resume = {"optimizer": stored["optimizer_state"], "data": stored["data_state"], "rng": stored["rng_state"]}
        metadata = {k: v for k, v in stored.items() if k not in _FLAT_PARTS}
        return cls(stored.get("task"), metadata, model_state, training, resume, version)


def save_checkpoint(checkpoint: Checkpoint, path: str | Path) -> None:
    """Write a checkpoint to path atomically (see write_atomically): a crash at any moment leaves
    either the old file or the new one, never a torn file."""
    payload = checkpoint.stored()
    write_atomically(path, lambda handle: torch.save(payload, handle))


def write_atomically(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a file atomically: write(handle) fills a temporary file in the same folder (a rename
    is atomic only within one file system), which is flushed and fsynced, then renamed over path.
    A failure removes the temporary file; a kill -9 may leave it, and leftover_temporaries finds it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_name = str(temporary_path(path))
    # Not tempfile.mkstemp: it creates the file 0600, and the checkpoint would keep that mode
    # after the rename; os.open with 0o666 honours the user's umask like any other file.
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def temporary_path(path: Path) -> Path:
    """Where an atomic write of path goes first: .<name>.<12 hex digits>.tmp beside it (hidden, and
    random, so two writers never share one)."""
    return path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"


_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{12}\.tmp")  # what temporary_path makes


def leftover_temporaries(folder: Path, names: Iterable[str]) -> list[Path]:
    """The temporary files that atomic writes of the given file names into folder left behind (a
    kill -9 mid-write): only files matching temporary_path's exact pattern for those names."""
    wanted = set(names)
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    found = []
    for entry in entries:
        match = _TEMPORARY.fullmatch(entry.name)
        if match and match["name"] in wanted and entry.is_file() and not entry.is_symlink():
            found.append(entry)
    return sorted(found)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def bundled_models() -> dict[str, Path]:
    """The trained models shipped inside the package, by name: {"sentiment": .../sentiment.pt, ...}.
    They are package data, so a wheel installed anywhere carries them and works offline."""
    return {path.stem: path for path in sorted(BUNDLED_DIR.glob("*.pt"))}


def checkpoint_file(path: str | Path) -> Path:
    """The checkpoint a path names: a file as it is; a run folder's best.pt, else its last.pt
    (a run stopped before its first evaluation has only last.pt); and where no such file or folder
    exists, a bare name such as "shakespeare" (or "shakespeare.pt") names a bundled model."""
    path = Path(path)
    if not path.exists() and path.name == str(path) and path.suffix in ("", ".pt"):
        bundled = bundled_models().get(path.stem)
        if bundled is not None:
            return bundled
    if not path.is_dir():
        return path
    for name in ("best.pt", "last.pt"):
        if (path / name).is_file():
            return path / name
    raise CharrnnError(f"run folder {path} holds no checkpoint (best.pt or last.pt)")


def load_checkpoint(path: str | Path, *, task: str | None = None) -> Checkpoint:
    """Load a checkpoint (a file, or a run folder: see checkpoint_file) onto the CPU, wherever it
    was saved, without running any code from it.

    Raises a one-line CharrnnError for a missing file, a file that is not a charrnn checkpoint, a
    truncated or corrupt file, a newer format, or (when task is given) a checkpoint of another task.
    """
    path = checkpoint_file(path)
    if not path.exists():
        names = ", ".join(bundled_models())
        raise CharrnnError(f"checkpoint {path} does not exist (the bundled models: {names or 'none in this install'})")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - garbage input makes torch.load raise almost any type
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CharrnnError(f"checkpoint {path} cannot be read (truncated, corrupt or not a charrnn checkpoint): {reason[:160]}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CharrnnError(f"{path} is not a charrnn checkpoint")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CharrnnError(f"checkpoint {path} has format version {version}; this charrnn reads up to {FORMAT_VERSION}, so upgrade charrnn")
    if task is not None and payload.get("task") != task:
        raise CharrnnError(f"checkpoint {path} holds {_a(payload.get('task'))}, not {_a(task)}")
    with rebuilding_from(path):
        checkpoint = Checkpoint.from_stored(payload)
    _check_parts(checkpoint, path)
    checkpoint.path = path
    return checkpoint


def _plain(value, depth: int = 0) -> bool:
    """Whether value is made of JSON's kinds of value only (tuples too), as charrnn writes metadata."""
    if depth > 32:
        return False
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _plain(item, depth + 1) for key, item in value.items())
    return False


def _check_parts(checkpoint: Checkpoint, path: Path) -> None:
    """Refuse a checkpoint whose parts have the wrong kinds of value (a hand-edited or damaged
    file): every reader relies on these, so they are checked once here; the fields inside are
    checked where they are used (rebuilding_from)."""
    def damaged(what: str) -> CharrnnError:
        return CharrnnError(f"checkpoint {path} is damaged: {what}")

    if not isinstance(checkpoint.metadata, dict):
        raise damaged("its metadata is not a mapping")
    for part, value in (("metadata", checkpoint.metadata), ("training record", checkpoint.training)):
        if not _plain(value):  # what every reader takes for settings and figures, and --json prints
            raise damaged(f"its {part} holds something other than plain values (text, numbers, lists, mappings)")
    weights = checkpoint.model_state
    if not isinstance(weights, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        raise damaged("its model_state is not a mapping of names to tensors")
    training = checkpoint.training
    if training is not None and not (isinstance(training, dict)
                                     and all(isinstance(training.get(k), (dict, type(None))) for k in ("config", "state"))):
        raise damaged("its training record is not a mapping of config and state")
    if checkpoint.resume is not None and not isinstance(checkpoint.resume, dict):
        raise damaged("its resume state is not a mapping")


@contextmanager
def rebuilding_from(path: str | Path | None, *, with_user_options: bool = False):
    """Where a model, its vocabularies or its training state are rebuilt from a checkpoint: what a
    well-formed but damaged or hand-edited file makes Python raise there (a missing field, a value
    of the wrong type, a weight of the wrong shape) becomes one line naming the file. A setting out
    of range is the file's fault too, unless the user's options take part (a resume's), when a
    UsageError stays the user's."""
    path = path if path is not None else "(not from a file)"
    try:
        yield
    except UsageError as exc:
        if with_user_options:
            raise
        # The setting is a field of the file, not an option of this command: "unknown cell", not "--cell".
        setting = re.sub(r"--([a-z][a-z-]*)", lambda m: m.group(1).replace("-", "_"), exc.message)
        raise CharrnnError(f"checkpoint {path} is damaged: {setting}") from None
    except KeyError as exc:
        raise CharrnnError(f"checkpoint {path} is damaged or incomplete: it lacks the field {exc}") from None
    except (TypeError, ValueError, AttributeError, IndexError, RuntimeError, AssertionError, OverflowError) as exc:
        # load_state_dict's first line only names the model; the next names the weight
        detail = " ".join(line.strip() for line in str(exc).strip().splitlines()[:2]) or type(exc).__name__
        raise CharrnnError(f"checkpoint {path} is damaged: {detail[:240]}") from None


def restore_for_inference(model: torch.nn.Module, checkpoint: Checkpoint, device: torch.device) -> torch.nn.Module:
    """Load a checkpoint's weights into a freshly built model (fp16-stored weights back to
    fp32), move it to the device in eval mode, and re-pack every recurrent layer's weights for
    cuDNN (without it cuDNN warns and copies the weights on every call)."""
    weights = {k: v.float() if v.is_floating_point() else v for k, v in checkpoint.model_state.items()}
    model.load_state_dict(weights)
    model.to(device).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.RNNBase):
            module.flatten_parameters()
    return model


def _a(task) -> str:
    """A task's name with its article, in words: "a translator", "an autoencoder", "a language model"."""
    words = str(task).replace("_", " ")
    return f"{'an' if words[:1] in 'aeiou' and words else 'a'} {words}"
