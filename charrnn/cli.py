"""The `charrnn` command line: thin Typer commands that parse options and call one library
function each. torch is imported inside the commands, so `charrnn --help` starts fast."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .cli_support import CONTEXT, checkpoint_or_bundled, finish_training
from .cli_classify import classify_app
from .cli_translate import translate_app
from .errors import CharrnnError, UsageError

BUNDLED_LANGUAGE_MODEL = "shakespeare.pt"

app = typer.Typer(
    name="charrnn",
    help="Train and use small recurrent sequence models (RNN, LSTM, GRU) on your own text.",
    context_settings=CONTEXT,
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
corpus_app = typer.Typer(help="List and download the public corpora charrnn knows.", context_settings=CONTEXT, no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")
app.add_typer(translate_app, name="translate")
app.add_typer(classify_app, name="classify")


def _version(value: bool):
    if value:
        print(f"charrnn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
):
    """Train and use small recurrent sequence models (RNN, LSTM, GRU) on your own text."""


# -- train -------------------------------------------------------------------------------------


@app.command(context_settings=CONTEXT)
def train(
    corpus: Annotated[Optional[str], typer.Argument(help="Text file to train on, or - for stdin (with --resume: the run's own corpus when left out).")] = None,
    resume: Annotated[Optional[str], typer.Option(help="Continue a run exactly: its folder (uses last.pt) or a checkpoint.", rich_help_panel="Run")] = None,
    run_dir: Annotated[Optional[Path], typer.Option("--run-dir", "-o", help="Where best.pt, last.pt and log.jsonl go \\[default: checkpoints/<corpus name>/].", rich_help_panel="Run")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier run in the run folder instead of refusing.", rich_help_panel="Run")] = False,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after this many optimiser steps.", rich_help_panel="Stopping")] = None,
    epochs: Annotated[Optional[float], typer.Option(help="Stop after this many passes over the training split \\[default: 10 when no other stop is given].", rich_help_panel="Stopping")] = None,
    time_budget: Annotated[Optional[float], typer.Option(help="Stop after this many seconds of training; the schedule fits itself to the budget.", rich_help_panel="Stopping")] = None,
    patience: Annotated[int, typer.Option(help="Stop after this many evaluations without improvement (0: never).", rich_help_panel="Stopping")] = 10,
    cell: Annotated[str, typer.Option(help="Recurrent cell: lstm, gru or rnn.", rich_help_panel="Model")] = "lstm",
    hidden_size: Annotated[int, typer.Option(help="Units per recurrent layer.", rich_help_panel="Model")] = 256,
    num_layers: Annotated[int, typer.Option(help="Stacked recurrent layers.", rich_help_panel="Model")] = 2,
    embedding_size: Annotated[Optional[int], typer.Option(help="Token embedding width \\[default: hidden size].", rich_help_panel="Model")] = None,
    dropout: Annotated[Optional[float], typer.Option(help="Dropout on embeddings, between layers and before the head \\[default: 0, more for runs of many epochs].", rich_help_panel="Model")] = None,
    tokenizer: Annotated[str, typer.Option(help="char (Unicode code points) or bpe (byte-level BPE).", rich_help_panel="Data")] = "char",
    vocab_size: Annotated[int, typer.Option(help="BPE vocabulary size (with --tokenizer bpe).", rich_help_panel="Data")] = 2000,
    encoding: Annotated[str, typer.Option(help="Text encoding of the corpus.", rich_help_panel="Data")] = "utf-8",
    val_frac: Annotated[float, typer.Option(help="Fraction at the end of the corpus held out for validation.", rich_help_panel="Data")] = 0.1,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-b", help="Parallel streams per batch \\[default: chosen from the measured speed].", rich_help_panel="Optimisation")] = None,
    seq_len: Annotated[Optional[int], typer.Option(help="Truncated-BPTT window length \\[default: 64].", rich_help_panel="Optimisation")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate (AdamW) \\[default: grows with the batch].", rich_help_panel="Optimisation")] = None,
    min_lr_ratio: Annotated[Optional[float], typer.Option(help="Final learning rate as a fraction of the peak \\[default: 0].", rich_help_panel="Optimisation")] = None,
    warmup_steps: Annotated[Optional[int], typer.Option(help="Linear warm-up steps \\[default: 5% of the run].", rich_help_panel="Optimisation")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="AdamW weight decay on weight matrices \\[default: 0.3 for a run of more than 6 epochs without dropout, else 0.1].", rich_help_panel="Optimisation")] = None,
    grad_clip: Annotated[float, typer.Option(help="Clip the gradient norm to this.", rich_help_panel="Optimisation")] = 1.0,
    eval_every: Annotated[Optional[int], typer.Option(help="Evaluate every N steps \\[default: 10 times a run].", rich_help_panel="Optimisation")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (weights, dropout).", rich_help_panel="Optimisation")] = 1337,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.", rich_help_panel="Hardware")] = "auto",
    precision: Annotated[str, typer.Option(help="auto (bf16 where the hardware runs it fast), fp32 or bf16.", rich_help_panel="Hardware")] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
):
    """Train a language model on a text file; checkpoints go to checkpoints/<corpus name>/.

    Options left unset among --batch-size, --seq-len, --lr, --warmup-steps, --eval-every and
    --dropout are chosen from the measured cost of a training step on this machine and the length
    of the run (one line says what and why)."""
    from .console import TrainingProgress
    from .tasks.language import LanguageDataConfig, train_language_model
    from .train import TrainConfig

    if max_steps is None and epochs is None and time_budget is None and resume is None:
        epochs = 10.0
    train_config = TrainConfig(
        learning_rate=lr, min_lr_ratio=min_lr_ratio, warmup_steps=warmup_steps, weight_decay=weight_decay,
        grad_clip=grad_clip, max_steps=max_steps, epochs=epochs, time_budget=time_budget, eval_every=eval_every,
        patience=patience or None, seed=seed,
    )
    data_config = LanguageDataConfig(batch_size=batch_size, seq_len=seq_len, val_frac=val_frac, tokenizer=tokenizer,
                                     vocab_size=vocab_size, encoding=encoding)
    model_config = dict(cell=cell, hidden_size=hidden_size, num_layers=num_layers, embedding_size=embedding_size, dropout=dropout)
    progress = TrainingProgress(quiet=quiet, unit="char" if tokenizer == "char" else "tok")
    result = train_language_model(
        corpus, model_config=model_config, data=data_config, train=train_config, run_dir=run_dir, resume=resume,
        device=device, precision=precision, overwrite=overwrite, on_event=progress,
    )
    finish_training(result, quiet=quiet, command="charrnn train")


# -- sample ------------------------------------------------------------------------------------


@app.command(context_settings=CONTEXT)
def sample(
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", "-c", help="Checkpoint to sample from \\[default: the bundled Shakespeare model].")] = None,
    temp: Annotated[float, typer.Option("--temp", "-t", help="Temperature; 0 is greedy.")] = 0.8,
    top_k: Annotated[Optional[int], typer.Option(help="Sample only from the K most likely tokens.")] = None,
    top_p: Annotated[Optional[float], typer.Option(help="Sample only from the smallest set of tokens whose probability reaches P.")] = None,
    prime: Annotated[Optional[str], typer.Option(help="Text to start from (printed before the sample).")] = None,
    prime_file: Annotated[Optional[Path], typer.Option(help="Read the prime from this file.")] = None,
    length: Annotated[int, typer.Option("--length", "-n", help="Tokens (characters for a char model) to generate.")] = 1000,
    num_samples: Annotated[int, typer.Option(help="Independent samples, separated by a blank line.")] = 1,
    seed: Annotated[Optional[int], typer.Option(help="Random seed: the same seed gives the same text.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
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
    from .tasks.language import load_language_model, sample_text

    sampling = SamplingConfig(temperature=temp, top_k=top_k, top_p=top_p)
    model, vocab, _ = load_language_model(checkpoint_or_bundled(checkpoint, BUNDLED_LANGUAGE_MODEL), device=device)
    out = sys.stdout
    for i in range(num_samples):
        if i > 0:
            out.write("\n\n")
        pieces = sample_text(model, vocab, prime=prime if prime is not None else "\n", length=length, sampling=sampling,
                             seed=None if seed is None else seed + i)
        if prime is not None:
            out.write(prime)
        for piece in pieces:
            out.write(piece)
            out.flush()
    out.write("\n")
    out.flush()


# -- info and export ---------------------------------------------------------------------------


@app.command(context_settings=CONTEXT)
def info(checkpoint: Annotated[Path, typer.Argument(help="A checkpoint file or run folder.")]):
    """Show a checkpoint's model, vocabulary, training time and best validation figures."""
    from .checkpoint import checkpoint_file, load_checkpoint
    from .console import print_checkpoint_info

    path = checkpoint_file(checkpoint)
    payload = load_checkpoint(path)
    parameters = sum(t.numel() for t in payload["model_state"].values())
    print_checkpoint_info(str(path), payload, parameters)


