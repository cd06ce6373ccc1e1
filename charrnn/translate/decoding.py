"""Decoding for encoder-decoder models: batched greedy search and batched beam search with length
normalisation, both over the model's one decode step, and both able to forbid repeated n-grams
(a small model that is unsure of itself otherwise loops: "rojo rojo rojo ...")."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass
class Hypothesis:
    tokens: list[int]  # the output tokens, without BOS and EOS
    score: float  # total log-probability (of the tokens and the EOS, when it was reached)


def _select_state(state, index: torch.Tensor):
    """Reorder the batch dimension (dim 1) of every state part."""
    return tuple(part.index_select(1, index) for part in state)


def repeated_ngram_mask(history: torch.Tensor, ngram: int, vocab_size: int) -> torch.Tensor | None:
    """(N, vocab_size) True where the token would end an n-gram of ngram tokens that the
    hypothesis (a row of history, (N, L)) already holds, so that no n-gram occurs twice. None
    when no n-gram could repeat yet (or ngram is 0, blocking off)."""
    length = history.shape[1]
    if ngram < 1 or length < ngram:
        return None
    windows = history.unfold(1, ngram, 1)  # (N, L - ngram + 1, ngram): every n-gram so far
    prefix = history[:, length - ngram + 1 :]  # the last ngram - 1 tokens, which the next one extends
    continues = (windows[:, :, :-1] == prefix.unsqueeze(1)).all(dim=-1)  # (N, windows)
    seen = torch.zeros(history.shape[0], vocab_size, device=history.device)
    seen.scatter_add_(1, windows[:, :, -1], continues.float())
    return seen > 0


def _block_repeats(log_probs: torch.Tensor, history: torch.Tensor, ngram: int, eos_id: int) -> torch.Tensor:
    """log_probs (N, V) with the tokens that would repeat an n-gram made impossible (never EOS,
    so a hypothesis can always end)."""
    banned = repeated_ngram_mask(history, ngram, log_probs.shape[-1])
    if banned is None:
        return log_probs
    banned[:, eos_id] = False
    return log_probs.masked_fill(banned, float("-inf"))


def _expand(encoded, keys, state, beams: int):
    """Repeat every sentence's encoder output and state once per beam: (B, ...) -> (B * beams, ...)."""
    repeat = lambda t: t.repeat_interleave(beams, dim=0)  # noqa: E731
    expanded = replace(encoded, memory=repeat(encoded.memory), mask=repeat(encoded.mask))
    expanded_keys = repeat(keys) if keys is not None else None
    expanded_state = tuple(part.repeat_interleave(beams, dim=1) for part in state)
    return expanded, expanded_keys, expanded_state


@torch.inference_mode()
def greedy_search(model, source: torch.Tensor, lengths: torch.Tensor, *, bos_id: int, eos_id: int, max_len: int,
                  no_repeat_ngram: int = 0) -> list[Hypothesis]:
    """The most likely token at every step, for a batch of sentences at once; with
    no_repeat_ngram, never one that repeats an n-gram of that many tokens."""
    return greedy_decode(model, model.encode(source, lengths), bos_id=bos_id, eos_id=eos_id, max_len=max_len,
                         no_repeat_ngram=no_repeat_ngram)


@torch.inference_mode()
def greedy_decode(model, encoded, *, bos_id: int, eos_id: int, max_len: int, no_repeat_ngram: int = 0) -> list[Hypothesis]:
    """greedy_search from what the encoder gave (or what stands in for it: an autoencoder's
    vectors decoded as its encoder's would be)."""
    keys = model.keys(encoded)
    state = encoded.state
    B = encoded.memory.shape[0]
    device = encoded.memory.device
    tokens = torch.full((B,), bos_id, dtype=torch.long, device=device)
    outputs = [[] for _ in range(B)]
    scores = torch.zeros(B, device=device)
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    history = torch.zeros(B, 0, dtype=torch.long, device=device)
    for _ in range(max_len):
        logits, state, _ = model.decode(tokens.unsqueeze(1), encoded, state, keys)
        log_probs = torch.log_softmax(logits[:, -1].float(), dim=-1)  # (B, V)
        log_probs = _block_repeats(log_probs, history, no_repeat_ngram, eos_id)
        best, tokens = log_probs.max(dim=-1)
        history = torch.cat([history, tokens.unsqueeze(1)], dim=1)
        scores = scores + best.masked_fill(finished, 0.0)
        for b, token in enumerate(tokens.tolist()):
            if not finished[b] and token != eos_id:
                outputs[b].append(token)
        finished = finished | (tokens == eos_id)
        if bool(finished.all()):
            break
    return [Hypothesis(outputs[b], float(scores[b])) for b in range(B)]


