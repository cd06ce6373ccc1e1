"""The bag of word n-grams of a text, hashed into buckets: the features of the classifier's naive
Bayes channel (see model.py), and their counts per class. Words are runs of letters
and digits or single other characters, lower-cased, so "Witty," and "witty ," give the same
features."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch

WORD = re.compile(r"\w+|[^\w\s]")


def ngram_ids(text: str, buckets: int, order: int) -> list[int]:
    """The distinct bucket ids of the text's word n-grams of length 1..order, sorted.

    Presence, not counts: a phrase said twice is no stronger evidence (binarised features are
    what make naive Bayes good at sentiment; Wang and Manning, 2012). The hash is CRC-32, not
    Python's hash(), which changes from one process to the next; buckets=2**32 keeps all of it."""
    words = WORD.findall(text.lower())
    ids = set()
    for n in range(1, order + 1):
        for start in range(len(words) - n + 1):
            gram = " ".join(words[start : start + n])
            ids.add(zlib.crc32(gram.encode("utf-8")) % buckets)
    return sorted(ids)


@dataclass
class NgramCounts:
    """In how many labelled texts of each class each bucket occurs, kept for the buckets that
    occur at all: with the whole 32-bit hash as the bucket, n-grams almost never share one, and
    the memory grows with the n-grams seen, not with the number of buckets."""

    buckets: torch.Tensor  # (K,) int64, sorted
    counts: torch.Tensor  # (K, num_classes) float

    @classmethod
    def of(cls, features: Sequence[Sequence[int]], labels: Sequence[int], num_classes: int) -> NgramCounts:
        """features: each text's distinct bucket ids; labels: each text's class."""
        ids = torch.tensor([bucket for text_ids in features for bucket in text_ids], dtype=torch.long)
        classes = torch.tensor([label for text_ids, label in zip(features, labels) for _ in text_ids], dtype=torch.long)
        buckets, position = torch.unique(ids, return_inverse=True)  # sorted
        counts = torch.zeros(len(buckets), num_classes)
        counts.index_put_((position, classes), torch.ones(len(ids)), accumulate=True)
        return cls(buckets, counts)
