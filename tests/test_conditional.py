"""The conditional language model (vector to sequence): reading a label or vector column, the
stream of tokens and conditions, the condition read at every token or at the start of each text,
generation that steps exactly as the model reads whole sequences, and training that learns what a
label or a vector means."""

import json

import numpy as np
import pytest
import torch

from charrnn.errors import CharrnnError, UsageError
from charrnn.language.conditions import (StreamConditions, condition_stream, parse_vector, read_label_column,
                                         read_vector_column, start_token, stream_order, stream_vocab)
from charrnn.language.model import LanguageModel, LanguageModelConfig
from charrnn.language.task import LanguageDataConfig, load_language_model, sample_text, train_language_model
from charrnn.train import TrainConfig
from test_cli import assert_one_line_error, run


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# -- reading the label column --------------------------------------------------------------------


def test_headerless_lines_are_text_then_label(tmp_path):
    data = read_label_column(write(tmp_path / "a.tsv", "good film\tpos\n\nbad film\tneg\n"), "label")
    assert data.texts == ["good film", "bad film"]
    assert [data.label_names[i] for i in data.labels] == ["pos", "neg"]


def test_a_header_names_the_label_column_and_the_text_column(tmp_path):
    path = write(tmp_path / "a.tsv", "speaker\tact\ttext\nROMEO\t1\tBut soft!\nJULIET\t2\tO Romeo.\n")
    by_speaker = read_label_column(path, "speaker")
    assert by_speaker.texts == ["But soft!", "O Romeo."] and by_speaker.label_names == ["JULIET", "ROMEO"]
    assert read_label_column(path, "act").label_names == ["1", "2"]
    two = read_label_column(write(tmp_path / "b.tsv", "genre\tline\nsf\tstars\nwestern\thorses\n"), "genre")
    assert two.texts == ["stars", "horses"]  # of two columns, the other one is the text


def test_bad_files_are_one_line_errors(tmp_path):
    with pytest.raises(UsageError, match="no column named 'mood'.*3 tab-separated fields"):
        read_label_column(write(tmp_path / "a.tsv", "a\tb\tc\n"), "mood")
    with pytest.raises(UsageError, match="name the texts' column 'text'"):
        read_label_column(write(tmp_path / "b.tsv", "x\tmood\ty\n1\t2\t3\n"), "mood")
    bad = write(tmp_path / "c.tsv", "fine\tpos\nno label here\nalso\t\nok\tneg\n")
    with pytest.raises(CharrnnError, match=r"2 malformed line\(s\).*line 2, 3"):
        read_label_column(bad, "label")
    assert read_label_column(bad, "label", skip_bad=True).texts == ["fine", "ok"]
    with pytest.raises(CharrnnError, match="single label"):
        read_label_column(write(tmp_path / "d.tsv", "a\tpos\nb\tpos\n"), "label")
    with pytest.raises(CharrnnError, match="does not know: 'meh'"):
        read_label_column(write(tmp_path / "e.tsv", "a\tpos\nb\tmeh\n"), "label", label_names=["neg", "pos"])


def test_a_vector_column_reads_numbers_in_any_usual_form(tmp_path):
    assert parse_vector(" 0.5 -1\t2e1") == [0.5, -1.0, 20.0]
    assert parse_vector("[0.5, -1, 2]") == parse_vector("0.5,-1,2") == [0.5, -1.0, 2.0]
    assert parse_vector("pos") is None and parse_vector("1 nan") is None and parse_vector("[]") is None
    path = write(tmp_path / "a.tsv", "text\tscore\ngood film\t0.9, 1\nbad film\t[-0.8 2]\n")
    data = read_vector_column(path, "score")
    assert data.texts == ["good film", "bad film"]
    np.testing.assert_array_equal(data.vectors, np.asarray([[0.9, 1.0], [-0.8, 2.0]], dtype=np.float32))


def test_a_vector_column_needs_numbers_of_one_size(tmp_path):
    bad = write(tmp_path / "a.tsv", "a\t1 2\nb\tpos\nc\t1 2 3\nd\t3 4\n")
    with pytest.raises(CharrnnError, match=r"2 malformed line\(s\).*the same count of numbers.*line 2, 3"):
        read_vector_column(bad, "score")
    assert read_vector_column(bad, "score", skip_bad=True).texts == ["a", "d"]
    with pytest.raises(CharrnnError, match=r"need .*3 numbers.*line 1, 2, 4"):
        read_vector_column(bad, "score", size=3, skip_bad=False)


