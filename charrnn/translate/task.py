"""The translation task: sentence pairs become vocabularies, encoded pairs and train/dev/test
splits; training is teacher-forced over length-bucketed batches; evaluation is the dev loss;
translation decodes batches of lines (greedy or beam) and keeps their order."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import ClassVar

import torch

from ..checkpoint import Checkpoint, load_checkpoint, rebuilding_from, restore_for_inference
from ..corpora import data_notes, recorded_data_file
from ..data import BucketedBatches, pad_batch
from ..distributed import Ranks
from ..embedding import Embedder, in_length_order, masked_mean
from ..devices import resolve_device
from ..errors import CharrnnError, UsageError
from ..normalise import as_written_sentence, learn_casing
from ..text_encoding import check_encoding
from ..numbers import check_finite, check_range
from ..runs import OneFileRecipe, PreparedRun, RunPlace, train_task
from ..train import TrainConfig, TrainResult
from ..vocab import SEQ2SEQ_SPECIALS, Vocab
from .decoding import beam_search, greedy_search
from .model import Translator, TranslatorConfig
from .pairs import PairSplit, TooFewPairs, read_pairs, split_pairs, with_typed_copies

TASK = "translator"
# Training settings a caller leaves unset (the CLI's defaults, chosen on the dev pairs).
TRAIN_DEFAULTS = dict(learning_rate=2e-3, min_lr_ratio=0.1, warmup_steps=200, eval_every=500, weight_decay=0.1)
# Training sources count as written sentences when this share of them already are (Tatoeba's
# English: all but 1 in 100,000).
WRITTEN_SHARE = 0.9
PAD, UNK, BOS, EOS = (SEQ2SEQ_SPECIALS.index(t) for t in SEQ2SEQ_SPECIALS)
# Decoding never repeats an n-gram of this many BPE tokens (chosen on the dev pairs; README), about
# three words. A character model counts characters, where a repeated 3-gram is ordinary ("de la ...
# de la"), so it blocks only a repeat of NO_REPEAT_CHARS characters, two or three words.
NO_REPEAT_NGRAM = 3
NO_REPEAT_CHARS = 16


def default_no_repeat_ngram(target_vocab: Vocab) -> int:
    return NO_REPEAT_CHARS if target_vocab.kind == "char" else NO_REPEAT_NGRAM


@dataclass
class TranslationDataConfig:
    tokenizer: str = "bpe"  # measured against char by BLEU on dev (README)
    vocab_size: int = 8000  # BPE only
    shared_vocab: bool = False  # one vocabulary for both sides (BPE or char)
    batch_size: int = 64  # sentence pairs a batch
    max_tokens: int = 120  # longer pairs are left out of training (Tatoeba has a few paragraphs)
    test_size: int = 2000
    dev_size: int = 2000
    split_seed: int = 0
    reverse: bool = False
    skip_bad: bool = False
    encoding: str = "utf-8"  # of the pair file
    # A share of the training pairs is also given with its source as people type it (lower-case,
    # no final punctuation; pairs.with_typed_copies); dev and test pairs never change.
    typed_copies: float = 0.0
    # Whether the training sources are written as sentences (a capital first letter, final
    # punctuation), as Tatoeba's are; then typed input is written so before it is translated
    # (normalise.as_written_sentence). None: decided from the training sources (WRITTEN_SHARE).
    written_sources: bool | None = None
    # How the written training sources write words with capitals ({"tom": "Tom"}; see
    # normalise.learn_casing), so that typed "tom" is read as "Tom". None: learnt from the
    # training sources when they are written; {} otherwise.
    source_casing: dict[str, str] | None = None

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> TranslationDataConfig:
        """The data settings a checkpoint was trained with. Checkpoints from before
        written_sources were all trained on Tatoeba's written sentences; those from before
        source_casing learnt none."""
        return cls(**{"written_sources": True, "source_casing": {}, **checkpoint.metadata["data_config"]})

    def validate(self) -> None:
        if not 0 <= self.typed_copies <= 1:
            raise UsageError(f"--typed-copies must be in [0, 1], not {self.typed_copies}")
        if self.tokenizer not in ("char", "bpe"):
            raise UsageError(f"unknown --tokenizer {self.tokenizer!r}; choose char or bpe")
        if self.batch_size < 1 or self.max_tokens < 2:
            raise UsageError("--batch-size must be at least 1 and --max-tokens at least 2")
        check_range(self.test_size, "--test-size", low=1)  # an empty test split has no figure to report
        check_range(self.dev_size, "--dev-size", low=1)  # nor an empty dev split a checkpoint to choose


def build_vocabs(split: PairSplit, data: TranslationDataConfig) -> tuple[Vocab, Vocab]:
    """Source and target vocabularies from the training pairs only (dev and test stay unseen)."""
    sources = [s for s, _ in split.train]
    targets = [t for _, t in split.train]
    if data.shared_vocab:
        shared = seq2seq_vocab(sources + targets, data.tokenizer, data.vocab_size)
        return shared, shared
    return seq2seq_vocab(sources, data.tokenizer, data.vocab_size), seq2seq_vocab(targets, data.tokenizer, data.vocab_size)


def seq2seq_vocab(texts: Sequence[str], tokenizer: str, vocab_size: int) -> Vocab:
    """A character or BPE vocabulary (of vocab_size) of texts, with the encoder-decoder's special
    tokens (padding, unknown, start and end)."""
    if tokenizer == "char":
        return Vocab.build_char("".join(texts), specials=SEQ2SEQ_SPECIALS)
    return Vocab.train_bpe(texts, vocab_size, specials=SEQ2SEQ_SPECIALS)


def encode_pairs(pairs, source_vocab: Vocab, target_vocab: Vocab, *, max_tokens: int | None = None):
    """Token ids of every pair (unknown characters become <unk>); pairs longer than max_tokens
    on either side are left out."""
    encoded = []
    for source, target in pairs:
        s = source_vocab.encode(source, unknown_id=UNK)
        t = target_vocab.encode(target, unknown_id=UNK)
        if max_tokens is None or (len(s) <= max_tokens and len(t) + 1 <= max_tokens):
            encoded.append((s, t))
    return encoded


def make_training_batch(pairs, device):
    """Source ids and lengths, target inputs (<s> + target) and targets (target + </s>)."""
    source, lengths = pad_batch([s for s, _ in pairs], PAD, device)
    target_in, _ = pad_batch([[BOS] + t for _, t in pairs], PAD, device)
    target_out, _ = pad_batch([t + [EOS] for _, t in pairs], PAD, device)
    return source, lengths, target_in, target_out


class TranslationTask:
    """Teacher-forced training over batches of pairs of similar source length."""

    name = TASK

    @staticmethod
    def describe_metrics(metrics: dict) -> str:
        return f"{metrics['val_loss']:.4f} nats/token, perplexity {metrics['val_ppl']:.2f}"

    def __init__(self, model: Translator, source_vocab: Vocab, target_vocab: Vocab, train_pairs, dev_pairs,
                 data: TranslationDataConfig, *, seed: int, corpus_path: str | None, corpus_name: str):
        self.model = model
        self.source_vocab = source_vocab
        self.target_vocab = target_vocab
        self.train_pairs = train_pairs
        self.dev_pairs = dev_pairs
        self.data = data
        self.corpus_path = corpus_path
        self.corpus_name = corpus_name
        self.ranks = Ranks.current()  # under torchrun: this process's share of the batches and evaluation
        self.batches = BucketedBatches([len(s) for s, _ in train_pairs], data.batch_size, seed=seed, ranks=self.ranks)
        self.steps_per_epoch = self.batches.batches_per_epoch

    def training_loss(self, model, device):
        pairs = [self.train_pairs[i] for i in self.batches.next()]
        source, lengths, target_in, target_out = make_training_batch(pairs, device)
        _, loss = model(source, lengths, target_in, target_out)
        return loss, int((target_out != PAD).sum())

    def evaluate(self, model, device, max_tokens: int | None = None) -> dict[str, float]:
        # Scores all of its validation data whatever max_tokens says (small enough to). Under
        # torchrun each rank scores its part of the batches, and the sums are added up.
        total, count = 0.0, 0
        starts = range(0, len(self.dev_pairs), 128)
        for start in (starts[i] for i in self.ranks.part(len(starts))):
            pairs = self.dev_pairs[start : start + 128]
            source, lengths, target_in, target_out = make_training_batch(pairs, device)
            logits, _ = model(source, lengths, target_in)
            total += float(torch.nn.functional.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), target_out.reshape(-1), ignore_index=PAD, reduction="sum"))
            count += int((target_out != PAD).sum())
        total, count = self.ranks.sum([total, count])
        val_loss = total / max(1, count)
        return {"val_loss": val_loss, "val_ppl": float(torch.tensor(min(val_loss, 50.0)).exp())}

    def data_state(self) -> dict:
        return self.batches.state()

    def load_data_state(self, state: dict) -> None:
        self.batches.load_state(state)

    def checkpoint_fields(self) -> dict:
        return {
            "task": TASK,
            "model_config": asdict(self.model.config),
            "source_vocab": self.source_vocab.to_dict(),
            "target_vocab": self.target_vocab.to_dict(),
            "data_config": asdict(self.data),
            "split_seed": self.data.split_seed,
            "corpus": self.corpus_name,
            "corpus_path": self.corpus_path,
            "notes": data_notes(Path(self.corpus_path)) if self.corpus_path else {},
        }


# -- training ----------------------------------------------------------------------------------


def load_split(pairs_path: str, data: TranslationDataConfig) -> tuple[PairSplit, TranslationDataConfig, list[int], Path]:
    """Read the pair file and split it; also the data settings with written_sources and
    source_casing decided, the numbers of the lines skipped as malformed, and the file the pairs
    came from."""
    from ..corpora import locate_data_file

    path = locate_data_file(pairs_path, "pair file")
    pair_file = read_pairs(path, reverse=data.reverse, skip_bad=data.skip_bad, encoding=data.encoding)
    split = split_pairs(pair_file.pairs, test_size=data.test_size, dev_size=data.dev_size, seed=data.split_seed)
    if data.written_sources is None:
        data = replace(data, written_sources=sources_are_written([source for source, _ in split.train]))
    if data.source_casing is None:
        data = replace(data, source_casing=learn_casing(source for source, _ in split.train) if data.written_sources else {})
    split = replace(split, train=with_typed_copies(split.train, data.typed_copies, seed=data.split_seed))
    return split, data, pair_file.bad_lines, path


def learn_source_casing(checkpoint: Checkpoint, pairs_path: str | None = None) -> dict[str, str]:
    """The source_casing a checkpoint's run learns today, from its corpus (or pairs_path) split
    again with the run's settings: for a checkpoint trained before source_casing existed."""
    _, data = split_again(checkpoint, pairs_path, replace(TranslationDataConfig.from_checkpoint(checkpoint), source_casing=None))
    return data.source_casing


