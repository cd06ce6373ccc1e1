"""The sequence autoencoder (sequence to vector to sequence): the translator's encoder-decoder
without attention, trained to give back its input sentence from the one vector the decoder starts
from, so that the vector must hold the sentence. In training the decoder's input tokens are dropped
(replaced by <unk>) at word_dropout, so it cannot lean on them instead of the vector, and the
encoder may read a corrupted sentence (tokens deleted at noise: a denoising autoencoder). Also
the vectors (embed), decoding from vectors (reconstruct, interpolate) and the reconstruction
figures."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import torch

from ..checkpoint import Checkpoint, load_checkpoint, rebuilding_from, restore_for_inference
from ..corpora import locate_data_file, recorded_data_file
from ..data import pad_batch
from ..devices import resolve_device
from ..embedding import Embedder, in_length_order
from ..errors import CharrnnError, UsageError
from ..numbers import check_range
from ..runs import OneFileRecipe, PreparedRun, RunPlace, train_task
from ..text_encoding import check_encoding, not_in_encoding
from ..train import TrainConfig, TrainResult
from ..translate.decoding import beam_decode, greedy_decode
from ..translate.model import EncoderOutput, Translator, TranslatorConfig
from ..translate.pairs import PairSplit, open_text, split_pairs, typed_variant, with_typed_copies
from ..translate.task import BOS, EOS, PAD, UNK, TranslationTask, mean_encoder_states, seq2seq_vocab
from ..vocab import Vocab

TASK = "autoencoder"
TRAIN_DEFAULTS = dict(learning_rate=2e-3, min_lr_ratio=0.1, warmup_steps=100, eval_every=500, weight_decay=0.1)
# What the model is when the user leaves it: a GRU encoder-decoder, and no attention, which would
# let the decoder copy the input instead of reading the vector.
MODEL_DEFAULTS = dict(cell="gru", embedding_size=128, hidden_size=256, encoder_layers=1, decoder_layers=1,
                      attention="none", dropout=0.1, label_smoothing=0.0)


@dataclass
class AutoencoderDataConfig:
    tokenizer: str = "char"
    vocab_size: int = 4000  # BPE only
    batch_size: int = 64  # sentences a batch
    max_tokens: int = 120  # longer sentences are left out of training
    test_size: int = 1000
    dev_size: int = 1000
    split_seed: int = 0
    column: int = 1  # of tab-separated lines, the one that holds the sentence (spa-eng.tsv.gz: 1, English)
    encoding: str = "utf-8"
    word_dropout: float = 0.25  # share of the decoder's input tokens replaced by <unk> in training
    noise: float = 0.0  # share of the encoder's input tokens deleted in training (denoising)
    # Share of the training sentences also given as people type them (lower-case, no final
    # punctuation; translate.pairs.typed_variant), written back as typed: Tatoeba's sentences are
    # all edited, and a model of them alone wrote "this movie was great" back as "Stis movie was geams wearg."
    # 0 here, so that runs saved before the option resume on the sentences they trained on;
    # `autoencode train` gives 0.25, chosen on the dev sentences (README).
    typed_copies: float = 0.0

    def validate(self) -> None:
        if self.tokenizer not in ("char", "bpe"):
            raise UsageError(f"unknown --tokenizer {self.tokenizer!r}; choose char or bpe")
        if self.batch_size < 1 or self.max_tokens < 2:
            raise UsageError("--batch-size must be at least 1 and --max-tokens at least 2")
        check_range(self.test_size, "--test-size", low=1)
        check_range(self.dev_size, "--dev-size", low=1)
        check_range(self.column, "--column", low=1)
        for value, option in ((self.word_dropout, "--word-dropout"), (self.noise, "--noise")):
            if not 0 <= value < 1:
                raise UsageError(f"{option} must be in [0, 1), not {value}")
        if not 0 <= self.typed_copies <= 1:
            raise UsageError(f"--typed-copies must be in [0, 1], not {self.typed_copies}")
        check_encoding(self.encoding)


def read_sentences(path: str | Path, data: AutoencoderDataConfig) -> list[str]:
    """The distinct sentences of a file (plain or gzip), one a line, or the data.column-th column
    of tab-separated lines; blank lines and repeats are left out (a repeat in the test split
    would measure memory)."""
    path = Path(path)
    seen: dict[str, None] = {}
    try:
        with open_text(path, data.encoding) as handle:
            for line in handle:
                columns = line.rstrip("\r\n").split("\t")
                if len(columns) >= data.column and columns[data.column - 1].strip():
                    seen.setdefault(columns[data.column - 1].strip(), None)
    except UnicodeError as exc:
        raise not_in_encoding(f"sentence file {path}", data.encoding, exc) from None
    except (OSError, EOFError) as exc:
        raise CharrnnError(f"cannot read sentence file {path}: {exc}") from None
    if not seen:
        raise CharrnnError(f"sentence file {path} has no sentences" +
                           (f" in column {data.column}" if data.column > 1 else ""))
    return list(seen)


def split_sentences(sentences: Sequence[str], data: AutoencoderDataConfig) -> PairSplit:
    """The translator's deterministic split, each sentence its own pair, and the typed copies of a
    share of the training sentences (data.typed_copies) after them; dev and test stay as written."""
    split = split_pairs([(s, s) for s in sentences], test_size=data.test_size, dev_size=data.dev_size, seed=data.split_seed)
    # A copy's typed sentence is its own target: training reads only the first of a pair.
    return replace(split, train=with_typed_copies(split.train, data.typed_copies, seed=data.split_seed))


class AutoencoderTask(TranslationTask):
    """The translator's training (batches of similar length, teacher-forced loss, evaluation on the
    dev sentences as they are), each sentence its own target, with the decoder's input tokens
    dropped and the encoder's input corrupted as the data settings say. The draws come from
    Python's random module, whose state the checkpoints keep, so a resume is exact."""

    name = TASK

    def training_loss(self, model, device):
        sentences = [self.train_pairs[i][0] for i in self.batches.next()]
        source, lengths = pad_batch([_deleted(s, self.data.noise) for s in sentences], PAD, device)
        target_in, _ = pad_batch([[BOS] + _dropped(s, self.data.word_dropout) for s in sentences], PAD, device)
        target_out, _ = pad_batch([s + [EOS] for s in sentences], PAD, device)
        _, loss = model(source, lengths, target_in, target_out)
        return loss, int((target_out != PAD).sum())

    def checkpoint_fields(self) -> dict:
        fields = super().checkpoint_fields()
        del fields["source_vocab"]  # the same as the target's: kept once, as "vocab"
        vocab = fields.pop("target_vocab")
        return {**fields, "task": TASK, "vocab": vocab}


