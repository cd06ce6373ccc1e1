"""Where every command's output files and folders are checked before any work is done on them: a
checkpoint to export, a plot, a download folder, the token cache. A path that cannot be written
is one clear error up front, not a traceback after minutes of work. (Run folders are checked where
a run claims its folder, runs.py.)"""

from __future__ import annotations

from pathlib import Path

from .errors import CharrnnError, UsageError


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


def check_plot_file(path: str | Path, option: str) -> Path:
    """The PNG file a --plot or --output option names (matplotlib picks the format from the
    suffix, and would refuse .pt or no suffix only after all the work), checked as above."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise UsageError(f"{option} must name a .png file, not {path}")
    return check_output_file(path, f"{option} file")


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