def split_again(checkpoint: Checkpoint, pairs_path: str | None, data: TranslationDataConfig) -> tuple[PairSplit, TranslationDataConfig]:
    """The split of the run that made a checkpoint, from its recorded corpus (or pairs_path), with
    data's settings, and those settings as load_split decides them."""
    split, data, _, _ = load_split(pair_file_of(checkpoint, pairs_path), data)
    return split, data


def pair_file_of(checkpoint: Checkpoint, pairs_path: str | None) -> str:
    """pairs_path, or else the pair file the checkpoint's run trained on."""
    if pairs_path is None and not checkpoint.metadata.get("corpus_path"):
        raise UsageError("this checkpoint does not name its corpus; give the pair file with --data")
    return str(pairs_path or recorded_data_file(checkpoint.metadata["corpus_path"]))


def sources_are_written(sources: Sequence[str]) -> bool:
    """Whether at least WRITTEN_SHARE of the sources are already written as sentences (so
    as_written_sentence leaves them unchanged)."""
    written = sum(as_written_sentence(source) == source.strip() for source in sources)
    return written >= WRITTEN_SHARE * max(1, len(sources))


def train_translator(pairs_path: str | None, *, model_config: dict | None = None,
                     data: TranslationDataConfig | None = None, **run) -> TrainResult:
    """Train a translator on a `source<TAB>target` file (plain or gzip), or resume a run. run: the
    options of runs.train_task, which every task's training shares (train, run_dir, resume,
    device, precision, overwrite, on_event)."""
    recipe = TranslatorRecipe(pairs_path, model_config or {}, data or TranslationDataConfig())
    return train_task(recipe, **run)


