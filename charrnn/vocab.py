"""Vocabularies: character-level (the Unicode code points of a corpus) or byte-level BPE, both
built and serialised with the `tokenizers` package, both round-tripping any UTF-8 text exactly."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from .errors import CharrnnError
from .numbers import check_range

VOCAB_KINDS = ("char", "bpe")
MAX_WORD_BYTES = 256  # the longest piece BPE trains on and encodes as one word (see train_bpe)
MAX_BPE_VOCAB = 1_000_000  # ten times the largest in common use (GPT-4's is about 100,000)

# Every single character, newlines included, is its own pre-token.
_ONE_CHARACTER = Regex(r"[\s\S]")


SEQ2SEQ_SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")  # padding, unknown, begin and end of sequence


class Vocab:
    """A tokenizer plus what charrnn needs around it: its kind, its size, exact decoding,
    streaming decoding for generation, and a fast bulk encoder for character corpora.

    specials (for sequence-to-sequence tasks: SEQ2SEQ_SPECIALS) take ids 0 .. n-1 and the
    tokenizer's ids follow. They live outside the tokenizer on purpose: text that happens to
    contain "<s>" is encoded as characters, never mistaken for the marker.
    """

    def __init__(self, tokenizer: Tokenizer, kind: str, specials: tuple[str, ...] = ()):
        if kind not in VOCAB_KINDS:
            raise ValueError(f"vocab kind must be one of {VOCAB_KINDS}")
        self.tokenizer = tokenizer
        self.kind = kind
        self.specials = tuple(specials)
        self.offset = len(self.specials)
        self._char_table: dict[str, int] | None = None
        self._table_cache: np.ndarray | None = None  # code point -> id, built on first bulk encode
        if kind == "char":
            self._char_table = {ch: i + self.offset for ch, i in tokenizer.get_vocab().items()}

    # -- building ------------------------------------------------------------------------------

    @classmethod
    def build_char(cls, characters: Iterable[str], specials: tuple[str, ...] = ()) -> Vocab:
        """A character vocabulary over the given characters, ids in code-point order."""
        ordered = sorted(set(characters))
        if not ordered:
            raise CharrnnError("cannot build a vocabulary from empty text")
        tokenizer = Tokenizer(models.WordLevel({ch: i for i, ch in enumerate(ordered)}, unk_token="\x00"))
        tokenizer.pre_tokenizer = pre_tokenizers.Split(_ONE_CHARACTER, behavior="isolated")
        tokenizer.decoder = decoders.Fuse()  # join tokens with nothing between them
        return cls(tokenizer, "char", specials)

    @classmethod
    def train_bpe(cls, texts: Iterable[str], vocab_size: int, specials: tuple[str, ...] = ()) -> Vocab:
        """Byte-level BPE trained on the texts: every byte is in the base alphabet, so any UTF-8
        text encodes and decodes exactly, and nothing is ever out of vocabulary. vocab_size
        counts the specials too."""
        # At least the 256 bytes and one merge; at most MAX_BPE_VOCAB, as the trainer allocates
        # for the size asked before it reads a byte (a billion aborts the process).
        check_range(vocab_size, "--vocab-size", 257 + len(specials), MAX_BPE_VOCAB)
        tokenizer = Tokenizer(models.BPE())
        # No normaliser and no prefix space: both would change the text and break round-trips.
        # Words longer than MAX_WORD_BYTES are cut into pieces of that length: the trainer's time
        # grows with the square of a word's length (a 60,000-character run without a space took
        # 2 s, a megabyte of base64 would take hours), and no merge is that long anyway.
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
            pre_tokenizers.Split(Regex(f"[\\s\\S]{{1,{MAX_WORD_BYTES}}}"), behavior="isolated"),
        ])
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size - len(specials),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=[],
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer=trainer)
        return cls(tokenizer, "bpe", specials)

    # -- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """Plain types only, so a checkpoint stays loadable with weights_only=True."""
        return {"kind": self.kind, "tokenizer": self.tokenizer.to_str(), "specials": list(self.specials)}

    @classmethod
    def from_dict(cls, data: dict) -> Vocab:
        try:
            tokenizer = Tokenizer.from_str(data["tokenizer"])
        except Exception as exc:  # noqa: BLE001 - the Rust side raises a bare Exception for bad JSON
            raise ValueError(f"its vocabulary does not load: {str(exc)[:120]}") from None
        return cls(tokenizer, data["kind"], tuple(data.get("specials", ())))

    def fingerprint(self) -> str:
        """A short stable id of the vocabulary, for naming cached token files."""
        import hashlib

        canonical = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(canonical).hexdigest()[:16]

    # -- use -----------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return self.offset + self.tokenizer.get_vocab_size()

    def __len__(self) -> int:
        return self.size

    def special_id(self, token: str) -> int:
        """The id of a special token such as "<s>"."""
        return self.specials.index(token)

    def unknown_characters(self, text: str) -> list[str]:
        """Characters of text the vocabulary cannot represent (always none for byte-level BPE)."""
        if self._char_table is None:
            return []
        return sorted(set(text) - self._char_table.keys())

    def encode(self, text: str, *, unknown_id: int | None = None) -> list[int]:
        """Token ids of text. Characters outside a character vocabulary are an error, or become
        unknown_id when one is given (a translator meeting a new character)."""
        if self._char_table is not None:
            table = self._char_table
            if unknown_id is not None:
                return [table.get(ch, unknown_id) for ch in text]
            missing = self.unknown_characters(text)
            if missing:
                raise CharrnnError(f"text has characters the vocabulary lacks: {format_characters(missing)}")
            return [table[ch] for ch in text]
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        return [i + self.offset for i in ids] if self.offset else ids

    def encode_array(self, text: str) -> np.ndarray:
        """Encode a large text to an int64 array.

        For character vocabularies this maps code points through a lookup table built from the
        tokenizer's own vocabulary: the same ids as tokenizer.encode (a test checks it) at about
        100x the speed, which matters for corpora of hundreds of megabytes.
        """
        if self._char_table is None:
            return np.asarray(self.encode(text), dtype=np.int64)
        missing = self.unknown_characters(text)
        if missing:
            raise CharrnnError(f"text has characters the vocabulary lacks: {format_characters(missing)}")
        code_points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        return self._code_point_table()[code_points]

    def _code_point_table(self) -> np.ndarray:
        table = self._table_cache
        if table is None:
            highest = max(ord(ch) for ch in self._char_table)
            table = np.full(highest + 1, -1, dtype=np.int64)
            for ch, i in self._char_table.items():
                table[ord(ch)] = i
            self._table_cache = table
        return table

    def decode(self, ids: Iterable[int]) -> str:
        """Text of token ids; special tokens are left out."""
        ids = [i - self.offset for i in ids if i >= self.offset]
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def stream_decoder(self) -> StreamDecoder:
        return StreamDecoder(self)


class StreamDecoder:
    """Turns token ids into text one at a time for streaming output. A byte-level BPE token can
    end in the middle of a multi-byte character; such bytes are held back until the character is
    complete, so the streamed pieces always join to exactly vocab.decode(all ids)."""

    def __init__(self, vocab: Vocab):
        self.vocab = vocab
        self._pending: list[int] = []

    def step(self, token_id: int) -> str:
        if self.vocab.kind == "char":
            if token_id < self.vocab.offset:
                return ""  # a special token has no text
            return self.vocab.tokenizer.id_to_token(token_id - self.vocab.offset)
        self._pending.append(token_id)
        text = self.vocab.decode(self._pending)
        if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for more bytes
            return ""
        self._pending = []
        return text

    def flush(self) -> str:
        """Whatever is still held back (an unfinished character decodes as U+FFFD)."""
        text = self.vocab.decode(self._pending) if self._pending else ""
        self._pending = []
        return text


def format_characters(chars: Iterator[str] | list[str], limit: int = 20) -> str:
    """List characters readably: printable ones quoted, others as U+XXXX."""
    chars = list(chars)
    shown = [repr(ch) if ch.isprintable() else f"U+{ord(ch):04X}" for ch in chars[:limit]]
    more = f" and {len(chars) - limit} more" if len(chars) > limit else ""
    return ", ".join(shown) + more