def _dropped(tokens: list[int], share: float) -> list[int]:
    return [UNK if share and random.random() < share else token for token in tokens]


def _deleted(tokens: list[int], share: float) -> list[int]:
    kept = [token for token in tokens if not (share and random.random() < share)]
    return kept or tokens[:1]


# -- training ----------------------------------------------------------------------------------


def train_autoencoder(sentences_path: str | None, *, model_config: dict | None = None,
                      data: AutoencoderDataConfig | None = None, **run) -> TrainResult:
    """Train a sequence autoencoder on a file of sentences (plain or gzip; one a line, or a column
    of tab-separated lines), or resume a run. run: the options of runs.train_task."""
    recipe = AutoencoderRecipe(sentences_path, {**MODEL_DEFAULTS, **(model_config or {})}, data or AutoencoderDataConfig())
    return train_task(recipe, **run)


@dataclass
class AutoencoderRecipe(OneFileRecipe):
    """How runs.train_task builds an autoencoder run: data_file is the sentence file."""

    name: str = TASK
    config_type: ClassVar[type] = TranslatorConfig
    missing_data: ClassVar[str] = "give a file of sentences to train on (one a line)"

    def new_run(self, train: TrainConfig, place: RunPlace) -> PreparedRun:
        path = locate_data_file(self.data_file, "sentence file")
        split = split_sentences(read_sentences(path, self.data), self.data)
        place.preparing(f"building the vocabulary from {len(split.train):,} training sentences")
        vocab = seq2seq_vocab([s for s, _ in split.train], self.data.tokenizer, self.data.vocab_size)
        model = Translator(TranslatorConfig(source_vocab_size=vocab.size, target_vocab_size=vocab.size, pad_id=PAD,
                                            **self.model_config))
        return self._prepared(model, vocab, split, self.data, path, train.with_defaults(**TRAIN_DEFAULTS))

    def resumed_run(self, checkpoint: Checkpoint, train: TrainConfig, place: RunPlace) -> PreparedRun:
        path = locate_data_file(self.data_file or recorded_data_file(checkpoint.metadata["corpus_path"]), "sentence file")
        data = AutoencoderDataConfig(**checkpoint.metadata["data_config"])
        split = split_sentences(read_sentences(path, data), data)
        model = Translator(TranslatorConfig(**checkpoint.metadata["model_config"]))
        return self._prepared(model, Vocab.from_dict(checkpoint.metadata["vocab"]), split, data, path, train)

    @staticmethod
    def _prepared(model, vocab: Vocab, split: PairSplit, data: AutoencoderDataConfig, path: Path,
                  train: TrainConfig) -> PreparedRun:
        train_ids = [(ids, ids) for ids in (vocab.encode(s, unknown_id=UNK) for s, _ in split.train)
                     if len(ids) + 1 <= data.max_tokens]
        dev_ids = [(ids, ids) for ids in (vocab.encode(s, unknown_id=UNK) for s, _ in split.dev)]
        task = AutoencoderTask(model, vocab, vocab, train_ids, dev_ids, data, seed=train.seed,
                               corpus_path=str(path.resolve()), corpus_name=path.name)
        return PreparedRun(task, train)


