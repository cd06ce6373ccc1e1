"""charrnn: train and use small sequence models (RNN, LSTM, GRU, WaveNet) on your own text and series.

The public API is importable from here; torch is loaded on first use of a name that needs it,
so that `charrnn --help` starts fast.
"""

from importlib import import_module

__version__ = "0.1.0"

_PUBLIC = {
    "CharrnnError": "errors",
    "UsageError": "errors",
    "Recurrent": "cells",
    "RecurrentConfig": "cells",
    "Vocab": "vocab",
    "LanguageModel": "language.model",
    "LanguageModelConfig": "language.model",
    "TrainConfig": "train",
    "Trainer": "train",
    "StopReason": "train",
    "train_task": "runs",
    "StartEvent": "events",
    "StepEvent": "events",
    "EvalEvent": "events",
    "EndEvent": "events",
    "WarningEvent": "events",
    "PreparingEvent": "events",
    "SamplingConfig": "language.sampling",
    "generate": "language.sampling",
    "save_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "bundled_models": "checkpoint",
    "LanguageDataConfig": "language.task",
    "train_language_model": "language.task",
    "load_language_model": "language.task",
    "sample_text": "language.task",
    "TranslationDataConfig": "translate.task",
    "train_translator": "translate.task",
    "load_translator": "translate.task",
    "translate": "translate.task",
    "ClassificationDataConfig": "classify.task",
    "train_classifier": "classify.task",
    "load_classifier": "classify.task",
    "classify": "classify.task",
    "cross_validate": "classify.task",
    "WaveNet": "wavenet",
    "WaveNetConfig": "wavenet",
    "read_series": "forecast.series",
    "ForecastDataConfig": "forecast.task",
    "train_forecaster": "forecast.task",
    "load_forecaster": "forecast.task",
    "forecast_next": "forecast.task",
    "backtest": "forecast.backtest",
    "AutoencoderDataConfig": "autoencode.task",
    "train_autoencoder": "autoencode.task",
    "load_autoencoder": "autoencode.task",
    "load_embedder": "embedding",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'charrnn' has no attribute {name!r}")
