"""Every task through the one training path with the same options: a new run, a real Ctrl-C in
the middle, a resume that continues bit for bit, and `charrnn info` on the run folder."""

import json
import os
import random
import signal

import pytest

from charrnn.autoencode.task import AutoencoderDataConfig, train_autoencoder
from charrnn.events import StepEvent
from charrnn.classify.task import ClassificationDataConfig, train_classifier
from charrnn.forecast.task import ForecastDataConfig, train_forecaster
from charrnn.language.task import LanguageDataConfig, train_language_model
from charrnn.translate.task import TranslationDataConfig, train_translator
from charrnn.train import StopReason, TrainConfig
from test_cli import run

STEPS, STOP_AT = 24, 13


def language_model(root):
    rng = random.Random(0)
    (root / "corpus.txt").write_text("".join(rng.choice(["the cat sat. ", "a dog ran! ", "we saw it? "]) for _ in range(600)))
    return lambda **run: train_language_model(str(root / "corpus.txt"), model_config=dict(hidden_size=16, num_layers=1, dropout=0.1),
                                              data=LanguageDataConfig(batch_size=4, seq_len=16), **run)


def conditional_language_model(root):
    rng = random.Random(5)
    lines = [f"{rng.choice(['the cat sat.', 'a cat ran!'])}\tcat\n" if rng.random() < 0.5 else f"{rng.choice(['we saw a dog.', 'dogs ran?'])}\tdog\n"
             for _ in range(300)]
    (root / "labelled.tsv").write_text("".join(lines))
    return lambda **run: train_language_model(str(root / "labelled.tsv"), model_config=dict(hidden_size=16, num_layers=1, dropout=0.1),
                                              data=LanguageDataConfig(batch_size=4, seq_len=16, condition="label"), **run)


def vector_conditional_language_model(root):
    rng = random.Random(6)
    lines = [f"{'the cat sat.' if score > 0 else 'we saw a dog.'}\t{score:.2f}, {rng.random():.2f}\n"
             for score in (rng.uniform(-1, 1) for _ in range(300))]
    (root / "scored.tsv").write_text("".join(lines))
    return lambda **run: train_language_model(str(root / "scored.tsv"), model_config=dict(hidden_size=16, num_layers=1, dropout=0.1),
                                              data=LanguageDataConfig(batch_size=4, seq_len=16, condition="label",
                                                                      condition_type="vector"), **run)


def translator(root):
    rng = random.Random(1)
    words = ["".join(rng.choice("abcdef") for _ in range(rng.randint(2, 5))) for _ in range(600)]
    (root / "pairs.tsv").write_text("".join(f"{w}\t{w.upper()}\n" for w in words))
    return lambda **run: train_translator(str(root / "pairs.tsv"), model_config=dict(embedding_size=16, hidden_size=16, encoder_layers=1,
                                                                                      decoder_layers=1, dropout=0.1),
                                          data=TranslationDataConfig(tokenizer="char", batch_size=16, test_size=50, dev_size=50), **run)


def classifier(root):
    rng = random.Random(2)
    lines = [f"{' '.join(rng.sample(['good', 'fine', 'great', 'nice'], 2))}\tpos\n" for _ in range(150)]
    lines += [f"{' '.join(rng.sample(['bad', 'dull', 'awful', 'poor'], 2))}\tneg\n" for _ in range(150)]
    (root / "labelled.tsv").write_text("".join(lines))
    return lambda **run: train_classifier([str(root / "labelled.tsv")], model_config=dict(embedding_size=16, hidden_size=16, dropout=0.1),
                                          data=ClassificationDataConfig(tokenizer="char", batch_size=16), **run)


def forecaster(root):
    rng = random.Random(3)
    values = [100 + 10 * ((i % 12) in (5, 6, 7)) + i + rng.random() for i in range(200)]
    (root / "series.csv").write_text("value\n" + "".join(f"{v}\n" for v in values))
    return lambda **run: train_forecaster(str(root / "series.csv"), horizon=6, model_config=dict(hidden_size=16, dropout=0.1),
                                          data=ForecastDataConfig(batch_size=16), **run)


def autoencoder(root):
    rng = random.Random(4)
    words = ["".join(rng.choice("abcdef") for _ in range(rng.randint(2, 5))) for _ in range(400)]
    (root / "sentences.txt").write_text("".join(f"{w} {w[::-1]}.\n" for w in words))
    # Word dropout and denoising on: their draws must come back on resume too.
    return lambda **run: train_autoencoder(str(root / "sentences.txt"), model_config=dict(embedding_size=16, hidden_size=16, dropout=0.1),
                                           data=AutoencoderDataConfig(batch_size=16, test_size=20, dev_size=20, noise=0.1), **run)


def step_losses(run_dir):
    events = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return {e["step"]: e["loss"] for e in events if e["event"] == "step"}


@pytest.mark.parametrize("task", [language_model, conditional_language_model, vector_conditional_language_model, translator, classifier, forecaster, autoencoder])
def test_new_run_ctrl_c_resume_and_info(task, tmp_path):
    train = task(tmp_path)
    options = dict(device="cpu", precision="fp32")
    config = lambda: TrainConfig(max_steps=STEPS, eval_every=10, warmup_steps=5, learning_rate=1e-2, weight_decay=0.1)  # noqa: E731
    straight = train(train=config(), run_dir=tmp_path / "straight", **options)
    assert straight.stop_reason is StopReason.MAX_STEPS

    def ctrl_c(event):
        if isinstance(event, StepEvent) and event.step == STOP_AT:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, handled between steps

    stopped = train(train=config(), run_dir=tmp_path / "stopped", on_event=ctrl_c, **options)
    assert stopped.stop_reason is StopReason.INTERRUPTED and stopped.state.step == STOP_AT
    resumed = train(resume=tmp_path / "stopped", **options)
    assert resumed.stop_reason is StopReason.MAX_STEPS and resumed.state.step == STEPS
    want, got = step_losses(tmp_path / "straight"), step_losses(tmp_path / "stopped")
    assert [got[s] for s in range(1, STEPS + 1)] == [want[s] for s in range(1, STEPS + 1)]  # bit for bit
    info = run("info", "stopped", cwd=tmp_path)
    assert info.returncode == 0 and b"best validation" in info.stdout, info.stderr.decode()