@dataclass
class TranslatorRecipe(OneFileRecipe):
    """How runs.train_task builds a translation run: data_file is the pair file."""

    name: str = TASK
    config_type: ClassVar[type] = TranslatorConfig
    missing_data: ClassVar[str] = "give a pair file to train on (source<TAB>target lines)"

    def new_run(self, train: TrainConfig, place: RunPlace) -> PreparedRun:
        split, data, _, path = load_split(self.data_file, self.data)
        place.preparing(f"building the vocabularies from {len(split.train):,} training pairs")
        source_vocab, target_vocab = build_vocabs(split, data)
        model = Translator(TranslatorConfig(source_vocab_size=source_vocab.size, target_vocab_size=target_vocab.size,
                                            pad_id=PAD, **self.model_config))
        return self._prepared(model, source_vocab, target_vocab, split, data, path, train.with_defaults(**TRAIN_DEFAULTS), place)

    def resumed_run(self, checkpoint: Checkpoint, train: TrainConfig, place: RunPlace) -> PreparedRun:
        pairs_path = self.data_file or recorded_data_file(checkpoint.metadata["corpus_path"])
        split, data, _, path = load_split(pairs_path, TranslationDataConfig.from_checkpoint(checkpoint))
        model = Translator(TranslatorConfig(**checkpoint.metadata["model_config"]))
        return self._prepared(model, Vocab.from_dict(checkpoint.metadata["source_vocab"]), Vocab.from_dict(checkpoint.metadata["target_vocab"]),
                              split, data, path, train, place)

    @staticmethod
    def _prepared(model, source_vocab, target_vocab, split, data, path: Path, train: TrainConfig,
                  place: RunPlace) -> PreparedRun:
        place.preparing(f"encoding {len(split.train) + len(split.dev):,} pairs")
        train_pairs = encode_pairs(split.train, source_vocab, target_vocab, max_tokens=data.max_tokens)
        dev_pairs = encode_pairs(split.dev, source_vocab, target_vocab)
        task = TranslationTask(model, source_vocab, target_vocab, train_pairs, dev_pairs, data, seed=train.seed,
                               corpus_path=str(path.resolve()), corpus_name=path.name)
        return PreparedRun(task, train)


