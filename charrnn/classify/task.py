"""The classification task: labelled texts become a vocabulary and a stratified train/validation
split; training runs over length-bucketed batches; evaluation gives loss, accuracy and macro-F1;
prediction classifies lines in batches and keeps their order; cross-validation trains one model a
fold."""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..checkpoint import Checkpoint, load_checkpoint, rebuilding_from, restore_for_inference
from ..corpora import data_notes, locate_data_file, recorded_data_file
from ..data import BucketedBatches, pad_batch
from ..distributed import Ranks, launched_in_parallel
from ..embedding import Embedder, in_length_order
from ..devices import resolve_device
from ..errors import UsageError
from ..events import TrainingEvent, WarningEvent
from ..normalise import as_spaced_lowercase
from ..runs import PreparedRun, RunPlace, train_task
from ..train import StopReason, Trainer, TrainConfig, TrainResult, claim_run_dir
from ..vocab import Vocab
from ..labelled import LabelledTexts, read_labelled, stratified_folds, stratified_split
from .model import Classifier, ClassifierConfig, EncoderLanguageModel
from .ngrams import NgramCounts, ngram_ids

TASK = "classifier"
PRETRAINING_TASK = "classifier_pretraining"
# Training settings a caller leaves unset (the CLI's defaults, chosen on rt-polarity folds).
TRAIN_DEFAULTS = dict(learning_rate=5e-3, min_lr_ratio=0.1, warmup_steps=50, eval_every=100, weight_decay=0.1)
PRETRAIN_DEFAULTS = dict(learning_rate=3e-3, min_lr_ratio=0.1, warmup_steps=50, eval_every=100, weight_decay=0.1)
CLASSIFIER_SPECIALS = ("<pad>", "<unk>")
PAD, UNK = 0, 1
EVAL_BATCH = 256


@dataclass
class ClassificationDataConfig:
    tokenizer: str = "bpe"
    vocab_size: int = 8000  # BPE only
    batch_size: int = 64
    val_frac: float = 0.1  # of each class, for early stopping
    split_seed: int = 0
    max_tokens: int = 400  # longer texts are cut (a stray paragraph must not blow up a batch)
    encoding: str = "utf-8"
    skip_bad: bool = False
    # Lower-case and split punctuation off (normalise.as_spaced_lowercase) every text, in training
    # and in use: rt-polarity is written that way and people type otherwise.
    normalise: bool = True
    # Put a space before every text, so that its first word becomes the same tokens as the word
    # inside a sentence (byte-level BPE reads " great" and a text-initial "great" as different
    # tokens). Few training sentences start with the word a short input starts with: without it,
    # "awful" was "aw" + "ful", pieces the model hardly knew, and "great movie" read as negative.
    space_first_word: bool = True

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> ClassificationDataConfig:
        """The data settings a checkpoint was trained with; one written before normalise or
        space_first_word existed read its texts as they were."""
        return cls(**{"normalise": False, "space_first_word": False, **checkpoint.metadata["data_config"]})

    def as_read(self, text: str) -> str:
        """A text as the model reads it, in training and in use (see normalise and space_first_word)."""
        if self.normalise:
            text = as_spaced_lowercase(text)
        return " " + text if self.space_first_word else text

    def validate(self) -> None:
        if self.tokenizer not in ("char", "bpe"):
            raise UsageError(f"unknown --tokenizer {self.tokenizer!r}; choose char or bpe")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, not {self.batch_size}")
        if self.max_tokens < 1:
            raise UsageError(f"--max-tokens must be at least 1, not {self.max_tokens}")


def build_vocab(texts: Sequence[str], data: ClassificationDataConfig) -> Vocab:
    """The vocabulary of the training texts only (validation and test texts stay unseen), read as
    the model reads them (data.as_read)."""
    texts = [data.as_read(text) for text in texts]
    if data.tokenizer == "char":
        return Vocab.build_char("".join(texts), specials=CLASSIFIER_SPECIALS)
    return Vocab.train_bpe(texts, data.vocab_size, specials=CLASSIFIER_SPECIALS)