def test_vectors_are_standardised_by_the_training_texts_and_their_mean_is_no_condition(tmp_path):
    data = read_vector_column(write(tmp_path / "a.tsv", "a\t1 5\nb\t3 5\nc\t5 5\n"), "score")
    conditions = StreamConditions.of(data)
    np.testing.assert_allclose(conditions.table, [[3, 5], [1, 5], [3, 5], [5, 5]])  # row 0: the mean
    vocab = stream_vocab(data, "char", 0)
    fields = conditions.model_fields(vocab)
    assert fields["condition_size"] == 2 and fields["condition_token"] == start_token(vocab)
    np.testing.assert_allclose(fields["condition_mean"], [3, 5])
    np.testing.assert_allclose(fields["condition_scale"], [np.std([1, 3, 5]), 1.0])  # a constant number: scale 1
    stream = condition_stream(data, vocab)
    order = stream_order(len(data))
    starts = np.flatnonzero(stream[:, 0] == start_token(vocab))
    assert stream[starts, 1].tolist() == [i + 1 for i in order]  # each text's id is its row of the table


# -- the stream --------------------------------------------------------------------------------


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_every_text_begins_with_a_newline_carrying_its_label(tokenizer, tmp_path):
    lines = [f"text number {i} {'good' if i % 3 else 'bad'}\t{'pos' if i % 3 else 'neg'}\n" for i in range(40)]
    data = read_label_column(write(tmp_path / "a.tsv", "".join(lines)), "label")
    vocab = stream_vocab(data, tokenizer, 300)
    stream = condition_stream(data, vocab)
    tokens, labels = stream[:, 0], stream[:, 1]
    starts = np.flatnonzero(tokens == start_token(vocab))
    assert len(starts) == len(data) and starts[0] == 0
    order = stream_order(len(data))
    assert order != sorted(order)  # seeded shuffle: a file sorted by label still validates on every label
    for k, (begin, end) in enumerate(zip(starts, [*starts[1:], len(tokens)])):
        text = data.texts[order[k]]
        assert vocab.decode(tokens[begin + 1 : end].tolist()) == text
        assert set(labels[begin:end].tolist()) == {data.labels[order[k]] + 1}  # ids from 1; 0 is no label


# -- the model ---------------------------------------------------------------------------------


def test_an_unconditioned_model_has_no_condition_weights_and_a_new_conditional_one_starts_as_it():
    plain = LanguageModel(LanguageModelConfig(vocab_size=10, hidden_size=8, num_layers=1))
    assert not any("condition" in name for name in plain.state_dict())
    fresh = LanguageModel(LanguageModelConfig(vocab_size=10, hidden_size=8, num_layers=1, conditions=["a", "b"]))
    assert fresh.load_state_dict(plain.state_dict(), strict=False).missing_keys == ["condition_embedding.weight"]
    x = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        torch.testing.assert_close(fresh.with_condition("b")(x)[0], plain(x)[0])
    with pytest.raises(UsageError, match="without --condition"):
        plain.with_condition("pos")


def conditional(cell, at, seed=0):
    """A conditional model whose labels already differ (they start at zero, as a trained one's do not)."""
    torch.manual_seed(seed)
    model = LanguageModel(LanguageModelConfig(vocab_size=12, cell=cell, hidden_size=16, num_layers=2, conditions=["neg", "pos"],
                                              condition_at=at, condition_token=0)).eval()
    with torch.no_grad():
        model.condition_embedding.weight[1:].normal_()
    return model


def stepped(model, x):
    """The logits of generation's stepper run over x one token at a time: (B, T, V)."""
    stepper = model.stepper()
    state, steps = stepper.split_state(model.init_state(x.shape[0])), []
    for t in range(x.shape[1]):
        logits, state = stepper.step(x[:, t], state)
        steps.append(logits)
    return torch.stack(steps, dim=1)


@pytest.mark.parametrize("at", ["every", "start"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "wavenet"])
def test_generation_steps_read_the_label_as_the_whole_sequence_does(cell, at):
    model = conditional(cell, at)
    with torch.no_grad():
        model.condition_embedding.weight.mul_(3.0)  # a strong label, so a step that drops it shows
        x = torch.tensor([[0, 3, 5, 0, 7, 2, 9, 0, 4]])  # token 0 begins a text
        for name in ("neg", "pos"):
            labelled = model.with_condition(name)
            torch.testing.assert_close(stepped(labelled, x), labelled(x)[0], atol=1e-5, rtol=1e-5)
        neg, _, _ = model.with_condition("neg")(x)
        pos, _, _ = model.with_condition("pos")(x)
        assert not torch.allclose(neg, pos)