# -- inference ---------------------------------------------------------------------------------


def load_translator(checkpoint: str | Path, device: str = "auto") -> tuple[Translator, Vocab, Vocab, Checkpoint]:
    target = resolve_device(device)  # outside rebuilding_from: a bad --device is the user's, not the file's
    saved = load_checkpoint(checkpoint, task=TASK)
    with rebuilding_from(checkpoint):
        TranslationDataConfig.from_checkpoint(saved)  # read by every use: a damaged one fails here
        model = restore_for_inference(Translator(TranslatorConfig(**saved.metadata["model_config"])), saved, target)
        return model, Vocab.from_dict(saved.metadata["source_vocab"]), Vocab.from_dict(saved.metadata["target_vocab"]), saved


def load_embedder(checkpoint: str | Path, *, device: str = "auto", batch_size: int = 64) -> Embedder:
    """The translator's sentence vectors: its encoder's states averaged over the source (see
    mean_encoder_states), the source read as translating reads it."""
    model, source_vocab, _, saved = load_translator(checkpoint, device)
    data = TranslationDataConfig.from_checkpoint(saved)

    def vectors_of(texts: Sequence[str]) -> torch.Tensor:
        read = [as_written_sentence(text, data.source_casing) if data.written_sources else text.strip() for text in texts]
        return mean_encoder_states(model, [source_vocab.encode(text, unknown_id=UNK) for text in read], batch_size)

    return Embedder(TASK, model.config.hidden_size, vectors_of)


@torch.inference_mode()
def mean_encoder_states(model: Translator, ids: Sequence[Sequence[int]], batch_size: int) -> torch.Tensor:
    """(N, H): each sentence's encoder states (both directions of the top layer) averaged over
    its tokens, in input order."""
    device = next(model.parameters()).device

    def run(chunk: list[int]) -> torch.Tensor:
        source, lengths = pad_batch([ids[i] for i in chunk], PAD, device)
        return masked_mean(model.encode(source, lengths).memory, lengths)

    return in_length_order([len(i) for i in ids], batch_size, run, model.config.hidden_size)