@dataclass
class EncodedTexts:
    """A classifier's inputs for a list of texts, read as the data settings say: token ids (cut to
    data.max_tokens; characters a character vocabulary lacks become <unk>, and a text with no
    tokens becomes a single <unk>), and the bucket ids of their word n-grams when the model has an
    n-gram channel. The texts are first written as the model reads them (data.as_read)."""

    tokens: list[list[int]]
    ngrams: list[list[int]] | None

    @classmethod
    def of(cls, texts: Sequence[str], vocab: Vocab, config: ClassifierConfig, data: ClassificationDataConfig) -> EncodedTexts:
        texts = [data.as_read(text) for text in texts]
        tokens = [vocab.encode(text, unknown_id=UNK)[: data.max_tokens] or [UNK] for text in texts]
        ngrams = None
        if config.ngram_buckets:
            ngrams = [ngram_ids(text, config.ngram_buckets, config.ngram_order) for text in texts]
        return cls(tokens, ngrams)

    def __len__(self) -> int:
        return len(self.tokens)

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.tokens]

    def batch(self, indices: Sequence[int], device, *, with_ngrams: bool = True) -> dict:
        """The model's keyword inputs for these texts, padded (without the n-grams when the
        recurrent part alone is wanted)."""
        tokens, lengths = pad_batch([self.tokens[i] for i in indices], PAD, device)
        ngrams = None
        if with_ngrams and self.ngrams is not None:
            ngrams = pad_batch([self.ngrams[i] for i in indices], 0, device)
        return {"tokens": tokens, "lengths": lengths, "ngrams": ngrams}


# -- metrics -----------------------------------------------------------------------------------


CALIBRATION_BINS = 10


