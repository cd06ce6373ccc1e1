"""Generation: temperature, top-k and top-p (nucleus) sampling over a model's step function, as a
generator of token ids. Turning ids into text and printing is the caller's job."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from .errors import UsageError


@dataclass
class SamplingConfig:
    temperature: float = 0.8  # 0 means greedy (always the most likely token)
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self):
        if self.temperature < 0:
            raise UsageError(f"--temp must be 0 (greedy) or positive, not {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise UsageError(f"--top-k must be at least 1, not {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise UsageError(f"--top-p must be in (0, 1], not {self.top_p}")


def choose_next(logits: torch.Tensor, config: SamplingConfig, generator: torch.Generator) -> torch.Tensor:
    """Pick one token per row of logits (B, V) -> (B,)."""
    if config.temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / config.temperature
    if config.top_k is not None and config.top_k < logits.shape[-1]:
        kth = torch.topk(logits, config.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if config.top_p is not None and config.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p; the most likely token always stays.
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
        sorted_probs = sorted_probs.masked_fill(mass_before >= config.top_p, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    # multinomial does not need normalised weights. The generator lives on the CPU so that the
    # same seed gives the same text on every device.
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(logits.device)


@torch.inference_mode()
def generate(
    model,
    prime: Sequence[int],
    length: int,
    config: SamplingConfig,
    generator: torch.Generator,
) -> Iterator[int]:
    """Yield `length` new token ids following the prime, one at a time.

    The model needs step(token (B,), state) -> (logits (B, V), state) and init_state(batch). The
    prime is run through the model first (with the whole-sequence kernel, which is fast); the
    model's last prediction on it gives the first new token.
    """
    if not prime:
        raise UsageError("sampling needs a prime of at least one token")
    device = next(model.parameters()).device
    state = model.init_state(1, device)
    prime_ids = torch.tensor([list(prime)], dtype=torch.long, device=device)  # (1, P)
    logits, state, _ = model(prime_ids, state)
    logits = logits[:, -1]  # (1, V)
    for _ in range(length):
        token = choose_next(logits, config, generator)  # (1,)
        yield int(token)
        logits, state = model.step(token, state)
