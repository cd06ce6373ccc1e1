"""Generation: temperature, top-k and top-p (nucleus) sampling over a model's step function, as a
generator of token ids. Turning ids into text and printing is the caller's job."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from ..errors import UsageError
from ..numbers import check_finite, check_range

MAX_TEMPERATURE = 1000.0


@dataclass
class SamplingConfig:
    temperature: float = 0.8  # 0 means greedy (always the most likely token)
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self):
        check_finite(self.temperature, "--temp")
        check_finite(self.top_p, "--top-p")
        if self.temperature < 0:
            raise UsageError(f"--temp must be 0 (greedy) or positive, not {self.temperature}")
        # Far above 1 the choice is already uniform; far larger overflows the kernel's scale.
        check_range(self.temperature, "--temp", high=MAX_TEMPERATURE)
        check_range(self.top_k, "--top-k", low=1)
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise UsageError(f"--top-p must be in (0, 1], not {self.top_p}")


def gumbel_noise(rows: int, vocab_size: int, generator: torch.Generator) -> torch.Tensor:
    """(rows, V) standard Gumbel noise, -log(E) with E ~ Exponential(1), drawn on the CPU so that
    the same seed gives the same text on every device. E is kept above zero so the noise stays
    finite: an infinite draw would pick a token top-k or top-p had cut (-inf + inf is NaN)."""
    draws = torch.empty(rows, vocab_size).exponential_(generator=generator)
    return draws.clamp_(min=torch.finfo(draws.dtype).tiny).log_().neg_()


def restrict(logits: torch.Tensor, config: SamplingConfig) -> torch.Tensor:
    """Logits (B, V) with the tokens top-k and top-p leave out set to -inf."""
    if config.top_k is not None and config.top_k < logits.shape[-1]:
        kth = torch.topk(logits, config.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if config.top_p is not None and config.top_p < 1.0:
        sorted_probs, order = torch.softmax(logits / config.temperature, dim=-1).sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p; the most likely token always stays.
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
        cut = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order, mass_before >= config.top_p)
        logits = logits.masked_fill(cut, float("-inf"))
    return logits


def choose_next(logits: torch.Tensor, config: SamplingConfig, generator: torch.Generator,
                noise: torch.Tensor | None = None) -> torch.Tensor:
    """Pick one token per row of logits (B, V) -> (B,).

    Sampling is by the Gumbel-max trick: with G standard Gumbel noise, argmax(logits / T + G),
    which is argmax(logits + T * G), is distributed as softmax(logits / T). At batch 1 that is two
    tensor calls where softmax and a search of the cumulative distribution take eight, and the
    noise for many steps can be drawn at once (noise: the caller's, broadcastable to logits, on
    their device). A token cut by top-k or top-p has logit -inf and is never chosen."""
    if config.temperature == 0:
        return logits.argmax(dim=-1)
    logits = restrict(logits if logits.dtype == torch.float32 else logits.float(), config)
    if noise is None:
        noise = gumbel_noise(logits.shape[0], logits.shape[-1], generator).to(logits.device)
    return torch.add(logits, noise, alpha=config.temperature).argmax(dim=-1)


STEPS_PER_CONTEXT = 8  # tokens made per entry into inference mode (see generate)


PRIME_WINDOW = 4096  # prime tokens read per call of the sequence kernel


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
        # In windows, the state carried: oneDNN cannot make an LSTM kernel for one sequence of
        # some 300,000 steps (a --prime-file of a book), and the logits of a window are enough.
        for start in range(0, prime_ids.shape[1], PRIME_WINDOW):
            logits, state, _ = model(prime_ids[:, start : start + PRIME_WINDOW], state)
        logits = logits[:, -1]  # (1, V)
        stepper = model.stepper()
        layer_states = stepper.split_state(state)
    made = 0
    while made < length:
        # Tokens are made a few at a time inside one inference-mode block: entering the mode
        # once per token costs a tenth of a step at batch 1, and a generator cannot stay inside
        # it between yields without leaking the mode into the caller's code. The chunk's noise
        # is drawn in one call too.
        chunk = []
        with torch.inference_mode():
            count = min(STEPS_PER_CONTEXT, length - made)
            noise = None if config.temperature == 0 else gumbel_noise(count, logits.shape[-1], generator).to(device)
            for i in range(count):
                token = choose_next(logits, config, generator, None if noise is None else noise[i])  # (1,)
                chunk.append(int(token))
                logits, layer_states = stepper.step(token, layer_states)
        made += len(chunk)
        yield from chunk
