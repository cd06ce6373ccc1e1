"""The bag of word n-grams of a text, hashed into a fixed number of buckets: the features of the
classifier's naive Bayes channel (see models/classifier.py). Words are runs of letters and digits
or single other characters, lower-cased, so "Witty," and "witty ," give the same features."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import torch

WORD = re.compile(r"\w+|[^\w\s]")


def ngram_ids(text: str, buckets: int, order: int) -> list[int]:
    """The distinct bucket ids of the text's word n-grams of length 1..order, sorted.

    Presence, not counts: a phrase said twice is no stronger evidence (binarised features are
    what make naive Bayes good at sentiment; Wang and Manning, 2012). The hash is CRC-32, not
    Python's hash(), which changes from one process to the next."""
    words = WORD.findall(text.lower())
    ids = set()
    for n in range(1, order + 1):
        for start in range(len(words) - n + 1):
            gram = " ".join(words[start : start + n])
            ids.add(zlib.crc32(gram.encode("utf-8")) % buckets)
    return sorted(ids)


def class_counts(features: Sequence[Sequence[int]], labels: Sequence[int], buckets: int, num_classes: int) -> torch.Tensor:
    """(buckets, num_classes): in how many texts of each class each bucket occurs."""
    flat = [bucket * num_classes + label for ids, label in zip(features, labels) for bucket in ids]
    counts = torch.bincount(torch.tensor(flat, dtype=torch.long), minlength=buckets * num_classes)
    return counts.view(buckets, num_classes).float()


def sparse_counts(counts: torch.Tensor) -> dict[str, torch.Tensor]:
    """The counts of the buckets that occur, for a checkpoint: most of the buckets are empty."""
    occupied = (counts.sum(dim=1) > 0).nonzero().squeeze(1)
    return {"buckets": occupied.to(torch.int32).cpu(), "counts": counts[occupied].to(torch.int32).cpu()}


def dense_counts(stored: dict[str, torch.Tensor], buckets: int, num_classes: int) -> torch.Tensor:
    """The (buckets, num_classes) counts back from sparse_counts."""
    counts = torch.zeros(buckets, num_classes)
    counts[stored["buckets"].long()] = stored["counts"].float()
    return counts