# -- inference ---------------------------------------------------------------------------------


def load_autoencoder(checkpoint: str | Path, device: str = "auto") -> tuple[Translator, Vocab, Checkpoint]:
    target = resolve_device(device)  # outside rebuilding_from: a bad --device is the user's, not the file's
    saved = load_checkpoint(checkpoint, task=TASK)
    with rebuilding_from(checkpoint):
        AutoencoderDataConfig(**saved.metadata["data_config"])  # read by every use: a damaged one fails here
        model = restore_for_inference(Translator(TranslatorConfig(**saved.metadata["model_config"])), saved, target)
        return model, Vocab.from_dict(saved.metadata["vocab"]), saved


@torch.inference_mode()
def sentence_vectors(model: Translator, vocab: Vocab, texts: Sequence[str], *, batch_size: int = 64) -> torch.Tensor:
    """The vector the decoder starts from, (N, D), for each text in input order: the decoder's
    first state (both parts for an LSTM, joined)."""
    device = next(model.parameters()).device
    ids = [vocab.encode(text.strip(), unknown_id=UNK) or [UNK] for text in texts]

    def run(chunk: list[int]) -> torch.Tensor:
        source, lengths = pad_batch([ids[i] for i in chunk], PAD, device)
        return torch.cat([part[-1] for part in model.encode(source, lengths).state], dim=-1)

    return in_length_order([len(i) for i in ids], batch_size, run, vector_size(model))


def vector_size(model: Translator) -> int:
    return model.config.hidden_size * (2 if model.config.cell == "lstm" else 1)


@torch.inference_mode()
def decode_vectors(model: Translator, vocab: Vocab, vectors: torch.Tensor, *, beam: int = 1,
                   max_len: int = 200) -> list[str]:
    """The text the decoder writes from each vector (N, D): greedy, or beam search."""
    check_range(beam, "--beam", 1, 100)
    device = next(model.parameters()).device
    vectors = vectors.to(device)
    N = vectors.shape[0]
    parts = vectors.split(model.config.hidden_size, dim=-1)
    state = tuple(part.unsqueeze(0).expand(model.config.decoder_layers, -1, -1).contiguous() for part in parts)
    # Without attention the decoder reads no memory: one position of zeros stands in for it.
    encoded = EncoderOutput(memory=torch.zeros(N, 1, model.config.hidden_size, device=device),
                            mask=torch.ones(N, 1, dtype=torch.bool, device=device), state=state)
    search = dict(bos_id=BOS, eos_id=EOS, max_len=max_len)
    hypotheses = greedy_decode(model, encoded, **search) if beam == 1 else beam_decode(model, encoded, beam_size=beam, **search)
    return [vocab.decode(h.tokens) for h in hypotheses]


