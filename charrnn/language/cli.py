"""The language model's commands: `charrnn train` and `charrnn sample` (registered by charrnn.cli).
Thin commands over charrnn.language.task, like the rest of the CLI; torch is imported inside them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..cli_options import TRAINING_OPTIONS, TrainingOptions, with_options
from ..cli_support import finish_training
from ..errors import CharrnnError, UsageError
from ..numbers import check_seed

BUNDLED = "shakespeare"  # charrnn/models/shakespeare.pt


# -- train -------------------------------------------------------------------------------------


@with_options(TRAINING_OPTIONS, defaults=dict(tokenizer="char", vocab_size=2000, num_layers=None), helps={
    "cell": "lstm, gru or rnn (recurrent), or wavenet (causal dilated convolutions that read a fixed number of past tokens).",
    "hidden_size": "Units per recurrent layer, or a WaveNet's channels.",
    "num_layers": "Stacked recurrent layers \\[default: 2], or a WaveNet's dilated layers: dilations 1, 2, 4, ..., so "
                  "N layers read the last 2**N tokens \\[default: 8, 256 tokens].",
    "embedding_size": "Token embedding width \\[default: hidden size].",
    "dropout": "Dropout on embeddings, between layers and before the head \\[default: 0, more for runs of many epochs].",
    "batch_size": "Parallel streams per batch \\[default: chosen from the measured speed].",
    "lr": "Peak learning rate (AdamW) \\[default: grows with the batch].",
    "min_lr_ratio": "Final learning rate as a fraction of the peak \\[default: 0].",
    "warmup_steps": "Linear warm-up steps \\[default: 5% of the run].",
    "weight_decay": "AdamW weight decay on weight matrices \\[default: 0.3 for a run of more than 6 epochs without dropout, else 0.1].",
    "eval_every": "Evaluate every N steps \\[default: 10 times a run].",
    "epochs": "Stop after this many passes over the training split \\[default: 10 when no other stop is given].",
})
def train(
    corpus: Annotated[Optional[str], typer.Argument(help="Text file to train on, or - for stdin (with --resume: the run's own corpus when left out).")] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of the corpus.", rich_help_panel="Data")] = "utf-8",
    val_frac: Annotated[float, typer.Option(help="Fraction at the end of the corpus held out for validation.", rich_help_panel="Data")] = 0.1,
    seq_len: Annotated[Optional[int], typer.Option(help="Truncated-BPTT window length \\[default: 64].", rich_help_panel="Optimisation")] = None,
    condition: Annotated[Optional[str], typer.Option(metavar="COLUMN", rich_help_panel="Data", help=(
        "Train a conditional model: the corpus is tab-separated, text<TAB>label lines or a header naming its columns "
        "(the texts in the one named text), and COLUMN holds each text's label (or vector, with --condition-type vector); "
        "`sample --condition LABEL` then writes in its style."))] = None,
    condition_type: Annotated[str, typer.Option(rich_help_panel="Data", help=(
        "What the --condition column holds: label (a name) or vector (numbers separated by spaces or commas, "
        "as many on every line: ratings, scores, embeddings)."))] = "label",
    condition_at: Annotated[str, typer.Option(rich_help_panel="Model", help=(
        "Where the model reads the condition: every (added to every token's input) or start (only to the newline that begins each text)."))] = "every",
    skip_bad: Annotated[bool, typer.Option("--skip-bad", rich_help_panel="Data", help="Skip malformed lines of a --condition file instead of stopping.")] = False,
    **shared,
):
    """Train a language model on a text file; checkpoints go to checkpoints/<corpus name>/.

    Options left unset among --batch-size, --seq-len, --lr, --warmup-steps, --eval-every and
    --dropout are chosen from the measured cost of a training step on this machine and the length
    of the run (one line says what and why)."""
    from ..console import TrainingProgress
    from .task import LanguageDataConfig, train_language_model

    options = TrainingOptions.take(shared)
    if condition is None and (condition_at != "every" or condition_type != "label" or skip_bad):
        raise UsageError("--condition-at, --condition-type and --skip-bad are for a conditional model; give --condition COLUMN")
    data_config = LanguageDataConfig(batch_size=options.batch_size, seq_len=seq_len, val_frac=val_frac,
                                     tokenizer=options.tokenizer, vocab_size=options.vocab_size, encoding=encoding,
                                     condition=condition, condition_type=condition_type, skip_bad=skip_bad)
    progress = TrainingProgress(quiet=options.quiet, unit="char" if options.tokenizer == "char" else "tok")
    result = train_language_model(
        corpus, model_config={**options.model_options(), "condition_at": condition_at}, data=data_config,
        train=options.train_config(default_epochs=10.0),
        run_dir=options.run_dir, resume=options.resume, device=options.device, precision=options.precision,
        overwrite=options.overwrite, on_event=progress,
    )
    finish_training(result, quiet=options.quiet, command="charrnn train", as_json=options.as_json)


# -- sample ------------------------------------------------------------------------------------


def sample(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Checkpoint to sample from: a file, a run folder, or a bundled model's name.")] = Path(BUNDLED),
    temp: Annotated[float, typer.Option("--temp", "-t", help="Temperature; 0 is greedy.")] = 0.8,
    top_k: Annotated[Optional[int], typer.Option(help="Sample only from the K most likely tokens.")] = None,
    top_p: Annotated[Optional[float], typer.Option(help="Sample only from the smallest set of tokens whose probability reaches P.")] = None,
    prime: Annotated[Optional[str], typer.Option(help="Text to start from (printed before the sample).")] = None,
    prime_file: Annotated[Optional[Path], typer.Option(help="Read the prime from this file.")] = None,
    length: Annotated[int, typer.Option("--length", "-n", help="Tokens (characters for a char model) to generate.")] = 1000,
    num_samples: Annotated[int, typer.Option(help="Independent samples, separated by a blank line (with --json: one line each).")] = 1,
    seed: Annotated[Optional[int], typer.Option(help="Random seed: the same seed gives the same text.")] = None,
    condition: Annotated[Optional[str], typer.Option(metavar="LABEL", help=(
        "For a model trained with --condition: the label to write in the style of, or the vector "
        "(numbers separated by spaces or commas) of a model trained with --condition-type vector."))] = None,
    guidance: Annotated[float, typer.Option(help="With --condition: push each token away from the other labels' predictions "
                                                 "(a vector's: from no condition) by this much (0: none); "
                                                 "the condition shows more clearly, the text grows less fluent.")] = 0.0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line a sample: sample, seed, prime, condition, guidance, text (the prime included), written when the sample is complete.")] = False,
):
    """Generate text from a trained model, streamed to stdout as it is made."""
    if prime is not None and prime_file is not None:
        raise UsageError("give --prime or --prime-file, not both")
    if num_samples < 1:
        raise UsageError(f"--num-samples must be at least 1, not {num_samples}")
    if prime_file is not None:
        try:
            prime = prime_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CharrnnError(f"cannot read --prime-file {prime_file}: {getattr(exc, 'strerror', None) or exc}") from None
    from .sampling import SamplingConfig
    from .task import load_language_model, sample_text

    sampling = SamplingConfig(temperature=temp, top_k=top_k, top_p=top_p)
    if seed is not None:  # sample i uses seed + i: the last one must fit too, checked before any output
        check_seed(seed)
        check_seed(seed + max(num_samples, 1) - 1, "--seed + --num-samples - 1")
    model, vocab, _ = load_language_model(checkpoint, device=device)
    out = sys.stdout
    for i in range(num_samples):
        sample_seed = None if seed is None else seed + i
        pieces = sample_text(model, vocab, prime=prime, length=length, sampling=sampling,
                             seed=sample_seed, condition=condition, guidance=guidance)
        if as_json:
            # Samples may hold blank lines themselves: a JSON line each keeps them apart.
            text = (prime or "") + "".join(pieces)
            record = {"sample": i + 1, "seed": sample_seed, "prime": prime, "condition": condition, "guidance": guidance, "text": text}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
            continue
        if i > 0:
            out.write("\n\n")
        if prime is not None:
            out.write(prime)
        for piece in pieces:
            out.write(piece)
            out.flush()
    if not as_json:
        out.write("\n")
    out.flush()
