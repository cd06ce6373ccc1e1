"""The conditional language model's data: the texts and one condition column of a tab-separated
file become one token stream, each text begun by a newline, with every token's condition beside it.
A condition is a label (a word naming a class) or a vector (numbers). The texts go in a seeded
order, so the validation split at the stream's end holds every label."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CharrnnError, UsageError, malformed_lines_error
from ..labelled import LabelledTexts, index_labels, numbered_lines
from ..vocab import Vocab

TEXT_COLUMN = "text"  # with a header, the texts are the column of this name
CONDITION_TYPES = ("label", "vector")
# The order of the texts is the file's, not the run's: runs with different --seed values validate
# on the same texts, and a file sorted by label still gets a validation split of every label.
STREAM_SEED = 0


@dataclass
class VectorTexts:
    """Texts and a vector of numbers for each: vectors is (texts, size) float32."""

    texts: list[str]
    vectors: np.ndarray
    bad_lines: list[int]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> VectorTexts:
        return VectorTexts([self.texts[i] for i in indices], self.vectors[list(indices)], [])


def read_label_column(path: Path, column: str, *, encoding: str = "utf-8", source: str | None = None,
                      skip_bad: bool = False, label_names: Sequence[str] | None = None) -> LabelledTexts:
    """Texts and one label column of a tab-separated file.

    A first line with a field named column is a header: the texts are then the column named
    "text", or in a file of two columns the other one. Without a header (a first line that names
    neither column), every line is text<TAB>label. A line with another number of fields, or an
    empty text or label, is an error naming its number (skipped with skip_bad); blank lines are
    ignored. label_names, when given (a trained model's labels), fixes their order, and a label
    outside them is an error."""
    source = source or str(path)
    texts, raw_labels, bad = _read_column(path, column, encoding, source, skip_bad, str.strip, "the label non-empty")
    return index_labels(texts, raw_labels, label_names, bad=bad, where=f"the column {column!r} of {source}",
                        need="a conditional model")


def read_vector_column(path: Path, column: str, *, encoding: str = "utf-8", source: str | None = None,
                       skip_bad: bool = False, size: int | None = None) -> VectorTexts:
    """Texts and one column of vectors: each field numbers separated by spaces or commas (in
    brackets or not, so a JSON list will do), as many on every line; the file's layout as for
    read_label_column. size, when given (a trained model's), is the count every line must have;
    otherwise the first line's sets it."""
    source = source or str(path)
    sizes = [size]

    def parse(field: str) -> list[float] | None:
        vector = parse_vector(field)
        if vector is None or sizes[0] not in (None, len(vector)):
            return None
        sizes[0] = len(vector)
        return vector

    count = f"{size} numbers" if size else "the same count of numbers on every line"
    texts, vectors, bad = _read_column(path, column, encoding, source, skip_bad, parse, f"the vector {count}")
    return VectorTexts(texts, np.asarray(vectors, dtype=np.float32), bad)


def parse_vector(field: str) -> list[float] | None:
    """The finite numbers of "0.5 -1 2", "0.5,-1,2" or "[0.5, -1, 2]"; None for anything else."""
    body = field.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    try:
        numbers = [float(part) for part in re.split(r"[\s,]+", body.strip()) if part]
    except ValueError:
        return None
    if not numbers or not all(map(math.isfinite, numbers)):
        return None
    return numbers


def _read_column(path: Path, column: str, encoding: str, source: str, skip_bad: bool,
                 parse: Callable[[str], object | None], rule: str) -> tuple[list[str], list, list[int]]:
    """(texts, each text's parsed condition field, numbers of the lines skipped) of a tab-separated
    file; parse returns None for a field that is not a condition (the line is then malformed)."""
    texts, values, bad = [], [], []
    columns = None  # (fields per line, text's field, condition's field), from the first line
    for number, line in numbered_lines(path, encoding):
        fields = line.rstrip("\r\n").split("\t")
        if not "".join(fields).strip():
            continue
        if columns is None:
            columns, is_header = _columns(fields, column, source)
            if is_header:
                continue
        width, text_at, value_at = columns
        value = parse(fields[value_at]) if len(fields) == width and fields[value_at].strip() else None
        if value is None or not fields[text_at].strip():
            bad.append(number)
            continue
        texts.append(fields[text_at].strip())
        values.append(value)
    if bad and not skip_bad:
        raise malformed_lines_error(f"data file {source}", bad, f"{columns[0]} tab-separated fields, the text non-empty, {rule}")
    if not texts:
        raise CharrnnError(f"data file {source} has no texts with a condition")
    return texts, values, bad


def _columns(first: list[str], column: str, source: str) -> tuple[tuple[int, int, int], bool]:
    """((fields per line, text's field, label's field), whether the first line is a header)."""
    if column in first:
        label_at = first.index(column)
        if TEXT_COLUMN in first and column != TEXT_COLUMN:
            return (len(first), first.index(TEXT_COLUMN), label_at), True
        if len(first) == 2:
            return (2, 1 - label_at, label_at), True
        raise UsageError(f"{source} has the columns {', '.join(map(repr, first[:10]))}; name the texts' column {TEXT_COLUMN!r}")
    if len(first) == 2 and TEXT_COLUMN not in first:  # a first line naming a "text" column is a header
        return (2, 0, 1), False
    shown = ", ".join(repr(field[:30]) for field in first[:10])
    raise UsageError(f"{source} has no column named {column!r}: its first line has {len(first)} tab-separated fields "
                     f"({shown}); give text<TAB>label lines, or a first line naming the columns")


def stream_order(count: int) -> list[int]:
    """The order the texts of a file take in its stream (seeded by STREAM_SEED)."""
    order = list(range(count))
    random.Random(STREAM_SEED).shuffle(order)
    return order


def stream_text(data: LabelledTexts | VectorTexts) -> str:
    """The stream's text without its conditions: what an unconditioned model of the same file
    reads (bench/conditional.py trains one on it)."""
    return "".join("\n" + data.texts[i] for i in stream_order(len(data)))


def condition_ids(data: LabelledTexts | VectorTexts) -> list[int]:
    """Each text's condition id: 1 + its label's index in label_names, or for vectors 1 + the
    text's own index (its row of condition_table). 0 is "none"."""
    if isinstance(data, VectorTexts):
        return list(range(1, len(data) + 1))
    return [label + 1 for label in data.labels]


@dataclass
class StreamConditions:
    """What a conditional stream holds besides its tokens and condition ids: the labels the ids
    name, or for vectors, table (ids, size): the vector of each id, row 0 (none) the mean vector,
    which the model reads as no condition (see model.LanguageModel)."""

    labels: list[str] = field(default_factory=list)
    table: np.ndarray | None = None

    @classmethod
    def of(cls, data: LabelledTexts | VectorTexts) -> StreamConditions:
        if isinstance(data, LabelledTexts):
            return cls(labels=data.label_names)
        return cls(table=np.concatenate([data.vectors.mean(axis=0, keepdims=True), data.vectors]).astype(np.float32))

    def model_fields(self, vocab: Vocab) -> dict:
        """The LanguageModelConfig fields of a model conditioned on these (none for a plain stream)."""
        if self.labels:
            return {"conditions": self.labels, "condition_token": start_token(vocab)}
        if self.table is None:
            return {}
        vectors = self.table[1:].astype(np.float64)
        scale = vectors.std(axis=0)
        return {"condition_size": vectors.shape[1], "condition_token": start_token(vocab),
                "condition_mean": vectors.mean(axis=0).tolist(),
                # A number that never varies carries nothing; a scale of 1 keeps it harmless.
                "condition_scale": np.where(scale > 0, scale, 1.0).tolist()}


def condition_stream(data: LabelledTexts | VectorTexts, vocab: Vocab) -> np.ndarray:
    """(N, 2) int32: column 0 the tokens of the texts in stream order, each begun by the newline
    token; column 1 every token's condition id (see condition_ids). A text's newline takes the
    text's condition, so the model reads it before it predicts the text's first token."""
    newline = start_token(vocab)
    order = stream_order(len(data))
    if vocab.kind == "char":  # one token a character: encode the stream in one call
        tokens = vocab.encode_array(stream_text(data))
        lengths = [len(data.texts[i]) + 1 for i in order]
    else:
        pieces = [[newline, *vocab.encode(data.texts[i])] for i in order]
        tokens = np.fromiter((t for piece in pieces for t in piece), dtype=np.int64)
        lengths = [len(piece) for piece in pieces]
    ids = condition_ids(data)
    conditions = np.repeat(np.asarray([ids[i] for i in order], dtype=np.int64), lengths)
    return np.stack([tokens, conditions], axis=1).astype(np.int32)


def stream_vocab(data: LabelledTexts | VectorTexts, kind: str, vocab_size: int) -> Vocab:
    """The vocabulary of the texts and the newline that begins each."""
    if kind == "char":
        return Vocab.build_char(set("\n").union(*data.texts))
    return Vocab.train_bpe(data.texts, vocab_size)


def start_token(vocab: Vocab) -> int:
    """The token that begins every text of a stream: the newline."""
    ids = vocab.encode("\n")
    if len(ids) != 1:
        raise CharrnnError("the vocabulary has no single token for a newline, which begins every text")
    return ids[0]