def expected_calibration_error(probabilities: torch.Tensor, actual: Sequence[int], bins: int = CALIBRATION_BINS) -> float:
    """How far the model's confidence is from its accuracy: texts grouped by the probability of
    the class chosen (equal-width bins), the gap between mean confidence and accuracy in each bin,
    weighted by the bin's share of texts (Guo et al., 2017). 0 is perfectly calibrated."""
    confidence, predicted = probabilities.float().max(dim=-1)
    correct = (predicted == torch.as_tensor(actual)).float()
    which = (confidence * bins).long().clamp(max=bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += float(members.float().mean() * (confidence[members].mean() - correct[members].mean()).abs())
    return error


@dataclass
class ClassificationMetrics:
    accuracy: float
    macro_f1: float
    confusion: list[list[int]]  # confusion[true][predicted]
    f1: list[float]  # per class
    calibration_error: float | None = None  # expected calibration error, when probabilities were given

    @classmethod
    def from_probabilities(cls, probabilities: torch.Tensor, actual: Sequence[int]) -> ClassificationMetrics:
        """Metrics of the most probable class, with the calibration of the probabilities."""
        metrics = cls.from_predictions(probabilities.argmax(dim=-1).tolist(), actual, probabilities.shape[-1])
        metrics.calibration_error = expected_calibration_error(probabilities, actual)
        return metrics

    @classmethod
    def from_predictions(cls, predicted: Sequence[int], actual: Sequence[int], num_classes: int) -> ClassificationMetrics:
        confusion = [[0] * num_classes for _ in range(num_classes)]
        for p, a in zip(predicted, actual):
            confusion[a][p] += 1
        f1 = []
        for c in range(num_classes):
            true_positive = confusion[c][c]
            predicted_c = sum(row[c] for row in confusion)
            actual_c = sum(confusion[c])
            # F1 = 2TP / (predicted + actual); a class never predicted nor present scores 0.
            f1.append(2 * true_positive / (predicted_c + actual_c) if predicted_c + actual_c else 0.0)
        correct = sum(confusion[c][c] for c in range(num_classes))
        return cls(accuracy=correct / max(1, len(actual)), macro_f1=sum(f1) / num_classes, confusion=confusion, f1=f1)


@torch.inference_mode()
def predict_probabilities(model: Classifier, encoded: EncodedTexts, batch_size: int = EVAL_BATCH,
                          counted_labels: Sequence[int] | None = None) -> torch.Tensor:
    """Class probabilities (N, C) of encoded texts, run in batches of similar length and
    returned in input order. counted_labels: the labels of texts that are among those the
    model's n-gram counts came from (its own validation texts), to score each as unseen."""
    device = next(model.parameters()).device

    def run(chunk: list[int]) -> torch.Tensor:
        counted = None
        if counted_labels is not None and model.config.ngram_buckets:
            counted = torch.tensor([counted_labels[i] for i in chunk], device=device)
        logits, _ = model(**encoded.batch(chunk, device), counted_labels=counted)
        return torch.softmax(logits.float(), dim=-1)

    return in_length_order(encoded.lengths(), batch_size, run, model.config.num_classes)


# -- training ----------------------------------------------------------------------------------


class ClassificationTask:
    """Cross-entropy training over batches of texts of similar length; calibration fits the
    mixing weights on the validation texts; evaluation there reports loss, accuracy, macro-F1
    and calibration error."""

    name = TASK

    @staticmethod
    def describe_metrics(metrics: dict) -> str:
        return (f"loss {metrics['val_loss']:.4f}, accuracy {100 * metrics['val_accuracy']:.2f}%, "
                f"macro-F1 {100 * metrics['val_macro_f1']:.2f}%")

    def __init__(self, model: Classifier, vocab: Vocab, label_names: list[str], train: EncodedTexts, train_labels,
                 val: EncodedTexts, val_labels, data: ClassificationDataConfig, *, seed: int, data_paths: list[str],
                 pretraining: dict | None = None):
        self.model = model
        self.vocab = vocab
        self.label_names = label_names
        self.train, self.train_labels = train, train_labels
        self.val, self.val_labels = val, val_labels
        self.data = data
        self.data_paths = data_paths
        self.pretraining = pretraining  # the language-model pretraining's settings, for the record
        self.batches = BucketedBatches(train.lengths(), data.batch_size, seed=seed, ranks=Ranks.current())
        self.steps_per_epoch = self.batches.batches_per_epoch

    def training_loss(self, model, device):
        batch = self.batches.next()
        # The recurrent part trains alone (see Classifier): the n-gram channel is not needed here.
        inputs = self.train.batch(batch, device, with_ngrams=False)
        targets = torch.tensor([self.train_labels[i] for i in batch], device=device)
        loss = torch.nn.functional.cross_entropy(model.recurrent_logits(inputs["tokens"], inputs["lengths"]), targets)
        return loss, int(inputs["lengths"].sum())

    def calibrate(self, model, device) -> None:
        """Fit the mixing weights of the two channels on the validation texts (Trainer calls it
        before each evaluation)."""
        if model.config.ngram_buckets:
            recurrent, scores = self.validation_logit_parts(model, device)
            model.fit_mixing_weights(recurrent, scores, torch.tensor(self.val_labels, device=device))

    def evaluate(self, model, device, max_tokens: int | None = None) -> dict[str, float]:
        # Scores all of its validation data whatever max_tokens says (small enough to).
        mixing = {}
        if model.config.ngram_buckets:
            recurrent, scores = self.validation_logit_parts(model, device)
            mixing = {"recurrent_weight": float(model.recurrent_weight), "ngram_weight": float(model.ngram_weight)}
            probabilities = torch.softmax(model.mix(recurrent, scores), dim=-1).cpu()
        else:
            probabilities = predict_probabilities(model, self.val)
        targets = torch.tensor(self.val_labels)
        val_loss = float(torch.nn.functional.nll_loss(probabilities.clamp_min(1e-12).log(), targets))
        metrics = ClassificationMetrics.from_probabilities(probabilities, self.val_labels)
        return {"val_loss": val_loss, "val_accuracy": metrics.accuracy, "val_macro_f1": metrics.macro_f1,
                "val_calibration_error": metrics.calibration_error, **mixing}

    @torch.no_grad()
    def validation_logit_parts(self, model: Classifier, device) -> tuple[torch.Tensor, torch.Tensor]:
        """The recurrent part's logits and the n-gram scores of the validation texts. Their
        n-grams are in the counts, so each is scored with its own left out: as if unseen, which
        is what fitting the mixing weights and judging the model on them needs."""
        recurrent, scores = [], []
        for start in range(0, len(self.val), EVAL_BATCH):
            indices = range(start, min(start + EVAL_BATCH, len(self.val)))
            inputs = self.val.batch(indices, device)
            labels = torch.tensor([self.val_labels[i] for i in indices], device=device)
            recurrent.append(model.recurrent_logits(inputs["tokens"], inputs["lengths"]))
            scores.append(model.ngram_scores(inputs["ngrams"], counted_labels=labels))
        return torch.cat(recurrent), torch.cat(scores)

    def data_state(self) -> dict:
        return self.batches.state()

    def load_data_state(self, state: dict) -> None:
        self.batches.load_state(state)

    def checkpoint_fields(self) -> dict:
        notes = {}
        for path in self.data_paths:
            notes.update(data_notes(Path(path)))
        return {
            "task": TASK,
            "model_config": asdict(self.model.config),
            "vocab": self.vocab.to_dict(),
            "label_names": list(self.label_names),
            "data_config": asdict(self.data),
            "corpus": ", ".join(Path(p).name for p in self.data_paths),
            "data_paths": list(self.data_paths),
            "pretraining": self.pretraining,
            "notes": notes,
        }


class PretrainingTask:
    """The classifier's encoder trained as a language model in both directions on the training
    texts (their labels unused); the validation texts measure it."""

    name = PRETRAINING_TASK

    @staticmethod
    def describe_metrics(metrics: dict) -> str:
        return f"{metrics['val_loss']:.4f} nats/token (both directions)"

    def __init__(self, model: EncoderLanguageModel, train_ids, val_ids, *, batch_size: int, seed: int):
        self.model = model
        self.train_ids, self.val_ids = train_ids, val_ids
        self.batches = BucketedBatches([len(ids) for ids in train_ids], batch_size, seed=seed, ranks=Ranks.current())
        self.steps_per_epoch = self.batches.batches_per_epoch

    def training_loss(self, model, device):
        tokens, lengths = pad_batch([self.train_ids[i] for i in self.batches.next()], PAD, device)
        return model(tokens, lengths), int(lengths.sum())

    def evaluate(self, model, device, max_tokens: int | None = None) -> dict[str, float]:
        # Scores all of its validation data whatever max_tokens says (small enough to).
        total, count = 0.0, 0
        for start in range(0, len(self.val_ids), EVAL_BATCH):
            tokens, lengths = pad_batch(self.val_ids[start : start + EVAL_BATCH], PAD, device)
            predicted = int(2 * (lengths - 1).sum())  # every token from each side but the ends
            total += float(model(tokens, lengths)) * predicted
            count += predicted
        return {"val_loss": total / max(1, count)}

    def data_state(self) -> dict:
        return self.batches.state()

    def load_data_state(self, state: dict) -> None:
        self.batches.load_state(state)

    def checkpoint_fields(self) -> dict:
        return {"task": PRETRAINING_TASK, "model_config": asdict(self.model.classifier.config)}


def pretrain_encoder(model: Classifier, train_ids, val_ids, *, data: ClassificationDataConfig, pretrain: TrainConfig,
                     run_dir: Path, device: torch.device, amp_dtype, on_event) -> TrainResult:
    """Train the classifier's embedding and encoder as a language model (EncoderLanguageModel),
    then keep the weights of its best validation loss in the classifier. The pretraining run's
    checkpoints and log go to run_dir."""
    ranks = Ranks.current()
    if ranks.is_writer:
        claim_run_dir(run_dir, overwrite=True)  # an earlier, unfinished pretraining of this run
    ranks.barrier()
    language_model = EncoderLanguageModel(model)
    task = PretrainingTask(language_model, train_ids, val_ids, batch_size=data.batch_size, seed=pretrain.seed)
    result = Trainer(task, pretrain, run_dir, device=device, amp_dtype=amp_dtype, on_event=on_event).run()
    if result.stop_reason is not StopReason.INTERRUPTED and (run_dir / "best.pt").exists():
        language_model.load_state_dict(load_checkpoint(run_dir / "best.pt", task=PRETRAINING_TASK).model_state)
    return result


def read_training_data(data_paths: Sequence[str], data: ClassificationDataConfig) -> tuple[LabelledTexts, list[str]]:
    """The labelled texts of the data files (found as corpora are), and the files' full paths."""
    paths = [locate_data_file(p, "data file") for p in data_paths]
    return read_labelled(paths, skip_bad=data.skip_bad, encoding=data.encoding), [str(p.resolve()) for p in paths]


def _warn_if_imbalanced(examples: LabelledTexts, on_event: Callable[[TrainingEvent], None] | None) -> None:
    message = examples.imbalance_warning()
    if message and on_event is not None:
        on_event(WarningEvent(message))


def validation_split(checkpoint: Checkpoint) -> LabelledTexts:
    """The validation texts of the run that made a checkpoint: its data files split again with
    the same settings, which gives the same texts, none of which its recurrent part trained on.
    Its naive Bayes channel counted them, so evaluate them with counted=True."""
    if not checkpoint.metadata.get("data_paths"):
        raise UsageError("this checkpoint does not name its data; give labelled data with --data")
    with rebuilding_from(checkpoint.path):  # the paths and the split settings are the checkpoint's
        data = ClassificationDataConfig.from_checkpoint(checkpoint)
        data.validate()
        paths = [locate_data_file(recorded_data_file(p), "data file") for p in checkpoint.metadata["data_paths"]]
        examples = read_labelled(paths, skip_bad=data.skip_bad, encoding=data.encoding,
                                 label_names=checkpoint.metadata["label_names"])
        return train_validation_split(examples, data)[1]


def train_validation_split(examples: LabelledTexts, data: ClassificationDataConfig) -> tuple[LabelledTexts, LabelledTexts]:
    """The texts a run trains on and the stratified share of each class it holds out for validation
    (data.val_frac, data.split_seed): the same split every time for the same texts and settings."""
    train_index, val_index = stratified_split(examples.labels, data.val_frac, seed=data.split_seed)
    return examples.subset(train_index), examples.subset(val_index)


def check_model_options(model_config: dict | None, pretrain: TrainConfig | None) -> None:
    """Refuse bad model options before any data is read (see ClassifierConfig), and pretraining
    of an encoder it cannot pretrain."""
    ClassifierConfig.check_options(model_config or {})
    if pretrain is not None:
        pretrain.validate()
        if (model_config or {}).get("num_layers", 1) != 1:
            raise UsageError("--pretrain-epochs needs --num-layers 1 (a second bidirectional layer would see the words it predicts)")


def train_classifier(data_paths: Sequence[str] | None, *, model_config: dict | None = None,
                     data: ClassificationDataConfig | None = None, pretrain: TrainConfig | None = None,
                     examples: LabelledTexts | None = None, **run) -> TrainResult:
    """Train a classifier on labelled data files (one `text<TAB>label` file, or one file per
    class), holding out a stratified validation split for early stopping; or resume a run. run:
    the options of runs.train_task, which every task's training shares (train, run_dir, resume,
    device, precision, overwrite, on_event).

    pretrain, when given, first trains the encoder as a language model on the training texts
    (see pretrain_encoder; its run goes to run_dir/pretrain). examples, when given, are the
    labelled texts to use instead of reading data_paths (which then only name the data in the
    checkpoint): cross-validation trains on one fold's share this way.
    """
    recipe = ClassifierRecipe(data_paths, model_config or {}, data or ClassificationDataConfig(), pretrain, examples)
    return train_task(recipe, **run)


@dataclass
class ClassifierRecipe:
    """How runs.train_task builds a classification run (see train_classifier)."""

    data_paths: Sequence[str] | None
    model_config: dict
    data: ClassificationDataConfig
    pretrain: TrainConfig | None = None
    examples: LabelledTexts | None = None
    name: str = TASK

    def check(self) -> None:
        if not self.data_paths:
            raise UsageError("give the labelled data to train on: a text<TAB>label file, or one file per class")
        check_model_options(self.model_config, self.pretrain)

    @property
    def data_file(self) -> str | None:
        # rt-polarity.pos and rt-polarity.neg train into checkpoints/rt-polarity/; None: no data given
        return self.data_paths[0] if self.data_paths else None

    def new_run(self, train: TrainConfig, place: RunPlace) -> PreparedRun:
        data = self.data
        examples, paths = self._examples(self.data_paths, data, place)
        train_set, val_set = train_validation_split(examples, data)
        place.preparing(f"building the vocabulary from {len(train_set.texts):,} training texts")
        vocab = build_vocab(train_set.texts, data)
        label_names = list(examples.label_names)
        model = Classifier(ClassifierConfig(vocab_size=vocab.size, num_classes=len(label_names), pad_id=PAD,
                                            **self.model_config))
        train_inputs = EncodedTexts.of(train_set.texts, vocab, model.config, data)
        val_inputs = EncodedTexts.of(val_set.texts, vocab, model.config, data)
        if model.config.ngram_buckets:
            # Naive Bayes counts every labelled text: the validation texts, which fit the channel's
            # mixing weight, are scored with their own counts left out (see Classifier.ngram_scores).
            model.set_ngram_counts(NgramCounts.of(train_inputs.ngrams + val_inputs.ngrams,
                                                  train_set.labels + val_set.labels, len(label_names)))
        pretraining_record = None
        if self.pretrain is not None:
            pretrain = self.pretrain.with_defaults(**PRETRAIN_DEFAULTS)
            pretraining = pretrain_encoder(model, train_inputs.tokens, val_inputs.tokens, data=data, pretrain=pretrain,
                                           run_dir=place.run_dir / "pretrain", device=place.device,
                                           amp_dtype=place.amp_dtype, on_event=place.on_event)
            if pretraining.stop_reason is StopReason.INTERRUPTED:
                return PreparedRun(None, train, ended=pretraining)
            pretraining_record = asdict(pretrain)
        train = train.with_defaults(**TRAIN_DEFAULTS)
        task = ClassificationTask(model, vocab, label_names, train_inputs, train_set.labels, val_inputs, val_set.labels,
                                  data, seed=train.seed, data_paths=paths, pretraining=pretraining_record)
        return PreparedRun(task, train)

    def resumed_run(self, checkpoint: Checkpoint, train: TrainConfig, place: RunPlace) -> PreparedRun:
        data = ClassificationDataConfig.from_checkpoint(checkpoint)
        data_paths = self.data_paths or [recorded_data_file(p) for p in checkpoint.metadata.get("data_paths") or []]
        examples, paths = self._examples(data_paths, data, place)
        train_set, val_set = train_validation_split(examples, data)
        vocab = Vocab.from_dict(checkpoint.metadata["vocab"])
        model = Classifier(ClassifierConfig(**checkpoint.metadata["model_config"]))  # its weights and counts: Trainer.load_resume_state
        task = ClassificationTask(model, vocab, list(checkpoint.metadata["label_names"]),
                                  EncodedTexts.of(train_set.texts, vocab, model.config, data), train_set.labels,
                                  EncodedTexts.of(val_set.texts, vocab, model.config, data), val_set.labels, data,
                                  seed=train.seed, data_paths=paths, pretraining=checkpoint.metadata.get("pretraining"))
        return PreparedRun(task, train)

    def _examples(self, data_paths: Sequence[str], data: ClassificationDataConfig,
                  place: RunPlace) -> tuple[LabelledTexts, list[str]]:
        """The labelled texts (those given, else read from the data files) and the files' paths."""
        if self.examples is not None:
            return self.examples, [str(p) for p in data_paths]
        examples, paths = read_training_data(data_paths, data)
        _warn_if_imbalanced(examples, place.on_event)
        return examples, paths


# -- inference ---------------------------------------------------------------------------------


def load_classifier(checkpoint: str | Path, device: str = "auto") -> tuple[Classifier, Vocab, list[str], Checkpoint]:
    """Rebuild the model, vocabulary and label names from a checkpoint, ready for inference."""
    target = resolve_device(device)  # outside rebuilding_from: a bad --device is the user's, not the file's
    saved = load_checkpoint(checkpoint, task=TASK)
    with rebuilding_from(checkpoint):
        ClassificationDataConfig.from_checkpoint(saved)  # read by every use: a damaged one fails here
        model = restore_for_inference(Classifier(ClassifierConfig(**saved.metadata["model_config"])), saved, target)
        return model, Vocab.from_dict(saved.metadata["vocab"]), list(saved.metadata["label_names"]), saved


def load_embedder(checkpoint: str | Path, *, device: str = "auto", batch_size: int = EVAL_BATCH) -> Embedder:
    """The classifier's sentence vectors: its bidirectional layer pooled as for classifying
    (max, mean or attention), before the output layer; the n-gram channel has no vector."""
    model, vocab, _, saved = load_classifier(checkpoint, device)
    data = ClassificationDataConfig.from_checkpoint(saved)
    target = next(model.parameters()).device

    @torch.inference_mode()
    def vectors_of(texts: Sequence[str]) -> torch.Tensor:
        encoded = EncodedTexts.of([text.strip() for text in texts], vocab, model.config, data)

        def run(chunk: list[int]) -> torch.Tensor:
            inputs = encoded.batch(chunk, target, with_ngrams=False)
            return model.encode(inputs["tokens"], inputs["lengths"])

        return in_length_order(encoded.lengths(), batch_size, run, dimension)

    dimension = 2 * model.config.hidden_size  # both directions
    return Embedder(TASK, dimension, vectors_of)


@dataclass
class Prediction:
    text: str
    label: str | None  # None for an empty line: there is nothing to classify
    probabilities: dict[str, float] = field(default_factory=dict)

    @property
    def probability(self) -> float | None:
        return self.probabilities[self.label] if self.label is not None else None


def classify(model: Classifier, vocab: Vocab, label_names: Sequence[str], lines: Sequence[str], *,
             data: ClassificationDataConfig | None = None, batch_size: int = EVAL_BATCH) -> list[Prediction]:
    """Classify lines in batches, returning one prediction a line in input order; an empty line
    gets an empty prediction, so outputs stay aligned with inputs line by line. data: the
    settings the model was trained with (ClassificationDataConfig.from_checkpoint), which say how
    to read a text [default: today's defaults]."""
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {batch_size}")
    texts = [line.strip() for line in lines]
    filled = [i for i, text in enumerate(texts) if text]
    results = [Prediction(line, None) for line in lines]
    if filled:
        encoded = EncodedTexts.of([texts[i] for i in filled], vocab, model.config, data or ClassificationDataConfig())
        probabilities = predict_probabilities(model, encoded, batch_size)
        for i, row in zip(filled, probabilities.tolist()):
            best = max(range(len(row)), key=row.__getitem__)
            results[i] = Prediction(lines[i], label_names[best], dict(zip(label_names, row)))
    return results


def evaluate_classifier(model: Classifier, vocab: Vocab, label_names: Sequence[str], examples: LabelledTexts, *,
                        data: ClassificationDataConfig | None = None, counted: bool = False) -> ClassificationMetrics:
    """Accuracy, macro-F1, calibration error and the confusion matrix on labelled texts (labels in
    the model's order), read as classify reads them (data). counted: the texts are the model's own validation texts (see
    validation_split), whose n-grams it counted; each is then scored with its own counts left out,
    as if unseen."""
    encoded = EncodedTexts.of(examples.texts, vocab, model.config, data or ClassificationDataConfig())
    probabilities = predict_probabilities(model, encoded, counted_labels=examples.labels if counted else None)
    return ClassificationMetrics.from_probabilities(probabilities, examples.labels)


def read_evaluation_data(data_paths: Sequence[str], label_names: Sequence[str], *, skip_bad: bool = False,
                         encoding: str = "utf-8") -> LabelledTexts:
    """Labelled texts to evaluate a trained model on; a label the model does not know is an error."""
    paths = [locate_data_file(p, "data file") for p in data_paths]
    return read_labelled(paths, skip_bad=skip_bad, encoding=encoding, label_names=label_names)


# -- cross-validation --------------------------------------------------------------------------


@dataclass
class CrossValidation:
    folds: list[ClassificationMetrics]
    seconds: list[float]  # wall-clock time of each fold: vocabulary, pretraining and training

    @property
    def accuracies(self) -> list[float]:
        return [f.accuracy for f in self.folds]

    @staticmethod
    def mean_and_spread(values: Sequence[float]) -> tuple[float, float]:
        """Mean and sample standard deviation."""
        mean = sum(values) / len(values)
        spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        return mean, spread


def cross_validate(
    data_paths: Sequence[str],
    *,
    folds: int = 10,
    fold_seed: int = 0,
    model_config: dict | None = None,
    data: ClassificationDataConfig | None = None,
    train: TrainConfig | None = None,
    run_dir: Path | None = None,
    device: str = "auto",
    precision: str = "auto",
    on_event: Callable[[TrainingEvent], None] | None = None,
    on_fold: Callable[[int, ClassificationMetrics, float], None] | None = None,
    pretrain: TrainConfig | None = None,
) -> CrossValidation:
    """k-fold cross-validation: for each stratified fold, train on the other folds (holding out
    their own validation split for early stopping) and score the best model on the fold.

    The fold models go to run_dir/fold-N when run_dir is given, else to a temporary folder.
    """
    if launched_in_parallel():
        # Its folds are small runs, scored and printed one by one: nothing to share between ranks.
        raise UsageError("classify cv runs on one process; run it without torchrun")
    data = data or ClassificationDataConfig()
    data.validate()
    check_model_options(model_config, pretrain)
    examples, resolved = read_training_data(data_paths, data)
    _warn_if_imbalanced(examples, on_event)
    fold_indices = stratified_folds(examples.labels, folds, seed=fold_seed)
    results, seconds = [], []
    with tempfile.TemporaryDirectory(prefix="charrnn-cv-") as scratch:
        root = Path(run_dir) if run_dir is not None else Path(scratch)
        for k, test_index in enumerate(fold_indices):
            held_out = set(test_index)
            train_share = examples.subset([i for i in range(len(examples)) if i not in held_out])
            fold_dir = root / f"fold-{k + 1}"
            start = time.perf_counter()
            result = train_classifier(resolved, model_config=model_config, data=data, train=train, run_dir=fold_dir,
                                      device=device, precision=precision, overwrite=True, on_event=on_event,
                                      pretrain=pretrain, examples=train_share)
            elapsed = time.perf_counter() - start  # everything a fold costs: vocabulary, pretraining, training
            if result.stop_reason is StopReason.INTERRUPTED:
                raise KeyboardInterrupt
            model, vocab, label_names, _ = load_classifier(fold_dir / "best.pt", device=device)
            metrics = evaluate_classifier(model, vocab, label_names, examples.subset(test_index), data=data)
            results.append(metrics)
            seconds.append(elapsed)
            if on_fold is not None:
                on_fold(k, metrics, elapsed)
    return CrossValidation(results, seconds)