# The default output cap grows with the input (twice it, plus 10 tokens) up to this: a model
# trained on sentences (pairs up to max_tokens, 120 by default) has never written more, and an
# uncapped 10,000-character line took over a minute to decode. --max-len sets any cap.
MAX_DEFAULT_OUTPUT = 256
# The largest --max-len and --beam: decoding keeps beam x max_len tokens a sentence, and beyond
# these a batch exhausts memory long before a better translation comes out.
MAX_OUTPUT = 10_000
MAX_BEAM = 100


@dataclass
class Translation:
    source: str  # the line as given
    text: str
    score: float  # log-probability of the output
    tokens: list[int]
    read_as: str  # the source as the model read it (normalised or stripped)


def translate(model: Translator, source_vocab: Vocab, target_vocab: Vocab, lines: Sequence[str], *, beam: int = 1,
              max_len: int | None = None, batch_size: int = 64, length_penalty: float = 1.0,
              no_repeat_ngram: int | None = None, normalise: bool = False,
              casing: Mapping[str, str] | None = None) -> list[Translation]:
    """Translate lines in batches of similar length, returning results in input order. An empty
    line gives an empty translation, so outputs stay aligned with inputs line by line.

    With normalise, each line is first written as Tatoeba's English sentences are (a capital,
    final punctuation, and the words of casing with their capitals; see
    normalise.as_written_sentence): pass the checkpoint's
    TranslationDataConfig.from_checkpoint(checkpoint).written_sources and .source_casing. The
    bundled model, which has seen nothing else, scored 41.4 beam BLEU on typed dev sources read
    so (37.3 without the casing, 9.2 read as typed; 41.7 on the sources as written).
    No output repeats an n-gram of no_repeat_ngram tokens (0: no blocking; None:
    default_no_repeat_ngram)."""
    check_range(beam, "--beam", 1, MAX_BEAM)
    check_range(batch_size, "--batch-size", low=1)
    check_range(max_len, "--max-len", 1, MAX_OUTPUT)
    check_range(no_repeat_ngram, "--no-repeat-ngram", low=0)
    check_finite(length_penalty, "--length-penalty")
    if no_repeat_ngram is None:
        no_repeat_ngram = default_no_repeat_ngram(target_vocab)
    device = next(model.parameters()).device
    results: list[Translation | None] = [None] * len(lines)
    encoded = []
    for i, line in enumerate(lines):
        text = as_written_sentence(line, casing) if normalise else line.strip()
        if text:
            encoded.append((i, text, source_vocab.encode(text, unknown_id=UNK)))
        else:
            results[i] = Translation(line, "", 0.0, [], "")
    encoded.sort(key=lambda item: len(item[2]))
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start : start + batch_size]
        source, lengths = pad_batch([ids for _, _, ids in chunk], PAD, device)
        limit = max_len or min(int(lengths.max()) * 2 + 10, MAX_DEFAULT_OUTPUT)
        if beam == 1:
            hypotheses = greedy_search(model, source, lengths, bos_id=BOS, eos_id=EOS, max_len=limit,
                                       no_repeat_ngram=no_repeat_ngram)
        else:
            hypotheses = beam_search(model, source, lengths, bos_id=BOS, eos_id=EOS, max_len=limit, beam_size=beam,
                                     length_penalty=length_penalty, no_repeat_ngram=no_repeat_ngram)
        for (i, text, _), hyp in zip(chunk, hypotheses):
            results[i] = Translation(lines[i], target_vocab.decode(hyp.tokens), hyp.score, hyp.tokens, text)
    return results


@torch.inference_mode()
def attention_weights(model: Translator, source_vocab: Vocab, translation: Translation) -> torch.Tensor | None:
    """The attention the model paid to each source token while producing each output token of a
    translation, (output tokens + </s>, source tokens): the decoder re-run on its own output."""
    if model.attention is None:
        return None
    device = next(model.parameters()).device
    source, lengths = pad_batch([source_vocab.encode(translation.read_as, unknown_id=UNK)], PAD, device)
    encoded = model.encode(source, lengths)
    target_in = torch.tensor([[BOS] + translation.tokens], device=device)
    _, _, weights = model.decode(target_in, encoded, encoded.state, model.keys(encoded))
    return weights[0].float().cpu()


