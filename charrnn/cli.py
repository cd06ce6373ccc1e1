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
from .cli_options import TRAINING_OPTIONS, TrainingOptions, with_options
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
@with_options(TRAINING_OPTIONS, defaults=dict(tokenizer="char", vocab_size=2000), helps={
    "hidden_size": "Units per recurrent layer.",
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
    **shared,
):
    """Train a language model on a text file; checkpoints go to checkpoints/<corpus name>/.

    Options left unset among --batch-size, --seq-len, --lr, --warmup-steps, --eval-every and
    --dropout are chosen from the measured cost of a training step on this machine and the length
    of the run (one line says what and why)."""
    from .console import TrainingProgress
    from .tasks.language import LanguageDataConfig, train_language_model

    options = TrainingOptions.take(shared)
    data_config = LanguageDataConfig(batch_size=options.batch_size, seq_len=seq_len, val_frac=val_frac,
                                     tokenizer=options.tokenizer, vocab_size=options.vocab_size, encoding=encoding)
    progress = TrainingProgress(quiet=options.quiet, unit="char" if options.tokenizer == "char" else "tok")
    result = train_language_model(
        corpus, model_config=options.model_options(), data=data_config, train=options.train_config(default_epochs=10.0),
        run_dir=options.run_dir, resume=options.resume, device=options.device, precision=options.precision,
        overwrite=options.overwrite, on_event=progress,
    )
    finish_training(result, quiet=options.quiet, command="charrnn train")


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
    saved = load_checkpoint(path)
    parameters = sum(t.numel() for t in saved.model_state.values() if t.is_floating_point())
    print_checkpoint_info(str(path), saved, parameters)


@app.command(context_settings=CONTEXT)
def export(
    source: Annotated[Path, typer.Argument(help="Checkpoint to export (for example checkpoints/run/best.pt).")],
    destination: Annotated[Path, typer.Argument(help="Where to write the inference-only checkpoint.")],
    half: Annotated[bool, typer.Option("--half", help="Store weights in fp16 (half the size).")] = False,
    note: Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE notes to store (shown by charrnn info), e.g. licence.")] = None,
):
    """Write an inference-only copy of a checkpoint: weights and vocabulary, no optimiser state."""
    from .checkpoint import load_checkpoint, save_checkpoint

    notes = {}
    for item in note or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--note takes KEY=VALUE, not {item!r}")
        notes[key] = value
    exported = load_checkpoint(source).for_inference(half=half)
    if notes:
        exported.metadata = {**exported.metadata, "notes": {**(exported.metadata.get("notes") or {}), **notes}}
    save_checkpoint(exported, destination)
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
