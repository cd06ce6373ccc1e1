"""Sentence pairs: reading plain and gzip files, malformed lines, and the split by source."""

import gzip
import random

import pytest

from charrnn.errors import CharrnnError
from charrnn.translate.pairs import read_pairs, split_pairs, typed_variant, with_typed_copies


def test_reads_plain_and_gzip_and_ignores_extra_columns(tmp_path):
    text = "Go.\tVe.\tCC-BY attribution\nHi.\tHola.\n\n"
    plain = tmp_path / "p.tsv"
    plain.write_text(text)
    packed = tmp_path / "p.anything"  # compression is told by content, not name
    packed.write_bytes(gzip.compress(text.encode()))
    for path in (plain, packed):
        assert read_pairs(path).pairs == [("Go.", "Ve."), ("Hi.", "Hola.")]
    assert read_pairs(plain, reverse=True).pairs == [("Ve.", "Go."), ("Hola.", "Hi.")]


def test_malformed_lines_are_reported_by_number(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("Go.\tVe.\nno tab here\nHi.\t \n\tHola.\nOk.\tVale.\n")
    with pytest.raises(CharrnnError, match=r"3 malformed line\(s\).*line 2, 3, 4.*--skip-bad"):
        read_pairs(path)
    result = read_pairs(path, skip_bad=True)
    assert result.pairs == [("Go.", "Ve."), ("Ok.", "Vale.")]
    assert result.bad_lines == [2, 3, 4]


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "e.tsv"
    empty.write_text("\n\n")
    with pytest.raises(CharrnnError, match="no sentence pairs"):
        read_pairs(empty)
    with pytest.raises(CharrnnError, match="does not exist"):
        read_pairs(tmp_path / "missing.tsv")


def test_split_keeps_every_source_in_one_split_and_is_deterministic():
    pairs = [(f"source {i % 300}", f"target {i}") for i in range(1000)]  # sources repeat
    split = split_pairs(pairs, test_size=100, dev_size=50, seed=3)
    assert len(split.test) == 100 and len(split.dev) == 50
    sources = [{s for s, _ in part} for part in (split.train, split.dev, split.test)]
    assert not sources[0] & sources[2] and not sources[0] & sources[1] and not sources[1] & sources[2]
    assert len(split.train) + len(split.dev) + len(split.test) <= len(pairs)
    again = split_pairs(list(reversed(pairs)), test_size=100, dev_size=50, seed=3)
    assert {s for s, _ in again.test} == sources[2]  # depends on the data, not on line order
    assert split_pairs(pairs, test_size=100, dev_size=50, seed=4).test != split.test


def test_split_needs_enough_pairs():
    with pytest.raises(CharrnnError, match="too few"):
        split_pairs([("a", "b")] * 10, test_size=5, dev_size=5)


def test_typed_copies_add_typed_sources_to_training_only():
    pairs = [(f"Where is station {i}?", f"¿Dónde está la estación {i}?") for i in range(400)]
    augmented = with_typed_copies(pairs, 0.5, seed=3)
    assert augmented[: len(pairs)] == pairs  # the originals first, unchanged
    copies = augmented[len(pairs) :]
    assert 150 < len(copies) < 250
    assert all(source != pairs[0][0] and target.startswith("¿") for source, target in copies)
    assert any(not source.endswith("?") for source, _ in copies) and any(source[0] == "w" for source, _ in copies)
    assert with_typed_copies(pairs, 0.5, seed=3) == augmented  # deterministic
    assert with_typed_copies(pairs, 0.0, seed=3) == pairs
    rng = random.Random(0)
    assert all(typed_variant("Hello.", rng) != "Hello." for _ in range(50))
