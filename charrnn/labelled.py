"""Labelled text, shared by the classifier and the conditional language model: reading
`text<TAB>label` files or one file per class (the label is the file's name), with malformed lines
reported by number, and the deterministic stratified validation split and cross-validation folds."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CharrnnError, UsageError, malformed_lines_error
from .text_encoding import check_encoding, not_in_encoding

IMBALANCE_RATIO = 3.0  # the largest class this many times the smallest earns a warning


@dataclass
class LabelledTexts:
    """Texts and their labels; labels index label_names."""

    texts: list[str]
    labels: list[int]
    label_names: list[str]
    bad_lines: list[int] = field(default_factory=list)  # numbers of the lines skipped with skip_bad

    def __len__(self) -> int:
        return len(self.texts)

    def class_counts(self) -> list[int]:
        counts = Counter(self.labels)
        return [counts.get(i, 0) for i in range(len(self.label_names))]

    def subset(self, indices: Sequence[int]) -> LabelledTexts:
        return LabelledTexts([self.texts[i] for i in indices], [self.labels[i] for i in indices], self.label_names)

    def imbalance_warning(self) -> str | None:
        """A message when the classes are strongly imbalanced (accuracy then says little: a model
        that always answers the largest class scores high), else None."""
        counts = self.class_counts()
        largest, smallest = max(counts), min(counts)
        if smallest and largest / smallest < IMBALANCE_RATIO:
            return None
        shown = ", ".join(f"{name} {count:,}" for name, count in zip(self.label_names, counts))
        return (f"the classes are imbalanced ({shown}); accuracy alone will flatter the model, "
                "so judge it by macro-F1 and the confusion matrix")


def labels_from_file_names(paths: Sequence[Path]) -> list[str]:
    """The class label of each file of a one-file-per-class data set: the part of the name that
    differs. rt-polarity.pos and rt-polarity.neg share their stem, so they are pos and neg;
    positive.txt and negative.txt are positive and negative."""
    stems = {p.stem for p in paths}
    suffixes = [p.suffix.lstrip(".") for p in paths]
    if len(stems) == 1 and all(suffixes):
        names = suffixes
    else:
        names = [p.stem if p.suffix else p.name for p in paths]
    if len(set(names)) != len(names):
        raise UsageError(f"the files {', '.join(str(p) for p in paths)} do not have distinct names to use as labels")
    return names


def numbered_lines(path: Path, encoding: str):
    """(line number from 1, line with its ending) of a data file, with a one-line error for a
    missing file, a folder, an unreadable file or bytes not in the encoding."""
    check_encoding(encoding)
    if not path.exists():
        raise CharrnnError(f"data file {path} does not exist")
    if path.is_dir():
        raise CharrnnError(f"data file {path} is a directory; give a file")
    try:
        with open(path, encoding=encoding, newline="") as handle:
            yield from enumerate(handle, start=1)
    except UnicodeError as exc:
        raise not_in_encoding(f"data file {path}", encoding, exc) from None
    except OSError as exc:
        raise CharrnnError(f"cannot read data file {path}: {exc.strerror or exc}") from None


def read_labelled(paths: Sequence[str | Path], *, skip_bad: bool = False, encoding: str = "utf-8",
                  label_names: Sequence[str] | None = None) -> LabelledTexts:
    """Read labelled texts: one `text<TAB>label` file (the label follows the last tab, so texts
    may hold tabs), or several files of one class each, every non-blank line a text.

    In a `text<TAB>label` file, a line with no tab or an empty text or label is malformed: an
    error naming the line numbers, or skipped with skip_bad. Blank lines are ignored everywhere.
    label_names, when given (a trained model's classes), fixes the label order, and a label
    outside it is an error.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise UsageError("give a text<TAB>label file, or one file per class")
    texts: list[str] = []
    raw_labels: list[str] = []
    bad: list[int] = []
    if len(paths) == 1:
        for number, line in numbered_lines(paths[0], encoding):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            text, tab, label = line.rpartition("\t")
            if not tab or not text.strip() or not label.strip():
                bad.append(number)
                continue
            texts.append(text.strip())
            raw_labels.append(label.strip())
        if bad and not skip_bad:
            hint = "" if texts else "; for one file per class give all the files"
            raise malformed_lines_error(f"data file {paths[0]}", bad, "text<TAB>label, both non-empty" + hint)
    else:
        for path, name in zip(paths, labels_from_file_names(paths)):
            for _, line in numbered_lines(path, encoding):
                if line.strip():
                    texts.append(line.strip())
                    raw_labels.append(name)
    if not texts:
        raise CharrnnError(f"{', '.join(str(p) for p in paths)}: no labelled texts found")
    return index_labels(texts, raw_labels, label_names, bad=bad, where="the data", single="class", need="a classifier")


def index_labels(texts: list[str], raw_labels: list[str], label_names: Sequence[str] | None, *, bad: list[int],
                 where: str, single: str = "label", need: str) -> LabelledTexts:
    """LabelledTexts of texts and their labels as read. Without label_names the labels are the
    distinct ones read, sorted, and there must be two or more (need: who needs them); with
    label_names (a trained model's), those, in their order, and a label outside them is an error.
    where names what the labels were read from, and single what one is called, in the messages."""
    if label_names is None:
        names = sorted(set(raw_labels))
        if len(names) < 2:
            raise CharrnnError(f"{where} has a single {single} ({names[0]!r}); {need} needs at least two")
    else:
        names = list(label_names)
        unknown = sorted(set(raw_labels) - set(names))
        if unknown:
            raise CharrnnError(f"{where} has label(s) the model does not know: {', '.join(map(repr, unknown[:10]))}; "
                               f"the model's labels are {', '.join(map(repr, names))}")
    index = {name: i for i, name in enumerate(names)}
    return LabelledTexts(texts, [index[label] for label in raw_labels], names, bad)


def stratified_split(labels: Sequence[int], val_frac: float, *, seed: int = 0) -> tuple[list[int], list[int]]:
    """Train and validation indices, each class divided in the same proportion (at least one of
    each class on either side), chosen by a seeded shuffle: the same data gives the same split."""
    if not 0.0 < val_frac < 1.0:
        raise UsageError(f"--val-frac must be between 0 and 1, not {val_frac}")
    train, val = [], []
    for members in _members_by_class(labels, seed):
        if len(members) < 2:
            raise CharrnnError("every class needs at least two examples, one to train on and one to validate on")
        n_val = min(len(members) - 1, max(1, round(len(members) * val_frac)))
        val.extend(members[:n_val])
        train.extend(members[n_val:])
    return sorted(train), sorted(val)


def stratified_folds(labels: Sequence[int], folds: int, *, seed: int = 0) -> list[list[int]]:
    """k disjoint folds covering every index once, each class dealt round-robin after a seeded
    shuffle, so every fold holds each class in nearly the same proportion."""
    if folds < 2:
        raise UsageError(f"--folds must be at least 2, not {folds}")
    if folds > len(labels):
        raise UsageError(f"--folds {folds} is more than the {len(labels)} examples")
    result: list[list[int]] = [[] for _ in range(folds)]
    position = 0
    for members in _members_by_class(labels, seed):
        for index in members:
            result[position % folds].append(index)
            position += 1  # continue across classes, so small classes do not all land in fold 0
    return [sorted(fold) for fold in result]


def _members_by_class(labels: Sequence[int], seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    groups = []
    for label in sorted(by_class):
        members = by_class[label]
        rng.shuffle(members)
        groups.append(members)
    return groups
