"""The translator: it learns a small synthetic task, padding never changes a result, beam 1 is
greedy, and translation keeps line order and empty lines."""

import random
from dataclasses import replace

import pytest
import torch

from charrnn.checkpoint import Checkpoint
from charrnn.errors import UsageError
from charrnn.translate.model import Translator, TranslatorConfig
from charrnn.translate.task import (
    BOS,
    EOS,
    PAD,
    TranslationDataConfig,
    attention_weights,
    load_split,
    load_translator,
    pad_batch,
    sources_are_written,
    train_translator,
    translate,
)
from charrnn.train import TrainConfig
from charrnn.translate.decoding import beam_search, greedy_search


def _synthetic_pairs(count, seed):
    """Transliteration: a word and the same word in capitals (a monotonic alignment)."""
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefgh") for _ in range(rng.randint(2, 6))) for _ in range(count)]
    return [(w, w.upper()) for w in words]


@pytest.fixture(scope="module")
def trained_translator(tmp_path_factory):
    root = tmp_path_factory.mktemp("translator")
    pairs = _synthetic_pairs(3000, seed=0)
    (root / "pairs.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    data = TranslationDataConfig(tokenizer="char", batch_size=32, test_size=100, dev_size=100)
    train = TrainConfig(max_steps=400, eval_every=100, warmup_steps=20, learning_rate=5e-3)
    result = train_translator(str(root / "pairs.tsv"), model_config=dict(embedding_size=32, hidden_size=64, encoder_layers=1,
                              decoder_layers=1, dropout=0.0), data=data, train=train, run_dir=root / "run",
                              device="cpu", precision="fp32")
    return root, result


def test_learns_a_synthetic_task(trained_translator):
    root, result = trained_translator
    model, source_vocab, target_vocab, _ = load_translator(root / "run" / "best.pt", device="cpu")
    held_out = _synthetic_pairs(200, seed=99)
    outputs = translate(model, source_vocab, target_vocab, [s for s, _ in held_out])
    accuracy = sum(o.text == t for o, (_, t) in zip(outputs, held_out)) / len(held_out)
    assert accuracy >= 0.9, accuracy


def test_beam_of_one_is_greedy_and_beam_scores_are_log_probabilities(trained_translator):
    root, _ = trained_translator
    model, source_vocab, target_vocab, _ = load_translator(root / "run" / "best.pt", device="cpu")
    lines = [s for s, _ in _synthetic_pairs(40, seed=5)]
    source, lengths = pad_batch([source_vocab.encode(line) for line in lines])
    greedy = greedy_search(model, source, lengths, bos_id=BOS, eos_id=EOS, max_len=20)
    beam1 = beam_search(model, source, lengths, bos_id=BOS, eos_id=EOS, max_len=20, beam_size=1)
    assert [h.tokens for h in greedy] == [h.tokens for h in beam1]
    beam4 = beam_search(model, source, lengths, bos_id=BOS, eos_id=EOS, max_len=20, beam_size=4)
    # Each score is the model's log-probability of the tokens returned and the end marker: the
    # beam bookkeeping (reordered states, frozen finished beams) lost nothing on the way.
    for row, hypothesis in enumerate(beam4):
        target = [BOS] + hypothesis.tokens
        with torch.no_grad():
            logits, _ = model(source[row : row + 1, : int(lengths[row])], lengths[row : row + 1], torch.tensor([target]))
        log_probs = torch.log_softmax(logits[0].float(), dim=-1)
        expected = sum(float(log_probs[t, token]) for t, token in enumerate(hypothesis.tokens + [EOS]))
        assert hypothesis.score == pytest.approx(expected, abs=1e-3)


def test_order_and_empty_lines_are_kept(trained_translator):
    root, _ = trained_translator
    model, source_vocab, target_vocab, _ = load_translator(root / "run" / "best.pt", device="cpu")
    lines = ["abc", "", "hgfedcba", "  ", "ba", "zz?"]  # unknown characters degrade to <unk>
    out = translate(model, source_vocab, target_vocab, lines, beam=3, batch_size=2)
    assert len(out) == len(lines)
    assert [o.source for o in out] == lines
    assert out[1].text == "" and out[3].text == ""
    assert out[0].text == "ABC" and out[4].text == "BA"
    weights = attention_weights(model, source_vocab, out[2])
    assert weights.shape == (len(out[2].tokens) + 1, len("hgfedcba"))
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(weights.shape[0]))


