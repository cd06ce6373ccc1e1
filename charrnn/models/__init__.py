"""One module per task; each model is built from its config dataclass and knows nothing about
data, tokenisation or training."""

from .language_model import LanguageModel, LanguageModelConfig

__all__ = ["LanguageModel", "LanguageModelConfig"]