# -- evaluation --------------------------------------------------------------------------------


@dataclass
class EvalResult:
    beam: int  # 1: greedy
    bleu: float
    chrf: float
    sentences_per_second: float
    outputs: list[Translation]
    looping: int  # outputs in which some 3-gram of words occurs more than twice

    @property
    def decoding(self) -> str:
        """"greedy" or "beam N", as tables and --json name it."""
        return "greedy" if self.beam == 1 else f"beam {self.beam}"


HELD_OUT_SPLITS = ("test", "dev")


def held_out_pairs(checkpoint: Checkpoint, pairs_path: str | None = None, split: str = "test", *,
                   encoding: str | None = None, skip_bad: bool = False) -> list[tuple[str, str]]:
    """The test (or dev) pairs of the run that made a checkpoint: its corpus (or pairs_path)
    split again with the same settings, which gives the same pairs, none of whose sources were
    trained on. The dev pairs chose the checkpoint (early stopping) and the settings; only the
    test pairs give an unbiased figure. encoding (default: the run's) and skip_bad (or the
    run's) are for a pairs_path other than the file trained on."""
    if split not in HELD_OUT_SPLITS:
        raise UsageError(f"unknown split {split!r}; choose one of {', '.join(HELD_OUT_SPLITS)}")
    with rebuilding_from(checkpoint.path, with_user_options=True):  # no recorded corpus: the user's to fix
        pairs_path = pair_file_of(checkpoint, pairs_path)
    if encoding is not None:
        check_encoding(encoding)
    with rebuilding_from(checkpoint.path):  # the split settings are the checkpoint's
        data = TranslationDataConfig.from_checkpoint(checkpoint)
        data.validate()
        data = replace(data, encoding=encoding or data.encoding, skip_bad=skip_bad or data.skip_bad)
        try:
            pair_split, _ = split_again(checkpoint, pairs_path, data)
        except TooFewPairs:  # the sizes are the run's: the file is the thing to change
            raise CharrnnError(f"the pair file has too few pairs for this model's split ({data.test_size} test and "
                               f"{data.dev_size} dev pairs); give the file the model was trained on") from None
    return pair_split.test if split == "test" else pair_split.dev


def evaluate_translations(model: Translator, source_vocab: Vocab, target_vocab: Vocab, pairs, *,
                          beams: Sequence[int] = (1, 5), batch_size: int = 64, **decoding) -> list[EvalResult]:
    """Corpus BLEU and chrF (sacrebleu) of the model's translations of pairs, for each beam size,
    with the decoding speed (batching included) and the outputs that loop. decoding: more
    options of translate (no_repeat_ngram, normalise, casing)."""
    import time

    import sacrebleu

    sources = [s for s, _ in pairs]
    references = [[t for _, t in pairs]]
    results = []
    for beam in beams:
        start = time.perf_counter()
        outputs = translate(model, source_vocab, target_vocab, sources, beam=beam, batch_size=batch_size, **decoding)
        seconds = time.perf_counter() - start
        hypotheses = [o.text for o in outputs]
        results.append(EvalResult(
            beam=beam,
            bleu=sacrebleu.corpus_bleu(hypotheses, references).score,
            chrf=sacrebleu.corpus_chrf(hypotheses, references).score,
            sentences_per_second=len(sources) / seconds,
            outputs=outputs,
            looping=sum(loops(text) for text in hypotheses),
        ))
    return results


def loops(text: str, ngram: int = 3, most: int = 2) -> bool:
    """Whether some n-gram of words occurs more than most times in text: the mark of a decoder
    caught in a loop ("de tren tren la estación de tren tren ...")."""
    words = text.split()
    counts = Counter(tuple(words[i : i + ngram]) for i in range(len(words) - ngram + 1))
    return any(count > most for count in counts.values())


def token_strings(vocab: Vocab, ids: Sequence[int]) -> list[str]:
    """How each token reads, for plot labels (a BPE token shows the text it decodes to)."""
    return [vocab.decode([i]) for i in ids]
