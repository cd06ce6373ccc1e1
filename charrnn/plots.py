"""PNG figures (matplotlib, imported only when a plot is asked for): the attention heat map of a
translation, the confusion matrix of a classifier, and the loss curves of training runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from .errors import CharrnnError
from .run_history import LossCurves


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: str | Path) -> None:
    """Write the figure as a PNG and close it; an unwritable path is a one-line error."""
    plt = pyplot()
    try:
        figure.savefig(path, dpi=120)
    except OSError as exc:
        raise CharrnnError(f"cannot write the plot {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(figure)


def plot_attention(weights: torch.Tensor, source_tokens: list[str], output_tokens: list[str], path: str | Path) -> None:
    """Save a heat map of attention weights: output tokens down, source tokens across."""
    plt = pyplot()
    height, width = weights.shape
    figure, axes = plt.subplots(figsize=(max(4.0, 0.35 * width + 1.5), max(3.0, 0.35 * height + 1.5)))
    image = axes.imshow(weights.numpy(), cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
    axes.set_xticks(range(width), [repr(t)[1:-1] for t in source_tokens], rotation=90)
    axes.set_yticks(range(height), [repr(t)[1:-1] for t in output_tokens])
    axes.set_xlabel("source")
    axes.set_ylabel("output")
    figure.colorbar(image, ax=axes, fraction=0.04)
    figure.tight_layout()
    save_figure(figure, path)


def plot_confusion(confusion: list[list[int]], label_names: Sequence[str], path: str | Path) -> None:
    """Save the confusion matrix as a PNG heat map, counts written in the cells."""
    plt = pyplot()
    n = len(label_names)
    figure, axes = plt.subplots(figsize=(max(3.5, 0.6 * n + 2.5), max(3.0, 0.6 * n + 2.0)))
    image = axes.imshow(confusion, cmap="Blues")
    axes.set_xticks(range(n), label_names, rotation=45, ha="right")
    axes.set_yticks(range(n), label_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    highest = max(max(row) for row in confusion) or 1
    for i, row in enumerate(confusion):
        for j, count in enumerate(row):
            axes.text(j, i, f"{count:,}", ha="center", va="center", color="white" if count > highest / 2 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    save_figure(figure, path)


def plot_loss_curves(runs: Sequence[LossCurves], path: str | Path) -> None:
    """Save the loss curves of runs (run_history.read_loss_curves), overlaid, one colour a run:
    against steps on the left, against training time on the right. Train loss is a thin, faint
    line (it is noisy from step to step), validation a solid line with a dot per evaluation."""
    from matplotlib.lines import Line2D

    if not any(run.train or run.val for run in runs):
        raise CharrnnError("no losses to plot: the runs have logged no training step yet")
    plt = pyplot()
    latest = max((p.elapsed for run in runs for p in run.train + run.val), default=0.0)
    unit, seconds_per_unit = _time_unit(latest)
    figure, (by_step, by_time) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True, layout="constrained")
    labels = _run_labels([run.folder for run in runs])
    handles = []
    for i, (run, label) in enumerate(zip(runs, labels)):
        colour = f"C{i % 10}"
        for axes, x in ((by_step, lambda p: p.step), (by_time, lambda p: p.elapsed / seconds_per_unit)):
            axes.plot([x(p) for p in run.train], [p.loss for p in run.train], color=colour, linewidth=0.8, alpha=0.35)
            axes.plot([x(p) for p in run.val], [p.loss for p in run.val], color=colour, linewidth=1.8, marker="o",
                      markersize=3.5)
        handles.append(Line2D([], [], color=colour, linewidth=1.8, label=label))
    # What the two line styles mean, after the runs' colours.
    handles.append(Line2D([], [], color="grey", linewidth=0.8, alpha=0.5, label="train (each step)"))
    handles.append(Line2D([], [], color="grey", linewidth=1.8, marker="o", markersize=3.5, label="validation"))
    by_step.set_xlabel("step (optimiser updates)")
    by_time.set_xlabel(f"training time, wall clock ({unit})")
    by_step.set_ylabel("loss (nats)")
    by_step.set_title("loss against steps")
    by_time.set_title("loss against training time")
    for axes in (by_step, by_time):
        axes.grid(alpha=0.3)
    figure.legend(handles=handles, loc="outside right upper", frameon=False)
    save_figure(figure, path)


def _time_unit(latest_seconds: float) -> tuple[str, float]:
    """The unit a time axis up to latest_seconds reads best in, and its length in seconds."""
    if latest_seconds >= 2 * 3600:
        return "h", 3600.0
    if latest_seconds >= 2 * 60:
        return "min", 60.0
    return "s", 1.0


def _run_labels(folders: Sequence[Path]) -> list[str]:
    """Each run's legend label: its folder's name, or the whole path where two runs share a name
    (a cross-validation's fold-1 folders, two runs' pretrain/)."""
    names = [folder.resolve().name or str(folder) for folder in folders]
    return [str(folder) if names.count(name) > 1 else name for folder, name in zip(folders, names)]
