"""Labelled texts: both file layouts, label names, malformed lines, evaluation labels, imbalance,
and the stratified split and folds."""

import pytest

from charrnn.errors import CharrnnError
from charrnn.labelled import labels_from_file_names, read_labelled, stratified_folds, stratified_split


def test_reads_text_tab_label_with_tabs_inside_the_text(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("good film\tpos\n\nbad\tfilm\tneg\nmeh\tneutral\n")
    data = read_labelled([path])
    assert data.texts == ["good film", "bad\tfilm", "meh"]
    assert data.label_names == ["neg", "neutral", "pos"]  # sorted: the same data gives the same ids
    assert [data.label_names[i] for i in data.labels] == ["pos", "neg", "neutral"]


def test_one_file_per_class_takes_the_label_from_the_name(tmp_path):
    (tmp_path / "rt.pos").write_text("lovely\n\nwitty\n")
    (tmp_path / "rt.neg").write_text("dull\n")
    data = read_labelled([tmp_path / "rt.pos", tmp_path / "rt.neg"])
    assert data.label_names == ["neg", "pos"]
    assert list(zip(data.texts, (data.label_names[i] for i in data.labels))) == [("lovely", "pos"), ("witty", "pos"), ("dull", "neg")]
    assert labels_from_file_names([tmp_path / "positive.txt", tmp_path / "negative.txt"]) == ["positive", "negative"]


def test_malformed_lines_are_reported_by_number_or_skipped(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("a\tx\nno label here\n\ty\nb\t \nc\ty\n")
    with pytest.raises(CharrnnError, match=r"3 malformed line\(s\).*line 2, 3, 4.*--skip-bad"):
        read_labelled([path])
    data = read_labelled([path], skip_bad=True)
    assert data.texts == ["a", "c"] and data.bad_lines == [2, 3, 4]


def test_single_class_unknown_label_and_empty_data_are_errors(tmp_path):
    one = tmp_path / "one.tsv"
    one.write_text("a\tpos\nb\tpos\n")
    with pytest.raises(CharrnnError, match="single class"):
        read_labelled([one])
    other = tmp_path / "other.tsv"
    other.write_text("a\tpos\nb\tmaybe\n")
    with pytest.raises(CharrnnError, match="'maybe'"):
        read_labelled([other], label_names=["neg", "pos"])
    # The model's label order is kept even when the data holds only some of its classes.
    assert read_labelled([one], label_names=["neg", "pos"]).labels == [1, 1]
    empty = tmp_path / "empty.tsv"
    empty.write_text("\n  \n")
    with pytest.raises(CharrnnError, match="no labelled texts"):
        read_labelled([empty])
    with pytest.raises(CharrnnError, match="does not exist"):
        read_labelled([tmp_path / "missing.tsv"])


def test_imbalance_warning(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("x\tcommon\n" * 40 + "y\trare\n" * 4)
    message = read_labelled([path]).imbalance_warning()
    assert message is not None and "common 40" in message and "rare 4" in message
    path.write_text("x\ta\n" * 10 + "y\tb\n" * 8)
    assert read_labelled([path]).imbalance_warning() is None


def test_stratified_split_keeps_class_proportions_and_is_deterministic():
    labels = [0] * 90 + [1] * 30
    train, val = stratified_split(labels, 0.1, seed=1)
    assert sorted(train + val) == list(range(120))
    assert [labels[i] for i in val].count(0) == 9 and [labels[i] for i in val].count(1) == 3
    assert stratified_split(labels, 0.1, seed=1) == (train, val)
    assert stratified_split(labels, 0.1, seed=2) != (train, val)


def test_stratified_folds_cover_every_example_once_with_even_classes():
    labels = [0] * 53 + [1] * 47 + [2] * 10
    folds = stratified_folds(labels, 10, seed=0)
    assert sorted(i for fold in folds for i in fold) == list(range(110))
    for fold in folds:
        assert len(fold) == 11
        counts = [sum(labels[i] == c for i in fold) for c in range(3)]
        assert counts[2] == 1 and abs(counts[0] - 5.3) < 1 and abs(counts[1] - 4.7) < 1
    assert stratified_folds(labels, 10, seed=0) == folds
