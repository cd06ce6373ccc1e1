"""Sentences as vectors: an Embedder reads texts with the encoder of a trained model (a classifier's
pooled bidirectional layer, a translator's encoder) and gives one vector a text, in input order;
and the nearest of a set of vectors by cosine similarity. Each task that has an encoder says how
to build its Embedder (EMBEDDERS); `charrnn embed` is the command."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import checkpoint_file, load_checkpoint
from .errors import UsageError

# task name -> (module, its function load_embedder(checkpoint, device, batch_size) -> Embedder).
EMBEDDERS = {
    "classifier": ("charrnn.classify.task", "load_embedder"),
    "translator": ("charrnn.translate.task", "load_embedder"),
    "autoencoder": ("charrnn.autoencode.task", "load_embedder"),
}
BATCH_SIZE = 64


@dataclass
class Embedder:
    """vectors_of(texts) -> (N, dimension) float32 tensor for non-empty texts, in their order."""

    task: str
    dimension: int
    vectors_of: Callable[[Sequence[str]], torch.Tensor]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One vector a text, (N, dimension) float32, in input order; an empty (or blank) text
        gets a row of NaN, so rows stay aligned with the input lines."""
        vectors = np.full((len(texts), self.dimension), np.nan, dtype=np.float32)
        filled = [i for i, text in enumerate(texts) if text.strip()]
        if filled:
            vectors[filled] = self.vectors_of([texts[i] for i in filled]).float().cpu().numpy()
        return vectors


def load_embedder(checkpoint: str | Path, *, device: str = "auto", batch_size: int = BATCH_SIZE) -> Embedder:
    """The Embedder of a checkpoint whose model has an encoder; a one-line UsageError for one
    without (a language model, a forecaster)."""
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {batch_size}")
    path = checkpoint_file(checkpoint)
    task = load_checkpoint(path).task
    if task not in EMBEDDERS:
        raise UsageError(f"{checkpoint} is a {str(task).replace('_', ' ')}, which has no encoder to embed with; "
                         f"give a {' or '.join(EMBEDDERS)} checkpoint")
    module, name = EMBEDDERS[task]
    return getattr(importlib.import_module(module), name)(path, device=device, batch_size=batch_size)


def in_length_order(lengths: Sequence[int], batch_size: int, run: Callable[[list[int]], torch.Tensor],
                    dimension: int) -> torch.Tensor:
    """run(indices) -> (len(indices), dimension) over batches of similar length (little
    padding), returned in input order."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    vectors = torch.empty(len(lengths), dimension)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        vectors[chunk] = run(chunk).float().cpu()
    return vectors


def masked_mean(states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The mean over each sequence's real positions: states (B, T, H), lengths (B,) -> (B, H)."""
    mask = torch.arange(states.shape[1], device=states.device).unsqueeze(0) < lengths.to(states.device).unsqueeze(1)
    mask = mask.unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(dim=1) / mask.sum(dim=1)


@dataclass
class Neighbour:
    line: int  # 1-based, in the file searched
    text: str
    similarity: float  # cosine


def nearest(queries: np.ndarray, corpus: np.ndarray, corpus_texts: Sequence[str], k: int) -> list[list[Neighbour]]:
    """For each query vector, the k corpus vectors of highest cosine similarity, best first. Rows
    of NaN (empty lines) are never returned; a NaN query finds nothing."""
    if k < 1:
        raise UsageError(f"-k must be at least 1, not {k}")
    usable = ~np.isnan(corpus).any(axis=1)
    index = np.flatnonzero(usable)
    if len(index) == 0:
        raise UsageError("the file to search has no non-empty lines")
    unit = _unit(corpus[index])
    results = []
    for query in queries:
        if np.isnan(query).any():
            results.append([])
            continue
        similarities = unit @ _unit(query[None, :])[0]
        best = np.argsort(-similarities, kind="stable")[:k]
        results.append([Neighbour(int(index[b]) + 1, corpus_texts[index[b]], float(similarities[b])) for b in best])
    return results


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
