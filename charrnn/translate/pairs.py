"""Sentence pairs for sequence-to-sequence tasks: reading `source<TAB>target` lines (plain or
gzip) with malformed lines reported by number, and the deterministic train/dev/test split by
distinct source sentence."""

from __future__ import annotations

import gzip
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CharrnnError, malformed_lines_error
from ..text_encoding import check_encoding, not_in_encoding
from ..normalise import FINAL_PUNCTUATION

GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class PairFile:
    """The pairs of one file, and the numbers (1-based) of the lines that were skipped."""

    pairs: list[tuple[str, str]]
    bad_lines: list[int] = field(default_factory=list)


def open_text(path: Path, encoding: str):
    """Open a plain or gzip-compressed text file, told apart by its first bytes, not its name."""
    with open(path, "rb") as probe:
        compressed = probe.read(2) == GZIP_MAGIC
    if compressed:
        return gzip.open(path, "rt", encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")


def read_pairs(path: str | Path, *, reverse: bool = False, skip_bad: bool = False, encoding: str = "utf-8") -> PairFile:
    """Read `source<TAB>target` lines; further tab-separated columns (such as the attribution
    column of the Tatoeba exports) are ignored. reverse swaps the two sides.

    A line without a tab, or with an empty side, is malformed: an error naming the line numbers,
    or skipped (and its number recorded) with skip_bad. Blank lines are ignored.
    """
    path = Path(path)
    check_encoding(encoding)
    if not path.exists():
        raise CharrnnError(f"pair file {path} does not exist")
    pairs: list[tuple[str, str]] = []
    bad: list[int] = []
    try:
        with open_text(path, encoding) as handle:
            for number, line in enumerate(handle, start=1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                columns = line.split("\t")
                if len(columns) < 2 or not columns[0].strip() or not columns[1].strip():
                    bad.append(number)
                    continue
                source, target = columns[0].strip(), columns[1].strip()
                pairs.append((target, source) if reverse else (source, target))
    except UnicodeError as exc:
        raise not_in_encoding(f"pair file {path}", encoding, exc) from None
    except (OSError, EOFError) as exc:
        raise CharrnnError(f"cannot read pair file {path}: {exc}") from None
    if bad and not skip_bad:
        raise malformed_lines_error(f"pair file {path}", bad, "source<TAB>target, both non-empty")
    if not pairs:
        raise CharrnnError(f"pair file {path} has no sentence pairs")
    return PairFile(pairs, bad)


class TooFewPairs(CharrnnError):
    """The pairs cannot be split as asked (split_pairs)."""


@dataclass
class PairSplit:
    train: list[tuple[str, str]]
    dev: list[tuple[str, str]]
    test: list[tuple[str, str]]


def split_pairs(pairs: Sequence[tuple[str, str]], *, test_size: int = 2000, dev_size: int = 2000, seed: int = 0) -> PairSplit:
    """Deterministic split into train, dev and test by distinct source sentence.

    Tatoeba repeats a source sentence with alternative translations; splitting by line would put
    one translation in train and another in test, and the test would measure memory. Here every
    source sentence, with all its translations, lands in exactly one split. Sources are shuffled
    with a fixed seed; test and dev take whole groups until they hold their size, and the
    translations that overflow the last group are left out (never put into train).
    """
    groups: dict[str, list[tuple[str, str]]] = {}
    for pair in pairs:
        groups.setdefault(pair[0], []).append(pair)
    sources = sorted(groups)
    random.Random(seed).shuffle(sources)
    too_few = TooFewPairs(
        f"{len(pairs)} pairs ({len(sources)} distinct sources) are too few for a test split of {test_size}, "
        f"a dev split of {dev_size} and some to train on; use more pairs or smaller --test-size / --dev-size"
    )
    held_out: list[list[tuple[str, str]]] = []
    position = 0
    for size in (test_size, dev_size):
        taken: list[tuple[str, str]] = []
        while len(taken) < size:
            if position == len(sources):
                raise too_few
            taken.extend(groups[sources[position]])
            position += 1
        held_out.append(taken[:size])
    train = [pair for source in sources[position:] for pair in groups[source]]
    if not train:
        raise too_few
    return PairSplit(train=train, dev=held_out[1], test=held_out[0])


def typed_variant(sentence: str, rng: random.Random) -> str:
    """A sentence as people type it into a shell: lower-cased (half the time; a quarter only its
    first letter), without its final punctuation (three times in four). Never the sentence itself."""
    draw = rng.random()
    if draw < 0.5:
        text = sentence.lower()
    elif draw < 0.75:
        text = sentence[:1].lower() + sentence[1:]
    else:
        text = sentence
    if rng.random() < 0.75 or text == sentence:
        text = text.rstrip().rstrip(FINAL_PUNCTUATION).rstrip() or text
    return text


def with_typed_copies(pairs: Sequence[tuple[str, str]], share: float, seed: int) -> list[tuple[str, str]]:
    """The pairs, followed by a copy of a share of them (chosen with seed) whose source is written
    as people type it (typed_variant) and whose target is unchanged: a model trained on edited,
    punctuated sources alone has never seen anything else, and loops on "where is the station"."""
    if share <= 0:
        return list(pairs)
    rng = random.Random(seed)
    copies = [(typed_variant(source, rng), target) for source, target in pairs if rng.random() < share]
    return list(pairs) + [(source, target) for source, target in copies if source]
