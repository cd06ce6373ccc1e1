"""Where every command's output files and folders are checked before any work is done on them: a
checkpoint to export, a plot, a download folder, the token cache. A path that cannot be written
is one clear error up front, not a traceback after minutes of work. (Run folders are checked where
a run claims its folder, runs.py.)"""

from __future__ import annotations

from pathlib import Path

from .errors import CharrnnError


def check_output_file(path: str | Path, what: str) -> Path:
    """The path of a file to write, refused when it names a folder or its folder is missing or
    is not a folder."""
    path = Path(path)
    if path.is_dir():
        raise CharrnnError(f"{what} {path} is a folder; give a file name (such as {path / 'model.pt'})")
    parent = path.parent
    if not parent.exists():
        raise CharrnnError(f"cannot write {what} {path}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise CharrnnError(f"cannot write {what} {path}: {parent} is a file, not a folder")
    return path


def make_output_folder(path: str | Path, what: str) -> Path:
    """A folder to write into, made (with its parents) if it does not exist yet."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CharrnnError(f"{what} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CharrnnError(f"cannot make {what} {path}: {exc.strerror or exc}") from None
    return path