@app.command(context_settings=CONTEXT)
def export(
    source: Annotated[Path, typer.Argument(help="Checkpoint to export (for example checkpoints/run/best.pt).")],
    destination: Annotated[Path, typer.Argument(help="Where to write the inference-only checkpoint.")],
    half: Annotated[bool, typer.Option("--half", help="Store weights in fp16 (half the size).")] = False,
    note: Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE notes to store (shown by charrnn info), e.g. licence.")] = None,
):
    """Write an inference-only copy of a checkpoint: weights and vocabulary, no optimiser state."""
    from .checkpoint import inference_only, load_checkpoint, save_checkpoint

    notes = {}
    for item in note or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--note takes KEY=VALUE, not {item!r}")
        notes[key] = value
    payload = inference_only(load_checkpoint(source), half=half)
    if notes:
        payload["notes"] = {**(payload.get("notes") or {}), **notes}
    save_checkpoint(payload, destination)
    size = destination.stat().st_size
    print(f"{destination} ({size / 1e6:.1f} MB)", file=sys.stderr)


# -- corpora -----------------------------------------------------------------------------------


@corpus_app.command("list", context_settings=CONTEXT)
def corpus_list():
    """List the known corpora, their licences and whether they are available here."""
    from .corpora import list_corpora

    for entry in list_corpora():
        status = f"found at {entry.local_path}" if entry.local_path else "not downloaded"
        print(f"{entry.name}\t{entry.description}\t{entry.licence}\t{status}")


