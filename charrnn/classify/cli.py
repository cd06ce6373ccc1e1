"""`charrnn classify`: label text (arguments or stdin lines), `classify train`, `classify eval`
and `classify cv`. Thin commands over charrnn.classify.task, like the rest of the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..cli_options import TRAINING_OPTIONS, TrainingOptions, with_options
from ..cli_support import CONTEXT, DEFAULT_COMMAND, DefaultCommandGroup, finish_training, input_lines
from ..errors import UsageError
from ..numbers import check_finite, check_range
from ..output_files import check_plot_file

BUNDLED = "sentiment"  # charrnn/models/sentiment.pt
# Defaults measured on rt-polarity folds (README, "How the defaults were chosen"); train and cv share them.
DEFAULT_EPOCHS = 20.0
LEARNING_RATE = 5e-3
PATIENCE = 10
NGRAM_BUCKETS = 2**32  # all of the CRC-32 hash: models.classifier.MAX_NGRAM_BUCKETS (torch stays unimported here)

classify_app = typer.Typer(
    cls=DefaultCommandGroup,
    context_settings=CONTEXT,
    help="Classify text (sentiment with the bundled model): [bold]charrnn classify [OPTIONS] [TEXT]...[/bold], "
         "or lines from stdin. Subcommands train, evaluate and cross-validate models.",
    rich_markup_mode="rich",
)

# The options `train` and `cv` share beyond every training command's (cli_options.TRAINING_OPTIONS),
# declared once; with the defaults measured on rt-polarity folds (README, "How the defaults were chosen").
DataFiles = Annotated[list[str], typer.Argument(help="A text<TAB>label file, or one file per class (the label is the file's name).")]
CLASSIFIER_OPTIONS = {
    "skip_bad": (bool, False, typer.Option("--skip-bad", rich_help_panel="Data", help="Skip malformed lines instead of stopping.")),
    "normalise": (bool, True, typer.Option("--normalise/--no-normalise", rich_help_panel="Data", help="Lower-case texts and split punctuation off, in training and in use (rt-polarity's form), so casing and punctuation do not change a label.")),
    "encoding": (str, "utf-8", typer.Option(rich_help_panel="Data", help="Text encoding of the data files.")),
    "val_frac": (float, 0.1, typer.Option(rich_help_panel="Data", help="Fraction of each class held out for early stopping.")),
    "max_tokens": (int, 400, typer.Option(rich_help_panel="Data", help="Cut texts longer than this many tokens.")),
    "pooling": (str, "max", typer.Option(rich_help_panel="Model", help="max, mean or attention over the positions.")),
    "ngram_buckets": (int, NGRAM_BUCKETS, typer.Option(rich_help_panel="Model", help="Hash buckets of the naive Bayes channel over word n-grams, added to the recurrent part's logits (the default keeps the whole 32-bit hash); 0: no such channel.")),
    "ngram_order": (int, 2, typer.Option(rich_help_panel="Model", help="Longest word n-gram of the naive Bayes channel.")),
    "pretrain_epochs": (float, 0.0, typer.Option(rich_help_panel="Pretraining", help="Epochs of language-model pretraining of the encoder (both directions) on the training texts, before it learns the labels; 0: none.")),
    "pretrain_lr": (float, 3e-3, typer.Option(rich_help_panel="Pretraining", help="Peak learning rate of the pretraining.")),
}
# Options of the commands that use a model (classify, eval).
Device = Annotated[str, typer.Option(rich_help_panel="Hardware", help="auto, cpu, cuda or mps.")]
SkipBad = Annotated[bool, typer.Option("--skip-bad", help="Skip malformed lines instead of stopping.")]
Encoding = Annotated[str, typer.Option(help="Text encoding of the data files.")]
CLASSIFIER_DEFAULTS = dict(cell="lstm", hidden_size=256, num_layers=1, embedding_size=128, dropout=0.5, tokenizer="bpe",
                           vocab_size=8000, batch_size=64, lr=LEARNING_RATE, min_lr_ratio=0.1, warmup_steps=50, weight_decay=0.1,
                           eval_every=100, patience=PATIENCE)
CLASSIFIER_HELPS = {
    "hidden_size": "Width of each bidirectional layer's output: each direction has half (128 units with the default).",
    "num_layers": "Stacked bidirectional layers.",
    "batch_size": "Texts per batch.",
    "epochs": "Stop after this many epochs \\[default: 20 when no other stop is given].",
}


def _configs(options: TrainingOptions, own: dict):
    """(model_config, data config, train config, pretraining config or None) from the shared
    options and the classifier's own (CLASSIFIER_OPTIONS); the configs check them."""
    from .task import ClassificationDataConfig
    from ..train import TrainConfig

    check_range(own["pretrain_epochs"], "--pretrain-epochs", low=0)
    check_finite(own["pretrain_lr"], "--pretrain-lr")
    if own["pretrain_lr"] <= 0:
        raise UsageError(f"--pretrain-lr must be positive, not {own['pretrain_lr']}")
    train = options.train_config(default_epochs=DEFAULT_EPOCHS)
    pretrain = None
    if own["pretrain_epochs"]:
        pretrain = TrainConfig(learning_rate=own["pretrain_lr"], warmup_steps=options.warmup_steps,
                               weight_decay=options.weight_decay, epochs=own["pretrain_epochs"],
                               eval_every=options.eval_every, patience=train.patience, seed=options.seed)
    data = ClassificationDataConfig(tokenizer=options.tokenizer, vocab_size=options.vocab_size,
                                    batch_size=options.batch_size, val_frac=own["val_frac"], max_tokens=own["max_tokens"],
                                    encoding=own["encoding"], skip_bad=own["skip_bad"], normalise=own["normalise"])
    model_config = dict(options.model_options(), pooling=own["pooling"], ngram_buckets=own["ngram_buckets"],
                        ngram_order=own["ngram_order"])
    # --hidden-size is a layer's output width for every task; a ClassifierConfig counts the units
    # of one direction.
    if options.hidden_size % 2 or options.hidden_size < 2:
        raise UsageError(f"--hidden-size must be an even number (each direction has half), not {options.hidden_size}")
    model_config["hidden_size"] = options.hidden_size // 2
    return model_config, data, train, pretrain