def reconstruct(model: Translator, vocab: Vocab, texts: Sequence[str], *, beam: int = 1, batch_size: int = 64) -> list[str]:
    """Each text encoded to its vector and written back from it alone ("" for an empty text)."""
    filled = [i for i, text in enumerate(texts) if text.strip()]
    out = [""] * len(texts)
    if filled:
        vectors = sentence_vectors(model, vocab, [texts[i] for i in filled], batch_size=batch_size)
        longest = max(len(texts[i]) for i in filled)
        for i, text in zip(filled, decode_vectors(model, vocab, vectors, beam=beam, max_len=2 * longest + 10)):
            out[i] = text
    return out


def interpolate(model: Translator, vocab: Vocab, first: str, last: str, *, steps: int = 5, beam: int = 1) -> list[str]:
    """The sentences written from steps vectors evenly spaced on the line between two sentences'
    vectors, the two ends included."""
    check_range(steps, "--steps", 2, 1000)
    if not first.strip() or not last.strip():
        raise UsageError("give two non-empty sentences to interpolate between")
    ends = sentence_vectors(model, vocab, [first, last])
    weights = torch.linspace(0.0, 1.0, steps).unsqueeze(1)
    vectors = (1 - weights) * ends[0] + weights * ends[1]
    return decode_vectors(model, vocab, vectors, beam=beam, max_len=2 * max(len(first), len(last)) + 10)


def load_embedder(checkpoint: str | Path, *, device: str = "auto", batch_size: int = 64) -> Embedder:
    """The autoencoder's vectors for search: its encoder's states averaged over the sentence, as
    the translator's are. They found paraphrases better than the vector the decoder starts from
    (dev sentences of spa-eng: 71.5% against 58.5% top-1; README), which is what interpolate
    walks and sentence_vectors gives."""
    model, vocab, _ = load_autoencoder(checkpoint, device)
    return Embedder(TASK, model.config.hidden_size,
                    lambda texts: mean_encoder_states(model, [vocab.encode(t.strip(), unknown_id=UNK) or [UNK] for t in texts],
                                                      batch_size))


@dataclass
class Reconstruction:
    sentences: int
    exact: float  # share written back exactly
    character_error_rate: float  # edit distance / characters, over all sentences


def reconstruction_figures(model: Translator, vocab: Vocab, sentences: Sequence[str], *, beam: int = 1) -> Reconstruction:
    written = reconstruct(model, vocab, sentences, beam=beam)
    errors = sum(_edit_distance(s, w) for s, w in zip(sentences, written))
    exact = sum(s == w for s, w in zip(sentences, written))
    return Reconstruction(len(sentences), exact / max(1, len(sentences)),
                          errors / max(1, sum(len(s) for s in sentences)))


def held_out_sentences(checkpoint: Checkpoint, path: str | None = None, *, part: str = "test") -> list[str]:
    """The held-out sentences ("test" or "dev") of the run that made a checkpoint (its file, or path)."""
    data = AutoencoderDataConfig(**checkpoint.metadata["data_config"])
    source = locate_data_file(path or recorded_data_file(checkpoint.metadata["corpus_path"]), "sentence file")
    split = split_sentences(read_sentences(source, data), data)
    return [s for s, _ in (split.test if part == "test" else split.dev)]


def as_typed(sentences: Sequence[str], seed: int = 0) -> list[str]:
    """The sentences as people type them (translate.pairs.typed_variant), drawn with seed."""
    rng = random.Random(seed)
    return [typed_variant(s, rng) for s in sentences]


def _edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]