@corpus_app.command("download", context_settings=CONTEXT)
def corpus_download(
    name: Annotated[str, typer.Argument(help="Corpus name from `charrnn corpus list`.")],
    dest: Annotated[Path, typer.Option(help="Folder to download into.")] = Path("corpora"),
    url: Annotated[Optional[str], typer.Option(help="Download from this URL (a mirror) instead of the manifest's; the checksum is still verified.")] = None,
):
    """Download a public corpus, verify its sha256 checksum, and store it atomically."""
    from .corpora import download_corpus, list_corpora

    path = download_corpus(name, dest=dest, url=url)
    entry = next(e for e in list_corpora() if e.name == name)
    # Some licences (CC-BY) require the attribution to travel with anything made from the data.
    print(f"{name}: {entry.licence}; attribution: {entry.attribution}", file=sys.stderr)
    print(path)


# -- entry point -------------------------------------------------------------------------------


def _silence_stdout() -> None:
    """After the reader of a pipe has gone (`| head`), point stdout at /dev/null so the
    interpreter's final flush does not raise a second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _error(message: str) -> None:
    print(f"charrnn: error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every user error becomes one line on stderr and an exit code (2 for usage,
    1 for run-time problems), never a traceback."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="charrnn", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        _error("aborted")
        code = 130
    except typer.TyperException as exc:  # bad options and arguments: typer's parser reports them
        if type(exc).__name__ == "NoArgsIsHelpError" and getattr(exc, "ctx", None) is not None:
            print(exc.ctx.get_help(), file=sys.stderr)
        else:
            _error(exc.format_message())
        code = getattr(exc, "exit_code", 2)
    except CharrnnError as exc:
        _error(exc.message)
        code = exc.exit_code
    except BrokenPipeError:
        _silence_stdout()
        code = 0
    except KeyboardInterrupt:
        _error("interrupted")
        code = 130
    except MemoryError:
        _error("out of memory; try a smaller --batch-size or --hidden-size")
        code = 1
    if code:
        sys.exit(code)
    return 0


if __name__ == "__main__":
    main()
