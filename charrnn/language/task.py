"""The language-model task: a corpus becomes a vocabulary, a token file and a train/validation
split (or, for a conditional model, a tab-separated file becomes a stream of tokens and their
conditions); training is stateful truncated BPTT; evaluation covers the whole validation split in nats
per token, bits per character and perplexity; sampling streams text from a checkpoint."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import ClassVar
from pathlib import Path

import numpy as np
import torch

from ..allocator import keep_freed_memory
from ..cells import State
from ..checkpoint import Checkpoint, load_checkpoint, rebuilding_from, restore_for_inference
from ..corpora import data_notes, recorded_data_file
from ..data import (
    StreamBatches,
    check_one_batch,
    build_vocab,
    default_cache_dir,
    encode_to_token_file,
    split_point,
    stage_corpus,
    validation_windows,
)
from ..devices import autocast, resolve_device
from ..distributed import Ranks
from ..errors import CharrnnError, UsageError
from ..numbers import check_finite, check_range, check_seed
from ..runs import OneFileRecipe, PreparedRun, RunPlace, train_task
from ..train import TrainConfig, TrainResult, make_optimizer
from ..vocab import Vocab, format_characters
from .adaptive import (EVAL_TOKENS, MIN_LR_RATIO, PROBE_SHARE, PROBE_STEPS, SEQ_LEN, WEIGHT_DECAY, RunLength,
                        Settings, choose_settings, probe_step_costs)
from .conditions import (CONDITION_TYPES, StreamConditions, condition_stream, read_label_column, read_vector_column,
                         stream_vocab)
from .model import LanguageModel, LanguageModelConfig
from .sampling import SamplingConfig, generate

TASK = "language_model"
MAX_GUIDANCE = 100.0  # far past any use: at 8 the samples already stray from English
LN2 = math.log(2)


@dataclass
class LanguageDataConfig:
    batch_size: int | None = None  # None: chosen from the measured speed (see adaptive.py)
    seq_len: int | None = None  # None: chosen likewise
    val_frac: float = 0.1
    tokenizer: str = "char"
    vocab_size: int = 2000  # BPE only
    encoding: str = "utf-8"
    eval_streams: int = 16
    condition: str | None = None  # a conditional model's condition column in a tab-separated corpus
    condition_type: str = "label"  # what that column holds: a label or a vector of numbers
    skip_bad: bool = False  # skip malformed lines of that file instead of stopping

    def validate(self) -> None:
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, not {self.batch_size}")
        if self.seq_len is not None and self.seq_len < 1:
            raise UsageError(f"--seq-len must be at least 1, not {self.seq_len}")
        if self.tokenizer not in ("char", "bpe"):
            raise UsageError(f"unknown --tokenizer {self.tokenizer!r}; choose char or bpe")
        if self.condition_type not in CONDITION_TYPES:
            raise UsageError(f"unknown --condition-type {self.condition_type!r}; choose one of {', '.join(CONDITION_TYPES)}")
        split_point(100, self.val_frac)  # raises for a bad fraction


def _detach(state: State) -> State:
    return tuple(part.detach() for part in state)


class LanguageModelTask:
    """Stateful truncated BPTT over a token file. The state is carried from one window to the next
    (so the model sees context longer than seq_len) and detached between windows (so
    back-propagation stays seq_len steps deep); it is reset where the streams wrap around. For a
    recurrent cell it is the hidden state; for a WaveNet, each layer's last inputs, so that a
    window's first positions read their whole receptive field, as in one pass over the stream."""

    name = TASK

    @staticmethod
    def describe_metrics(metrics: dict) -> str:
        bpc = f", {metrics['val_bpc']:.4f} bpc" if "val_bpc" in metrics else ""  # not in the oldest checkpoints
        return f"{metrics['val_loss']:.4f} nats/token{bpc}, perplexity {metrics['val_ppl']:.2f}"

    def __init__(self, model: LanguageModel, vocab: Vocab, tokens: np.ndarray, data: LanguageDataConfig, *,
                 corpus_name: str, corpus_path: str | None = None, condition_table: np.ndarray | None = None):
        self.model = model
        self.vocab = vocab
        self.data = data
        self.corpus_name = corpus_name
        self.corpus_path = corpus_path  # absolute; None for stdin. Lets --resume find it again.
        self.tokens = tokens
        # A vector-conditioned stream's vectors by condition id (see conditions.StreamConditions).
        self.condition_table = None if condition_table is None else torch.from_numpy(condition_table)
        self.val_start = split_point(len(tokens), data.val_frac)
        # Under torchrun each rank reads its own streams: B streams on one process are B/N on each of N.
        self.ranks = Ranks.current()
        self.batches = StreamBatches(tokens, data.batch_size, data.seq_len, end=self.val_start,
                                     rows=self.ranks.share(data.batch_size, "--batch-size"))
        if len(tokens) - self.val_start < 2:
            raise CharrnnError("corpus too short for a validation split; use a longer corpus or a larger --val-frac")
        self.steps_per_epoch = self.batches.windows_per_epoch
        self.state: State | None = None
        self._val_chars = self._count_val_characters()

    def _count_val_characters(self) -> int:
        """Bits per character need characters, not tokens: the same for a char vocabulary,
        counted by decoding the split for BPE."""
        if self.vocab.kind == "char":
            return len(self.tokens) - self.val_start - 1
        count = 0
        for begin in range(self.val_start + 1, len(self.tokens), 1 << 20):
            window = np.asarray(self.tokens[begin : begin + (1 << 20)])
            count += len(self.vocab.decode((window if window.ndim == 1 else window[:, 0]).tolist()))
        return max(count, 1)

    def _split_conditions(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(inputs, targets, the inputs' conditions or None). A conditional model's stream holds
        (token, condition id) pairs, so its windows are (B, T, 2); a plain stream's are (B, T). A
        vector-conditioned model reads each id's vector (B, T, D)."""
        if x.dim() == 2:
            return x, y, None
        conditions = x[..., 1]
        if self.condition_table is not None:
            if self.condition_table.device != x.device:
                self.condition_table = self.condition_table.to(x.device)
            conditions = self.condition_table[conditions.long()]
        return x[..., 0], y[..., 0], conditions

    def training_loss(self, model, device):
        x, y, wrapped = self.batches.next()
        if wrapped or self.state is None:
            self.state = model.init_state(x.shape[0], device)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        x, y, conditions = self._split_conditions(x, y)
        _, state, loss = model(x, self.state, targets=y, condition=conditions)
        # Detach: keep the values (context) but cut the graph, or backward would reach back
        # through every window since the start.
        self.state = _detach(state)
        return loss, x.numel()

    def evaluate(self, model, device, max_tokens: int | None = None) -> dict[str, float]:
        """Nats per token over the validation split, read as eval_streams parallel streams with the
        state carried. With max_tokens, only the first windows of every stream, about max_tokens
        tokens in all: the same tokens every time, so partial figures compare with each other.

        Under torchrun each rank scores its part of the streams (the tail, which continues the last
        stream, by that stream's rank), and the sums of nats and tokens are added up across ranks:
        the figure one process would get."""
        nats_scored, tokens_scored = 0.0, 0  # by this rank
        tokens_read = 0  # by all ranks: where a partial evaluation stops
        state = None
        streams = mine = None
        window = max(self.data.seq_len, 256)
        for x, y in validation_windows(self.tokens, self.val_start, len(self.tokens), self.data.eval_streams, window):
            if max_tokens is not None and tokens_read >= max_tokens:
                break
            tokens_read += y.numel()
            if streams is None:
                streams = x.shape[0]
                mine = self.ranks.part(streams)
            if x.shape[0] == streams:
                rows = slice(mine.start, mine.stop)
            elif streams - 1 in mine:  # the one-row tail continues the last stream
                rows = slice(0, 1)
            else:
                continue
            if rows.start == rows.stop:
                continue  # more ranks than streams: none of them are this rank's
            x, y, conditions = self._split_conditions(x[rows].to(device), y[rows].to(device))
            if state is None:
                state = model.init_state(x.shape[0], device)
            elif x.shape[0] != state[0].shape[1]:  # the tail: the state of this rank's last stream
                state = tuple(part[:, -1:] for part in state)
            logits, state, _ = model(x, state, condition=conditions)
            nats = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
            nats_scored += float(nats)
            tokens_scored += y.numel()
        total_nats, total_tokens = self.ranks.sum([nats_scored, tokens_scored])
        val_loss = total_nats / total_tokens
        all_tokens = len(self.tokens) - self.val_start - 1
        chars = self._val_chars * total_tokens / max(1, all_tokens)
        return {
            "val_loss": val_loss,
            "val_bpc": total_nats / chars / LN2,
            "val_ppl": math.exp(min(val_loss, 50.0)),
            "val_fraction": total_tokens / all_tokens,
        }

    def data_state(self) -> dict:
        # Every stream's state, gathered from the ranks that read them: the same checkpoint as one
        # process writes, which resumes on any number of ranks that divides the batch.
        return {
            "position": self.batches.position,
            "hidden": [self.ranks.gather_rows(t.detach(), dim=1).cpu() for t in self.state] if self.state is not None else None,
        }

    def load_data_state(self, state: dict) -> None:
        self.batches.position = int(state["position"])
        hidden = state.get("hidden")
        device = next(self.model.parameters()).device
        rows = self.batches.rows
        self.state = tuple(t[:, rows.start : rows.stop].to(device) for t in hidden) if hidden is not None else None

    def checkpoint_fields(self) -> dict:
        return {
            "task": TASK,
            "model_config": asdict(self.model.config),
            "vocab": self.vocab.to_dict(),
            "data_config": asdict(self.data),
            "corpus": self.corpus_name,
            "corpus_path": self.corpus_path,
            "notes": data_notes(Path(self.corpus_path)) if self.corpus_path else {},
        }


# -- building, training and loading ------------------------------------------------------------


def prepare_corpus(corpus: str, data: LanguageDataConfig, run_dir: Path, *, vocab: Vocab | None = None,
                   model: LanguageModelConfig | None = None,
                   cache_dir: Path | None = None) -> tuple[Vocab, np.ndarray, Path, StreamConditions]:
    """Check and encode the corpus (building its vocabulary unless one is given). Returns the
    vocabulary, the tokens, the file the corpus was read from and the conditions of a conditional
    model (empty for a plain one).

    With data.condition, the corpus is a tab-separated file of texts and that condition column
    (labels or vectors, by data.condition_type), and the tokens are (N, 2): each token beside its
    text's condition id (see conditions.py). model, when given (a trained model's config), fixes
    the label ids or the vectors' size."""
    label = "<stdin>" if corpus == "-" else corpus
    path = stage_corpus(corpus, run_dir)
    if data.condition is not None:
        read = dict(encoding=data.encoding, source=label, skip_bad=data.skip_bad)
        if data.condition_type == "vector":
            texts = read_vector_column(path, data.condition, size=model.condition_size if model else None, **read)
        else:
            texts = read_label_column(path, data.condition, label_names=model.conditions if model else None, **read)
        vocab = vocab or stream_vocab(texts, data.tokenizer, data.vocab_size)
        return vocab, condition_stream(texts, vocab), path, StreamConditions.of(texts)
    if vocab is None:
        vocab = build_vocab(path, kind=data.tokenizer, vocab_size=data.vocab_size, encoding=data.encoding, label=label)
    token_file = encode_to_token_file(path, vocab, encoding=data.encoding, cache_dir=cache_dir or default_cache_dir(), label=label)
    return vocab, token_file.open(), path, StreamConditions()


def train_language_model(corpus: str | None, *, model_config: dict | None = None, data: LanguageDataConfig | None = None,
                         cache_dir: Path | None = None, **run) -> TrainResult:
    """Train a language model on a corpus file (or '-' for stdin), or resume a run. run: the
    options of runs.train_task, which every task's training shares (train, run_dir, resume,
    device, precision, overwrite, on_event).

    model_config holds LanguageModelConfig fields except vocab_size. The batch shape, learning
    rate, warm-up and evaluation cadence left unset (None) are chosen from the measured cost of a
    training step on this device (see adaptive.choose_settings); the timing counts inside a time
    budget. On resume, the model, data and training settings come from the checkpoint; stop
    conditions given in train replace the saved ones (max_steps, epochs, time_budget); corpus
    may be None to read the run's own corpus.
    """
    recipe = LanguageModelRecipe(corpus, model_config or {}, data or LanguageDataConfig(), cache_dir)
    return train_task(recipe, **run)


@dataclass
class LanguageModelRecipe(OneFileRecipe):
    """How runs.train_task builds a language-model run: data_file is the corpus ('-': stdin)."""

    cache_dir: Path | None = None
    name: str = TASK
    config_type: ClassVar[type] = LanguageModelConfig
    missing_data: ClassVar[str] = "give a corpus to train on (a text file, or - for stdin)"

    def new_run(self, train: TrainConfig, place: RunPlace) -> PreparedRun:
        data, settings, probe_seconds = self.data, None, 0.0
        vocab, tokens, corpus_file, conditions = prepare_corpus(self.data_file, data, place.run_dir, cache_dir=self.cache_dir)
        model_config = {**self.model_config, "vocab_size": vocab.size, **conditions.model_fields(vocab)}
        if None in (data.batch_size, data.seq_len, train.learning_rate, train.warmup_steps, train.eval_every,
                    model_config.get("dropout"), train.weight_decay):
            # A corpus too short for even one stream is refused before seconds are spent timing.
            check_one_batch(split_point(len(tokens), data.val_frac), data.batch_size or 1, data.seq_len or SEQ_LEN)
            place.preparing("timing training steps on this machine to choose the settings left unset")
            started = time.perf_counter()
            # The timing builds and steps models of its own: the random state is put back after
            # it, so the model built next starts from the seed whatever the timing drew.
            # Under torchrun, rank 0 times the steps and every rank takes its choice.
            ranks = Ranks.current()
            with torch.random.fork_rng(devices=[place.device] if place.device.type == "cuda" else []):
                settings = ranks.from_writer(lambda: fit_settings_to_machine(
                    model_config, data, train, dropout=model_config.get("dropout"),
                    train_tokens=split_point(len(tokens), data.val_frac), device=place.device,
                    amp_dtype=place.amp_dtype, processes=ranks.world_size))
            probe_seconds = time.perf_counter() - started
            data = replace(data, batch_size=settings.batch_size, seq_len=settings.seq_len)
            train = replace(train, learning_rate=settings.learning_rate, warmup_steps=settings.warmup_steps,
                            eval_every=settings.eval_every, weight_decay=settings.weight_decay)
            model_config["dropout"] = settings.dropout
        model = LanguageModel(LanguageModelConfig(**model_config))
        train = train.with_defaults(min_lr_ratio=MIN_LR_RATIO, eval_tokens=EVAL_TOKENS)
        return PreparedRun(self._task(model, vocab, tokens, data, self.data_file, corpus_file, conditions), train,
                           settings_note=settings.note() if settings else None, seconds_spent=probe_seconds)

    def resumed_run(self, checkpoint: Checkpoint, train: TrainConfig, place: RunPlace) -> PreparedRun:
        corpus = self.data_file
        if corpus is None:
            if checkpoint.metadata.get("corpus_path") is None:
                raise UsageError("this run was trained from stdin (or on an older charrnn); give its corpus again")
            corpus = recorded_data_file(checkpoint.metadata["corpus_path"])
        data = LanguageDataConfig(**checkpoint.metadata["data_config"])
        model_config = LanguageModelConfig(**checkpoint.metadata["model_config"])
        vocab, tokens, corpus_file, conditions = prepare_corpus(
            corpus, data, place.run_dir, vocab=Vocab.from_dict(checkpoint.metadata["vocab"]), model=model_config,
            cache_dir=self.cache_dir)
        model = LanguageModel(model_config)
        return PreparedRun(self._task(model, vocab, tokens, data, corpus, corpus_file, conditions), train)

    @staticmethod
    def _task(model, vocab, tokens, data, corpus: str, corpus_file: Path, conditions: StreamConditions) -> LanguageModelTask:
        corpus_name = "<stdin>" if corpus == "-" else Path(corpus).name
        corpus_path = None if corpus == "-" else str(corpus_file.resolve())
        return LanguageModelTask(model, vocab, tokens, data, corpus_name=corpus_name, corpus_path=corpus_path,
                                 condition_table=conditions.table)


def fit_settings_to_machine(model_config: dict, data: LanguageDataConfig, train: TrainConfig, *,
                            dropout: float | None, train_tokens: int, device: torch.device,
                            amp_dtype: torch.dtype | None, processes: int = 1) -> Settings:
    """Time training steps of a model like the one to train (model_config, with the dropout
    given, else none) at candidate batch shapes (random tokens: the cost does not depend on
    them), then choose the settings left unset (None) from those costs. When the run gets
    dropout it was not given, the chosen shape is timed again with and without it, so the run is
    planned at the cost of the steps it will take.

    With several processes training together (torchrun), a batch of B costs what this process's
    share of it does (B / processes rows, the gradients' all-reduce aside), so larger global
    batches become affordable as processes are added; a chosen batch divides among them."""
    if device.type == "cpu":
        keep_freed_memory()  # time the steps the run will take (see allocator.py)
    timers = [0.0]  # seconds spent timing

    def step_timer(model_dropout: float) -> Callable[[int, int], float]:
        probe = LanguageModel(LanguageModelConfig(**{**model_config, "dropout": model_dropout})).to(device).train()
        time_share = _step_timer(probe, train, device, amp_dtype, spent=timers)
        return lambda batch_size, seq_len: time_share(math.ceil(batch_size / processes), seq_len)

    # Batches too large for the corpus to give every stream one window are not tried.
    largest = max(1, train_tokens // ((data.seq_len or SEQ_LEN) + 1))
    budget = train.time_budget
    length = RunLength(budget, train.max_steps, train.epochs, train_tokens)
    costs = probe_step_costs(step_timer(dropout or 0.0), length, batch_size=data.batch_size, seq_len=data.seq_len,
                             largest=largest, time_limit=PROBE_SHARE * budget if budget is not None else None)
    precision = str(amp_dtype).replace("torch.", "") if amp_dtype is not None else "fp32"

    def choose(dropout_slowdown: float = 1.0) -> Settings:
        left = replace(length, time_budget=max(budget - timers[0], 0.5 * budget)) if budget is not None else length
        return choose_settings(costs, left, batch_size=data.batch_size, seq_len=data.seq_len,
                               learning_rate=train.learning_rate, warmup_steps=train.warmup_steps,
                               eval_every=train.eval_every, dropout=dropout, dropout_slowdown=dropout_slowdown,
                               weight_decay=train.weight_decay, precision=precision)

    settings = choose()
    if dropout is None and settings.dropout > 0:
        shape = (settings.batch_size, settings.seq_len)
        slowdown = step_timer(settings.dropout)(*shape) / step_timer(0.0)(*shape)
        settings = choose(dropout_slowdown=max(1.0, slowdown))
    if data.batch_size is None and settings.batch_size % processes:
        settings = replace(settings, batch_size=processes * math.ceil(settings.batch_size / processes))
    return settings


def _step_timer(probe: LanguageModel, train: TrainConfig, device: torch.device, amp_dtype: torch.dtype | None, *,
                spent: list[float]) -> Callable[[int, int], float]:
    """time_step(B, T) for probe_step_costs: one untimed and PROBE_STEPS timed training steps of
    the probe model at batch B x T, returning the median seconds of a timed step; all of their
    time is added to spent[0]."""
    optimizer = make_optimizer(probe, train.with_defaults(learning_rate=1e-3, weight_decay=WEIGHT_DECAY))
    tokens = torch.Generator().manual_seed(0)

    def time_step(batch_size: int, seq_len: int) -> float:
        x = torch.randint(probe.config.vocab_size, (batch_size, seq_len + 1), generator=tokens).to(device)
        state = probe.init_state(batch_size, device)
        seconds = []
        for _ in range(PROBE_STEPS + 1):
            started = time.perf_counter()
            with autocast(device, amp_dtype):
                _, _, loss = probe(x[:, :-1], state, targets=x[:, 1:])
            loss.item()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(probe.parameters(), train.grad_clip)
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds.append(time.perf_counter() - started)
        spent[0] += sum(seconds)
        return statistics.median(seconds[1:])  # the first sets kernels up

    return time_step


def load_language_model(checkpoint: str | Path, device: str = "auto") -> tuple[LanguageModel, Vocab, Checkpoint]:
    """Rebuild the model and vocabulary from a checkpoint, ready for inference on the device."""
    target = resolve_device(device)  # outside rebuilding_from: a bad --device is the user's, not the file's
    saved = load_checkpoint(checkpoint, task=TASK)
    with rebuilding_from(checkpoint):
        model = restore_for_inference(LanguageModel(LanguageModelConfig(**saved.metadata["model_config"])), saved, target)
        return model, Vocab.from_dict(saved.metadata["vocab"]), saved


def sample_text(
    model: LanguageModel,
    vocab: Vocab,
    *,
    prime: str | None = None,
    length: int = 500,
    sampling: SamplingConfig | None = None,
    seed: int | None = None,
    condition: str | Sequence[float] | None = None,
    guidance: float = 0.0,
) -> Iterator[str]:
    """Stream generated text (after the prime) piece by piece; without a prime, from the start of
    a line (see start_of_text); from a conditional model, in the style of the condition (which it
    needs: one of model.config.conditions, or a vector of model.config.condition_size numbers),
    guidance > 0 pushing it away from the other labels or, for a vector, from no condition (see
    model.GuidedLanguageModel). Arguments are checked here, before the first piece, so a
    caller that echoes the prime never prints anything for a bad request."""
    check_finite(guidance, "--guidance")
    check_range(guidance, "--guidance", 0.0, MAX_GUIDANCE)
    if condition is not None or model.config.conditional:
        if condition is None and model.config.condition_size:
            raise UsageError(f"this model writes text for a vector; give --condition with "
                             f"{model.config.condition_size} number(s) separated by spaces or commas")
        if condition is None:
            raise UsageError(f"this model writes text for a label; give --condition, one of "
                             f"{', '.join(map(repr, model.config.conditions))}")
        model = model.with_condition(condition, guidance)
    elif guidance:
        raise UsageError("--guidance is for a model trained with --condition")
    if length < 0:
        raise UsageError(f"-n/--length must be 0 or more, not {length}")
    check_seed(seed)
    if prime is None:
        prime = start_of_text(vocab)
    if prime == "":
        raise UsageError("--prime must not be empty")
    missing = vocab.unknown_characters(prime)
    if missing:
        raise UsageError(f"the prime has characters the model's vocabulary lacks: {format_characters(missing)}")
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    token_ids = generate(model, vocab.encode(line_start_context(prime, vocab)), length, sampling or SamplingConfig(), generator)
    return _decode_stream(token_ids, vocab)


def start_of_text(vocab: Vocab) -> str:
    """What a sample without a prime starts from (not printed): a newline, the start of a line, or
    for a model whose corpus had none, a space, else its vocabulary's first character."""
    for candidate in ("\n", " "):
        if not vocab.unknown_characters(candidate):
            return candidate
    return vocab.decode([0])


def line_start_context(prime: str, vocab: Vocab) -> str:
    """The text the model is conditioned on: the prime, read as if it began a line.

    From a zero state the model cannot tell "ROMEO:" at the start of a line (followed by a
    newline, 99.7% in the bundled model) from the same letters inside one (20%): it trained on
    windows that begin anywhere. A newline before the prime (not printed) settles it."""
    if prime.startswith("\n") or vocab.unknown_characters("\n"):
        return prime
    return "\n" + prime


def _decode_stream(token_ids: Iterator[int], vocab: Vocab) -> Iterator[str]:
    decoder = vocab.stream_decoder()
    for token in token_ids:
        piece = decoder.step(token)
        if piece:
            yield piece
    tail = decoder.flush()
    if tail:
        yield tail
