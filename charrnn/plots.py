"""PNG figures (matplotlib, imported only when a plot is asked for): the attention heat map of a
translation and the confusion matrix of a classifier."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from .errors import CharrnnError


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: str | Path) -> None:
    """Write the figure as a PNG and close it; an unwritable path is a one-line error."""
    plt = _pyplot()
    try:
        figure.savefig(path, dpi=120)
    except OSError as exc:
        raise CharrnnError(f"cannot write the plot {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(figure)


def plot_attention(weights: torch.Tensor, source_tokens: list[str], output_tokens: list[str], path: str | Path) -> None:
    """Save a heat map of attention weights: output tokens down, source tokens across."""
    plt = _pyplot()
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
    plt = _pyplot()
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