@pytest.mark.parametrize("cell,attention", [("gru", "multiplicative"), ("lstm", "additive"), ("gru", "none")])
def test_padding_never_changes_results(cell, attention):
    torch.manual_seed(0)
    model = Translator(TranslatorConfig(source_vocab_size=20, target_vocab_size=15, cell=cell, attention=attention,
                                        embedding_size=8, hidden_size=12, dropout=0.0, pad_id=PAD)).eval()
    short, long = [5, 6, 7], [8, 9, 10, 11, 12, 13, 14]
    target = [BOS, 5, 6, 7, 8]
    with torch.no_grad():
        alone_src, alone_len = pad_batch([short])
        alone, _ = model(alone_src, alone_len, torch.tensor([target]))
        batch_src, batch_len = pad_batch([long, short])
        padded_target, _ = pad_batch([target + [9, 10], target])
        batched, _ = model(batch_src, batch_len, padded_target)
    torch.testing.assert_close(batched[1, : len(target)], alone[0], atol=1e-5, rtol=0)
    greedy_alone = greedy_search(model, alone_src, alone_len, bos_id=BOS, eos_id=EOS, max_len=8)
    greedy_batched = greedy_search(model, batch_src, batch_len, bos_id=BOS, eos_id=EOS, max_len=8)
    assert greedy_alone[0].tokens == greedy_batched[1].tokens


def test_tied_embeddings_share_one_matrix_through_a_half_precision_export(tmp_path):
    from charrnn.checkpoint import Checkpoint, load_checkpoint, restore_for_inference, save_checkpoint

    torch.manual_seed(0)
    config = TranslatorConfig(source_vocab_size=20, target_vocab_size=15, embedding_size=12, hidden_size=12,
                              tie_embeddings=True, pad_id=PAD)
    model = Translator(config)
    assert model.head.weight is model.target_embedding.weight
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in Translator(
        TranslatorConfig(source_vocab_size=20, target_vocab_size=15, embedding_size=12, hidden_size=12, pad_id=PAD)).parameters())
    save_checkpoint(Checkpoint("translator", {}, model.state_dict()).for_inference(half=True), tmp_path / "tied.pt")
    restored = restore_for_inference(Translator(config), load_checkpoint(tmp_path / "tied.pt"), torch.device("cpu"))
    assert restored.head.weight is restored.target_embedding.weight  # still one matrix after loading
    torch.testing.assert_close(restored.head.weight, model.head.weight.half().float())
    with pytest.raises(UsageError, match="--embedding-size equal to --hidden-size"):
        TranslatorConfig(source_vocab_size=20, target_vocab_size=15, embedding_size=8, hidden_size=12, tie_embeddings=True)


def test_label_smoothing_changes_the_training_loss_only():
    torch.manual_seed(0)
    smooth = Translator(TranslatorConfig(source_vocab_size=20, target_vocab_size=15, embedding_size=8, hidden_size=12,
                                         dropout=0.0, label_smoothing=0.1, pad_id=PAD)).eval()
    plain = Translator(TranslatorConfig(source_vocab_size=20, target_vocab_size=15, embedding_size=8, hidden_size=12,
                                        dropout=0.0, label_smoothing=0.0, pad_id=PAD)).eval()
    plain.load_state_dict(smooth.state_dict())
    source, lengths = pad_batch([[5, 6, 7]])
    target_in, target_out = torch.tensor([[BOS, 5, 6]]), torch.tensor([[5, 6, EOS]])
    with torch.no_grad():
        logits_a, loss_a = smooth(source, lengths, target_in, target_out)
        logits_b, loss_b = plain(source, lengths, target_in, target_out)
    torch.testing.assert_close(logits_a, logits_b)  # the same predictions
    assert float(loss_a) != pytest.approx(float(loss_b))


def test_held_out_pairs_are_found_by_name_when_the_recorded_corpus_path_is_gone(trained_translator, monkeypatch):
    from charrnn.checkpoint import load_checkpoint
    from charrnn.translate.task import held_out_pairs

    root, _ = trained_translator
    saved = load_checkpoint(root / "run" / "best.pt")
    test_pairs = held_out_pairs(saved)
    assert len(test_pairs) == 100 and held_out_pairs(saved, split="dev") != test_pairs
    # A checkpoint trained elsewhere (a bundled one) records a path this machine lacks.
    moved = replace(saved, metadata={**saved.metadata, "corpus_path": "/nowhere/else/pairs.tsv"})
    monkeypatch.setenv("CHARRNN_CORPORA", str(root))
    assert held_out_pairs(moved) == test_pairs


def test_repeated_ngram_mask_marks_the_tokens_that_would_repeat_one():
    from charrnn.translate.decoding import repeated_ngram_mask

    history = torch.tensor([[1, 2, 3, 1, 2], [4, 4, 4, 4, 5]])
    banned = repeated_ngram_mask(history, 3, vocab_size=6)
    assert banned[0].nonzero().flatten().tolist() == [3]  # 1 2 -> 3 was seen
    assert banned[1].nonzero().flatten().tolist() == []  # 4 5 was never continued
    assert repeated_ngram_mask(history[:, :2], 3, vocab_size=6) is None  # no 3-gram yet
    assert repeated_ngram_mask(history, 0, vocab_size=6) is None  # blocking off


