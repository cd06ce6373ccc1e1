"""The tasks, each found here by the name its checkpoints carry. A task's whole code is one folder
beside the shared core (language/, translate/, classify/, forecast/, autoencode/: its task, model, commands and helpers);
adding a task is adding its folder and a line to TASKS."""

from __future__ import annotations

import importlib

# task name (a checkpoint's "task") -> (module, its TrainingTask class). Imported when needed:
# the CLI's help must start without torch.
TASKS = {
    "language_model": ("charrnn.language.task", "LanguageModelTask"),
    "translator": ("charrnn.translate.task", "TranslationTask"),
    "classifier": ("charrnn.classify.task", "ClassificationTask"),
    "classifier_pretraining": ("charrnn.classify.task", "PretrainingTask"),
    "forecaster": ("charrnn.forecast.task", "ForecastTask"),
    "autoencoder": ("charrnn.autoencode.task", "AutoencoderTask"),
}


def describe_metrics(task: str | None, metrics: dict) -> str:
    """An evaluation record in words, as its task says it ("1.4820 nats/token, 2.1381 bpc,
    perplexity 4.40" for a language model); the loss alone for a task this charrnn does not know."""
    if not metrics or "val_loss" not in metrics:
        return "no evaluation"
    if task not in TASKS:
        return f"loss {metrics['val_loss']:.4f}"
    module, name = TASKS[task]
    return getattr(importlib.import_module(module), name).describe_metrics(metrics)
