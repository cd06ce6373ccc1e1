"""The commands that look back at training runs: `charrnn runs` lists the runs under a folder,
`charrnn plot` draws their loss curves. Thin: the reading is run_history's, the drawing plots'."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from .errors import CharrnnError
from .output_files import check_plot_file


def runs(
    directory: Annotated[Path, typer.Argument(help="Folder to look for run folders in, recursively (or one run folder).")] = Path("checkpoints"),
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per run and line, with the keys run, task, parameters, steps, best_metric, best_value, best_step, best_metrics, training_seconds, status, stop_reason, modified.")] = False,
):
    """List training runs: task, size, steps, best validation, training time and how each ended."""
    from .run_history import find_runs, read_run

    summaries = []
    for folder in find_runs(directory):
        try:
            summaries.append(read_run(folder))
        except CharrnnError as exc:  # one unreadable run does not hide the others
            print(f"charrnn: warning: skipped {folder}: {exc.message}", file=sys.stderr)
    if not summaries:
        print(f"no runs under {directory}", file=sys.stderr)
        return
    if as_json:
        # One object per line (see RunSummary.to_json for the keys): `| jq` or a line-by-line reader takes them.
        for summary in summaries:
            print(json.dumps(summary.to_json(), ensure_ascii=False))
        return
    header = ("run", "task", "parameters", "steps", "best validation", "time", "status", "modified")
    numbers = {"parameters", "steps", "time"}  # right-aligned, so that their digits line up
    rows = [(str(s.folder), s.task or "?", _or_dash(s.parameters, "{:,}"), _or_dash(s.steps, "{:,}"),
             s.describe_best() if s.best_metrics else "-", _duration(s.training_seconds), str(s.status),
             datetime.fromtimestamp(s.modified).strftime("%Y-%m-%d %H:%M")) for s in summaries]
    _print_table(header, rows, right=[name in numbers for name in header])


def plot(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders (each with its log.jsonl), drawn overlaid.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The PNG file to write.")] = Path("curves.png"),
    as_json: Annotated[bool, typer.Option("--json", help='Print {"path": ..., "runs": [...]} instead of the path.')] = False,
):
    """Draw runs' training and validation loss against steps and against training time, as a PNG."""
    from .plots import plot_loss_curves
    from .run_history import read_loss_curves

    check_plot_file(output, "--output")
    curves = [read_loss_curves(folder) for folder in run_dirs]
    plot_loss_curves(curves, output)
    if as_json:
        print(json.dumps({"path": str(output), "runs": [str(folder) for folder in run_dirs]}, ensure_ascii=False))
    else:
        print(output)


def _or_dash(value, template: str) -> str:
    return "-" if value is None else template.format(value)


def _duration(seconds: float | None) -> str:
    """Training time as a person reads it: 42.1s, 3m05s, 2h14m."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]], *, right: list[bool]) -> None:
    """Columns padded to their widest cell, one run a line: it stays one line a run when piped to
    a file or grep, where a drawn table would wrap at 80 columns."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        cells = [cell.rjust(width) if r else cell.ljust(width) for cell, width, r in zip(row, widths, right)]
        print("  ".join(cells).rstrip())
