"""charrnn: train and use small recurrent sequence models (RNN, LSTM, GRU) on your own text.

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
    "LanguageModel": "models.language_model",
    "LanguageModelConfig": "models.language_model",
    "TrainConfig": "train",
    "Trainer": "train",
    "StopReason": "train",
    "train_task": "runs",
    "StartEvent": "events",
    "StepEvent": "events",
    "EvalEvent": "events",
    "EndEvent": "events",
    "WarningEvent": "events",
    "SamplingConfig": "sampling",
    "generate": "sampling",
    "save_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "LanguageDataConfig": "tasks.language",
    "train_language_model": "tasks.language",
    "load_language_model": "tasks.language",
    "sample_text": "tasks.language",
    "TranslationDataConfig": "tasks.translate",
    "train_translator": "tasks.translate",
    "load_translator": "tasks.translate",
    "translate": "tasks.translate",
    "ClassificationDataConfig": "tasks.classify",
    "train_classifier": "tasks.classify",
    "load_classifier": "tasks.classify",
    "classify": "tasks.classify",
    "cross_validate": "tasks.classify",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'charrnn' has no attribute {name!r}")