def test_guided_generation_steps_as_the_whole_sequence_and_pushes_from_the_other_label():
    model = conditional("gru", "every")
    x = torch.tensor([[0, 3, 5, 0, 7, 2]])
    with torch.no_grad():
        pos, neg = model.with_condition("pos")(x)[0], model.with_condition("neg")(x)[0]
        guided = model.with_condition("pos", guidance=2.0)
        whole, _, _ = guided(x)
        torch.testing.assert_close(whole, pos + 2.0 * (pos - neg))
        torch.testing.assert_close(stepped(guided, x), whole, atol=1e-5, rtol=1e-5)


def test_at_start_the_label_is_read_only_where_a_text_begins():
    model = conditional("lstm", "start")
    x = torch.tensor([[3, 5, 7, 2, 9]])  # no text begins here
    with torch.no_grad():
        torch.testing.assert_close(model.with_condition("neg")(x)[0], model(x)[0])
        torch.testing.assert_close(model.with_condition("pos")(x)[0], model(x)[0])


def vector_conditioned(cell, at, seed=0):
    """A model conditioned on vectors of 3 numbers, its map from them already not zero."""
    torch.manual_seed(seed)
    model = LanguageModel(LanguageModelConfig(vocab_size=12, cell=cell, hidden_size=16, num_layers=2, condition_size=3,
                                              condition_mean=[1.0, 0.0, -2.0], condition_scale=[2.0, 1.0, 0.5],
                                              condition_at=at, condition_token=0)).eval()
    with torch.no_grad():
        model.condition_projection.weight.normal_()
    return model


def test_a_new_vector_conditioned_model_starts_as_an_unconditioned_one():
    plain = LanguageModel(LanguageModelConfig(vocab_size=10, hidden_size=8, num_layers=1))
    fresh = LanguageModel(LanguageModelConfig(vocab_size=10, hidden_size=8, num_layers=1, condition_size=2,
                                              condition_mean=[0.0, 0.0], condition_scale=[1.0, 1.0]))
    # The standardisation is rebuilt from the config, so the checkpoint holds only the learned map.
    assert fresh.load_state_dict(plain.state_dict(), strict=False).missing_keys == ["condition_projection.weight"]
    x = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        torch.testing.assert_close(fresh.with_condition("4 -7")(x)[0], plain(x)[0])


@pytest.mark.parametrize("at", ["every", "start"])
@pytest.mark.parametrize("cell", ["lstm", "wavenet"])
def test_generation_steps_read_the_vector_as_the_whole_sequence_does(cell, at):
    model = vector_conditioned(cell, at)
    x = torch.tensor([[0, 3, 5, 0, 7, 2, 9, 0, 4]])
    with torch.no_grad():
        one, other = model.with_condition([3.0, 1.0, -1.0]), model.with_condition("-1, 0.5, -3")
        for conditioned in (one, other):
            torch.testing.assert_close(stepped(conditioned, x), conditioned(x)[0], atol=1e-5, rtol=1e-5)
        assert not torch.allclose(one(x)[0], other(x)[0])
        # The training vectors' mean is no condition at all.
        torch.testing.assert_close(model.with_condition([1.0, 0.0, -2.0])(x)[0], model(x)[0])


def test_guidance_pushes_a_vector_away_from_no_condition():
    model = vector_conditioned("gru", "every")
    x = torch.tensor([[0, 3, 5, 0, 7, 2]])
    with torch.no_grad():
        own, plain = model.with_condition("2 2 2")(x)[0], model(x)[0]
        guided = model.with_condition("2 2 2", guidance=1.5)
        torch.testing.assert_close(guided(x)[0], own + 1.5 * (own - plain))
        torch.testing.assert_close(stepped(guided, x), guided(x)[0], atol=1e-5, rtol=1e-5)


def test_a_vector_of_the_wrong_size_or_not_numbers_is_a_one_line_error():
    model = vector_conditioned("lstm", "every")
    for wrong in ("1 2", "1 2 3 4", "pos", [1.0]):
        with pytest.raises(UsageError, match="takes a vector of 3 number"):
            model.with_condition(wrong)


# -- training and sampling ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small model of two labels whose texts differ: a's for one, b's for the other."""
    root = tmp_path_factory.mktemp("conditional")
    rng = np.random.default_rng(0)
    lines = ["text\tkind\n"]
    for _ in range(400):
        kind = rng.choice(["a", "b"])
        lines.append(f"{kind * int(rng.integers(3, 9))}\t{kind}s\n")
    return root, train_small(write(root / "kinds.tsv", "".join(lines)), condition="kind")


def train_small(path, **data):
    """120 steps of a small model on path, its data options those given, into run/ beside it."""
    return train_language_model(str(path), model_config=dict(hidden_size=32, num_layers=1, dropout=0.0),
                                data=LanguageDataConfig(batch_size=8, seq_len=32, **data),
                                train=TrainConfig(max_steps=120, eval_every=60, warmup_steps=10, learning_rate=1e-2, weight_decay=0.0),
                                run_dir=path.parent / "run", device="cpu", precision="fp32")


