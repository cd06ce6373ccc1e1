"""The classifier's naive Bayes channel over word n-grams: hashed features, counts, leave-one-out
scores in training, padding, and the counts' trip through a checkpoint and an fp16 export."""

import math
import os
import subprocess
import sys

import pytest
import torch

from charrnn.checkpoint import load_checkpoint, save_checkpoint
from charrnn.data import pad_batch
from charrnn.classify.model import Classifier, ClassifierConfig
from charrnn.classify.ngrams import NgramCounts, ngram_ids
from charrnn.classify.task import (
    ClassificationDataConfig,
    classify,
    evaluate_classifier,
    load_classifier,
    train_classifier,
    validation_split,
)
from charrnn.train import TrainConfig

BUCKETS = 4096


def test_ngram_ids_are_distinct_sorted_and_ignore_case_and_spacing():
    ids = ngram_ids("A witty, WITTY film", BUCKETS, order=2)
    assert ids == sorted(set(ids)) and all(0 <= i < BUCKETS for i in ids)
    # words: a, witty, ",", witty, film -> 4 distinct unigrams and 4 distinct bigrams
    assert len(ngram_ids("A witty, WITTY film", 2**30, order=2)) == 8
    assert ngram_ids("a witty , witty film", BUCKETS, 2) == ids
    assert len(ngram_ids("a witty , witty film", 2**30, order=1)) == 4


def test_ngram_ids_do_not_change_between_processes():
    code = "from charrnn.classify.ngrams import ngram_ids; print(ngram_ids('a gorgeous , witty movie', 2**20, 2))"
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        outputs.add(subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                                   text=True).stdout)
    assert len(outputs) == 1


def test_counts_keep_only_the_buckets_that_occur_and_survive_a_checkpoint(tmp_path):
    big = 2**32 - 1  # the largest CRC-32: more than an int32 holds
    counts = NgramCounts.of([[3, big], [3], [0, 3]], [0, 1, 1], num_classes=2)
    assert counts.buckets.tolist() == [0, 3, big]
    assert counts.counts.tolist() == [[0, 1], [1, 2], [1, 0]]
    model = small_model(ngram_buckets=2**32)
    model.set_ngram_counts(counts)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    back = small_model(ngram_buckets=2**32)  # no counts yet: loading gives it the stored ones, of their length
    back.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    assert back.counted_buckets.tolist() == [0, 3, big] and back.ngram_counts.tolist() == counts.counts.tolist()
    assert back.ngram_totals.tolist() == [2.0, 3.0]


def test_counts_of_buckets_never_counted_are_zero():
    model = small_model(ngram_buckets=2**32)
    with pytest.raises(ValueError, match="no counts"):
        model.counts_of(torch.tensor([1]))
    model.set_ngram_counts(NgramCounts.of([[5, 2**31 + 7], [5]], [0, 1], num_classes=2))
    ids = torch.tensor([[0, 5, 6], [2**31 + 7, 2**32 - 1, 5]])  # below, between, above the counted ones
    assert model.counts_of(ids).tolist() == [[[0, 0], [1, 1], [0, 0]], [[1, 0], [0, 0], [1, 1]]]


def small_model(**overrides):
    config = dict(vocab_size=30, num_classes=2, embedding_size=8, hidden_size=6, dropout=0.0, ngram_buckets=64)
    return Classifier(ClassifierConfig(**{**config, **overrides}))