@classify_app.command(DEFAULT_COMMAND, context_settings=CONTEXT, hidden=True)
def classify_text(
    texts: Annotated[Optional[list[str]], typer.Argument(metavar="TEXT", help="Texts to classify \\[default: lines from stdin].")] = None,
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Classifier checkpoint: a file, a run folder, or a bundled model's name.")] = Path(BUNDLED),
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines: text, label, probability of every class.")] = False,
    batch_size: Annotated[int, typer.Option(help="Texts classified together.")] = 256,
    device: Device = "auto",
    encoding: Annotated[str, typer.Option(help="Text encoding of stdin (utf-8, latin-1, cp1252, ...).")] = "utf-8",
):
    """Classify texts given as arguments, or stdin lines: label<TAB>probability<TAB>text, one line
    per input line (an empty input line gives an empty label and probability)."""
    from .task import ClassificationDataConfig, classify, load_classifier

    chunks = input_lines(texts, "texts to classify", encoding)
    model, vocab, label_names, payload = load_classifier(checkpoint, device=device)
    trained = ClassificationDataConfig.from_checkpoint(payload)
    for lines in chunks:
        for p in classify(model, vocab, label_names, lines, data=trained, batch_size=batch_size):
            if as_json:
                probabilities = {k: round(v, 4) for k, v in p.probabilities.items()} or None
                line = json.dumps({"text": p.text, "label": p.label, "probabilities": probabilities}, ensure_ascii=False)
            else:
                probability = f"{p.probability:.4f}" if p.label is not None else ""
                line = f"{p.label or ''}\t{probability}\t{p.text}"
            sys.stdout.write(line + "\n")
        sys.stdout.flush()


@classify_app.command("train", context_settings=CONTEXT)
@with_options(TRAINING_OPTIONS, CLASSIFIER_OPTIONS, defaults=CLASSIFIER_DEFAULTS, helps=CLASSIFIER_HELPS)
def classify_train(
    data_files: Annotated[Optional[list[str]], typer.Argument(help="A text<TAB>label file, or one file per class (the label is the file's name); with --resume, the run's own when left out.")] = None,
    **shared,
):
    """Train a classifier on labelled texts; checkpoints go to checkpoints/<data name>/."""
    from ..console import TrainingProgress
    from .task import train_classifier

    options = TrainingOptions.take(shared)
    model_config, data, train, pretrain = _configs(options, shared)
    progress = TrainingProgress(quiet=options.quiet, unit="tok")
    result = train_classifier(data_files, model_config=model_config, data=data, train=train, run_dir=options.run_dir,
                              resume=options.resume, device=options.device, precision=options.precision,
                              overwrite=options.overwrite, on_event=progress, pretrain=pretrain)
    finish_training(result, quiet=options.quiet, command="charrnn classify train", as_json=options.as_json)


