"""`charrnn classify`: label text (arguments or stdin lines), `classify train`, `classify eval`
and `classify cv`. Thin commands over charrnn.tasks.classify, like the rest of the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .cli_support import CONTEXT, DEFAULT_COMMAND, DefaultCommandGroup, checkpoint_or_bundled, finish_training, input_lines
from .errors import UsageError

BUNDLED = "sentiment.pt"
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

# The options `train` and `cv` share, declared once.
DataFiles = Annotated[list[str], typer.Argument(help="A text<TAB>label file, or one file per class (the label is the file's name).")]
MaxSteps = Annotated[Optional[int], typer.Option(rich_help_panel="Stopping", help="Stop after this many steps.")]
Epochs = Annotated[Optional[float], typer.Option(rich_help_panel="Stopping", help="Stop after this many epochs \\[default: 20 when no other stop is given].")]
TimeBudget = Annotated[Optional[float], typer.Option(rich_help_panel="Stopping", help="Stop after this many seconds of training.")]
Patience = Annotated[int, typer.Option(rich_help_panel="Stopping", help="Evaluations without improvement before stopping (0: never).")]
SkipBad = Annotated[bool, typer.Option("--skip-bad", rich_help_panel="Data", help="Skip malformed lines instead of stopping.")]
Normalise = Annotated[bool, typer.Option("--normalise/--no-normalise", rich_help_panel="Data", help="Lower-case texts and split punctuation off, in training and in use (rt-polarity's form), so casing and punctuation do not change a label.")]
Encoding = Annotated[str, typer.Option(rich_help_panel="Data", help="Text encoding of the data files.")]
Tokenizer = Annotated[str, typer.Option(rich_help_panel="Data", help="char or bpe (byte-level BPE subwords).")]
VocabSize = Annotated[int, typer.Option(rich_help_panel="Data", help="BPE vocabulary size.")]
ValFrac = Annotated[float, typer.Option(rich_help_panel="Data", help="Fraction of each class held out for early stopping.")]
MaxTokens = Annotated[int, typer.Option(rich_help_panel="Data", help="Cut texts longer than this many tokens.")]
Cell = Annotated[str, typer.Option(rich_help_panel="Model", help="lstm, gru or rnn.")]
EmbeddingSize = Annotated[int, typer.Option(rich_help_panel="Model", help="Token embedding width.")]
HiddenSize = Annotated[int, typer.Option(rich_help_panel="Model", help="Units per direction of each recurrent layer.")]
NumLayers = Annotated[int, typer.Option(rich_help_panel="Model", help="Stacked bidirectional layers.")]
Pooling = Annotated[str, typer.Option(rich_help_panel="Model", help="max, mean or attention over the positions.")]
Dropout = Annotated[float, typer.Option(rich_help_panel="Model", help="Dropout on embeddings, between layers and before the head.")]
NgramBuckets = Annotated[int, typer.Option(rich_help_panel="Model", help="Hash buckets of the naive Bayes channel over word n-grams, added to the recurrent part's logits (the default keeps the whole 32-bit hash); 0: no such channel.")]
NgramOrder = Annotated[int, typer.Option(rich_help_panel="Model", help="Longest word n-gram of the naive Bayes channel.")]
BatchSize = Annotated[int, typer.Option("--batch-size", "-b", rich_help_panel="Optimisation", help="Texts per batch.")]
LearningRate = Annotated[float, typer.Option(rich_help_panel="Optimisation", help="Peak learning rate (AdamW).")]
WarmupSteps = Annotated[int, typer.Option(rich_help_panel="Optimisation", help="Linear warm-up steps.")]
WeightDecay = Annotated[float, typer.Option(rich_help_panel="Optimisation", help="AdamW weight decay on weight matrices.")]
EvalEvery = Annotated[int, typer.Option(rich_help_panel="Optimisation", help="Evaluate on the validation split every N steps.")]
Seed = Annotated[int, typer.Option(rich_help_panel="Optimisation", help="Random seed.")]
PretrainEpochs = Annotated[float, typer.Option(rich_help_panel="Pretraining", help="Epochs of language-model pretraining of the encoder (both directions) on the training texts, before it learns the labels; 0: none.")]
PretrainLr = Annotated[float, typer.Option(rich_help_panel="Pretraining", help="Peak learning rate of the pretraining.")]
Device = Annotated[str, typer.Option(rich_help_panel="Hardware", help="auto, cpu, cuda or mps.")]
Precision = Annotated[str, typer.Option(rich_help_panel="Hardware", help="auto, fp32 or bf16.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]


def _configs(*, max_steps, epochs, time_budget, patience, skip_bad, normalise, encoding, tokenizer, vocab_size, val_frac, max_tokens,
             cell, embedding_size, hidden_size, num_layers, pooling, dropout, ngram_buckets, ngram_order, batch_size, lr,
             warmup_steps, weight_decay, eval_every, seed, pretrain_epochs, pretrain_lr):
    """(model_config, data config, train config, pretraining config or None) from the shared
    options; the configs check them."""
    from .tasks.classify import ClassificationDataConfig
    from .train import TrainConfig

    if pretrain_epochs < 0:
        raise UsageError(f"--pretrain-epochs must be 0 or more, not {pretrain_epochs}")
    pretrain = None
    if pretrain_epochs:
        pretrain = TrainConfig(learning_rate=pretrain_lr, warmup_steps=warmup_steps, weight_decay=weight_decay,
                               epochs=pretrain_epochs, eval_every=eval_every, patience=patience or None, seed=seed)
    train = TrainConfig(learning_rate=lr, warmup_steps=warmup_steps, weight_decay=weight_decay, max_steps=max_steps,
                        epochs=epochs, time_budget=time_budget, eval_every=eval_every, patience=patience or None, seed=seed)
    data = ClassificationDataConfig(tokenizer=tokenizer, vocab_size=vocab_size, batch_size=batch_size, val_frac=val_frac,
                                    max_tokens=max_tokens, encoding=encoding, skip_bad=skip_bad, normalise=normalise)
    model_config = dict(cell=cell, embedding_size=embedding_size, hidden_size=hidden_size, num_layers=num_layers,
                        pooling=pooling, dropout=dropout, ngram_buckets=ngram_buckets, ngram_order=ngram_order)
    return model_config, data, train, pretrain


@classify_app.command(DEFAULT_COMMAND, context_settings=CONTEXT)
def classify_text(
    texts: Annotated[Optional[list[str]], typer.Argument(help="Texts to classify \\[default: lines from stdin].")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", "-c", help="Classifier checkpoint \\[default: the bundled sentiment model].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines: text, label, probability of every class.")] = False,
    batch_size: Annotated[int, typer.Option(help="Texts classified together.")] = 256,
    device: Device = "auto",
):
    """Classify texts given as arguments, or stdin lines: label<TAB>probability<TAB>text, one line
    per input line (an empty input line gives an empty label and probability)."""
    from .tasks.classify import ClassificationDataConfig, classify, load_classifier

    chunks = input_lines(texts, "texts to classify")
    model, vocab, label_names, payload = load_classifier(checkpoint_or_bundled(checkpoint, BUNDLED), device=device)
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
def classify_train(
    data_files: Annotated[Optional[list[str]], typer.Argument(help="A text<TAB>label file, or one file per class (the label is the file's name); with --resume, the run's own when left out.")] = None,
    resume: Annotated[Optional[str], typer.Option(help="Continue a run exactly: its folder or a checkpoint.", rich_help_panel="Run")] = None,
    run_dir: Annotated[Optional[Path], typer.Option("--run-dir", "-o", help="Where best.pt, last.pt and log.jsonl go \\[default: checkpoints/<data name>/].", rich_help_panel="Run")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier run in the run folder.", rich_help_panel="Run")] = False,
    max_steps: MaxSteps = None,
    epochs: Epochs = None,
    time_budget: TimeBudget = None,
    patience: Patience = PATIENCE,
    skip_bad: SkipBad = False,
    normalise: Normalise = True,
    encoding: Encoding = "utf-8",
    tokenizer: Tokenizer = "bpe",
    vocab_size: VocabSize = 8000,
    val_frac: ValFrac = 0.1,
    max_tokens: MaxTokens = 400,
    cell: Cell = "lstm",
    embedding_size: EmbeddingSize = 128,
    hidden_size: HiddenSize = 128,
    num_layers: NumLayers = 1,
    pooling: Pooling = "max",
    dropout: Dropout = 0.5,
    ngram_buckets: NgramBuckets = NGRAM_BUCKETS,
    ngram_order: NgramOrder = 2,
    batch_size: BatchSize = 64,
    lr: LearningRate = LEARNING_RATE,
    warmup_steps: WarmupSteps = 50,
    weight_decay: WeightDecay = 0.1,
    eval_every: EvalEvery = 100,
    seed: Seed = 1337,
    pretrain_epochs: PretrainEpochs = 0.0,
    pretrain_lr: PretrainLr = 3e-3,
    device: Device = "auto",
    precision: Precision = "auto",
    quiet: Quiet = False,
):
    """Train a classifier on labelled texts; checkpoints go to checkpoints/<data name>/."""
    from .console import TrainingProgress
    from .tasks.classify import train_classifier

    if max_steps is None and epochs is None and time_budget is None and resume is None:
        epochs = DEFAULT_EPOCHS
    model_config, data, train, pretrain = _configs(
        max_steps=max_steps, epochs=epochs, time_budget=time_budget,
        patience=patience, skip_bad=skip_bad, normalise=normalise, encoding=encoding, tokenizer=tokenizer, vocab_size=vocab_size,
        val_frac=val_frac, max_tokens=max_tokens, cell=cell, embedding_size=embedding_size, hidden_size=hidden_size,
        num_layers=num_layers, pooling=pooling, dropout=dropout, ngram_buckets=ngram_buckets, ngram_order=ngram_order,
        batch_size=batch_size, lr=lr,
        warmup_steps=warmup_steps, weight_decay=weight_decay, eval_every=eval_every, seed=seed,
        pretrain_epochs=pretrain_epochs, pretrain_lr=pretrain_lr)
    progress = TrainingProgress(quiet=quiet, unit="tok")
    result = train_classifier(data_files, model_config=model_config, data=data, train=train, run_dir=run_dir,
                              resume=resume, device=device, precision=precision, overwrite=overwrite, on_event=progress,
                              pretrain=pretrain)
    finish_training(result, quiet=quiet, command="charrnn classify train")


@classify_app.command("eval", context_settings=CONTEXT)
def classify_eval(
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", "-c", help="Classifier checkpoint \\[default: the bundled model].")] = None,
    data: Annotated[Optional[list[str]], typer.Option(help="Labelled data to score: a text<TAB>label file, or one file per class (repeat --data) \\[default: the run's validation split].")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Save the confusion matrix as a PNG.")] = None,
    skip_bad: SkipBad = False,
    encoding: Encoding = "utf-8",
    device: Device = "auto",
):
    """Accuracy and macro-F1 on labelled data (stdout), and the confusion matrix (stderr)."""
    from .console import print_confusion_matrix
    from .plots import plot_confusion
    from .tasks.classify import (ClassificationDataConfig, evaluate_classifier, load_classifier, read_evaluation_data,
                                 validation_split)

    model, vocab, label_names, payload = load_classifier(checkpoint_or_bundled(checkpoint, BUNDLED), device=device)
    if data:
        examples = read_evaluation_data(data, label_names, skip_bad=skip_bad, encoding=encoding)
        described = ", ".join(data)
    else:
        examples = validation_split(payload)
        described = "the run's validation split"
    trained = ClassificationDataConfig.from_checkpoint(payload)
    metrics = evaluate_classifier(model, vocab, label_names, examples, data=trained, counted=not data)
    print(f"accuracy\t{metrics.accuracy:.4f}")
    print(f"macro_f1\t{metrics.macro_f1:.4f}")
    print(f"calibration_error\t{metrics.calibration_error:.4f}")
    print(f"examples\t{len(examples)}")
    print_confusion_matrix(metrics.confusion, label_names, title=f"confusion matrix on {described} (rows: true, columns: predicted)")
    if plot is not None:
        plot_confusion(metrics.confusion, label_names, plot)


@classify_app.command("cv", context_settings=CONTEXT)
def classify_cv(
    data_files: DataFiles,
    folds: Annotated[int, typer.Option(help="Number of folds.")] = 10,
    run_dir: Annotated[Optional[Path], typer.Option("--run-dir", "-o", help="Keep the fold models in RUN_DIR/fold-N \\[default: a temporary folder].")] = None,
    max_steps: MaxSteps = None,
    epochs: Epochs = None,
    time_budget: TimeBudget = None,
    patience: Patience = PATIENCE,
    skip_bad: SkipBad = False,
    normalise: Normalise = True,
    encoding: Encoding = "utf-8",
    tokenizer: Tokenizer = "bpe",
    vocab_size: VocabSize = 8000,
    val_frac: ValFrac = 0.1,
    max_tokens: MaxTokens = 400,
    cell: Cell = "lstm",
    embedding_size: EmbeddingSize = 128,
    hidden_size: HiddenSize = 128,
    num_layers: NumLayers = 1,
    pooling: Pooling = "max",
    dropout: Dropout = 0.5,
    ngram_buckets: NgramBuckets = NGRAM_BUCKETS,
    ngram_order: NgramOrder = 2,
    batch_size: BatchSize = 64,
    lr: LearningRate = LEARNING_RATE,
    warmup_steps: WarmupSteps = 50,
    weight_decay: WeightDecay = 0.1,
    eval_every: EvalEvery = 100,
    seed: Seed = 1337,
    pretrain_epochs: PretrainEpochs = 0.0,
    pretrain_lr: PretrainLr = 3e-3,
    device: Device = "auto",
    precision: Precision = "auto",
    quiet: Quiet = False,
):
    """k-fold cross-validation: train on k-1 folds, score on the held-out one, for every fold;
    the mean and spread of accuracy and macro-F1 on stdout."""
    from .console import print_warnings, stderr_console
    from .tasks.classify import CrossValidation, cross_validate

    if max_steps is None and epochs is None and time_budget is None:
        epochs = DEFAULT_EPOCHS
    model_config, data, train, pretrain = _configs(
        max_steps=max_steps, epochs=epochs, time_budget=time_budget, patience=patience, skip_bad=skip_bad,
        normalise=normalise, encoding=encoding, tokenizer=tokenizer, vocab_size=vocab_size, val_frac=val_frac, max_tokens=max_tokens,
        cell=cell, embedding_size=embedding_size, hidden_size=hidden_size, num_layers=num_layers, pooling=pooling,
        dropout=dropout, ngram_buckets=ngram_buckets, ngram_order=ngram_order, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps, weight_decay=weight_decay,
        eval_every=eval_every, seed=seed, pretrain_epochs=pretrain_epochs, pretrain_lr=pretrain_lr)

    def report(k, metrics, seconds):
        if not quiet:
            stderr_console.print(f"fold {k + 1}/{folds}: accuracy {metrics.accuracy:.4f}, macro-F1 {metrics.macro_f1:.4f}, "
                                 f"trained {seconds:.0f}s")

    result = cross_validate(data_files, folds=folds, model_config=model_config, data=data, train=train, run_dir=run_dir,
                            device=device, precision=precision, on_event=print_warnings, on_fold=report, pretrain=pretrain)
    accuracy, accuracy_spread = CrossValidation.mean_and_spread(result.accuracies)
    f1, f1_spread = CrossValidation.mean_and_spread([m.macro_f1 for m in result.folds])
    print(f"accuracy\t{accuracy:.4f}\t± {accuracy_spread:.4f}")
    print(f"macro_f1\t{f1:.4f}\t± {f1_spread:.4f}")
    calibration, calibration_spread = CrossValidation.mean_and_spread([m.calibration_error for m in result.folds])
    print(f"calibration_error\t{calibration:.4f}\t± {calibration_spread:.4f}")
    print(f"folds\t{folds}")
    print(f"seconds_per_fold\t{sum(result.seconds) / len(result.seconds):.1f}")
