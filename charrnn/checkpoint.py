"""One self-contained, versioned checkpoint file per model: what sampling needs (task, config,
vocabulary, weights) and what resuming needs (optimiser, step, RNG, data position, history), in
plain types so it loads with torch.load(weights_only=True). Written atomically."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import torch

from .errors import CharrnnError

FORMAT = "charrnn"
# Version 2 keeps every buffer a model owns in its state dict; version 1 kept the classifier's
# n-gram counts apart, under "ngram_counts" (upgraded on loading, see _upgraded).
FORMAT_VERSION = 2


def save_checkpoint(payload: dict, path: str | Path) -> None:
    """Write payload to path atomically: a temporary file in the same folder, flushed and fsynced,
    then renamed over the target. A crash at any moment leaves either the old file or the new one,
    never a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    # Not tempfile.mkstemp: it creates the file 0600, and the checkpoint would keep that mode
    # after the rename; os.open with 0o666 honours the user's umask like any other file.
    tmp_name = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


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


def checkpoint_file(path: str | Path) -> Path:
    """The checkpoint a path names: a file as it is; a run folder's best.pt, else its last.pt
    (a run stopped before its first evaluation has only last.pt)."""
    path = Path(path)
    if not path.is_dir():
        return path
    for name in ("best.pt", "last.pt"):
        if (path / name).is_file():
            return path / name
    raise CharrnnError(f"run folder {path} holds no checkpoint (best.pt or last.pt)")


def load_checkpoint(path: str | Path, *, task: str | None = None) -> dict:
    """Load a checkpoint (a file, or a run folder: see checkpoint_file) onto the CPU, wherever it
    was saved, without running any code from it.

    Raises a one-line CharrnnError for a missing file, a file that is not a charrnn checkpoint, a
    truncated or corrupt file, a newer format, or (when task is given) a checkpoint of another task.
    """
    path = checkpoint_file(path)
    if not path.exists():
        raise CharrnnError(f"checkpoint {path} does not exist")
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
        raise CharrnnError(f"checkpoint {path} is a {payload.get('task')} model, not a {task} model")
    return _upgraded(payload)


def _upgraded(payload: dict) -> dict:
    """A payload of an older format version as the current version writes it."""
    if payload["format_version"] < 2:
        counts = payload.pop("ngram_counts", None)
        if counts is not None:
            payload["model_state"] = {**payload["model_state"], "counted_buckets": counts["buckets"],
                                      "ngram_counts": counts["counts"]}
        payload["format_version"] = 2
    return payload


def inference_only(payload: dict, *, half: bool = False) -> dict:
    """A copy with what sampling needs and the record of how it was made, without optimiser,
    RNG and data position (which only resuming needs); half=True stores floating weights in
    fp16 to halve the file. Loading converts them back to fp32."""
    keep = {k: v for k, v in payload.items() if k not in ("optimizer_state", "rng_state", "data_state", "format", "format_version")}
    weights = payload["model_state"]
    if half:
        weights = {k: (v.half() if v.is_floating_point() else v) for k, v in weights.items()}
    keep["model_state"] = weights
    keep["resumable"] = False
    return keep


def restore_for_inference(model: torch.nn.Module, payload: dict, device: torch.device) -> torch.nn.Module:
    """Load a checkpoint's weights into a freshly built model (fp16-stored weights back to
    fp32), move it to the device in eval mode, and re-pack every recurrent layer's weights for
    cuDNN (without it cuDNN warns and copies the weights on every call)."""
    weights = {k: v.float() if v.is_floating_point() else v for k, v in payload["model_state"].items()}
    model.load_state_dict(weights)
    model.to(device).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.RNNBase):
            module.flatten_parameters()
    return model
