"""The bundled checkpoints, trained by earlier versions of charrnn, still load and answer through
today's code: the language model samples, the translator translates, the classifier classifies
(and reads its texts as it was trained to), the forecaster continues a season."""

import pytest

from charrnn.checkpoint import bundled_models


def bundled(name):
    assert name in bundled_models(), f"the package lacks its bundled model {name}"
    return name  # loaded by name, as users do


def test_the_bundled_language_model_samples():
    from charrnn.language.task import load_language_model, sample_text

    model, vocab, _ = load_language_model(bundled("shakespeare"), device="cpu")
    text = "".join(sample_text(model, vocab, prime="ROMEO:", length=40, seed=1))
    assert len(text) == 40 and text.strip()


def test_the_bundled_translator_translates_typed_input():
    from charrnn.translate.task import TranslationDataConfig, load_translator, translate

    model, source_vocab, target_vocab, payload = load_translator(bundled("spa-eng"), device="cpu")
    data = TranslationDataConfig.from_checkpoint(payload)
    [result] = translate(model, source_vocab, target_vocab, ["where is the train station"], normalise=True,
                         casing=data.source_casing)
    assert "estación" in result.text and result.text.endswith("?")


def test_the_bundled_classifier_reads_casing_and_punctuation_alike():
    from charrnn.classify.task import ClassificationDataConfig, classify, load_classifier

    model, vocab, label_names, payload = load_classifier(bundled("sentiment"), device="cpu")
    data = ClassificationDataConfig.from_checkpoint(payload)
    variants = ["a gorgeous , witty , seductive movie .", "A gorgeous, witty, seductive movie!"]
    predictions = classify(model, vocab, label_names, variants, data=data)
    assert [p.label for p in predictions] == ["pos", "pos"]
    assert predictions[0].probabilities["pos"] == pytest.approx(predictions[1].probabilities["pos"], abs=0.05)


def test_the_bundled_forecaster_continues_a_yearly_season():
    import numpy as np

    from charrnn.forecast.series import read_series
    from charrnn.forecast.task import forecast_next, load_forecaster

    model, saved = load_forecaster(bundled("airline"), device="cpu")
    # Three years of a monthly series at the airline's level, peaking every July.
    months = np.arange(36)
    values = 400 * np.exp(0.01 * months + 0.2 * np.cos(2 * np.pi * (months - 6) / 12))
    text = "Month,Passengers\n" + "".join(f"{1958 + m // 12}-{m % 12 + 1:02d},{v:.1f}\n" for m, v in zip(months, values))
    forecast = forecast_next(model, saved, read_series("", text=text))
    assert [d.strftime("%Y-%m") for d in forecast.dates][:2] == ["1961-01", "1961-02"]
    assert forecast.dates[int(np.argmax(forecast.median))].month in (6, 7, 8)  # the peak stays in summer
    assert np.all(forecast.lower <= forecast.median) and np.all(forecast.median <= forecast.upper)


def test_the_bundled_autoencoder_writes_sentences_back_as_written_or_typed():
    import numpy as np

    from charrnn.autoencode.task import load_autoencoder, reconstruct
    from charrnn.embedding import load_embedder

    model, vocab, _ = load_autoencoder(bundled("sentences"), device="cpu")
    sentences = ["Where is the station?", "i am hungry", "tom is reading a book"]
    assert reconstruct(model, vocab, sentences) == sentences
    vectors = load_embedder("sentences", device="cpu").embed(["I am hungry.", "I'm hungry.", "The train left early."])
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert unit[0] @ unit[1] > unit[0] @ unit[2]  # a paraphrase nearer than another sentence
