"""The conditional language model's data: the texts and one label column of a tab-separated file
become one token stream, each text begun by a newline, with every token's label beside it. The
texts go in a seeded order, so the validation split at the stream's end holds every label."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import CharrnnError, UsageError, malformed_lines_error
from ..labelled import LabelledTexts, index_labels, numbered_lines
from ..vocab import Vocab

TEXT_COLUMN = "text"  # with a header, the texts are the column of this name
# The order of the texts is the file's, not the run's: runs with different --seed values validate
# on the same texts, and a file sorted by label still gets a validation split of every label.
STREAM_SEED = 0


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
    texts: list[str] = []
    raw_labels: list[str] = []
    bad: list[int] = []
    columns = None  # (fields per line, text's field, label's field), from the first line
    for number, line in numbered_lines(path, encoding):
        fields = line.rstrip("\r\n").split("\t")
        if not "".join(fields).strip():
            continue
        if columns is None:
            columns, is_header = _columns(fields, column, source)
            if is_header:
                continue
        width, text_at, label_at = columns
        if len(fields) != width or not fields[text_at].strip() or not fields[label_at].strip():
            bad.append(number)
            continue
        texts.append(fields[text_at].strip())
        raw_labels.append(fields[label_at].strip())
    if bad and not skip_bad:
        raise malformed_lines_error(f"data file {source}", bad, f"{columns[0]} tab-separated fields, the text and the label non-empty")
    if not texts:
        raise CharrnnError(f"data file {source} has no labelled texts")
    return index_labels(texts, raw_labels, label_names, bad=bad, where=f"the column {column!r} of {source}",
                        need="a conditional model")


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


def stream_text(data: LabelledTexts) -> str:
    """The stream's text without its labels: what an unconditioned model of the same file reads
    (bench/conditional.py trains one on it)."""
    return "".join("\n" + data.texts[i] for i in stream_order(len(data)))


def condition_stream(data: LabelledTexts, vocab: Vocab) -> np.ndarray:
    """(N, 2) int32: column 0 the tokens of the texts in stream order, each begun by the newline
    token; column 1 every token's label (1 + its index in label_names). A text's newline takes the
    text's label, so the model reads the label before it predicts the text's first token."""
    newline = start_token(vocab)
    order = stream_order(len(data))
    if vocab.kind == "char":  # one token a character: encode the stream in one call
        tokens = vocab.encode_array(stream_text(data))
        lengths = [len(data.texts[i]) + 1 for i in order]
    else:
        pieces = [[newline, *vocab.encode(data.texts[i])] for i in order]
        tokens = np.fromiter((t for piece in pieces for t in piece), dtype=np.int64)
        lengths = [len(piece) for piece in pieces]
    labels = np.repeat(np.asarray([data.labels[i] + 1 for i in order], dtype=np.int64), lengths)
    return np.stack([tokens, labels], axis=1).astype(np.int32)


def stream_vocab(data: LabelledTexts, kind: str, vocab_size: int) -> Vocab:
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