def test_samples_follow_the_label(trained):
    root, _ = trained
    model, vocab, saved = load_language_model(root / "run" / "best.pt", device="cpu")
    assert saved.metadata["model_config"]["conditions"] == ["as", "bs"]
    for label, letter, other in (("as", "a", "b"), ("bs", "b", "a")):
        text = "".join(sample_text(model, vocab, length=200, seed=1, condition=label))
        assert text.count(letter) > 150 and text.count(other) < 10, text


def test_sampling_a_conditional_model_needs_a_known_label(trained):
    root, _ = trained
    model, vocab, _ = load_language_model(root / "run" / "best.pt", device="cpu")
    with pytest.raises(UsageError, match="give --condition, one of 'as', 'bs'"):
        sample_text(model, vocab, length=5)
    with pytest.raises(UsageError, match="unknown --condition 'cs'; the model knows 'as', 'bs'"):
        sample_text(model, vocab, length=5, condition="cs")
    with pytest.raises(UsageError, match="--guidance"):
        sample_text(model, vocab, length=5, condition="as", guidance=-1.0)
    guided = "".join(sample_text(model, vocab, length=100, seed=1, condition="bs", guidance=3.0))
    assert guided.count("b") > 50 and guided.count("a") < 5, guided


def test_the_command_line(trained):
    root, _ = trained
    proc = run("sample", "-c", "run", "--condition", "bs", "-n", "20", "--seed", "2", "--json", cwd=root)
    assert proc.returncode == 0, proc.stderr.decode()
    line = json.loads(proc.stdout)
    assert line["condition"] == "bs" and len(line["text"]) == 20
    assert_one_line_error(run("sample", "-c", "run", "--condition", "zz", "-n", "5", cwd=root), 2, "the model knows 'as', 'bs'")
    assert_one_line_error(run("sample", "-c", "run", "-n", "5", cwd=root), 2, "give --condition")
    assert_one_line_error(run("sample", "-c", "run", "--condition", "as", "--guidance", "nan", "-n", "5", cwd=root), 2, "--guidance")
    assert_one_line_error(run("train", "kinds.tsv", "--condition", "mood", cwd=root), 2, "no column named 'mood'")
    assert_one_line_error(run("train", "kinds.tsv", "--condition-at", "start", cwd=root), 2, "give --condition COLUMN")


@pytest.fixture(scope="module")
def trained_on_vectors(tmp_path_factory):
    """A small model of texts whose letter follows the sign of a number (the second number is noise)."""
    root = tmp_path_factory.mktemp("vectors")
    rng = np.random.default_rng(1)
    lines = ["text\tscore\n"]
    for _ in range(400):
        score = rng.uniform(-3, 3)
        lines.append(f"{('a' if score > 0 else 'b') * int(rng.integers(3, 9))}\t{score:.3f} {rng.normal():.3f}\n")
    return root, train_small(write(root / "scores.tsv", "".join(lines)), condition="score", condition_type="vector")


def test_samples_follow_the_vector(trained_on_vectors):
    root, _ = trained_on_vectors
    model, vocab, saved = load_language_model(root / "run" / "best.pt", device="cpu")
    assert saved.metadata["model_config"]["condition_size"] == 2
    for vector, letter, other in (("2.5 0", "a", "b"), ("-2.5 0", "b", "a")):
        text = "".join(sample_text(model, vocab, length=200, seed=1, condition=vector))
        assert text.count(letter) > 150 and text.count(other) < 10, text
    with pytest.raises(UsageError, match="give --condition with 2 number"):
        sample_text(model, vocab, length=5)


def test_the_command_line_for_vectors(trained_on_vectors):
    root, _ = trained_on_vectors
    proc = run("sample", "-c", "run", "--condition", "[2, 0]", "-n", "20", "--seed", "2", "--json", cwd=root)
    assert proc.returncode == 0, proc.stderr.decode()
    line = json.loads(proc.stdout)
    assert line["condition"] == "[2, 0]" and line["text"].count("a") > 10
    assert_one_line_error(run("sample", "-c", "run", "--condition", "pos", "-n", "5", cwd=root), 2, "a vector of 2 number")
    write(root / "labels.tsv", "text\tscore\nfine\tpos\n")
    assert_one_line_error(run("train", "labels.tsv", "--condition", "score", "--condition-type", "vector", cwd=root), 1,
                          "malformed line")
    assert_one_line_error(run("train", "labels.tsv", "--condition", "score", "--condition-type", "number", cwd=root), 2,
                          "unknown --condition-type 'number'")