def test_scores_of_counted_texts_leave_their_own_counts_out():
    features = [[1, 2, 5], [2, 7], [5, 9], [1, 9, 11]]
    labels = [0, 0, 1, 1]
    model = small_model()
    model.set_ngram_counts(NgramCounts.of(features, labels, 2))
    ngrams = pad_batch(features)
    left_out = model.ngram_scores(ngrams, counted_labels=torch.tensor(labels))
    for i in range(len(features)):
        others = [j for j in range(len(features)) if j != i]
        alone = small_model()
        alone.set_ngram_counts(NgramCounts.of([features[j] for j in others], [labels[j] for j in others], 2))
        expected = alone.ngram_scores(pad_batch([features[i]]))[0]
        # The vocabulary size in the smoothing stays that of all texts: the one approximation.
        if set(features[i]) <= {b for j in others for b in features[j]}:
            torch.testing.assert_close(left_out[i], expected)
    # Naive Bayes by hand for text 3 scored with all counts: each class has 5 counted n-grams,
    # 6 buckets occur at all; bucket 1 is in one text of each class, 9 in two of class 1, 11 in one.
    full = model.ngram_scores(pad_batch([[1, 9, 11]]))[0]
    vocab = 6
    log_0 = math.log(2 / (5 + vocab)) + math.log(1 / (5 + vocab)) + math.log(1 / (5 + vocab))
    log_1 = math.log(2 / (5 + vocab)) + math.log(3 / (5 + vocab)) + math.log(2 / (5 + vocab))
    assert float(full[1] - full[0]) == pytest.approx(log_1 - log_0, rel=1e-5)


def test_padding_never_changes_probabilities_with_the_ngram_channel():
    torch.manual_seed(0)
    model = small_model()
    model.set_ngram_counts(NgramCounts(torch.arange(64), torch.randint(0, 5, (64, 2)).float()))
    model.eval()
    short, long = ([5, 6, 7], [3, 8]), ([8, 9, 10, 11, 12, 13], [1, 2, 4, 6, 9])
    with torch.no_grad():
        alone = model(*pad_batch([short[0]]), ngrams=pad_batch([short[1]]))[0]
        tokens, lengths = pad_batch([long[0], short[0]])
        batched = model(tokens, lengths, ngrams=pad_batch([long[1], short[1]]))[0]
    torch.testing.assert_close(batched[1], alone[0], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="n-gram"):
        model(*pad_batch([short[0]]))


def test_counts_round_trip_through_checkpoint_and_half_export(tmp_path):
    rows = [("what a wonderful , moving film", "pos"), ("a dull , lifeless mess", "neg"),
            ("wonderful acting and a moving story", "pos"), ("lifeless and dull from start to end", "neg")] * 20
    (tmp_path / "t.tsv").write_text("".join(f"{t}\t{label}\n" for t, label in rows))
    train_classifier([str(tmp_path / "t.tsv")], model_config=dict(embedding_size=8, hidden_size=8, ngram_buckets=2**16),
                     data=ClassificationDataConfig(tokenizer="char", batch_size=16),
                     train=TrainConfig(max_steps=20, eval_every=10), run_dir=tmp_path / "run", device="cpu",
                     precision="fp32")
    saved = load_checkpoint(tmp_path / "run" / "best.pt")
    counts = saved.model_state["ngram_counts"]  # in the state dict, sparsely: the n-grams seen
    assert counts.dtype == torch.int32 and 0 < len(counts) < 2**16
    save_checkpoint(saved.for_inference(half=True), tmp_path / "half.pt")
    lines = ["a wonderful film", "dull"]
    full = classify(*load_classifier(tmp_path / "run" / "best.pt", device="cpu")[:3], lines)
    half = classify(*load_classifier(tmp_path / "half.pt", device="cpu")[:3], lines)
    for a, b in zip(full, half):
        assert a.label == b.label
        assert a.probability == pytest.approx(b.probability, abs=2e-3)
    model = load_classifier(tmp_path / "half.pt", device="cpu")[0]
    assert model.ngram_totals.sum() > 0  # the counts came back, not zeros
    assert [p.label for p in full] == ["pos", "neg"]


