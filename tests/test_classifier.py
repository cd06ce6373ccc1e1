"""The classifier: it separates a small synthetic set, padding never changes a probability, labels
round-trip through the checkpoint, prediction keeps order and empty lines, cross-validation folds."""

import random

import pytest
import torch

from charrnn.data import pad_batch
from charrnn.events import EvalEvent
from charrnn.labelled import read_labelled
from charrnn.classify.model import Classifier, ClassifierConfig, EncoderLanguageModel
from charrnn.classify.task import (
    ClassificationDataConfig,
    ClassificationMetrics,
    EncodedTexts,
    build_vocab,
    classify,
    cross_validate,
    evaluate_classifier,
    load_classifier,
    train_classifier,
)
from charrnn.train import TrainConfig

TOPICS = {
    "sport": ["goal", "match", "team", "score", "coach"],
    "food": ["bread", "soup", "salad", "cheese", "pasta"],
    "weather": ["rain", "snow", "wind", "storm", "sunny"],
}
FILLER = ["the", "a", "was", "very", "today", "and", "we", "saw", "some"]


def synthetic_texts(count, seed):
    """Sentences of filler words and one or two words of a topic; the topic is the label."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        label = rng.choice(sorted(TOPICS))
        words = rng.sample(FILLER, rng.randint(2, 6)) + rng.sample(TOPICS[label], rng.randint(1, 2))
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def write_tsv(path, rows):
    path.write_text("".join(f"{text}\t{label}\n" for text, label in rows))
    return path


SMALL_MODEL = dict(embedding_size=16, hidden_size=16, dropout=0.0)
FAST = TrainConfig(max_steps=120, eval_every=60, warmup_steps=10, learning_rate=1e-2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("classifier")
    write_tsv(root / "topics.tsv", synthetic_texts(600, seed=0))
    data = ClassificationDataConfig(tokenizer="char", batch_size=32)
    result = train_classifier([str(root / "topics.tsv")], model_config=SMALL_MODEL, data=data, train=FAST,
                              run_dir=root / "run", device="cpu", precision="fp32")
    return root, result


def test_separates_a_synthetic_multi_class_set(trained):
    root, result = trained
    assert result.final_metrics["val_accuracy"] >= 0.95
    model, vocab, label_names, _ = load_classifier(root / "run" / "best.pt", device="cpu")
    assert label_names == ["food", "sport", "weather"]  # three classes round-trip through the checkpoint
    held_out = write_tsv(root / "held_out.tsv", synthetic_texts(150, seed=42))
    metrics = evaluate_classifier(model, vocab, label_names, read_labelled([held_out], label_names=label_names))
    assert metrics.accuracy >= 0.97 and metrics.macro_f1 >= 0.97
    assert sum(map(sum, metrics.confusion)) == 150


def test_casing_and_punctuation_variants_get_the_same_label_and_probabilities(trained):
    root, _ = trained
    model, vocab, label_names, payload = load_classifier(root / "run" / "best.pt", device="cpu")
    assert ClassificationDataConfig.from_checkpoint(payload).normalise  # the default, recorded for inference
    # A character vocabulary of lower-case training texts has no capitals: without normalisation
    # "Goal" would read as "<unk>oal".
    variants = ["the coach saw the goal", "The coach saw the goal!", "THE COACH SAW THE GOAL.", "the coach, saw the goal ?"]
    predictions = classify(model, vocab, label_names, variants)
    assert {p.label for p in predictions} == {"sport"}
    first = predictions[0].probabilities["sport"]
    assert all(p.probabilities["sport"] == pytest.approx(first, abs=0.05) for p in predictions)


def test_a_checkpoint_from_before_normalisation_reads_its_texts_as_they_are():
    from charrnn.checkpoint import Checkpoint

    saved = Checkpoint("classifier", metadata={"data_config": {"tokenizer": "char", "max_tokens": 50}}, model_state={})
    data = ClassificationDataConfig.from_checkpoint(saved)
    assert not data.normalise and not data.space_first_word
    assert data.as_read("Great movie!") == "Great movie!"


def test_a_first_word_is_the_same_tokens_as_inside_a_sentence():
    # Byte-level BPE reads " awful" and a text-initial "awful" as different tokens; a short input
    # ("awful", "great movie") must get the tokens the word has in the training sentences.
    sentences = [f"the {word} film was {word} ." for word in ("awful", "great", "dull", "moving")] * 20
    data = ClassificationDataConfig(vocab_size=300)
    vocab = build_vocab(sentences, data)
    config = ClassifierConfig(vocab_size=vocab.size, num_classes=2, ngram_buckets=0)
    alone, inside = EncodedTexts.of(["Awful", "the awful film"], vocab, config, data).tokens
    assert alone == [inside[1]]
    assert data.as_read("Great movie!") == " great movie !"


def test_calibration_error_measures_the_gap_between_confidence_and_accuracy():
    # Always 90% sure and right nine times in ten: calibrated.
    probabilities = torch.tensor([[0.9, 0.1] if i % 10 else [0.1, 0.9] for i in range(100)])
    actual = [0] * 100
    assert ClassificationMetrics.from_probabilities(probabilities, actual).calibration_error == pytest.approx(0.0, abs=1e-6)
    # Always 99% sure, right half the time: off by 0.49.
    sure = torch.tensor([[0.99, 0.01]] * 100)
    metrics = ClassificationMetrics.from_probabilities(sure, [0, 1] * 50)
    assert metrics.accuracy == 0.5
    assert metrics.calibration_error == pytest.approx(0.49, abs=1e-6)


def test_prediction_keeps_order_line_count_and_empty_lines(trained):
    root, _ = trained
    model, vocab, label_names, _ = load_classifier(root / "run" / "best.pt", device="cpu")
    lines = ["we saw the storm", "", "pasta and soup", "   ", "the coach was very happy", "zzz ~~ ###"]
    predictions = classify(model, vocab, label_names, lines, batch_size=2)
    assert [p.text for p in predictions] == lines
    assert [p.label for p in predictions[:5]] == ["weather", None, "food", None, "sport"]
    assert predictions[5].label in label_names  # unknown characters degrade to <unk>
    for p in predictions:
        if p.label is not None:
            assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
            assert p.probability == max(p.probabilities.values())


@pytest.mark.parametrize("pooling", ["max", "mean", "attention"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_padding_never_changes_probabilities(cell, pooling):
    torch.manual_seed(0)
    # The recurrent part alone (the n-gram channel has its own padding test in test_ngrams.py).
    model = Classifier(ClassifierConfig(vocab_size=30, num_classes=3, cell=cell, pooling=pooling, embedding_size=8,
                                        hidden_size=6, num_layers=2, dropout=0.0, ngram_buckets=0)).eval()
    short, long = [5, 6, 7], [8, 9, 10, 11, 12, 13, 14, 15]
    with torch.no_grad():
        alone = model(*pad_batch([short]))[0]
        batched = model(*pad_batch([long, short, [3]]))[0]
    torch.testing.assert_close(batched[1], alone[0], atol=1e-5, rtol=0)


def test_metrics_from_a_known_confusion():
    metrics = ClassificationMetrics.from_predictions([0, 0, 1, 1, 1, 2], [0, 1, 1, 1, 2, 2], 3)
    assert metrics.confusion == [[1, 0, 0], [1, 2, 0], [0, 1, 1]]
    assert metrics.accuracy == pytest.approx(4 / 6)
    # F1 per class = 2TP / (predicted + actual): 2/3, 4/6, 2/3.
    assert metrics.f1 == pytest.approx([2 / 3, 2 / 3, 2 / 3])
    assert metrics.macro_f1 == pytest.approx(2 / 3)


def test_resume_continues_exactly(tmp_path):
    write_tsv(tmp_path / "t.tsv", synthetic_texts(300, seed=3))
    data = ClassificationDataConfig(tokenizer="char", batch_size=16)
    common = dict(model_config=SMALL_MODEL, data=data, device="cpu", precision="fp32")
    straight = train_classifier([str(tmp_path / "t.tsv")], train=TrainConfig(max_steps=30, eval_every=10),
                                run_dir=tmp_path / "straight", **common)
    train_classifier([str(tmp_path / "t.tsv")], train=TrainConfig(max_steps=20, eval_every=10), run_dir=tmp_path / "split",
                     **common)
    resumed = train_classifier(None, train=TrainConfig(max_steps=30), resume=tmp_path / "split", device="cpu",
                               precision="fp32")
    assert resumed.state.step == 30
    assert [h["val_loss"] for h in resumed.state.history] == [h["val_loss"] for h in straight.state.history]


def test_cross_validation_trains_one_model_a_fold(tmp_path):
    write_tsv(tmp_path / "t.tsv", synthetic_texts(240, seed=7))
    seen = []
    result = cross_validate([str(tmp_path / "t.tsv")], folds=3, model_config=SMALL_MODEL,
                            data=ClassificationDataConfig(tokenizer="char", batch_size=16),
                            train=TrainConfig(max_steps=80, eval_every=40, learning_rate=1e-2), device="cpu",
                            precision="fp32", on_fold=lambda k, metrics, seconds: seen.append(k))
    assert seen == [0, 1, 2] and len(result.folds) == 3
    assert sum(sum(map(sum, m.confusion)) for m in result.folds) == 240  # every example scored once
    mean, spread = result.mean_and_spread(result.accuracies)
    assert mean >= 0.8 and spread >= 0.0


def test_encoder_language_model_never_sees_the_token_it_predicts():
    torch.manual_seed(0)
    classifier = Classifier(ClassifierConfig(vocab_size=20, num_classes=2, embedding_size=8, hidden_size=6, dropout=0.0))
    language_model = EncoderLanguageModel(classifier).eval()
    tokens = torch.tensor([[3, 4, 5, 6, 7, 8]])
    lengths = torch.tensor([6])
    changed = tokens.clone()
    changed[0, 3] = 15  # token 3 differs
    with torch.no_grad():
        next_a, previous_a = language_model.predictions(tokens, lengths)
        next_b, previous_b = language_model.predictions(changed, lengths)
    # Predictions of token 3 and before (forward positions 0..2) and of token 3 and after
    # (backward positions 3..4, made from the tokens after them) must not depend on token 3.
    torch.testing.assert_close(next_a[0, :3], next_b[0, :3])
    torch.testing.assert_close(previous_a[0, 3:], previous_b[0, 3:])
    assert not torch.allclose(next_a[0, 3:], next_b[0, 3:])  # later forward predictions do see it
    with pytest.raises(ValueError, match="one recurrent layer"):
        EncoderLanguageModel(Classifier(ClassifierConfig(vocab_size=20, num_classes=2, num_layers=2)))


def test_pretraining_lowers_the_language_model_loss_and_keeps_the_classifier_working(tmp_path):
    write_tsv(tmp_path / "t.tsv", synthetic_texts(400, seed=5))
    events = []
    result = train_classifier([str(tmp_path / "t.tsv")], model_config=SMALL_MODEL,
                              data=ClassificationDataConfig(tokenizer="char", batch_size=32),
                              train=TrainConfig(max_steps=60, eval_every=30, learning_rate=1e-2),
                              pretrain=TrainConfig(max_steps=60, eval_every=20, learning_rate=1e-2),
                              run_dir=tmp_path / "run", device="cpu", precision="fp32", on_event=events.append)
    pretraining = [e.record["val_loss"] for e in events if isinstance(e, EvalEvent) and "val_accuracy" not in e.record]
    assert len(pretraining) == 3 and pretraining[-1] < pretraining[0] - 0.3
    assert (tmp_path / "run" / "pretrain" / "best.pt").exists()
    assert result.final_metrics["val_accuracy"] >= 0.9
    _, _, _, saved = load_classifier(tmp_path / "run" / "best.pt", device="cpu")
    assert saved.metadata["pretraining"]["max_steps"] == 60


def test_evaluation_only_measures_and_calibration_fits_the_mix(tmp_path):
    from charrnn.runs import RunPlace
    from charrnn.classify.task import ClassifierRecipe

    write_tsv(tmp_path / "topics.tsv", synthetic_texts(300, seed=3))
    recipe = ClassifierRecipe([str(tmp_path / "topics.tsv")], SMALL_MODEL, ClassificationDataConfig(tokenizer="char"))
    task = recipe.new_run(FAST, RunPlace(tmp_path, torch.device("cpu"), None, None)).task
    model = task.model.eval()
    model.recurrent_weight.fill_(3.0)
    model.ngram_weight.fill_(0.0)
    metrics = task.evaluate(model, torch.device("cpu"))
    assert (metrics["recurrent_weight"], metrics["ngram_weight"]) == (3.0, 0.0)
    assert (float(model.recurrent_weight), float(model.ngram_weight)) == (3.0, 0.0)  # evaluate fitted nothing
    task.calibrate(model, torch.device("cpu"))
    # Naive Bayes separates the topics while the untrained recurrent part cannot: the fit uses it.
    assert float(model.ngram_weight) > 0.0
    assert task.evaluate(model, torch.device("cpu"))["val_loss"] < metrics["val_loss"]
