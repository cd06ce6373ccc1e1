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
    logits = (logits if logits.dtype == torch.float32 else logits.float()) / config.temperature
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
    # Inverse-CDF sampling: one uniform draw per row located in the cumulative distribution. It
    # costs half of torch.multinomial at batch 1, and a zero-probability token (cut by top-k or
    # top-p) is never chosen because its interval is empty. The generator lives on the CPU so
    # that the same seed gives the same text on every device.
    on_cpu = probs.device.type == "cpu"  # skip no-op moves: each costs a dispatch per token
    cdf = (probs if on_cpu else probs.cpu()).cumsum(dim=-1)  # (B, V)
    u = torch.rand(cdf.shape[0], 1, generator=generator) * cdf[:, -1:]
    choice = torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.shape[-1] - 1)[:, 0]
    return choice if on_cpu else choice.to(logits.device)


STEPS_PER_CONTEXT = 8  # tokens made per entry into inference mode (see generate)


def generate(
    model,
    prime: Sequence[int],
    length: int,
    config: SamplingConfig,
    generator: torch.Generator,
) -> Iterator[int]:
    """Yield `length` new token ids following the prime, one at a time.

    The model needs forward(x, state) -> (logits, state, loss), init_state(batch) and stepper(),
    whose step(token (B,), layer_states) -> (logits (B, V), layer_states) runs one token. The
    prime goes through the whole-sequence kernel (fast for many tokens); the model's last
    prediction on it gives the first new token.
    """
    if not prime:
        raise UsageError("sampling needs a prime of at least one token")
    device = next(model.parameters()).device
    with torch.inference_mode():
        state = model.init_state(1, device)
        prime_ids = torch.tensor([list(prime)], dtype=torch.long, device=device)  # (1, P)
        logits, state, _ = model(prime_ids, state)
        logits = logits[:, -1]  # (1, V)
        stepper = model.stepper()
        layer_states = stepper.split_state(state)
    made = 0
    while made < length:
        # Tokens are made a few at a time inside one inference-mode block: entering the mode
        # once per token costs a tenth of a step at batch 1, and a generator cannot stay inside
        # it between yields without leaking the mode into the caller's code.
        chunk = []
        with torch.inference_mode():
            for _ in range(min(STEPS_PER_CONTEXT, length - made)):
                token = choose_next(logits, config, generator)  # (1,)
                chunk.append(int(token))
                logits, layer_states = stepper.step(token, layer_states)
        made += len(chunk)
        yield from chunk