@torch.inference_mode()
def beam_search(model, source: torch.Tensor, lengths: torch.Tensor, *, bos_id: int, eos_id: int, max_len: int,
                beam_size: int = 5, length_penalty: float = 1.0, no_repeat_ngram: int = 0) -> list[Hypothesis]:
    """Keep the beam_size best partial translations of every sentence (all sentences batched).

    Scores are summed log-probabilities while searching; the finished hypotheses are ranked by
    score / length ** length_penalty, so long translations are not beaten merely for being long.
    With no_repeat_ngram, no hypothesis repeats an n-gram of that many tokens. With beam_size 1
    this is greedy search.
    """
    return beam_decode(model, model.encode(source, lengths), bos_id=bos_id, eos_id=eos_id, max_len=max_len,
                       beam_size=beam_size, length_penalty=length_penalty, no_repeat_ngram=no_repeat_ngram)


@torch.inference_mode()
def beam_decode(model, encoded, *, bos_id: int, eos_id: int, max_len: int, beam_size: int = 5,
                length_penalty: float = 1.0, no_repeat_ngram: int = 0) -> list[Hypothesis]:
    """beam_search from what the encoder gave (see greedy_decode)."""
    K = beam_size
    keys = model.keys(encoded)
    B = encoded.memory.shape[0]
    device = encoded.memory.device
    encoded, keys, state = _expand(encoded, keys, encoded.state, K)
    tokens = torch.full((B * K,), bos_id, dtype=torch.long, device=device)
    # Only the first beam is live at the start; the others would repeat it.
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0
    finished = torch.zeros(B, K, dtype=torch.bool, device=device)
    history = torch.zeros(B, K, 0, dtype=torch.long, device=device)  # chosen tokens so far
    lengths_out = torch.zeros(B, K, device=device)  # tokens before EOS, for the normalisation
    for _ in range(max_len):
        logits, state, _ = model.decode(tokens.unsqueeze(1), encoded, state, keys)
        log_probs = torch.log_softmax(logits[:, -1].float(), dim=-1)
        log_probs = _block_repeats(log_probs, history.reshape(B * K, history.shape[-1]), no_repeat_ngram, eos_id).view(B, K, -1)
        V = log_probs.shape[-1]
        # A finished hypothesis continues with EOS at no cost, so it keeps its score and place.
        frozen = torch.full_like(log_probs, float("-inf"))
        frozen[..., eos_id] = 0.0
        log_probs = torch.where(finished.unsqueeze(-1), frozen, log_probs)
        candidates = (scores.unsqueeze(-1) + log_probs).view(B, K * V)
        scores, flat = candidates.topk(K, dim=-1)  # (B, K)
        origin = torch.div(flat, V, rounding_mode="floor")
        chosen = flat % V
        lengths_out = lengths_out.gather(1, origin) + (~finished.gather(1, origin) & (chosen != eos_id)).float()
        finished = finished.gather(1, origin) | (chosen == eos_id)
        history = torch.cat([history.gather(1, origin.unsqueeze(-1).expand(-1, -1, history.shape[-1])), chosen.unsqueeze(-1)], dim=-1)
        rows = (origin + torch.arange(B, device=device).unsqueeze(1) * K).view(-1)
        state = _select_state(state, rows)
        tokens = chosen.view(-1)
        if bool(finished.all()):
            break
    normalised = scores / lengths_out.clamp(min=1.0) ** length_penalty
    best = normalised.argmax(dim=-1)  # (B,)
    results = []
    for b in range(B):
        k = int(best[b])
        sequence = history[b, k].tolist()
        if eos_id in sequence:
            sequence = sequence[: sequence.index(eos_id)]
        results.append(Hypothesis(sequence, float(scores[b, k])))
    return results