def test_mixing_weights_are_fitted_to_held_out_texts():
    model = small_model()
    targets = torch.tensor([0, 1, 0, 1])
    recurrent = torch.tensor([[0.2, -0.2], [-0.1, 0.1], [-0.3, 0.3], [0.1, -0.1]])  # right on 2 of 4
    helpful = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, 1.0]])  # right on all
    # Naive Bayes right on every text: a weight that makes the mix sure (beyond 5 the loss no
    # longer changes in float32), and none of the recurrent part.
    recurrent_weight, ngram_weight = model.fit_mixing_weights(recurrent, helpful, targets)
    assert recurrent_weight == 0.0 and ngram_weight > 5.0
    assert (float(model.recurrent_weight), float(model.ngram_weight)) == pytest.approx((recurrent_weight, ngram_weight))
    # Misleading n-gram scores are switched off.
    assert model.fit_mixing_weights(recurrent, -helpful, targets)[1] == 0.0
    # Each part sure and right where the other is a little wrong: both are needed.
    recurrent = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [-0.25, 0.25], [0.25, -0.25]])
    complementary = torch.tensor([[-0.25, 0.25], [0.25, -0.25], [1.0, -1.0], [-1.0, 1.0]])
    recurrent_weight, ngram_weight = model.fit_mixing_weights(recurrent, complementary, targets)
    assert ngram_weight > 0.0 and recurrent_weight > 0.0
    model.set_ngram_counts(NgramCounts.of([[1, 2], [2, 3]], [0, 1], 2))
    model.eval()
    with torch.no_grad():
        logits = model(*pad_batch([[5, 6]]), ngrams=pad_batch([[1, 2]]))[0]
        parts = recurrent_weight * model.recurrent_logits(*pad_batch([[5, 6]])) + ngram_weight * model.ngram_scores(pad_batch([[1, 2]]))
    torch.testing.assert_close(logits, parts)  # the fitted weights are the ones predictions use


def test_validation_texts_are_judged_as_unseen(tmp_path):
    # Random labels: nothing to learn. Every text has words of its own, so naive Bayes counts
    # that included a text would recognise it; validation accuracy must stay near chance.
    import random

    rng = random.Random(0)
    rows = [(f"w{i} x{i} common words here", rng.choice(["a", "b"])) for i in range(400)]
    (tmp_path / "t.tsv").write_text("".join(f"{t}\t{label}\n" for t, label in rows))
    result = train_classifier([str(tmp_path / "t.tsv")], model_config=dict(embedding_size=8, hidden_size=8, ngram_buckets=2**16),
                              data=ClassificationDataConfig(tokenizer="char", batch_size=16, val_frac=0.25),
                              train=TrainConfig(max_steps=10, eval_every=10), run_dir=tmp_path / "run", device="cpu",
                              precision="fp32")
    assert result.final_metrics["val_accuracy"] < 0.7
    # `classify eval` on the run's own validation split judges its texts as unseen too. (Fitted
    # on unseen-like scores, the channel's weight is about 0 here; give it weight for the check.)
    model, vocab, label_names, payload = load_classifier(tmp_path / "run" / "best.pt", device="cpu")
    model.ngram_weight.fill_(1.0)
    validation = validation_split(payload)
    assert evaluate_classifier(model, vocab, label_names, validation, counted=True).accuracy < 0.7
    assert evaluate_classifier(model, vocab, label_names, validation).accuracy > 0.9  # what counting them would give


def test_a_version_1_checkpoint_with_its_counts_apart_still_loads(tmp_path):
    # Version 1 kept the counts outside the state dict, under "ngram_counts"; the bundled
    # sentiment.pt of early 2026-11 was such a file.
    model = small_model(ngram_buckets=2**32)
    model.set_ngram_counts(NgramCounts.of([[5, 2**31 + 7], [5]], [0, 1], num_classes=2))
    state = {k: v for k, v in model.state_dict().items() if k not in ("counted_buckets", "ngram_counts")}
    old = {"format": "charrnn", "format_version": 1, "task": "classifier", "model_state": state,
           "ngram_counts": {"buckets": model.counted_buckets, "counts": model.ngram_counts}}
    torch.save(old, tmp_path / "v1.pt")
    saved = load_checkpoint(tmp_path / "v1.pt")
    assert saved.format_version == 1 and "ngram_counts" not in saved.metadata
    back = small_model(ngram_buckets=2**32)
    back.load_state_dict(saved.model_state)
    assert back.counted_buckets.tolist() == [5, 2**31 + 7] and back.ngram_totals.tolist() == [2.0, 1.0]
