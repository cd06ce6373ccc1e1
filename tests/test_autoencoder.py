"""The sequence autoencoder: a tiny model learns to write its training sentences back from their
vectors alone; vectors and decoding agree (reconstruct is decode(encode)); interpolation starts
and ends at the two sentences; word dropout and denoising draw as asked; `charrnn autoencode` and
`charrnn embed` work on its runs, with one-line errors for what cannot be done."""

import json
import random

import pytest
import torch

from charrnn.autoencode.task import (AutoencoderDataConfig, _deleted, _dropped, as_typed, decode_vectors, interpolate,
                                     load_autoencoder, read_sentences, reconstruct, sentence_vectors, split_sentences,
                                     train_autoencoder)
from charrnn.errors import UsageError
from charrnn.translate.task import UNK
from charrnn.train import TrainConfig
from test_cli import assert_one_line_error, run

SENTENCES = ["the cat sat.", "a dog ran.", "we saw it.", "tom is here.", "mary left.", "it is late.", "i like tea.",
             "you are kind.", "the sun is up.", "birds sing.", "rain falls.", "time flies.", "dogs bark.", "cats nap.",
             "we are home.", "he reads."]
DATA = AutoencoderDataConfig(batch_size=8, test_size=1, dev_size=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("autoencoder")
    (root / "sentences.txt").write_text("\n".join(SENTENCES) + "\n" + SENTENCES[0] + "\n")  # a repeat: read once
    torch.set_num_threads(1)
    result = train_autoencoder(str(root / "sentences.txt"), model_config=dict(embedding_size=32, hidden_size=96, dropout=0.0),
                               data=DATA, train=TrainConfig(max_steps=300, eval_every=100, learning_rate=1e-2,
                                                            warmup_steps=10, patience=None),
                               run_dir=root / "run", device="cpu", precision="fp32")
    assert result.state.step == 300
    return root


def test_it_learns_to_write_its_sentences_back_from_the_vectors_alone(trained):
    model, vocab, saved = load_autoencoder(trained / "run" / "last.pt", device="cpu")
    assert "vocab" in saved.metadata and not {"source_vocab", "target_vocab"} & set(saved.metadata)  # one vocabulary
    train = [s for s, _ in split_sentences(read_sentences(trained / "sentences.txt", DATA), DATA).train]
    assert len(train) == 14 and len(set(train)) == 14
    written = reconstruct(model, vocab, train)
    assert sum(w == s for w, s in zip(written, train)) >= 13  # measured: all 14
    # reconstruct is decoding the vectors; a batch gives what one sentence at a time gives.
    vectors = sentence_vectors(model, vocab, train, batch_size=3)
    assert vectors.shape == (14, 96)
    assert decode_vectors(model, vocab, vectors) == written
    torch.testing.assert_close(sentence_vectors(model, vocab, train[:1]), vectors[:1], atol=1e-5, rtol=0)
    assert reconstruct(model, vocab, ["", train[0]]) == ["", written[0]]
    assert decode_vectors(model, vocab, vectors[:2], beam=3) == written[:2]


def test_interpolation_runs_from_one_sentence_to_the_other(trained):
    model, vocab, _ = load_autoencoder(trained / "run" / "last.pt", device="cpu")
    first, last = "the cat sat.", "rain falls."
    steps = interpolate(model, vocab, first, last, steps=5)
    assert len(steps) == 5 and steps[0] == reconstruct(model, vocab, [first])[0] and steps[-1] == reconstruct(model, vocab, [last])[0]
    with pytest.raises(UsageError, match="two non-empty sentences"):
        interpolate(model, vocab, first, " ")
    with pytest.raises(UsageError, match="--steps"):
        interpolate(model, vocab, first, last, steps=1)


def test_word_dropout_and_denoising_draw_as_asked():
    random.seed(0)
    tokens = list(range(10, 1010))
    dropped = _dropped(tokens, 0.25)
    assert 0.2 < dropped.count(UNK) / len(tokens) < 0.3 and all(d in (t, UNK) for d, t in zip(dropped, tokens))
    kept = _deleted(tokens, 0.1)
    assert 0.85 < len(kept) / len(tokens) < 0.95 and kept == sorted(kept)  # deleted, never reordered
    assert _dropped(tokens, 0.0) == tokens and _deleted(tokens, 0.0) == tokens
    assert _deleted([7], 0.99) in ([7], [7])  # never empty


def test_typed_copies_join_the_training_sentences_only():
    sentences = [f"Sentence number {i} is here." for i in range(200)]
    plain = split_sentences(sentences, AutoencoderDataConfig(test_size=10, dev_size=10))
    typed = split_sentences(sentences, AutoencoderDataConfig(test_size=10, dev_size=10, typed_copies=0.5))
    assert typed.dev == plain.dev and typed.test == plain.test  # held-out sentences stay as written
    assert typed.train[: len(plain.train)] == plain.train
    copies = [s for s, _ in typed.train[len(plain.train):]]
    assert 60 < len(copies) < 120 and all(c not in sentences for c in copies)
    assert all(c.lower().rstrip(".") == c.lower() or c[0].islower() for c in copies)  # lower-cased or unpunctuated
    assert as_typed(sentences[:5]) == as_typed(sentences[:5]) != sentences[:5]  # the same every time, never as written


def test_the_commands(trained):
    done = run("autoencode", "-c", "run", "--json", "the cat sat.", "", cwd=trained)
    assert done.returncode == 0, done.stderr.decode()
    rows = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert rows[0]["text"] == "the cat sat." and rows[0]["exact"] is True and rows[1]["written"] == ""
    done = run("autoencode", "interpolate", "-c", "run", "the cat sat.", "rain falls.", "--steps", "4", cwd=trained)
    assert done.returncode == 0 and len(done.stdout.decode().splitlines()) == 4, done.stderr.decode()
    done = run("autoencode", "eval", "-c", "run", "--json", cwd=trained)
    figures = json.loads(done.stdout)
    assert figures["sentences"] == 1 and 0 <= figures["character_error_rate"] and 0 <= figures["exact"] <= 1
    done = run("autoencode", "eval", "-c", "run", "--part", "dev", "--typed", "--json", cwd=trained)
    assert json.loads(done.stdout)["part"] == "dev" and json.loads(done.stdout)["typed"] is True, done.stderr.decode()
    done = run("embed", "-c", "run", "the cat sat.", "--json", cwd=trained)
    assert len(json.loads(done.stdout)["vector"]) == 96, done.stderr.decode()
    assert_one_line_error(run("autoencode", "-c", "spa-eng", "x", cwd=trained), 1, "translator")
    assert_one_line_error(run("autoencode", "train", "sentences.txt", "--word-dropout", "1", cwd=trained), 2,
                          "--word-dropout must be in [0, 1)")
    assert_one_line_error(run("autoencode", "train", "sentences.txt", "--column", "3", "-o", "c3", cwd=trained), 1,
                          "has no sentences in column 3")
