"""Sampling: greedy at temperature 0, reproducible with a seed, top-k and top-p restrict choices."""

import pytest
import torch

from charrnn.errors import UsageError
from charrnn.language.model import LanguageModel, LanguageModelConfig
from charrnn.language.sampling import SamplingConfig, choose_next, generate


def _model(cell="lstm"):
    torch.manual_seed(0)
    return LanguageModel(LanguageModelConfig(vocab_size=11, cell=cell, hidden_size=16, num_layers=2)).eval()


def _gen(seed):
    g = torch.Generator()
    g.manual_seed(seed)
    return g


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_greedy_generation_follows_the_full_sequence_model(cell):
    model = _model(cell)
    ids = list(generate(model, [1, 2, 3], 12, SamplingConfig(temperature=0), _gen(0)))
    # Recompute each choice by running the whole sequence through the fused kernel.
    seq = [1, 2, 3]
    for token in ids:
        logits, _, _ = model(torch.tensor([seq]))
        assert token == int(logits[0, -1].argmax())
        seq.append(token)


def test_same_seed_same_sample():
    model = _model()
    a = list(generate(model, [1], 50, SamplingConfig(temperature=1.0), _gen(7)))
    b = list(generate(model, [1], 50, SamplingConfig(temperature=1.0), _gen(7)))
    c = list(generate(model, [1], 50, SamplingConfig(temperature=1.0), _gen(8)))
    assert a == b and a != c


def test_top_k_and_top_p_restrict_the_choice():
    logits = torch.tensor([[5.0, 4.0, 0.0, -1.0, -2.0]])
    picks_k = {int(choose_next(logits, SamplingConfig(temperature=5.0, top_k=2), _gen(s))) for s in range(200)}
    assert picks_k == {0, 1}
    # Probabilities at T=1: about 0.72, 0.26, 0.005, ...: top-p 0.9 keeps the first two.
    picks_p = {int(choose_next(logits, SamplingConfig(temperature=1.0, top_p=0.9), _gen(s))) for s in range(300)}
    assert picks_p == {0, 1}
    picks_tiny_p = {int(choose_next(logits, SamplingConfig(temperature=1.0, top_p=0.01), _gen(s))) for s in range(50)}
    assert picks_tiny_p == {0}


@pytest.mark.parametrize("kwargs", [dict(temperature=-1), dict(top_k=0), dict(top_p=0.0), dict(top_p=1.5)])
def test_invalid_sampling_values(kwargs):
    with pytest.raises(UsageError):
        SamplingConfig(**kwargs)


def test_the_prime_is_read_as_the_start_of_a_line():
    from charrnn.language.task import line_start_context, sample_text
    from charrnn.vocab import Vocab

    vocab = Vocab.build_char("ab\n")
    assert line_start_context("ab", vocab) == "\nab"
    assert line_start_context("\nab", vocab) == "\nab"
    assert line_start_context("ab", Vocab.build_char("ab")) == "ab"  # no newline in the vocabulary
    torch.manual_seed(0)
    model = LanguageModel(LanguageModelConfig(vocab_size=vocab.size, hidden_size=8, num_layers=1)).eval()
    text = "".join(sample_text(model, vocab, prime="ab", length=30, seed=4))
    ids = list(generate(model, vocab.encode("\nab"), 30, SamplingConfig(), _gen(4)))
    assert text == vocab.decode(ids)