@classify_app.command("eval", context_settings=CONTEXT)
def classify_eval(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Classifier checkpoint: a file, a run folder, or a bundled model's name.")] = Path(BUNDLED),
    data: Annotated[Optional[list[str]], typer.Option(help="Labelled data to score: a text<TAB>label file, or one file per class (repeat --data) \\[default: the run's validation split].")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Save the confusion matrix as a PNG.")] = None,
    skip_bad: SkipBad = False,
    encoding: Encoding = "utf-8",
    device: Device = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: the figures, each class's F1 and the confusion matrix.")] = False,
):
    """Accuracy and macro-F1 on labelled data (stdout), and the confusion matrix (stderr)."""
    from ..console import print_confusion_matrix
    from ..plots import plot_confusion
    from .task import (ClassificationDataConfig, evaluate_classifier, load_classifier, read_evaluation_data,
                       validation_split)

    if plot is not None:
        check_plot_file(plot, "--plot")
    model, vocab, label_names, payload = load_classifier(checkpoint, device=device)
    if data:
        examples = read_evaluation_data(data, label_names, skip_bad=skip_bad, encoding=encoding)
        described = ", ".join(data)
    else:
        examples = validation_split(payload)
        described = "the run's validation split"
    trained = ClassificationDataConfig.from_checkpoint(payload)
    metrics = evaluate_classifier(model, vocab, label_names, examples, data=trained, counted=not data)
    if as_json:
        print(json.dumps({"data": described, "examples": len(examples), "accuracy": metrics.accuracy,
                          "macro_f1": metrics.macro_f1, "calibration_error": metrics.calibration_error,
                          "labels": list(label_names), "f1": metrics.f1, "confusion": metrics.confusion}))
    else:
        _print_eval_lines(metrics, len(examples))
    print_confusion_matrix(metrics.confusion, label_names, title=f"confusion matrix on {described} (rows: true, columns: predicted)")
    if plot is not None:
        plot_confusion(metrics.confusion, label_names, plot)


def _print_eval_lines(metrics, examples: int) -> None:
    print(f"accuracy\t{metrics.accuracy:.4f}")
    print(f"macro_f1\t{metrics.macro_f1:.4f}")
    print(f"calibration_error\t{metrics.calibration_error:.4f}")
    print(f"examples\t{examples}")


@classify_app.command("cv", context_settings=CONTEXT)
@with_options(TRAINING_OPTIONS, CLASSIFIER_OPTIONS, defaults=CLASSIFIER_DEFAULTS, omit=("resume", "overwrite"),
              helps={**CLASSIFIER_HELPS, "run_dir": "Keep the fold models in RUN_DIR/fold-N \\[default: a temporary folder].",
                     "as_json": "One JSON object: mean and spread of each figure, and every fold's."})
def classify_cv(
    data_files: DataFiles,
    folds: Annotated[int, typer.Option(help="Number of folds.")] = 10,
    **shared,
):
    """k-fold cross-validation: train on k-1 folds, score on the held-out one, for every fold;
    the mean and spread of accuracy and macro-F1 on stdout."""
    from ..console import print_warnings, stderr_console
    from .task import CrossValidation, cross_validate

    options = TrainingOptions.take(shared)
    model_config, data, train, pretrain = _configs(options, shared)
    quiet, run_dir, device, precision = options.quiet, options.run_dir, options.device, options.precision
    as_json = options.as_json

    def report(k, metrics, seconds):
        if not quiet:
            stderr_console.print(f"fold {k + 1}/{folds}: accuracy {metrics.accuracy:.4f}, macro-F1 {metrics.macro_f1:.4f}, "
                                 f"trained {seconds:.0f}s")

    result = cross_validate(data_files, folds=folds, model_config=model_config, data=data, train=train, run_dir=run_dir,
                            device=device, precision=precision, on_event=print_warnings, on_fold=report, pretrain=pretrain)
    figures = {name: CrossValidation.mean_and_spread([getattr(m, name) for m in result.folds])
               for name in ("accuracy", "macro_f1", "calibration_error")}
    seconds_per_fold = sum(result.seconds) / len(result.seconds)
    if as_json:
        per_fold = [{"accuracy": m.accuracy, "macro_f1": m.macro_f1, "calibration_error": m.calibration_error,
                     "seconds": seconds} for m, seconds in zip(result.folds, result.seconds)]
        print(json.dumps({"folds": folds, **{name: {"mean": mean, "sd": spread} for name, (mean, spread) in figures.items()},
                          "seconds_per_fold": seconds_per_fold, "per_fold": per_fold}))
        return
    for name, (mean, spread) in figures.items():
        print(f"{name}\t{mean:.4f}\t± {spread:.4f}")
    print(f"folds\t{folds}")
    print(f"seconds_per_fold\t{seconds_per_fold:.1f}")
