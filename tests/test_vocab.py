"""Vocabularies round-trip any UTF-8 text exactly and survive serialisation."""

import numpy as np
import pytest

from charrnn.errors import CharrnnError
from charrnn.vocab import Vocab

UNICODE_TEXT = "Hello, world!\nÇa va? 日本語のテキスト\r\n\tемодзі 😀👍🏽 e\u0301 \u200b end\n"


def test_char_vocab_round_trips_unicode():
    vocab = Vocab.build_char(UNICODE_TEXT)
    ids = vocab.encode(UNICODE_TEXT)
    assert len(ids) == len(UNICODE_TEXT)  # one token per code point
    assert vocab.decode(ids) == UNICODE_TEXT
    assert vocab.size == len(set(UNICODE_TEXT))


def test_char_vocab_serialises():
    vocab = Vocab.build_char(UNICODE_TEXT)
    again = Vocab.from_dict(vocab.to_dict())
    assert again.encode(UNICODE_TEXT) == vocab.encode(UNICODE_TEXT)
    assert again.decode(vocab.encode(UNICODE_TEXT)) == UNICODE_TEXT
    assert again.fingerprint() == vocab.fingerprint()


def test_fast_bulk_encoder_agrees_with_tokenizer():
    vocab = Vocab.build_char(UNICODE_TEXT)
    fast = vocab.encode_array(UNICODE_TEXT * 3)
    assert fast.tolist() == vocab.tokenizer.encode(UNICODE_TEXT * 3).ids


def test_unknown_characters_are_listed():
    vocab = Vocab.build_char("abc")
    assert vocab.unknown_characters("abxyx") == ["x", "y"]
    with pytest.raises(CharrnnError, match="'x'"):
        vocab.encode("ax")
    with pytest.raises(CharrnnError):
        vocab.encode_array("ax")


def test_bpe_round_trips_text_it_never_saw():
    corpus = ["the quick brown fox jumps over the lazy dog\n" * 20, "lorem ipsum dolor sit amet\n" * 20]
    vocab = Vocab.train_bpe(corpus, vocab_size=300)
    assert 256 < vocab.size <= 300
    for text in (UNICODE_TEXT, "  leading spaces", "the quick brown fox", "\x00\x01 control"):
        assert vocab.decode(vocab.encode(text)) == text
        assert vocab.unknown_characters(text) == []
    encoded = vocab.encode("the quick brown fox")
    assert len(encoded) < len("the quick brown fox")  # merges were learnt
    again = Vocab.from_dict(vocab.to_dict())
    assert again.encode(UNICODE_TEXT) == vocab.encode(UNICODE_TEXT)
    assert np.array_equal(again.encode_array("fox"), np.array(vocab.encode("fox")))


def test_bpe_stream_decoder_joins_to_full_text():
    vocab = Vocab.train_bpe(["plain ascii text only\n" * 10], vocab_size=270)
    ids = vocab.encode(UNICODE_TEXT)
    decoder = vocab.stream_decoder()
    pieces = [decoder.step(i) for i in ids] + [decoder.flush()]
    assert "".join(pieces) == UNICODE_TEXT
    # A multi-byte character split over byte tokens is held back, never emitted half-made.
    assert all("\ufffd" not in piece for piece in pieces)


def test_bpe_vocab_size_too_small():
    with pytest.raises(CharrnnError, match="vocab-size"):
        Vocab.train_bpe(["abc"], vocab_size=100)


def test_char_encode_matches_the_tokenizer():
    vocab = Vocab.build_char(UNICODE_TEXT)
    assert vocab.encode(UNICODE_TEXT) == vocab.tokenizer.encode(UNICODE_TEXT).ids


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_specials_come_first_and_never_come_from_text(kind):
    from charrnn.vocab import SEQ2SEQ_SPECIALS

    text = "I saw <s> and </s> here.\n" * 5
    vocab = (Vocab.build_char(text, specials=SEQ2SEQ_SPECIALS) if kind == "char"
             else Vocab.train_bpe([text], vocab_size=280, specials=SEQ2SEQ_SPECIALS))
    assert [vocab.special_id(s) for s in SEQ2SEQ_SPECIALS] == [0, 1, 2, 3]
    ids = vocab.encode(text)
    assert min(ids) >= len(SEQ2SEQ_SPECIALS)  # "<s>" in the text is characters, not the marker
    assert vocab.decode([vocab.special_id("<s>")] + ids + [vocab.special_id("</s>")]) == text
    again = Vocab.from_dict(vocab.to_dict())
    assert again.encode(text) == ids and again.size == vocab.size


def test_unknown_characters_can_degrade_to_unk():
    from charrnn.vocab import SEQ2SEQ_SPECIALS

    vocab = Vocab.build_char("abc", specials=SEQ2SEQ_SPECIALS)
    unk = vocab.special_id("<unk>")
    assert vocab.encode("abz", unknown_id=unk) == [vocab.encode("a")[0], vocab.encode("b")[0], unk]
    decoder = vocab.stream_decoder()
    assert "".join(decoder.step(i) for i in vocab.encode("cab") + [unk]) == "cab"