@pytest.fixture(scope="module")
def looping_translator(tmp_path_factory):
    """A tiny model taught that every target is its source said over and over (a loop of a
    length it cannot know), so that left to itself it repeats."""
    root = tmp_path_factory.mktemp("looping")
    rng = random.Random(1)
    lines = []
    for _ in range(2000):
        word = "".join(rng.choice("abcd") for _ in range(rng.randint(2, 3)))
        lines.append(f"{word}\t{' '.join([word] * rng.randint(6, 12))}\n")
    (root / "pairs.tsv").write_text("".join(lines))
    data = TranslationDataConfig(tokenizer="char", batch_size=32, test_size=50, dev_size=50)
    train = TrainConfig(max_steps=150, eval_every=150, warmup_steps=10, learning_rate=1e-2)
    train_translator(str(root / "pairs.tsv"), model_config=dict(embedding_size=16, hidden_size=32, encoder_layers=1,
                     decoder_layers=1, dropout=0.0), data=data, train=train, run_dir=root / "run", device="cpu",
                     precision="fp32")
    return load_translator(root / "run" / "best.pt", device="cpu")[:3]


def _ngram_counts(tokens, n):
    from collections import Counter

    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


@pytest.mark.parametrize("beam", [1, 4])
def test_decoding_cannot_loop(looping_translator, beam):
    from charrnn.translate.task import loops

    model, source_vocab, target_vocab = looping_translator
    lines = ["ab", "cda", "bbc", "dd", "acb"]
    free = translate(model, source_vocab, target_vocab, lines, beam=beam, max_len=60, no_repeat_ngram=0)
    assert sum(loops(t.text) for t in free) >= 3, [t.text for t in free]  # the model does loop
    blocked = translate(model, source_vocab, target_vocab, lines, beam=beam, max_len=60, no_repeat_ngram=3)
    for t in blocked:
        assert max(_ngram_counts(t.tokens, 3).values(), default=0) <= 1, t.text
        assert not loops(t.text)
    default = translate(model, source_vocab, target_vocab, lines, beam=beam, max_len=60)  # 16 characters
    for t in default:
        assert max(_ngram_counts(t.tokens, 16).values(), default=0) <= 1, t.text


def test_training_sources_count_as_written_when_nearly_all_are_sentences():
    written = ["Tom is here.", "Where is it?", "I know!"] * 10
    assert sources_are_written(written)
    assert sources_are_written(written + ["no punctuation here"])  # one in 31 is not
    assert not sources_are_written(["abc", "hgf", "dead"])
    old_checkpoint = Checkpoint("translator", {"data_config": {"tokenizer": "bpe"}}, {})  # trained before the record existed, on Tatoeba
    assert TranslationDataConfig.from_checkpoint(old_checkpoint).written_sources


def test_written_training_sources_teach_the_casing_typed_input_is_read_with(tmp_path):
    sentences = ["I met Tom in Boston.", "Where does Tom live?", "Tom is tall.", "We saw Boston.", "Is it TV?",
                 "He watches TV.", "Call him now."] * 5
    (tmp_path / "pairs.tsv").write_text("".join(f"{s}\t{s}\n" for s in sentences))
    data = TranslationDataConfig(tokenizer="char", test_size=3, dev_size=3)
    _, decided, _, _ = load_split(str(tmp_path / "pairs.tsv"), data)
    # "Tom" opening a sentence says nothing of its casing; elsewhere it is always "Tom".
    assert decided.source_casing == {"tom": "Tom", "boston": "Boston", "tv": "TV"}
    (tmp_path / "typed.tsv").write_text("".join(f"{s.lower().rstrip('.?')}\t{s}\n" for s in sentences))
    _, typed, _, _ = load_split(str(tmp_path / "typed.tsv"), data)
    assert typed.source_casing == {}  # sources not written as sentences teach no casing
    old_checkpoint = Checkpoint("translator", {"data_config": {"tokenizer": "bpe"}}, {})  # trained before source_casing existed
    assert TranslationDataConfig.from_checkpoint(old_checkpoint).source_casing == {}


def test_translate_reads_typed_names_with_the_learnt_casing(looping_translator):
    model, source_vocab, target_vocab = looping_translator
    [plain] = translate(model, source_vocab, target_vocab, ["i saw tom"], normalise=True)
    [cased] = translate(model, source_vocab, target_vocab, ["i saw tom"], normalise=True, casing={"tom": "Tom"})
    assert plain.read_as == "I saw tom." and cased.read_as == "I saw Tom."
